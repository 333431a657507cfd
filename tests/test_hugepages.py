"""``--hugepages`` and ``--keep_heap`` (train.py, eval.py, jaxae.sweep, jaxae.export, the bench
scripts): the process re-executes itself once with glibc's tunables added, keeping its command line
and the user's other tunables; a user's own setting of a tunable, ``--nohugepages`` and other
systems are left alone. The speed-ups are measured by ``python -m bench.hugepages`` and
``python -m bench.run --keep_heap``, not here; what ``--keep_heap`` does to page faults is."""

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


_KEEP = ":".join(cli.KEEP_HEAP)


@pytest.mark.parametrize("before,keep_heap,after", [
    (None, False, "glibc.malloc.hugetlb=1"),
    ("glibc.malloc.arena_max=2", False, "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"),
    (None, True, f"glibc.malloc.hugetlb=1:{_KEEP}"),
    # the user's own arena_max stands; the other two are added
    ("glibc.malloc.arena_max=2", True, "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1:"
     + ":".join(t for t in cli.KEEP_HEAP if not t.startswith("glibc.malloc.arena_max"))),
])
def test_reexec_adds_the_tunables_and_keeps_the_command_line(execve, monkeypatch, before,
                                                             keep_heap, after):
  if before is None:
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
  else:
    monkeypatch.setenv("GLIBC_TUNABLES", before)
  monkeypatch.setenv("SOME_USER_VAR", "kept")
  with pytest.raises(_Execed):
    cli.tune_malloc({"hugepages": True, "keep_heap": keep_heap})
  [(path, args, env)] = execve
  assert path == sys.executable
  assert args == [sys.executable, "-X", "dev", "train.py", "--config=c.py"]
  assert env["GLIBC_TUNABLES"] == after and env["SOME_USER_VAR"] == "kept"


@pytest.mark.parametrize("tunables,platform,enabled,keep_heap", [
    ("glibc.malloc.hugetlb=1", "linux", True, False),        # the re-executed process itself
    (f"glibc.malloc.hugetlb=1:{_KEEP}", "linux", True, True),  # the same, with --keep_heap
    ("glibc.malloc.hugetlb=0", "linux", True, False),        # the user's own choice stands
    (None, "darwin", True, True),                            # not glibc
    (None, "linux", False, False),                           # --nohugepages
])
def test_no_reexec(execve, monkeypatch, caplog, tunables, platform, enabled, keep_heap):
  if tunables is None:
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
  else:
    monkeypatch.setenv("GLIBC_TUNABLES", tunables)
  monkeypatch.setattr(sys, "platform", platform)
  with caplog.at_level("DEBUG"):
    cli.tune_malloc({"hugepages": enabled, "keep_heap": keep_heap})
  assert not execve
  expected = f"GLIBC_TUNABLES={tunables}" if tunables else "glibc malloc defaults (4 KiB pages)"
  assert f"malloc: {expected}" in caplog.text
  assert ("(--nohugepages)" in caplog.text) == (not enabled)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc tunables: Linux only")
@pytest.mark.parametrize("flag,line", [
    ("--hugepages", "malloc: GLIBC_TUNABLES=glibc.malloc.hugetlb=1"),
    ("--nohugepages", "malloc: glibc malloc defaults (4 KiB pages) (--nohugepages)"),
    ("--keep_heap", f"malloc: GLIBC_TUNABLES=glibc.malloc.hugetlb=1:{_KEEP}"),
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


_HUGE = "glibc.malloc.hugetlb=1"


@pytest.mark.parametrize("argv,tunables", [
    ([], _HUGE),
    (["--workdir=w", "--hugepages"], _HUGE),
    (["--nohugepages"], None),
    (["--hugepages=false"], None),
    (["--nohugepages", "--hugepages=true"], _HUGE),           # the last one wins, as in absl
    (["--", "--nohugepages"], _HUGE),                         # not a flag after --
    (["--hugepages=maybe"], None),                            # absl reports the bad value
    (["--keep_heap"], f"{_HUGE}:{_KEEP}"),
    (["--keep_heap", "--nohugepages"], _KEEP),
    (["--keep_heap=true", "--nokeep_heap"], _HUGE),
    (["--keep_heap=false"], _HUGE),
    (["--", "--keep_heap"], _HUGE),
])
def test_malloc_early_reads_the_flags_from_the_command_line(execve, monkeypatch, argv, tunables):
  monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
  if tunables:
    with pytest.raises(_Execed):
      cli.malloc_early(["prog"] + argv)
    [(_, _, env)] = execve
    assert env["GLIBC_TUNABLES"] == tunables
  else:
    cli.malloc_early(["prog"] + argv)
    assert not execve


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


def _glibc() -> bool:
  try:
    return sys.platform.startswith("linux") and os.confstr("CS_GNU_LIBC_VERSION").startswith(
        "glibc")
  except (ValueError, OSError, AttributeError):
    return False


# A jitted function with a 64 MiB temporary (as a train step's gradients), called 5 times after
# its first call: the page faults those calls take.
_FAULTS = """
import resource, jax, jax.numpy as jnp
f = jax.jit(lambda x: jnp.sum(jnp.sin(x) * 2.0, axis=0) + jnp.cos(x)[0])
x = jnp.ones((4096, 4096))
jax.block_until_ready(f(x))
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
  y = f(x); y.block_until_ready(); del y
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not _glibc(), reason="glibc tunables: Linux with glibc only")
def test_keep_heap_takes_xla_s_buffers_without_page_faults():
  """With the tunables ``--keep_heap`` adds (beside ``--hugepages``'), XLA:CPU's per-call buffers
  come back from malloc's heap: the calls after the first take (nearly) no page faults, where
  fresh pages fault in thousands (4 KiB pages, or 2 MiB ones with huge pages)."""
  def faults(tunables: str) -> int:
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    env.update(JAX_PLATFORMS="cpu", GLIBC_TUNABLES=tunables)
    p = subprocess.run([sys.executable, "-c", _FAULTS], env=env, capture_output=True, text=True,
                       timeout=300, check=True)
    return int(p.stdout.split()[-1])

  plain, kept = faults(_HUGE), faults(f"{_HUGE}:{_KEEP}")
  assert kept * 10 < plain, (plain, kept)
