"""jaxae.sweep: grid parsing, overrides, best-on-validation selection, a real two-run sweep."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from configs import autorec_ml100k
from jaxae import sweep
from jaxae.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_parse_grid_values_and_errors():
  grid = sweep.parse_grid(["loss.l2=[1e-3, 0.01]", "model.layers=[(600,200),(64,)]",
                           "model.activation=['selu','tanh']"])
  assert grid == [("loss.l2", [0.001, 0.01]), ("model.layers", [(600, 200), (64,)]),
                  ("model.activation", ["selu", "tanh"])]
  with pytest.raises(ConfigError, match="KEY="):
    sweep.parse_grid(["loss.l2"])
  with pytest.raises(ConfigError, match="strings need quotes"):
    sweep.parse_grid(["model.activation=[selu]"])
  with pytest.raises(ConfigError, match="non-empty list"):
    sweep.parse_grid(["loss.l2=[]"])
  with pytest.raises(ConfigError, match="non-empty list"):
    sweep.parse_grid(["loss.l2=0.1"])
  with pytest.raises(ConfigError, match="given twice"):
    sweep.parse_grid(["loss.l2=[1]", "loss.l2=[2]"])


def test_apply_override_checks_key_and_type():
  c = autorec_ml100k.get_config()
  c.lock()
  sweep.apply_override(c, "loss.l2", 0.5)
  sweep.apply_override(c, "model.hidden", 64)
  assert c.loss.l2 == 0.5 and c.model.hidden == 64
  with pytest.raises(ConfigError, match="no key model.hiddne"):
    sweep.apply_override(c, "model.hiddne", 3)
  with pytest.raises(ConfigError, match="no section nosuch"):
    sweep.apply_override(c, "nosuch.x", 3)
  with pytest.raises(ConfigError, match="model.hidden='wide'"):
    sweep.apply_override(c, "model.hidden", "wide")


def test_combinations_and_best_val():
  combos = sweep.combinations([("a", [1, 2]), ("b", ["x", "y"])])
  assert combos == [{"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 2, "b": "x"}, {"a": 2, "b": "y"}]
  recs = [{"split": "train", "step": 5, "epoch": 1.0, "loss": 3.0},
          {"split": "val", "step": 10, "epoch": 2.0, "rmse": 0.95},
          {"split": "val", "step": 20, "epoch": 4.0, "rmse": 0.91},
          {"split": "val", "step": 30, "epoch": 6.0, "rmse": 0.93}]
  assert sweep.best_val(recs, "rmse", "min") == {"best": 0.91, "best_epoch": 4.0, "best_step": 20,
                                                 "last": 0.93}
  assert sweep.best_val(recs, "rmse", "max")["best"] == 0.95
  assert sweep.best_val(recs, "recall@20", "max")["best"] is None
  assert sweep.override_flag("model.layers", (600, 64)) == "'--config.model.layers=(600,64)'"
  assert sweep.override_flag("model.layers", [500]) == "'--config.model.layers=(500,)'"
  assert sweep.override_flag("loss.l2", 0.01) == "--config.loss.l2=0.01"


@pytest.mark.slow
def test_sweep_runs_every_combination_and_resumes(tmp_path, capsys):
  c = autorec_ml100k.get_config()       # embedded synthetic ratings (data.path None)
  c.model.hidden = 8
  c.train.epochs = 2
  c.train.eval_every_epochs = 1
  c.train.checkpoint_every_epochs = 2
  c.lock()
  grid = [("optim.lr", [1e-3, 3e-2])]
  ranked = sweep.sweep(c, grid, str(tmp_path), base_flags=("--config.train.epochs=2",),
                       config_path="configs/autorec_ml100k.py")
  assert [r["status"] for r in ranked] == ["ok", "ok"]
  assert ranked[0]["best"] <= ranked[1]["best"]                     # rmse: lowest first
  for r in ranked:
    recs = [json.loads(line) for line in open(tmp_path / r["name"] / "metrics.jsonl")]
    vals = [x["rmse"] for x in recs if x["split"] == "val"]
    assert len(vals) == 2 and r["best"] == min(vals) and r["last"] == vals[-1]
  out = capsys.readouterr().out
  assert "best on validation" in out
  assert f"--config.optim.lr={ranked[0]['overrides']['optim.lr']}" in out
  assert "python train.py --config=configs/autorec_ml100k.py --config.train.epochs=2" in out
  lines = open(tmp_path / sweep.RESULTS_FILE).read().splitlines()
  assert len(lines) == 2
  # The same sweep again runs nothing new.
  again = sweep.sweep(c, grid, str(tmp_path))
  assert "already in sweep.jsonl" in capsys.readouterr().out
  assert [r["best"] for r in again] == [r["best"] for r in ranked]
  assert len(open(tmp_path / sweep.RESULTS_FILE).read().splitlines()) == 2


def test_cli_bad_grid_is_one_line(tmp_path):
  proc = subprocess.run([sys.executable, "-m", "jaxae.sweep", "--config=configs/autorec_ml100k.py",
                         "--grid=model.hiddne=[1,2]", f"--workdir={tmp_path}"],
                        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
  assert proc.returncode == 2, proc.stderr
  assert proc.stderr.strip().splitlines() == [
      "error: --grid model.hiddne: the config has no key model.hiddne"]
