"""Every shipped config is valid and trains on the embedded synthetic data (issue: "every config runs
on the embedded synthetic data when no dataset path is given"), and the main command works as a real
process."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT

CONFIGS = sorted(p.stem for p in (REPO_ROOT / "configs").glob("*.py")
                 if p.stem not in ("__init__", "base"))


def _config(name: str):
  return importlib.import_module(f"configs.{name}").get_config()


def test_every_config_is_listed_in_the_readme():
  readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
  missing = [c for c in CONFIGS if f"configs/{c}.py" not in readme]
  assert not missing, f"configs not in README: {missing}"


@pytest.mark.parametrize("name", CONFIGS)
def test_config_is_valid_and_documents_its_command(name):
  from jaxae.training.loop import check_config  # pylint: disable=import-outside-toplevel
  config = _config(name)
  check_config(config)
  doc = importlib.import_module(f"configs.{name}").__doc__
  assert f"python train.py --config=configs/{name}.py" in doc
  assert config.data.path is None          # every shipped config defaults to the embedded data
  # ... and the path can be set from the command line (config_flags needs a typed placeholder).
  assert config.data.get_type("path") is str


@pytest.mark.slow
@pytest.mark.parametrize("name", CONFIGS)
def test_config_trains_one_epoch_on_synthetic_data(name, tmp_path):
  from jaxae.training.loop import train_and_evaluate  # pylint: disable=import-outside-toplevel
  config = _config(name)
  config.train.epochs = 1
  config.train.eval_every_epochs = 1
  config.train.checkpoint_every_epochs = 1
  metrics = train_and_evaluate(config, str(tmp_path / name))
  assert metrics, name
  for k, v in metrics.items():
    if isinstance(v, float):
      assert v == v, f"{name}: metric {k} is NaN"
  if config.eval.metric != "loss":
    assert config.eval.metric in metrics, (name, sorted(metrics))


@pytest.mark.slow
def test_main_command_runs_as_a_process(tmp_path):
  """`python train.py --config=configs/song_as_user.py` (2 epochs here), then eval.py on its workdir."""
  env = dict(os.environ, PYTHONUNBUFFERED="1")
  wd = tmp_path / "wd"
  out = subprocess.run(
      [sys.executable, "train.py", "--config=configs/song_as_user.py", f"--workdir={wd}",
       "--config.train.epochs=2", "--config.train.eval_every_epochs=2"],
      cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
  assert out.returncode == 0, out.stderr[-3000:]
  assert "melon_score" in out.stdout + out.stderr
  assert (wd / "metrics.jsonl").exists() and (wd / "curves.png").exists()
  ev = subprocess.run([sys.executable, "eval.py", f"--workdir={wd}", "--split=val"], cwd=REPO_ROOT,
                      env=env, capture_output=True, text=True, timeout=600, check=False)
  assert ev.returncode == 0, ev.stderr[-3000:]
  saved = json.loads((wd / "metrics.json").read_text())
  assert 0.0 <= saved["metrics"]["melon_score"] <= 1.0
  assert (wd / "results.json").exists()
