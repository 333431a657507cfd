r"""Exports a trained model's item (or user / song) embeddings, with optional cosine neighbours.

  python -m jaxae.export --workdir=DIR --out=DIR [--step=N] [--top_k=K]
                         [--embedding=auto|code|decoder] [--normalize]

Writes into ``--out``:

  embeddings.npy        float32 [n, d], one vector per exported id
  ids.tsv               the raw id of each vector, one per line, in the same order
  metadata.json         model, config, checkpoint step, which embedding, dimension, n, normalization
  neighbors_idx.npy     (with --top_k) int32 [n, K]: row indices of the K most cosine-similar
  neighbors_score.npy   (with --top_k) float32 [n, K]: their cosine similarities, best first

Which embedding (``--embedding=auto`` picks by ``dataset_info["orientation"]``, the data's rows):

  code     rows are items / songs ("item", "song"): the encoder's code layer for every row of the
           training matrix (batched through the jitted ``embed_fn`` on the device, ``train=False``).
  decoder  rows are users (or playlists): the output layer's kernel, one vector per column (item);
           for a tied Deep AE that kernel is the transpose of the first encoder kernel, so the
           vectors are that kernel's rows. The output bias is not part of the vector.

The closed-form models have neither a code layer nor a low-rank decoder (EASE's and BSPM's item x
item matrix, most_popular's counts): exporting them is a ConfigError. Neighbours are computed on
the device in row chunks (one ``[chunk, n]`` similarity block at a time, ranked by
:func:`jaxae.topk.top_k` with the run's ``config.eval.topk_group``), the row itself excluded;
nothing catalog x catalog is ever built, and the host only receives the ``[n, d]`` and ``[n, K]``
results.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from typing import Any, Callable

if __name__ == "__main__":   # the command: huge pages before jax is imported (may re-execute)
  from jaxae import cli as _cli  # pylint: disable=g-import-not-at-top
  _cli.malloc_early(sys.argv)

import jax
import jax.numpy as jnp
import numpy as np

from jaxae import evaluate as eval_lib
from jaxae import topk
from jaxae.data.dataset import Dataset
from jaxae.evaluation.context import row_codes
from jaxae.errors import CheckpointError, ConfigError, DataError

EMBEDDINGS = ("auto", "code", "decoder")
ROW_ORIENTATIONS = ("item", "song")        # rows are what we want vectors for: export the code
EMBEDDINGS_FILE = "embeddings.npy"
IDS_FILE = "ids.tsv"
METADATA_FILE = "metadata.json"
NEIGHBORS_IDX_FILE = "neighbors_idx.npy"
NEIGHBORS_SCORE_FILE = "neighbors_score.npy"
# Elements of one on-device similarity block ([chunk, n] float32): 2**25 = 128 MiB.
_BLOCK_ELEMS = 1 << 25


# ------------------------------------------------------------------------- decoder vectors
def _kernel(params, layer: str) -> jax.Array:
  try:
    return params[layer]["kernel"]
  except (KeyError, TypeError):
    raise CheckpointError(f"the checkpoint's params have no {layer}/kernel (found layers: "
                          f"{sorted(params) if hasattr(params, 'keys') else type(params).__name__})"
                          ) from None


def _deep_ae_vectors(model_config, params) -> jax.Array:
  if bool(model_config.tied):
    return _kernel(params, "encoder_0")                 # output kernel = encoder_0.kernel.T
  last = len(list(model_config.layers)) - 1             # decoder_0 .. decoder_{k-1}
  return _kernel(params, f"decoder_{last}")             # stored one row per item (ItemDense)


def _autorec_vectors(model_config, params) -> jax.Array:
  del model_config
  return _kernel(params, "decoder").T                   # stored [hidden, n_cols]


def _cdae_vectors(model_config, params) -> jax.Array:
  del model_config
  return _kernel(params, "decoder")                     # stored one row per item (ItemDense)


def _mult_vectors(model_config, params) -> jax.Array:
  last = len(list(model_config.layers)) - 1
  return _kernel(params, f"decoder_{last}")             # stored one row per item (ItemDense)


# Model name -> [n_cols, d] vectors of the output layer (one per column), from the params pytree.
DECODER_VECTORS: dict[str, Callable[[Any, Any], jax.Array]] = {
    "deep_ae": _deep_ae_vectors,
    "autorec": _autorec_vectors,
    "cdae": _cdae_vectors,
    "mult_dae": _mult_vectors,
    "mult_vae": _mult_vectors,
}


def decoder_vectors(model_config, params, n_cols: int) -> jax.Array:
  """The output layer's kernel as one vector per column: ``[n_cols, d]`` float32, on the device."""
  name = str(model_config.name)
  if name not in DECODER_VECTORS:
    raise ConfigError(f"model {name!r} has no decoder embedding to export; models with one: "
                      f"{', '.join(sorted(DECODER_VECTORS))}")
  vectors = DECODER_VECTORS[name](model_config, params)
  if vectors.ndim == 2 and vectors.shape[0] > n_cols and not bool(jnp.any(vectors[n_cols:])):
    vectors = vectors[:n_cols]   # zero items padding the item dimension for a mesh's model axis
  if vectors.ndim != 2 or vectors.shape[0] != n_cols:
    raise CheckpointError(f"{name}: the output layer gives vectors of shape "
                          f"{tuple(vectors.shape)}, expected [{n_cols}, d] (one per column)")
  return vectors.astype(jnp.float32)


# ---------------------------------------------------------------------------- code vectors
code_vectors = row_codes   # the code layer of every row (jaxae.evaluation.context.row_codes)


# ------------------------------------------------------------------------------ neighbours
@jax.jit
def l2_normalize(x: jax.Array, eps: float = 1e-12) -> jax.Array:
  """Each row divided by its L2 norm (an all-zero row stays zero)."""
  x = x.astype(jnp.float32)
  return x * jax.lax.rsqrt(jnp.maximum(jnp.sum(jnp.square(x), axis=1, keepdims=True), eps))


def nearest(unit: jax.Array, rows: jax.Array, k: int, group: int
            ) -> tuple[jax.Array, jax.Array]:
  """``(idx, score)`` [q, k] of the ``k`` rows of ``unit`` [n, d] (L2-normalized) most
  cosine-similar to each of rows ``rows`` [q], itself excluded, best first (-1 in ``rows``: a
  padding query, its result meaningless). The product contracts ``unit``'s second axis (no
  transposed copy of ``unit`` for a single query)."""
  q = unit[jnp.maximum(rows, 0)]
  sims = jax.lax.dot_general(q, unit, (((1,), (1,)), ((), ())),
                             precision=jax.lax.Precision.HIGHEST)              # [q, n]
  own = rows[:, None] == jnp.arange(unit.shape[0])[None, :]
  scores, idx = topk.top_k(jnp.where(own, -jnp.inf, sims), k, group)
  return idx.astype(jnp.int32), scores


@functools.partial(jax.jit, static_argnames=("k", "chunk", "group"))
def _top_k_chunks(unit: jax.Array, k: int, chunk: int, group: int
                  ) -> tuple[jax.Array, jax.Array]:
  n = unit.shape[0]
  n_chunks = -(-n // chunk)

  def one(i):
    rows = i * chunk + jnp.arange(chunk)
    return nearest(unit, jnp.where(rows < n, rows, -1), k, group)

  idx, scores = jax.lax.map(one, jnp.arange(n_chunks))
  return idx.reshape(-1, k)[:n], scores.reshape(-1, k)[:n]


def cosine_neighbors(vectors: jax.Array, k: int, chunk: int | None = None, group: int = 0
                     ) -> tuple[jax.Array, jax.Array]:
  """The ``k`` most cosine-similar rows of every row, itself excluded, on the device.

  Args:
    vectors: [n, d] embeddings (any scale; they are L2-normalized here).
    k: neighbours per row, 1 <= k < n.
    chunk: query rows per similarity block (default: as many as fit a 128 MiB [chunk, n] block).
    group: how each block's top k is found (:func:`jaxae.topk.top_k`; 0 = ``jax.lax.top_k``; the
      same neighbours either way).

  Returns:
    ``(idx [n, k] int32, score [n, k] float32)``, best first. A zero vector has similarity 0 with
    every row.
  """
  n = int(vectors.shape[0])
  if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k < n:
    raise ConfigError(f"--top_k must be between 1 and {n - 1} (the other rows), got {k!r}")
  if chunk is None:
    chunk = max(1, min(n, _BLOCK_ELEMS // max(n, 1)))
  return _top_k_chunks(l2_normalize(vectors), int(k), int(chunk), int(group))


# ---------------------------------------------------------------------------------- export
def check_ids_writable(ids: np.ndarray, what: str = "", file: str = IDS_FILE) -> None:
  """``file`` holds one id per line: a ``what`` id with a tab or line break cannot be written."""
  if ids.dtype.kind in "US":
    s = ids.astype(str)
    bad = (np.char.find(s, "\n") >= 0) | (np.char.find(s, "\t") >= 0) | (np.char.find(s, "\r") >= 0)
    if bad.any():
      raise DataError(f"{what + ' ' if what else ''}id {str(s[np.argmax(bad)])!r} contains a "
                      f"tab or line break: it cannot be written to {file}")


def write_ids(path: str, ids: np.ndarray) -> None:
  """Writes ``ids`` one per line (checked by :func:`check_ids_writable` before any work)."""
  with open(path, "w", encoding="utf-8") as f:
    f.write("".join(f"{i}\n" for i in ids.tolist()))


def _pick(embedding: str, orientation: str | None) -> str:
  if embedding not in EMBEDDINGS:
    raise ConfigError(f"--embedding must be one of {list(EMBEDDINGS)}, got {embedding!r}")
  if embedding != "auto":
    return embedding
  return "code" if orientation in ROW_ORIENTATIONS else "decoder"


def export_embeddings(workdir: str | os.PathLike, out: str | os.PathLike, *,
                      step: int | None = None, top_k: int = 0, embedding: str = "auto",
                      normalize: bool = False, dataset: Dataset | None = None) -> dict[str, Any]:
  """Writes the embeddings of the checkpoint of ``workdir`` at ``step`` into ``out``.

  Args:
    workdir: a run's directory (``train.py`` made it).
    out: output directory (created; files of a previous export there are replaced).
    step: checkpoint step; None = the latest.
    top_k: neighbours per vector to compute (0 = none).
    embedding: "auto" | "code" | "decoder" (see the module docstring).
    normalize: L2-normalize the exported vectors.
    dataset: for "code": the data, bypassing the rebuild from the saved config (still checked
      against the saved id maps).

  Returns:
    The metadata written to ``metadata.json``.

  Raises:
    ConfigError: a closed-form model (no embedding), an unknown ``embedding``, a bad ``top_k``.
    CheckpointError: no such checkpoint, or data that changed since training.
  """
  if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 0:
    raise ConfigError(f"--top_k must be an integer >= 0, got {top_k!r}")
  run = eval_lib.load_checkpoint(workdir, step)
  name = run.model_name
  if not getattr(run.model, "trainable", True):
    raise ConfigError(f"{name} is not an embedding model: it is fitted in closed form (an item x "
                      f"item matrix or item counts), with no code layer or decoder to export; "
                      f"export works for "
                      f"{', '.join(sorted(DECODER_VECTORS))}")
  orientation = run.info.get("orientation")
  which = _pick(embedding, orientation)
  if which == "code":
    data = eval_lib.rebuild_dataset(run, dataset)
    vectors = code_vectors(eval_lib.make_context(run, data, "val"))
    ids = np.asarray(data.train.row_ids)
    what = "rows"
  else:
    ids = eval_lib.read_id_maps(run.workdir)[1]
    vectors = decoder_vectors(run.config.model, run.params, int(run.info["n_cols"]))
    what = "columns"
  if len(ids) != vectors.shape[0]:
    raise CheckpointError(f"{run.workdir}: {len(ids)} saved {what} ids for {vectors.shape[0]} "
                          f"vectors")
  check_ids_writable(ids)
  if normalize:
    vectors = l2_normalize(vectors)
  # Ranked as the run's evaluators rank (config.eval.topk_group).
  neighbors = (cosine_neighbors(vectors, int(top_k), group=topk.config_group(run.config.eval))
               if top_k else None)

  host = np.asarray(jax.device_get(vectors), np.float32)
  os.makedirs(out, exist_ok=True)
  np.save(os.path.join(out, EMBEDDINGS_FILE), host)
  write_ids(os.path.join(out, IDS_FILE), ids)
  files = [EMBEDDINGS_FILE, IDS_FILE, METADATA_FILE]
  if neighbors is not None:
    idx, score = jax.device_get(neighbors)
    np.save(os.path.join(out, NEIGHBORS_IDX_FILE), np.asarray(idx, np.int32))
    np.save(os.path.join(out, NEIGHBORS_SCORE_FILE), np.asarray(score, np.float32))
    files += [NEIGHBORS_IDX_FILE, NEIGHBORS_SCORE_FILE]
  else:
    for stale in (NEIGHBORS_IDX_FILE, NEIGHBORS_SCORE_FILE):   # from an earlier export with K
      path = os.path.join(out, stale)
      if os.path.exists(path):
        os.remove(path)
  metadata = {
      "model": name,
      "step": run.step,
      "embedding": which,
      "vectors_of": f"training matrix {what}",
      "orientation": orientation,
      "dataset": run.info.get("name"),
      "n": int(host.shape[0]),
      "dimension": int(host.shape[1]),
      "normalized": bool(normalize),
      "top_k": int(top_k) if top_k else None,
      "similarity": "cosine" if top_k else None,
      "files": files,
      "config": json.loads(run.config.to_json_best_effort()),
  }
  eval_lib.write_json(metadata, os.path.join(out, METADATA_FILE))
  return metadata


# ------------------------------------------------------------------------------------- CLI
def _main(argv) -> None:
  # pylint: disable=import-outside-toplevel
  from absl import flags
  from jaxae import cli
  # pylint: enable=import-outside-toplevel
  cli.no_extra_args(argv)
  f = flags.FLAGS
  cli.tune_malloc()    # logs how malloc is tuned (malloc_early re-executed)
  cli.quiet_unless_verbosity()     # orbax logs every restore; the summary line says what was done
  meta = cli.run(export_embeddings, f.workdir, f.out, step=f.step, top_k=f.top_k,
                 embedding=f.embedding, normalize=f.normalize)
  print(f"wrote {meta['n']} x {meta['dimension']} {meta['embedding']} embeddings "
        f"({meta['vectors_of']}) of {meta['model']} step {meta['step']} to {f.out}"
        + (f", with {meta['top_k']} cosine neighbours each" if meta["top_k"] else ""))


def _define_flags() -> None:
  from absl import flags  # pylint: disable=import-outside-toplevel
  flags.DEFINE_string("workdir", None, "The run's directory (what train.py wrote).", required=True)
  flags.DEFINE_string("out", None, "Output directory for the exported files.", required=True)
  flags.DEFINE_integer("step", None, "Checkpoint step; default: the latest.")
  flags.DEFINE_integer("top_k", 0, "Cosine neighbours per vector (0: none).", lower_bound=0)
  flags.DEFINE_enum("embedding", "auto", list(EMBEDDINGS),
                    "code: encoder code of each training row; decoder: output-layer vector of each "
                    "column; auto: code when rows are items / songs, else decoder.")
  flags.DEFINE_bool("normalize", False, "L2-normalize the exported vectors.")
  from jaxae import cli  # pylint: disable=import-outside-toplevel
  cli.define_malloc_flags()


if __name__ == "__main__":
  from absl import app as _app  # pylint: disable=g-import-not-at-top
  _define_flags()
  _app.run(_main, argv=sys.argv)
