r"""Top-K recommendations from a trained run, for every user or for new ones.

  python -m jaxae.predict --workdir=DIR --out=DIR [--step=N | --best] [--top_k=20]
                          [--users=FILE] [--query=train|val|test] [--include_seen]
                          [--input=FILE [--delimiter=TAB]] [--score_dtype=model|float32|bfloat16]
                          [--exclude_items=FILE] [--tsv]

Whom it recommends to, and from what (a user's "query" is the row the model reads for them):

  the run's users (default)  every user the model was trained on, or those listed one raw id a line
                             in ``--users``; each user's query is their row of ``--query``: "train"
                             (the matrix the model trained on, the default) or the "val" / "test"
                             split's inputs (what the evaluator feeds for that split). Under strong
                             generalization (csv ``split="users"``) "train" means the train users
                             and "val" / "test" that split's held-out users (their fold-in items).
  new users (``--input``)    ``user item [rating]`` lines (``--delimiter``; a header line is
                             recognised; ratings read when the run's data has them, checked against
                             its rating range): each user's query is their known items, folded in
                             by one forward pass (user-row models only: there the input of the
                             autoencoder is a user). Items the run's catalog lacks are dropped and
                             counted; a user left with none is scored from an empty query and
                             counted as cold. Needs the workdir only (its ``id_maps.npz``), not the
                             training data. In Python: ``jaxae.recommender.Recommender``.

Items already in a user's query are never recommended unless ``--include_seen``; the items listed
in ``--exclude_items`` (one id a line: out of stock, say) never are (their scores masked on the
device before the ranking). The ranking is
the evaluators' (``jaxae.evaluation.topn.ChunkRanker``: ``config.eval.topk_group``,
``config.eval.score_tile``, ``config.eval.score_dtype`` or ``--score_dtype``), on the device, one
chunk of ``config.eval.batch_size`` users at a time; each chunk's [chunk, K] result is copied to the
host while the next chunk is scored and written straight into the output files, so the host never
holds more than a few chunks and the device never waits on the disk.

Item-row models (``orientation`` "item": I-AutoRec, the kernel AE, GLocal-K) score, for each item
row, every user; a user's top K is a column of those scores. The item rows are scored chunk by chunk
and every user's best K so far kept on the device ([n_users, K], merged with each chunk's
[n_users, chunk] block; never an items x users block). New users cannot be folded into such a model
(a user is one of its input units): ``--input`` is refused there.

Writes into ``--out`` (files of an earlier run there are replaced):

  recommendations_idx.npy    int32 [n_users, K]: item indices (lines of items.tsv), best first;
                             -1 where fewer than K items were left to recommend
  recommendations_score.npy  float32 [n_users, K]: the model's scores (-inf with -1)
  users.tsv                  the raw id of each row of the two arrays, one a line
  items.tsv                  the raw id of each item index, one a line
  recommendations.tsv        (``--tsv``) ``user \t item \t rank \t score`` lines (rank from 1)
  metadata.json              model, step, what was asked, counts (users, cold users, users with
                             fewer than K, input entries dropped), the files, the run's config

Melon runs (songs or playlists as rows) make their recommendations with ``eval.py``
(``results.json`` in the Kakao Arena format): refused here with that pointer.
"""

from __future__ import annotations

import collections
import functools
import gzip
import json
import os
import sys
from typing import Any

if __name__ == "__main__":   # the command: huge pages before jax is imported (may re-execute)
  from jaxae import cli as _cli  # pylint: disable=g-import-not-at-top
  _cli.malloc_early(sys.argv)

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from jaxae import evaluate as eval_lib
from jaxae.data.batching import full_batches
from jaxae.data.dataset import Dataset
from jaxae.data.matrix import Interactions
from jaxae.data.sparse import SparseBatch, global_segments, real_entries
from jaxae.errors import ConfigError, DataError
from jaxae.evaluation.topn import ChunkRanker, flat_top, rank_rows
from jaxae.export import check_ids_writable, write_ids
from jaxae.recommender import IdLookup, catalog, check_fold_in

QUERIES = ("train", "val", "test")
IDX_FILE = "recommendations_idx.npy"
SCORE_FILE = "recommendations_score.npy"
USERS_FILE = "users.tsv"
ITEMS_FILE = "items.tsv"
TSV_FILE = "recommendations.tsv"
METADATA_FILE = "metadata.json"
_ALL_FILES = (IDX_FILE, SCORE_FILE, USERS_FILE, ITEMS_FILE, TSV_FILE, METADATA_FILE)
USER_ROWS = ("user",)            # orientations whose rows are users
ITEM_ROWS = ("item",)            # rows are items, columns users
_IN_FLIGHT = 2                   # chunks scored ahead of the one being written


# ------------------------------------------------------------------------------ device side
@functools.partial(jax.jit, static_argnames=("exclude",), donate_argnums=(0, 1))
def _merge_item_rows(best_s: jax.Array, best_i: jax.Array, scores: jax.Array, batch: SparseBatch,
                     exclude: bool, row_mask: jax.Array | None = None
                     ) -> tuple[jax.Array, jax.Array]:
  """Every user's (column's) best K items so far, [n_users, K], merged with a chunk of item rows'
  scores [B, n_users]: the chunk's padding rows, the rows ``row_mask`` [n_items] marks -inf
  (None: none) and (``exclude``) its rows' query entries count as -inf. Earlier item rows come
  first among equal scores, as ``jax.lax.top_k`` over a whole column in item order would give
  them."""
  k = best_s.shape[1]
  keep = batch.mask > 0
  if row_mask is not None:                                 # banned item rows
    keep &= jnp.isfinite(row_mask[batch.rows])
  scores = jnp.where(keep[:, None], scores.astype(jnp.float32), -jnp.inf)
  if exclude:
    seg, cols = global_segments(batch).reshape(-1), batch.cols.reshape(-1)
    scores = scores.at[seg, cols].min(jnp.where(real_entries(batch).reshape(-1), -jnp.inf,
                                                jnp.inf))
  cand_s = jnp.concatenate([best_s, scores.T], axis=1)                  # [n_users, K + B]
  cand_i = jnp.concatenate([best_i, jnp.broadcast_to(batch.rows.astype(best_i.dtype)[None, :],
                                                     (best_s.shape[0], scores.shape[0]))], axis=1)
  top_s, pos = jax.lax.top_k(cand_s, k)
  return top_s, jnp.take_along_axis(cand_i, pos, axis=1)


# --------------------------------------------------------------------------------- writing
class _Writer:
  """Writes ranked chunks into the output files as they arrive from the device.

  ``add(start, count, (s, i))`` takes a chunk's device arrays for output rows ``start .. start +
  count - 1`` (their first ``count`` rows; the rest is padding), starts their copy to the host and
  writes the chunk ``_IN_FLIGHT`` places back, so the device scores ahead of the disk.
  """

  def __init__(self, out: str, user_ids: np.ndarray, item_ids: np.ndarray, k: int, tsv: bool):
    self.user_ids, self.item_ids = user_ids, item_ids
    n = len(user_ids)
    self.idx = np.lib.format.open_memmap(os.path.join(out, IDX_FILE), "w+", np.int32, (n, k))
    self.score = np.lib.format.open_memmap(os.path.join(out, SCORE_FILE), "w+", np.float32, (n, k))
    self.tsv = open(os.path.join(out, TSV_FILE), "w", encoding="utf-8") if tsv else None
    self.pending: collections.deque = collections.deque()
    self.short = 0

  def add(self, start: int, count: int, arrays: tuple[jax.Array, jax.Array]) -> None:
    for a in arrays:
      a.copy_to_host_async()
    self.pending.append((start, count, arrays))
    while len(self.pending) > _IN_FLIGHT:
      self._write(*self.pending.popleft())

  def _write(self, start: int, count: int, arrays) -> None:
    s, i = (np.asarray(a)[:count] for a in arrays)
    self.score[start:start + count] = s
    self.idx[start:start + count] = i
    self.short += int((i[:, -1] < 0).sum())
    if self.tsv is not None:
      users = self.user_ids[start:start + count].tolist()
      items = self.item_ids[np.maximum(i, 0)].tolist()
      lines = []
      for u, its, ss, ii in zip(users, items, s.tolist(), i.tolist()):
        lines.extend(f"{u}\t{it}\t{r}\t{v:.7g}\n"
                     for r, (it, v, j) in enumerate(zip(its, ss, ii), 1) if j >= 0)
      self.tsv.write("".join(lines))

  def close(self) -> None:
    while self.pending:
      self._write(*self.pending.popleft())
    self.idx.flush()
    self.score.flush()
    del self.idx, self.score
    if self.tsv is not None:
      self.tsv.close()


# ---------------------------------------------------------------------------------- inputs
def read_user_list(path: str, known: np.ndarray) -> np.ndarray:
  """Row indices of the raw ids listed one a line in ``path`` (blank lines skipped, order kept);
  an id not among ``known`` (the run's users) or listed twice is a DataError naming its line."""
  from jaxae.data.readers.common import open_text  # pylint: disable=import-outside-toplevel
  if not os.path.isfile(path):
    raise DataError(f"{path}: no such users file")
  lines = open_text(path).splitlines()
  numbers = [n for n, line in enumerate(lines, 1) if line.strip()]
  raw = np.asarray([lines[n - 1].strip() for n in numbers], dtype=str)
  if not len(raw):
    raise DataError(f"{path}: no user ids in the file")
  rows = IdLookup(known.astype(str)).find(raw)
  found = rows >= 0
  if not found.all():
    j = int(np.argmin(found))
    raise DataError(f"{path}:{numbers[j]}: unknown user id {str(raw[j])!r} "
                    f"({int((~found).sum())} of {len(raw)} ids are not users of the run; new users "
                    f"go through --input)")
  uniq, first = np.unique(rows, return_index=True)
  if len(uniq) < len(rows):
    dup = np.setdiff1d(np.arange(len(rows)), first)[0]
    raise DataError(f"{path}:{numbers[dup]}: user id {str(raw[dup])!r} listed twice")
  return rows


def read_item_list(path: str, item_ids: np.ndarray) -> tuple[np.ndarray, int]:
  """(sorted item indices, ids the catalog lacks) of the raw item ids listed one a line in
  ``path`` (blank lines skipped; ids matched as text)."""
  from jaxae.data.readers.common import open_text  # pylint: disable=import-outside-toplevel
  if not os.path.isfile(path):
    raise DataError(f"{path}: no such items file")
  raw = np.asarray([x.strip() for x in open_text(path).splitlines() if x.strip()], dtype=str)
  cols = IdLookup(item_ids.astype(str)).find(raw)
  unknown = int((cols < 0).sum())
  if unknown:
    logging.warning("%s: %d of %d ids are not items of the run's catalog", path, unknown, len(raw))
  return np.unique(cols[cols >= 0]), unknown


def _first_fields(path: str, delimiter: str | None) -> list[str]:
  """The fields of the first non-blank line of ``path`` (gzip by its magic bytes)."""
  from jaxae.data.readers.common import is_gzip  # pylint: disable=import-outside-toplevel
  try:
    with (gzip.open if is_gzip(path) else open)(path, "rb") as f:
      for line in f:
        text = line.decode("utf-8", errors="replace").strip().lstrip("\ufeff")
        if text:
          return [x.strip() for x in (text.split() if delimiter is None else
                                      text.split(delimiter))]
  except (OSError, EOFError) as e:
    raise DataError(f"{path}: cannot read ({e})") from None
  return []


def read_new_users(path: str, item_ids: np.ndarray, info: dict, delimiter: str
                   ) -> tuple[Interactions, dict[str, int]]:
  """The new users' queries from a ``user item [rating]`` file, in the run's item space.

  Ratings are read when the run's data has a ``rating_range`` (and checked against it), else every
  entry is 1. The first line is a header when its item field is not an item of the catalog (as a
  record it would be dropped as unknown). Ids are read as text (an integer item id matches its
  decimal digits). Entries whose item the catalog lacks are dropped and counted
  (``input_entries_unknown_items``); repeated (user, item) pairs keep the last line
  (``input_duplicates_merged``).
  """
  from jaxae.data.readers import csv as csv_reader  # pylint: disable=import-outside-toplevel
  if not os.path.isfile(path):
    raise DataError(f"{path}: no such input file")
  rating_range = info.get("rating_range")
  vocab = item_ids.astype(str)
  first = _first_fields(path, delimiter)
  header = len(first) > 1 and not np.isin(first[1], vocab)
  inter, report = csv_reader.read_csv(
      path, user_col=0, item_col=1, rating_col=2 if rating_range is not None else None,
      delimiter=delimiter, header=header, ids="str",
      rating_range=tuple(rating_range) if rating_range is not None else None, return_report=True)
  if inter.shape[0] == 0:
    raise DataError(f"{path}: no interactions in the file")
  # Ids are matched as text (an integer item id as its decimal digits); the users keep theirs.
  known, dropped = inter.reindex(inter.row_ids, vocab)
  counts = {"input_lines": report.lines, "input_header": int(header),
            "input_entries": report.interactions,
            "input_duplicates_merged": report.duplicates_merged,
            "input_entries_unknown_items": dropped["unknown_cols"]}
  counts.update({f"input_skipped_{k}": v for k, v in report.skipped.items()})
  if dropped["unknown_cols"]:
    logging.warning("%s: %d of %d entries name items the run's catalog lacks: dropped",
                    path, dropped["unknown_cols"], report.interactions)
  return known, counts


def _query(dataset: Dataset, query: str) -> tuple[Interactions, np.ndarray | None]:
  """The query matrix and the rows it holds users of (None: every row): under strong
  generalization the train matrix holds the train users only, a split's inputs its held-out
  users only (``Dataset.train_rows``, ``EvalSplit.rows``)."""
  if query not in QUERIES:
    raise ConfigError(f"--query must be one of {list(QUERIES)}, got {query!r}")
  if query == "train":
    return dataset.train, dataset.train_rows
  from jaxae.evaluation.context import get_split  # pylint: disable=import-outside-toplevel
  es = get_split(dataset, query)
  return es.inputs, None if es.rows is None else np.asarray(es.rows, np.int64)


# ------------------------------------------------------------------------------- the passes
def _user_rows_pass(run, ctx, query: Interactions, rows: np.ndarray | None, k: int,
                    exclude: bool, writer: _Writer, banned: np.ndarray) -> bool:
  """Ranks the items of user rows ``rows`` (None: all) of ``query`` into ``writer``, items
  ``banned`` (indices) left out; whether the model's own forward scored where ``score_tile`` /
  ``score_dtype`` asked for its output layer (it has none to score apart)."""
  from jaxae.models import needs_all_rows  # pylint: disable=import-outside-toplevel
  ranker = ChunkRanker.from_config(ctx, query.shape[1], run.config.eval)
  if ranker.fallback:
    logging.info("score_tile / score_dtype: this model has no output layer to score apart; "
                 "scoring with its own forward")
  mask = ranker.column_mask(banned)
  if needs_all_rows(run.model):      # every call reads the whole matrix: all rows, then the asked
    (batch,) = list(full_batches(query, ctx.batch_size, num_shards=ctx.num_shards))
    s, i = flat_top(*ranker(ctx.put_fn(batch), k, exclude, mask))
    if rows is not None:
      s, i = s[rows], i[rows]
    writer.add(0, writer.idx.shape[0], (s, i))
    return ranker.fallback
  for start, count, ranked in rank_rows(ranker, ctx.put_fn, query, ctx.batch_size,
                                       ctx.num_shards, k, exclude, row_subset=rows,
                                       col_mask=mask):
    writer.add(start, count, ranked)
  return ranker.fallback


def _item_rows_pass(ctx, query: Interactions, users: np.ndarray | None, k: int, exclude: bool,
                    writer: _Writer, banned: np.ndarray) -> None:
  """Every user's (column's) top ``k`` item rows of ``query``, item rows ``banned`` (indices)
  left out, merged chunk by chunk on the device; the users ``users`` (None: all) into
  ``writer``."""
  n_users = query.shape[1]
  best_s = jnp.full((n_users, k), -jnp.inf, jnp.float32)
  best_i = jnp.full((n_users, k), -1, jnp.int32)
  row_mask = None
  if len(banned):
    row_mask = np.zeros(query.shape[0], np.float32)
    row_mask[banned] = -np.inf
    row_mask = jnp.asarray(row_mask)
  for batch in full_batches(query, ctx.batch_size, num_shards=ctx.num_shards):
    dev = ctx.put_fn(batch)
    best_s, best_i = _merge_item_rows(best_s, best_i, ctx.score_fn(dev), dev, exclude, row_mask)
  s, i = flat_top(best_s, best_i)
  if users is not None:
    s, i = s[users], i[users]
  writer.add(0, writer.idx.shape[0], (s, i))


# ------------------------------------------------------------------------------------ main
def recommend(workdir: str | os.PathLike, out: str | os.PathLike, *, step: int | None = None,
              top_k: int = 20, users: str | None = None, query: str = "train",
              input_path: str | None = None, delimiter: str = "\t", include_seen: bool = False,
              score_dtype: str | None = None, tsv: bool = False,
              exclude_items: str | None = None, dataset: Dataset | None = None
              ) -> dict[str, Any]:
  """Writes the top ``top_k`` items of users of the run in ``workdir`` into ``out``.

  Args:
    workdir: a run's directory (``train.py`` made it).
    out: output directory (created; the files of an earlier run there are replaced).
    step: checkpoint step; None = the latest.
    top_k: items per user, 1 .. the number of items.
    users: a file of the run's user ids, one a line (None: every user of the run).
    query: "train" | "val" | "test": whose rows the users' queries are (module docstring).
    input_path: a ``user item [rating]`` file of new users (fold-in) instead of the run's users.
    delimiter: ``input_path``'s field separator (None: runs of blanks).
    include_seen: rank the items of a user's query too.
    score_dtype: "model" | "float32" | "bfloat16" (``config.eval.score_dtype``; None: the run's).
    tsv: also write ``recommendations.tsv``.
    exclude_items: a file of raw item ids, one a line, never recommended (to anyone); ids the
      catalog lacks are counted (``exclude_unknown``).
    dataset: the data, bypassing the rebuild from the saved config (still checked against the
      saved id maps). New users (``input_path``) need none: their items are matched against the
      run's ``id_maps.npz``.

  Returns:
    The metadata written to ``metadata.json``.
  """
  if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
    raise ConfigError(f"--top_k must be an integer >= 1, got {top_k!r}")
  if input_path is not None and (users is not None or query != "train"):
    raise ConfigError("--input scores new users from the file: --users and --query pick the run's "
                      "own users, give one or the other")
  if jax.process_count() > 1:
    raise ConfigError("jaxae.predict runs as one process (it uses every device of this host)")
  run = eval_lib.load_checkpoint(workdir, step)
  orientation = run.info.get("orientation")
  if orientation not in USER_ROWS + ITEM_ROWS:
    raise ConfigError(f"{run.workdir}: rows of this run are {orientation!r}s: jaxae.predict "
                      f"recommends items to users (rows or columns of user-item data); a Melon "
                      f"run writes its recommendations with eval.py (results.json, the Kakao Arena "
                      f"format)")
  item_rows = orientation in ITEM_ROWS
  if input_path is not None:
    check_fold_in(run)
  if score_dtype is not None:
    if item_rows and score_dtype != "model":
      raise ConfigError("--score_dtype scores a user-row model's output layer; this run's rows "
                        "are items (its scores come from its own forward)")
    with run.config.unlocked():
      run.config.eval.score_dtype = score_dtype
  if input_path is not None:         # new users need the catalog only, not the training data
    data, user_ids, item_ids = None, None, catalog(run)
  else:
    data = eval_lib.rebuild_dataset(run, dataset)
    row_ids, col_ids = np.asarray(data.train.row_ids), np.asarray(data.train.col_ids)
    user_ids, item_ids = (col_ids, row_ids) if item_rows else (row_ids, col_ids)
  n_items = len(item_ids)
  if top_k > n_items:
    raise ConfigError(f"--top_k ({top_k}) exceeds the {n_items} items to rank")
  check_ids_writable(item_ids, "item", ITEMS_FILE)
  counts: dict[str, int] = {}
  banned = np.zeros(0, np.int64)
  if exclude_items is not None:
    banned, counts["exclude_unknown"] = read_item_list(exclude_items, item_ids)
    counts["excluded_items"] = int(len(banned))
  if input_path is not None:
    q, counts = read_new_users(input_path, item_ids, run.info, delimiter)
    subset, user_ids = None, np.asarray(q.row_ids)
    data = Dataset(q, info=dict(run.info))     # the new users' rows, in the run's item space
  else:
    q, query_rows = _query(data, query)
    subset = read_user_list(users, user_ids) if users is not None else query_rows
    if subset is not None:
      user_ids = user_ids[subset]
  check_ids_writable(user_ids, "user", USERS_FILE)
  lengths = q.col_counts() if item_rows else q.row_lengths()
  if subset is not None:
    lengths = lengths[subset]
  counts["users_cold"] = int((lengths == 0).sum())   # scored from an empty query

  ctx = eval_lib.make_context(run, data, "val")
  os.makedirs(out, exist_ok=True)
  for name in _ALL_FILES:
    path = os.path.join(out, name)
    if os.path.exists(path):
      os.remove(path)
  writer = _Writer(os.fspath(out), user_ids, item_ids, int(top_k), tsv)
  own_forward = item_rows
  try:
    if item_rows:
      _item_rows_pass(ctx, q, subset, int(top_k), not include_seen, writer, banned)
    else:
      own_forward = _user_rows_pass(run, ctx, q, subset, int(top_k), not include_seen, writer,
                                    banned)
  finally:
    writer.close()
  counts["users_short"] = writer.short
  for name, ids in ((USERS_FILE, user_ids), (ITEMS_FILE, item_ids)):
    write_ids(os.path.join(out, name), ids)
  files = [IDX_FILE, SCORE_FILE, USERS_FILE, ITEMS_FILE] + ([TSV_FILE] if tsv else [])
  files.append(METADATA_FILE)
  metadata = {
      "model": run.model_name, "workdir": run.workdir, "step": run.step,
      "dataset": run.info.get("name"), "orientation": orientation,
      "users": ("input" if input_path is not None else "list" if users is not None
                else "all" if subset is None else f"{query} users"),
      "query": os.fspath(input_path) if input_path is not None else query,
      "n_users": int(len(user_ids)), "n_items": int(n_items), "top_k": int(top_k),
      "exclude_seen": not include_seen,
      "exclude_items": None if exclude_items is None else os.fspath(exclude_items),
      "score_dtype": ("model" if own_forward else
                      run.config.eval.get("score_dtype", "model") or "model"),
      "counts": counts, "files": files,
      "config": json.loads(run.config.to_json_best_effort()),
  }
  eval_lib.write_json(metadata, os.path.join(out, METADATA_FILE))
  return metadata


# ------------------------------------------------------------------------------------- CLI
def _main(argv) -> None:
  # pylint: disable=import-outside-toplevel
  from absl import app
  from absl import flags
  from jaxae import cli
  # pylint: enable=import-outside-toplevel
  cli.no_extra_args(argv)
  f = flags.FLAGS
  if f.best and f.step is not None:
    raise app.UsageError("--best and --step both pick the checkpoint: give one of them")
  cli.tune_malloc()    # logs how malloc is tuned (malloc_early re-executed)
  cli.quiet_unless_verbosity()     # orbax logs every restore; the summary line says what was done

  def go():
    step = eval_lib.best_step(f.workdir) if f.best else f.step
    return recommend(f.workdir, f.out, step=step, top_k=f.top_k, users=f.users, query=f.query,
                     input_path=f.input, delimiter=None if f.delimiter == "" else f.delimiter,
                     include_seen=f.include_seen, score_dtype=f.score_dtype, tsv=f.tsv,
                     exclude_items=f.exclude_items)

  meta = cli.run(go)
  c = meta["counts"]
  print(f"wrote the top {meta['top_k']} of {meta['n_items']} items for {meta['n_users']} users "
        f"({meta['model']} step {meta['step']}, from {meta['query']}) to {f.out}: "
        f"{c['users_cold']} cold users, {c['users_short']} with fewer than {meta['top_k']} items"
        + (f", {c['input_entries_unknown_items']} input entries with unknown items dropped"
           if "input_entries_unknown_items" in c else ""))


def _define_flags() -> None:
  # pylint: disable=import-outside-toplevel
  from absl import flags
  from jaxae import cli
  # pylint: enable=import-outside-toplevel
  flags.DEFINE_string("workdir", None, "The run's directory (what train.py wrote).", required=True)
  flags.DEFINE_string("out", None, "Output directory for the recommendation files.", required=True)
  flags.DEFINE_integer("step", None, "Checkpoint step; default: the latest.")
  flags.DEFINE_bool("best", False, "Use the kept checkpoint with the best validation "
                    "config.eval.metric instead of the latest.")
  flags.DEFINE_integer("top_k", 20, "Items per user.", lower_bound=1)
  flags.DEFINE_string("users", None, "A file of the run's user ids, one a line (default: all).")
  flags.DEFINE_enum("query", "train", list(QUERIES), "Whose rows are the users' queries: the "
                    "training matrix, or the val / test split's inputs.")
  flags.DEFINE_string("input", None, "New users: a 'user item [rating]' file, folded in.")
  flags.DEFINE_string("delimiter", "\t", "--input's field separator ('' = runs of blanks).")
  flags.DEFINE_bool("include_seen", False, "Also rank the items already in a user's query.")
  flags.DEFINE_string("exclude_items", None, "A file of item ids, one a line, never recommended "
                      "(e.g. out of stock).")
  flags.DEFINE_enum("score_dtype", None, list(cli.SCORE_DTYPES),
                    "The output layer's product from operands in this dtype (float32 "
                    "accumulation; config.eval.score_dtype; default: the run's config).")
  flags.DEFINE_bool("tsv", False, "Also write recommendations.tsv (user, item, rank, score).")
  cli.define_malloc_flags()


if __name__ == "__main__":
  from absl import app as _app  # pylint: disable=g-import-not-at-top
  _define_flags()
  _app.run(_main, argv=sys.argv)
