"""Run logs: JSONL metrics, TensorBoard event files, the progress line and the curves plot.

:class:`MetricsWriter` appends one JSON object per record to ``workdir/metrics.jsonl`` (``{"step",
"epoch", "split", ...metrics}``, split "train" or "val") and mirrors every number to TensorBoard
(tensorboardX, no TensorFlow) under ``workdir/tensorboard`` as ``<split>/<name>``. Only the process
that is told to write (process 0) touches files. :func:`plot_curves` draws the training loss and the
validation metric from the JSONL into ``workdir/curves.png`` (matplotlib, Agg backend).
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

METRICS_FILE = "metrics.jsonl"
CURVES_FILE = "curves.png"
TENSORBOARD_DIR = "tensorboard"


def _number(v: Any) -> float | None:
  try:
    f = float(v)
  except (TypeError, ValueError):
    return None
  return f


class MetricsWriter:
  """Appends metric records to JSONL and TensorBoard (a no-op when ``enabled`` is False)."""

  def __init__(self, workdir: str | os.PathLike, *, enabled: bool = True):
    self.enabled = enabled
    self.path = os.path.join(os.fspath(workdir), METRICS_FILE)
    self._tb = None
    if enabled:
      os.makedirs(os.fspath(workdir), exist_ok=True)
      from tensorboardX import SummaryWriter  # pylint: disable=import-outside-toplevel
      self._tb = SummaryWriter(logdir=os.path.join(os.fspath(workdir), TENSORBOARD_DIR))

  def write(self, step: int, epoch: float, split: str, metrics: dict[str, Any]) -> None:
    """One record: ``metrics`` of ``split`` at train ``step`` (``epoch`` may be fractional)."""
    if not self.enabled:
      return
    record: dict[str, Any] = {"step": int(step), "epoch": float(epoch), "split": split}
    for k, v in metrics.items():
      f = _number(v)
      record[k] = f if f is not None and math.isfinite(f) else (None if f is not None else str(v))
    with open(self.path, "a", encoding="utf-8") as fh:
      fh.write(json.dumps(record) + "\n")
    for k, v in metrics.items():
      f = _number(v)
      if f is not None:
        self._tb.add_scalar(f"{split}/{k}", f, int(step))

  def flush(self) -> None:
    if self._tb is not None:
      self._tb.flush()

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()
      self._tb = None


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
  """The records of a ``metrics.jsonl`` (skipping a torn last line of an interrupted run)."""
  out = []
  if not os.path.exists(path):
    return out
  with open(path, encoding="utf-8") as fh:
    for line in fh:
      line = line.strip()
      if not line:
        continue
      try:
        out.append(json.loads(line))
      except json.JSONDecodeError:
        continue
  return out


def _fmt_duration(seconds: float) -> str:
  if not math.isfinite(seconds) or seconds < 0:
    return "?"
  seconds = int(round(seconds))
  h, rem = divmod(seconds, 3600)
  m, s = divmod(rem, 60)
  return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def progress_line(*, epoch: int, epochs: int, step: int, total_steps: int, rows_per_s: float,
                  loss: float, eta_s: float) -> str:
  """``epoch 3/10  step 1200/4000  12345 rows/s  loss 0.8123  eta 01:23``."""
  return (f"epoch {epoch}/{epochs}  step {step}/{total_steps}  {rows_per_s:,.0f} rows/s  "
          f"loss {loss:.4f}  eta {_fmt_duration(eta_s)}")


RUN_KEYS = ("step", "epoch", "loss")   # facts of the run, shown in the summary's title line
BASELINE_PREFIX = "baseline/"


def _fmt_value(v: Any) -> str:
  f = _number(v)
  if f is None:
    return str(v)
  if math.isfinite(f) and f == int(f) and abs(f) < 1e15:
    return str(int(f))
  return f"{f:.6g}" if not math.isfinite(f) or abs(f) >= 1e-3 else f"{f:.3e}"


def final_summary(metrics: dict[str, Any], details: str | None = None) -> str:
  """The end-of-run summary: the headline metrics, the model beside every baseline.

  Headline metrics are the flat names (no "/"): per-type breakdowns (``melon_score/all``),
  recommender counts (``rec/...``) and the like stay in the logs (``details`` says where). When
  ``baseline/<name>/<metric>`` keys are present (``config.eval.baselines``), the metrics the
  baselines share with the model (music_ndcg, tag_ndcg, melon_score) form a table with one row for
  the model and one per baseline; the other headline numbers follow on one line.

  Example::

    final validation metrics (step 80, epoch 50, loss 1.234):
      recommender   music_ndcg  tag_ndcg  melon_score
      model           0.061234  0.301234     0.097234
      most_popular    0.021234  0.081234     0.030234
      questions=612  questions_music=612  questions_tag=598
      (47 more metrics: per question type, recommender counts ... in workdir/metrics.jsonl)
  """
  title = ", ".join(f"{k} {_fmt_value(metrics[k])}" for k in RUN_KEYS if k in metrics)
  lines = ["final validation metrics" + (f" ({title}):" if title else ":")]
  flat = [k for k in metrics if "/" not in k and k not in RUN_KEYS]
  baselines: dict[str, dict[str, Any]] = {}
  for k, v in metrics.items():
    if k.startswith(BASELINE_PREFIX) and k.count("/") == 2:
      _, name, metric = k.split("/")
      baselines.setdefault(name, {})[metric] = v
  shown = set(flat)
  columns = [m for m in flat if any(m in b for b in baselines.values())]
  if columns:
    rows = [("model", {m: metrics[m] for m in columns})] + list(baselines.items())
    width = max(len("recommender"), *(len(n) for n, _ in rows))
    cw = [max(len(c), 10) for c in columns]
    lines.append("  " + f"{'recommender':<{width}}" + "".join(
        f"  {c:>{w}}" for c, w in zip(columns, cw)))
    for name, vals in rows:
      cells = "".join(f"  {_fmt_value(vals[c]) if c in vals else '-':>{w}}"
                      for c, w in zip(columns, cw))
      lines.append(f"  {name:<{width}}{cells}")
    shown.update(f"{BASELINE_PREFIX}{n}/{c}" for n, b in baselines.items() for c in b)
    rest = [k for k in flat if k not in columns]
    if rest:
      lines.append("  " + "  ".join(f"{k}={_fmt_value(metrics[k])}" for k in rest))
  elif flat:
    width = max(len(k) for k in flat)
    lines += [f"  {k:<{width}}  {_fmt_value(metrics[k]):>12}" for k in flat]
  else:
    lines.append("  (no validation metrics)")
  hidden = len([k for k in metrics if k not in shown and k not in RUN_KEYS])
  if hidden:
    lines.append(f"  ({hidden} more metrics: per question type, recommender counts ..."
                 + (f" in {details})" if details else ")"))
  return "\n".join(lines)


def plot_curves(metrics_path: str | os.PathLike, out_path: str | os.PathLike,
                metric: str | None = None) -> bool:
  """Plots the training loss (left) and the validation ``metric`` (right) against the step.

  Returns False (and writes nothing) when the JSONL has no training records.
  """
  records = read_metrics(metrics_path)
  # A resumed run appends again from its checkpoint: keep the last record of each (split, step).
  latest: dict[tuple[str, int], dict] = {}
  for r in records:
    latest[(r.get("split", ""), int(r.get("step", 0)))] = r
  train = sorted((s, r["loss"]) for (sp, s), r in latest.items()
                 if sp == "train" and r.get("loss") is not None)
  if not train:
    return False
  val = []
  if metric:
    val = sorted((s, r[metric]) for (sp, s), r in latest.items()
                 if sp == "val" and r.get(metric) is not None)

  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

  fig, axes = plt.subplots(1, 2 if val else 1, figsize=(11 if val else 6, 4), squeeze=False)
  ax = axes[0][0]
  ax.plot([s for s, _ in train], [v for _, v in train], color="tab:blue")
  ax.set_xlabel("step")
  ax.set_ylabel("training loss")
  ax.set_title("training loss")
  ax.grid(alpha=0.3)
  if val:
    ax = axes[0][1]
    ax.plot([s for s, _ in val], [v for _, v in val], marker="o", color="tab:orange")
    ax.set_xlabel("step")
    ax.set_ylabel(metric)
    ax.set_title(f"validation {metric}")
    ax.grid(alpha=0.3)
  fig.tight_layout()
  tmp = f"{os.fspath(out_path)}.tmp.png"
  fig.savefig(tmp, dpi=100)
  plt.close(fig)
  os.replace(tmp, out_path)
  return True
