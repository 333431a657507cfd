"""Shared fixtures. Real datasets are read from ../shared/data (beside the repository) or from
$JAXAE_SHARED_DATA; tests that need them skip cleanly when they are absent."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def run_on_eight_devices(code: str, *args: str, timeout: int = 300) -> dict:
  """Runs ``python -c code args...`` with 8 simulated CPU devices (``XLA_FLAGS`` set before the
  child imports jax; the repository on its path) and returns the JSON its last ``RESULT`` line
  prints; the child's stderr tail when it fails."""
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu")
  env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")])
  proc = subprocess.run([sys.executable, "-c", code, *args], cwd=REPO_ROOT, env=env,
                        capture_output=True, text=True, timeout=timeout, check=False)
  assert proc.returncode == 0, proc.stderr[-4000:]
  line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT")][-1]
  return json.loads(line[len("RESULT"):])


def _shared_data_dir() -> pathlib.Path:
  env = os.environ.get("JAXAE_SHARED_DATA")
  return pathlib.Path(env) if env else REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> pathlib.Path:
  """The folder of real datasets; skips the test when it is absent."""
  d = _shared_data_dir()
  if not d.is_dir():
    pytest.skip(f"real datasets not found ({d}); set JAXAE_SHARED_DATA to run data tests")
  return d


def shared_file(shared_data: pathlib.Path, rel: str) -> pathlib.Path:
  p = shared_data / rel
  if not p.exists():
    pytest.skip(f"{rel} not present in the shared data folder")
  return p


def pytest_addoption(parser):
  parser.addoption("--run-slow", action="store_true", default=False,
                   help="also run tests marked slow (the whole suite; CI does this)")


def pytest_collection_modifyitems(config, items):
  if config.getoption("--run-slow"):
    return
  skip = pytest.mark.skip(reason="slow: run with --run-slow")
  for item in items:
    if "slow" in item.keywords:
      item.add_marker(skip)
