"""`train_and_evaluate` end to end on a tiny dataset: outputs, resume, closed form, config."""

from __future__ import annotations

import json

import jax
import ml_collections
import numpy as np
import pytest

from jaxae.data.dataset import Dataset, EvalSplit
from jaxae.data.matrix import Interactions
from jaxae.errors import ConfigError
from jaxae.training import checkpoint as ckpt_lib
from jaxae.training import loop
from tests.test_step import tiny_config


def tiny_dataset(n_rows: int = 24, n_cols: int = 10, seed: int = 0) -> Dataset:
  """Ratings 1..5 with ~20% of them held out as the validation targets of the same rows."""
  rng = np.random.default_rng(seed)
  r, c = np.nonzero(rng.random((n_rows, n_cols)) < 0.5)
  v = rng.integers(1, 6, len(r)).astype(np.float32)
  held = rng.random(len(r)) < 0.2
  ids = dict(row_ids=np.arange(n_rows) * 10, col_ids=np.arange(n_cols) + 100)
  train = Interactions.from_coo(r[~held] * 10, c[~held] + 100, v[~held], **ids)
  val = Interactions.from_coo(r[held] * 10, c[held] + 100, v[held], **ids)
  return Dataset(train=train, val=EvalSplit(inputs=train, targets=val),
                 info={"name": "tiny", "rating_range": [1.0, 5.0]})


def rated_config(epochs: int, evaluators=("rating",)) -> ml_collections.ConfigDict:
  c = tiny_config(epochs=epochs, lr=1e-2)
  c.eval.evaluators = list(evaluators)
  if evaluators:
    c.eval.metric, c.eval.metric_mode = "rmse", "min"
  c.train.log_every_steps = 2
  return c


def _records(workdir):
  with open(workdir / "metrics.jsonl", encoding="utf-8") as f:
    return [json.loads(line) for line in f]


def test_end_to_end_outputs_and_resume(tmp_path, capsys):
  ds = tiny_dataset()
  steps_per_epoch = 3                                   # 24 rows / batch 8
  wd = tmp_path / "run"
  first = loop.train_and_evaluate(rated_config(epochs=2), wd, dataset=ds)
  assert first["step"] == 2 * steps_per_epoch
  assert np.isfinite(first["rmse"]) and np.isfinite(first["loss"])
  out = capsys.readouterr().out
  assert "rows/s" in out and "eta" in out and "final validation metrics" in out

  records = _records(wd)
  train_recs = [r for r in records if r["split"] == "train"]
  val_recs = [r for r in records if r["split"] == "val"]
  assert [r["step"] for r in train_recs] == [2, 3, 4, 6]   # every 2 steps + each epoch's end
  assert all("loss" in r and "rows_per_s" in r and "lr" in r for r in train_recs)
  assert [r["step"] for r in val_recs] == [3, 6] and all("rmse" in r for r in val_recs)
  assert (wd / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  assert any(p.name.startswith("events.out.tfevents") for p in (wd / "tensorboard").iterdir())
  with np.load(wd / "id_maps.npz") as z:
    np.testing.assert_array_equal(z["row_ids"], ds.train.row_ids)
    np.testing.assert_array_equal(z["col_ids"], ds.train.col_ids)
  ckpt = ckpt_lib.Checkpointer(wd, read_only=True)
  assert ckpt.latest_step() == 6
  saved = ckpt.restore_json()
  assert saved["dataset_info"]["n_cols"] == 10 and saved["metrics"]["rmse"] == first["rmse"]
  ckpt.close()

  # The same call again: nothing left to train; the final metrics come back unchanged.
  again = loop.train_and_evaluate(rated_config(epochs=2), wd, dataset=ds)
  assert "resumed" in capsys.readouterr().out
  assert again["step"] == 6 and again["rmse"] == pytest.approx(first["rmse"], rel=1e-6)
  assert [r for r in _records(wd) if r["split"] == "train"] == train_recs

  # One more epoch: continues at step 6 and ends where an uninterrupted 3-epoch run ends (this
  # one without evaluators: training is the same, and the loop runs on the loss alone).
  more = loop.train_and_evaluate(rated_config(epochs=3), wd, dataset=ds)
  new_train = [r for r in _records(wd) if r["split"] == "train"][len(train_recs):]
  assert [r["step"] for r in new_train] == [8, 9]
  assert more["step"] == 9
  straight = loop.train_and_evaluate(rated_config(epochs=3, evaluators=()), tmp_path / "straight",
                                     dataset=ds)
  assert straight["step"] == 9 and "rmse" not in straight
  assert straight["loss"] == pytest.approx(more["loss"], rel=1e-6)
  _, resumed_params, _ = ckpt_lib.load_for_eval(wd)
  _, straight_params, _ = ckpt_lib.load_for_eval(tmp_path / "straight")
  for a, b in zip(jax.tree.leaves(resumed_params), jax.tree.leaves(straight_params)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_no_validation_split_trains_without_validation(tmp_path, capsys):
  """The final fit on all training data (data.val_fraction=0): evaluators configured, no val split."""
  ds = tiny_dataset()
  ds = Dataset(train=ds.train, val=None, test=ds.val, info=ds.info)
  wd = tmp_path / "final"
  out = loop.train_and_evaluate(rated_config(epochs=2), wd, dataset=ds)
  err = capsys.readouterr().err
  assert "no validation split" in err and "not among the metrics" not in err
  assert out["step"] == 6 and "rmse" not in out
  assert not [r for r in _records(wd) if r["split"] == "val"]
  ckpt = ckpt_lib.Checkpointer(wd, read_only=True)
  assert ckpt.latest_step() == 6
  ckpt.close()


def test_closed_form_model_is_fitted_evaluated_and_saved(tmp_path):
  ds = tiny_dataset(seed=1)
  config = rated_config(epochs=1)
  config.model = ml_collections.ConfigDict(dict(name="ease", l2=5.0))
  first = loop.train_and_evaluate(config, tmp_path, dataset=ds)
  # Scoring from the rows of B at the nonzeros (sparse_input) gives the dense product's metrics.
  sparse_config = rated_config(epochs=1)
  sparse_config.model = ml_collections.ConfigDict(dict(name="ease", l2=5.0, sparse_input=True))
  sparse = loop.train_and_evaluate(sparse_config, tmp_path / "sparse", dataset=ds)
  assert sparse["rmse"] == pytest.approx(first["rmse"], rel=1e-5)
  assert first["step"] == 0 and np.isfinite(first["rmse"])
  _, params, info = ckpt_lib.load_for_eval(tmp_path)
  b = np.asarray(params["B"])
  assert b.shape == (10, 10) and np.allclose(np.diag(b), 0.0)
  # EASE's closed form by hand: B = I - P / diag(P), P = (X^T X + l2 I)^-1.
  x = ds.train.matrix.toarray().astype(np.float64)
  p = np.linalg.inv(x.T @ x + 5.0 * np.eye(10))
  want = np.eye(10) - p / np.diag(p)[None, :]
  np.testing.assert_allclose(b, want, rtol=1e-3, atol=1e-4)
  again = loop.train_and_evaluate(config, tmp_path, dataset=ds)   # restored, not refitted
  assert again["rmse"] == pytest.approx(first["rmse"], rel=1e-6)
  assert info["dataset_info"]["n_rows"] == 24


def test_resume_refuses_other_data_or_model_and_names_each_difference(tmp_path):
  """A workdir's run resumes only under the data, model and seed it was saved with; the schedule
  may change. Refused before any step: the checkpoint is left as it was."""
  ds = tiny_dataset()
  wd = tmp_path / "run"
  loop.train_and_evaluate(rated_config(epochs=1), wd, dataset=ds)
  ckpt = ckpt_lib.Checkpointer(wd, read_only=True)
  steps = ckpt.all_steps()
  ckpt.close()

  other = rated_config(epochs=2)
  other.data.val_split = "per_user"          # a key the saved run did not have
  other.model.activation = "sigmoid"
  other.seed = 3
  with pytest.raises(ConfigError) as e:
    loop.train_and_evaluate(other, wd, dataset=ds)
  msg = str(e.value)
  assert f"checkpoints/{steps[-1]} was saved by another run" in msg
  assert "config.model.activation: saved 'selu', now 'sigmoid'" in msg
  assert "config.seed: saved 0, now 3" in msg
  assert "val_split" not in msg               # added after the save: not a difference
  assert "\n" not in msg and "--workdir" in msg

  moved = rated_config(epochs=2)
  moved.data.path = "/elsewhere/the/same/data"     # data may move: the facts are compared
  fewer = Dataset(train=ds.train.select_rows(np.arange(20)), val=ds.val, info=ds.info)
  with pytest.raises(ConfigError, match=r"the data's n_rows: saved 24, now 20"):
    loop.train_and_evaluate(moved, wd, dataset=fewer)
  ckpt = ckpt_lib.Checkpointer(wd, read_only=True)
  assert ckpt.all_steps() == steps              # nothing trained or saved by the refused runs
  ckpt.close()
  assert loop.train_and_evaluate(moved, wd, dataset=ds)["step"] == 6   # a moved path resumes


def test_closed_form_fit_is_not_reused_for_another_l2(tmp_path):
  ds = tiny_dataset(seed=1)
  config = rated_config(epochs=1)
  config.model = ml_collections.ConfigDict(dict(name="ease", l2=5.0))
  loop.train_and_evaluate(config, tmp_path, dataset=ds)
  config.model.l2 = 50.0
  with pytest.raises(ConfigError, match=r"config\.model\.l2: saved 5\.0, now 50\.0"):
    loop.train_and_evaluate(config, tmp_path, dataset=ds)


@pytest.mark.parametrize("edit,message", [
    (lambda c: setattr(c, "extra", 1), r"config: unknown key\(s\) extra"),
    (lambda c: c.train.__setattr__("epochz", 3), r"config\.train: unknown key\(s\) epochz"),
    (lambda c: c.optim.__delattr__("clip_norm"), r"config\.optim: missing key\(s\) clip_norm"),
    (lambda c: c.eval.__setattr__("metirc", "rmse"), r"config\.eval: unknown key\(s\) metirc"),
    (lambda c: c.eval.__delattr__("metric"), r"config\.eval: missing key\(s\) metric"),
    (lambda c: c.__delattr__("mesh"), r"config: missing section\(s\) mesh"),
    (lambda c: c.eval.__setattr__("metric_mode", "best"), r"config\.eval\.metric_mode"),
    (lambda c: c.train.__setattr__("batch_size", 0), r"config\.train\.batch_size"),
    (lambda c: c.optim.__setattr__("name", "lamb"), r"config\.optim\.name.*'lamb'.*adam"),
    (lambda c: c.loss.__setattr__("hinge", 1.0), r"config\.loss.*hinge"),
])
def test_check_config_names_the_bad_key(edit, message):
  config = tiny_config()
  loop.check_config(config)          # the complete config passes
  config.eval.ks = [5, 10]           # an evaluator's own key is allowed
  loop.check_config(config)
  edit(config)
  with pytest.raises(ConfigError, match=message):
    loop.check_config(config)


def test_a_run_that_fails_to_build_opens_no_checkpoint_manager(tmp_path, monkeypatch):
  """An error while the run is built (here: its eval functions) leaves no orbax manager and no
  metrics writer open behind the one-line error."""
  opened = []
  monkeypatch.setattr(ckpt_lib, "Checkpointer", lambda *a, **k: opened.append(a))
  from jaxae.training import step as step_lib  # pylint: disable=import-outside-toplevel

  def refuse(*args, **kwargs):
    raise ConfigError("no eval functions for this model")

  monkeypatch.setattr(step_lib, "make_eval_fns", refuse)
  with pytest.raises(ConfigError, match="no eval functions"):
    loop.train_and_evaluate(rated_config(1), tmp_path / "wd", dataset=tiny_dataset())
  assert not opened
