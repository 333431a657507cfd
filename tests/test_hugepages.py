"""``--hugepages`` (train.py, eval.py, jaxae.sweep, jaxae.export, the bench scripts): the process
re-executes itself once with glibc's hugetlb tunable added, keeping its command line and the
user's other tunables; a user's own hugetlb setting, ``--nohugepages`` and other systems are left
alone. The speed-up is measured by ``python -m bench.hugepages``, not here."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from jaxae import cli
from tests.conftest import REPO_ROOT


class _Execed(Exception):
  pass


@pytest.fixture
def execve(monkeypatch):
  calls = []

  def fake(path, args, env):
    calls.append((path, args, env))
    raise _Execed()

  monkeypatch.setattr(os, "execve", fake)
  monkeypatch.setattr(sys, "platform", "linux")
  monkeypatch.setattr(sys, "orig_argv", ["python3", "-X", "dev", "train.py", "--config=c.py"])
  return calls


@pytest.mark.parametrize("before,after", [
    (None, "glibc.malloc.hugetlb=1"),
    ("glibc.malloc.arena_max=2", "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"),
])
def test_reexec_adds_the_tunable_and_keeps_the_command_line(execve, monkeypatch, before, after):
  if before is None:
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
  else:
    monkeypatch.setenv("GLIBC_TUNABLES", before)
  monkeypatch.setenv("SOME_USER_VAR", "kept")
  with pytest.raises(_Execed):
    cli.hugepages(True)
  [(path, args, env)] = execve
  assert path == sys.executable
  assert args == [sys.executable, "-X", "dev", "train.py", "--config=c.py"]
  assert env["GLIBC_TUNABLES"] == after and env["SOME_USER_VAR"] == "kept"


@pytest.mark.parametrize("tunables,platform,enabled", [
    ("glibc.malloc.hugetlb=1", "linux", True),        # the re-executed process itself
    ("glibc.malloc.hugetlb=0", "linux", True),        # the user's own choice stands
    (None, "darwin", True),                           # not glibc
    (None, "linux", False),                           # --nohugepages
])
def test_no_reexec(execve, monkeypatch, caplog, tunables, platform, enabled):
  if tunables is None:
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
  else:
    monkeypatch.setenv("GLIBC_TUNABLES", tunables)
  monkeypatch.setattr(sys, "platform", platform)
  with caplog.at_level("DEBUG"):
    cli.hugepages(enabled)
  assert not execve
  expected = f"GLIBC_TUNABLES={tunables}" if tunables else "glibc malloc defaults (4 KiB pages)"
  assert f"malloc: {expected}" in caplog.text
  assert ("(--nohugepages)" in caplog.text) == (not enabled)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc tunables: Linux only")
@pytest.mark.parametrize("flag,line", [
    ("--hugepages", "malloc: GLIBC_TUNABLES=glibc.malloc.hugetlb=1"),
    ("--nohugepages", "malloc: glibc malloc defaults (4 KiB pages) (--nohugepages)"),
])
def test_train_py_runs_with_huge_pages_unless_told_not_to(tmp_path, flag, line):
  """A real train.py process, started without the tunable, stopped early by a missing data file:
  its log (``--verbosity=1``) says how malloc is tuned in the process that does the work, and
  the error stays one line."""
  env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
  env["JAX_PLATFORMS"] = "cpu"
  p = subprocess.run([sys.executable, "train.py", "--config=configs/autorec_ml100k.py",
                      "--config.data.path=/nonexistent/u.data", f"--workdir={tmp_path / 'wd'}",
                      flag, "--verbosity=1"],
                     cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300,
                     check=False)
  assert p.returncode == 2, p.stderr
  assert line in p.stderr, p.stderr[-2000:]
  assert p.stderr.count("malloc: ") == 1, p.stderr[-2000:]        # re-executed once, not more
  lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
  assert lines[-1].startswith("error: ") and "Traceback" not in p.stderr


@pytest.mark.parametrize("argv,execs", [
    ([], True),
    (["--workdir=w", "--hugepages"], True),
    (["--nohugepages"], False),
    (["--hugepages=false"], False),
    (["--nohugepages", "--hugepages=true"], True),           # the last one wins, as in absl
    (["--", "--nohugepages"], True),                         # not a flag after --
    (["--hugepages=maybe"], False),                          # absl reports the bad value
])
def test_hugepages_early_reads_the_flag_from_the_command_line(execve, monkeypatch, argv, execs):
  monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
  if execs:
    with pytest.raises(_Execed):
      cli.hugepages_early(["prog"] + argv)
  else:
    cli.hugepages_early(["prog"] + argv)
  assert bool(execve) == execs


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc tunables: Linux only")
@pytest.mark.parametrize("module", ["jaxae.predict", "jaxae.export"])
def test_module_commands_reexecute_before_importing_jax(tmp_path, module):
  """``python -X importtime -m jaxae.predict`` (a missing workdir stops it): jax is imported once,
  in the re-executed process that does the work, not also in the first one."""
  env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
  env["JAX_PLATFORMS"] = "cpu"
  p = subprocess.run([sys.executable, "-X", "importtime", "-m", module,
                      f"--workdir={tmp_path / 'none'}", f"--out={tmp_path / 'o'}",
                      "--verbosity=1"],
                     cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300,
                     check=False)
  assert p.returncode == 2, p.stderr[-2000:]
  assert "malloc: GLIBC_TUNABLES=glibc.malloc.hugetlb=1" in p.stderr, p.stderr[-2000:]
  jax_imports = [ln for ln in p.stderr.splitlines() if ln.rstrip().endswith("| jax")]
  assert len(jax_imports) == 1, jax_imports
