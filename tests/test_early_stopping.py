"""Early stopping (``config.train.patience``): the count, its place in the loop, and resuming."""

from __future__ import annotations

import json
import math

import pytest

from jaxae.errors import ConfigError
from jaxae.training import loop
from jaxae.training.early_stopping import STATE_KEYS, EarlyStopping
from tests.test_loop import rated_config, tiny_dataset

STEPS_PER_EPOCH = 3                                  # tiny_dataset: 24 rows, batch 8


@pytest.mark.parametrize("mode,values,stops_at", [
    ("min", [3.0, 2.0, 2.0, 2.5, 2.0], 5),             # equal is no improvement
    ("max", [0.1, 0.2, 0.3, 0.3, 0.25, 0.3], 6),
    ("min", [math.nan, 2.0, math.nan, None, "x"], 5),  # nothing finite counts as better
])
def test_the_count(mode, values, stops_at):
  s = EarlyStopping(patience=3, mode=mode)
  got = [s.update(v, epoch) for epoch, v in enumerate(values, 1)]
  assert got == [False] * (stops_at - 1) + [True] and s.stopped
  assert not EarlyStopping(patience=0, mode=mode).update(math.nan, 1)    # 0: never stops


def test_the_state_round_trips_through_json():
  s = EarlyStopping(patience=4, mode="max")
  for epoch, v in enumerate([0.5, 0.7, 0.6], 1):
    s.update(v, epoch)
  saved = json.loads(json.dumps(s.state()))
  assert set(saved) == set(STATE_KEYS)
  t = EarlyStopping(patience=4, mode="max")
  t.restore({"rmse": 1.0, **saved})
  assert (t.best, t.best_epoch, t.since) == (0.7, 2.0, 1)
  fresh = EarlyStopping(patience=4, mode="max")
  fresh.restore({"rmse": 1.0})                        # saved before early stopping existed
  assert (fresh.best, fresh.since) == (None, 0)


def frozen_config(epochs: int, patience: int):
  """A run whose validation RMSE never changes (lr 1e-30 moves no float32 parameter): every
  evaluation after the first is no improvement."""
  c = rated_config(epochs)
  c.optim.lr = 1e-30
  c.train.patience = patience
  return c


def test_a_run_without_improvement_stops_and_stays_stopped(tmp_path, capsys):
  ds = tiny_dataset()
  wd = tmp_path / "run"
  out = loop.train_and_evaluate(frozen_config(10, 2), wd, dataset=ds)
  assert out["step"] == 3 * STEPS_PER_EPOCH           # best at 1; 2 and 3 no better: stop
  assert not set(STATE_KEYS) & set(out)
  log = capsys.readouterr().out
  assert "early stop: validation rmse did not improve in 2 evaluations" in log
  assert "training ends after epoch 3 of 10" in log

  again = loop.train_and_evaluate(frozen_config(10, 2), wd, dataset=ds)   # the same command
  assert again["step"] == out["step"] and again["rmse"] == pytest.approx(out["rmse"])
  assert "before this resume: no epoch runs" in capsys.readouterr().out

  longer = loop.train_and_evaluate(frozen_config(10, 4), wd, dataset=ds)  # more patience
  assert longer["step"] == 5 * STEPS_PER_EPOCH


def test_a_resumed_run_counts_on_from_its_checkpoint(tmp_path):
  """2 epochs, then the same run to 10 with patience 3: it stops at epoch 4, as a run that was
  never interrupted does (a count started afresh at the resume would stop at 6)."""
  ds = tiny_dataset()
  straight = loop.train_and_evaluate(frozen_config(10, 3), tmp_path / "straight", dataset=ds)
  assert straight["step"] == 4 * STEPS_PER_EPOCH
  wd = tmp_path / "resumed"
  loop.train_and_evaluate(frozen_config(2, 3), wd, dataset=ds)
  resumed = loop.train_and_evaluate(frozen_config(10, 3), wd, dataset=ds)
  assert resumed["step"] == straight["step"]


def test_an_improving_run_is_not_stopped(tmp_path):
  c = rated_config(4)                                 # lr 1e-2: the RMSE falls every epoch
  c.train.patience = 1
  out = loop.train_and_evaluate(c, tmp_path / "run", dataset=tiny_dataset())
  assert out["step"] == 4 * STEPS_PER_EPOCH


def test_without_a_validation_metric_patience_is_said_to_do_nothing(tmp_path, capsys):
  ds = tiny_dataset()
  ds.val = None
  out = loop.train_and_evaluate(frozen_config(3, 1), tmp_path / "run", dataset=ds)
  assert out["step"] == 3 * STEPS_PER_EPOCH
  assert "config.train.patience=1: without a validation split" in capsys.readouterr().err
  c = frozen_config(3, 1)
  c.eval.evaluators = []                              # metric "rmse" from no evaluator
  out = loop.train_and_evaluate(c, tmp_path / "no_evaluators", dataset=tiny_dataset())
  assert out["step"] == 3 * STEPS_PER_EPOCH
  assert "config.train.patience=1: with no config.eval.evaluators" in capsys.readouterr().err


@pytest.mark.parametrize("edit,message", [
    (lambda c: setattr(c.train, "patience", -1), "config.train.patience"),
    (lambda c: setattr(c.train, "patience", True), "config.train.patience"),
    (lambda c: setattr(c.train, "eval_every_epochs", 0), "eval_every_epochs=0 runs none"),
])
def test_bad_patience_settings(edit, message):
  c = frozen_config(3, 2)
  edit(c)
  with pytest.raises(ConfigError, match=message):
    loop.check_config(c)
