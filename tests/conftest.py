"""Shared fixtures. Real datasets are read from ../shared/data (beside the repository) or from
$JAXAE_SHARED_DATA; tests that need them skip cleanly when they are absent."""

from __future__ import annotations

import os
import pathlib

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


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
