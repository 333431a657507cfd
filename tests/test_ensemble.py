"""Ensembles in eval.py (``--ensemble``): the metrics of the mean of several runs' scores, checked
against the mean of the models' predictions computed by hand; files, CLI and errors."""

from __future__ import annotations

import os

import jax.numpy as jnp
import numpy as np
import pytest

from jaxae import evaluate
from jaxae.errors import CheckpointError, ConfigError
from jaxae.models import build_model
from jaxae.training import checkpoint as ckpt_lib
from jaxae.training.loop import train_and_evaluate
from tests.test_eval_cli import read_json, run_cli, tiny_config


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """Two runs of the same config and data (config.seed 0) with train.seed 0 and 1."""
  root = tmp_path_factory.mktemp("ens")
  dirs = []
  for seed in (0, 1):
    c = tiny_config()
    c.train.seed = seed
    wd = str(root / f"run{seed}")
    train_and_evaluate(c, wd)
    dirs.append(wd)
  return dirs


def _rmse_by_hand(workdirs, split):
  preds = []
  for wd in workdirs:
    run = evaluate.load_checkpoint(wd)
    ds = evaluate.rebuild_dataset(run)
    _, params, _ = ckpt_lib.load_for_eval(wd)
    model = build_model(run.config.model, ds.n_cols, ds.n_rows)
    x = getattr(ds, split).inputs.matrix.toarray()
    preds.append(np.asarray(model.apply({"params": params}, jnp.asarray(x),
                                        rows=jnp.arange(ds.n_rows), train=False)["recon"]))
  t = getattr(ds, split).targets.matrix.tocoo()
  lo, hi = ds.info["rating_range"]
  err = np.clip(np.mean(preds, axis=0)[t.row, t.col], lo, hi) - t.data
  return float(np.sqrt(np.mean(err ** 2)))


def test_ensemble_scores_the_mean_prediction(runs):
  a, b = runs
  single = [evaluate.evaluate_workdir(w, None, "test", write=False)["metrics"]["rmse"] for w in runs]
  rec = evaluate.evaluate_workdir(a, None, "test", ensemble=((b, None),))
  assert rec["metrics"]["rmse"] == pytest.approx(_rmse_by_hand(runs, "test"), rel=1e-5)
  assert rec["metrics"]["rmse"] not in single
  assert [m["workdir"] for m in rec["ensemble"]] == [os.path.abspath(a), os.path.abspath(b)]
  assert read_json(os.path.join(a, evaluate.ensemble_filename("test", rec["step"], 2))) == rec
  # metrics.json is the single model's only (never written by an ensemble).
  assert not os.path.exists(os.path.join(a, "metrics.json"))
  # An ensemble of a run with itself is that run.
  same = evaluate.evaluate_workdir(a, None, "test", write=False, ensemble=((a, None),))
  assert same["metrics"]["rmse"] == pytest.approx(single[0], rel=1e-6)


def test_ensemble_cli(runs, tmp_path):
  a, b = runs
  proc = run_cli(f"--workdir={a}", f"--ensemble={b}", "--split=val", cwd=str(tmp_path))
  assert proc.returncode == 0, proc.stderr
  assert "mean scores of 2 runs" in proc.stdout
  rmse = float(next(l for l in proc.stdout.splitlines() if l.split()[:1] == ["rmse"]).split()[1])
  assert rmse == pytest.approx(_rmse_by_hand(runs, "val"), rel=1e-5)


def test_ensemble_member_on_other_data(runs, tmp_path):
  c = tiny_config()
  c.seed = 5                           # other synthetic ratings and another split
  other = str(tmp_path / "other")
  train_and_evaluate(c, other)
  with pytest.raises(CheckpointError, match=r"the data changed since training"):
    evaluate.evaluate_workdir(runs[0], None, "val", write=False, ensemble=((other, None),))
  with pytest.raises(CheckpointError, match=r"no such workdir"):
    evaluate.evaluate_workdir(runs[0], None, "val", write=False,
                              ensemble=((str(tmp_path / "nothing"), None),))


def test_ensemble_refuses_evaluators_that_need_more_than_scores(runs, monkeypatch):
  """An evaluator beyond rating / topn (Melon's recommenders use embeddings) is refused, from the
  run's saved evaluator names, before any data or member is loaded."""
  orig = evaluate.load_checkpoint

  def with_melon(workdir, step=None):
    run = orig(workdir, step)
    run.config.eval.evaluators = ["rating", "melon"]
    return run

  monkeypatch.setattr(evaluate, "load_checkpoint", with_melon)
  with pytest.raises(ConfigError, match=r"an ensemble averages scores: it runs rating, topn, not "
                                        r"'melon'"):
    evaluate.evaluate_workdir(runs[0], None, "val", write=False, ensemble=((runs[1], None),))


def test_members_of_one_model_share_the_jitted_scorer(runs):
  """Runs of one config share one pair of jitted functions (compiled once for the ensemble)."""
  members = [evaluate.load_checkpoint(w) for w in runs]
  ds = evaluate.rebuild_dataset(members[0])
  cache: list = []
  ctxs = [evaluate.make_context(m, ds, "val", cache) for m in members]
  assert len(cache) == 1 and len(ctxs) == 2
