"""Early stopping: training ends once the validation metric has gone ``config.train.patience``
evaluations in a row without improving on its best (0: off, every epoch runs).

"Improving" is strictly better in ``config.eval.metric_mode`` ("max" | "min"); an equal or
non-finite value is not. The count is of evaluations (``train.eval_every_epochs`` apart), not of
epochs. The state (the best value, its epoch, the evaluations since) is saved in every checkpoint's
metrics item, so a resumed run counts on from where it was, and a run that stopped early stays
stopped when its command is run again (a larger ``patience`` lets it go on).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

# The checkpoint metrics' keys of the state (kept out of the run's final metrics).
STATE_KEYS = ("early_stop_best", "early_stop_best_epoch", "early_stop_evals_since")


@dataclasses.dataclass
class EarlyStopping:
  """The patience count of one run.

  Attributes:
    patience: evaluations without improvement that end training (0: never).
    mode: "max" or "min": which way the metric improves.
    best: the best value seen (None: none yet).
    best_epoch: the epoch it was seen at.
    since: evaluations since the best (or since the start, before any finite value).
  """

  patience: int
  mode: str
  best: float | None = None
  best_epoch: float | None = None
  since: int = 0

  @property
  def stopped(self) -> bool:
    """Whether training should end (the patience is used up)."""
    return 0 < self.patience <= self.since

  def update(self, value: Any, epoch: float) -> bool:
    """Counts one evaluation whose metric is ``value`` at ``epoch``; returns :attr:`stopped`."""
    v = float(value) if isinstance(value, (int, float)) else math.nan
    better = math.isfinite(v) and (self.best is None or (
        v > self.best if self.mode == "max" else v < self.best))
    if better:
      self.best, self.best_epoch, self.since = v, float(epoch), 0
    else:
      self.since += 1
    return self.stopped

  def state(self) -> dict[str, Any]:
    """The state as checkpoint metrics (:data:`STATE_KEYS`)."""
    return dict(zip(STATE_KEYS, (self.best, self.best_epoch, self.since)))

  def restore(self, metrics: dict[str, Any]) -> None:
    """Takes the state from a checkpoint's metrics (a checkpoint saved without it: none kept)."""
    best, best_epoch, since = (metrics.get(k) for k in STATE_KEYS)
    if isinstance(since, (int, float)) and not isinstance(since, bool):
      self.best = float(best) if isinstance(best, (int, float)) else None
      self.best_epoch = float(best_epoch) if isinstance(best_epoch, (int, float)) else None
      self.since = int(since)

  def reason(self, metric: str) -> str:
    """Why training ended, for the log."""
    best = f"{self.best:.6g} at epoch {self.best_epoch:g}" if self.best is not None else "none"
    return (f"early stop: validation {metric} did not improve in {self.since} evaluations "
            f"(config.train.patience={self.patience}; best {best})")
