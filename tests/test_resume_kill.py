"""A real `train.py` killed with SIGKILL at random steps, restarted with the same command, ends with
the exact state of an uninterrupted run (params, optimizer state, step, PRNG key: every bit).

The runs are separate processes (each compiles its own step), the kills land anywhere (mid-epoch,
mid-save: ``checkpoint_every_steps`` saves often, asynchronously), and the restarts resume from
whatever the last complete checkpoint is, replaying the epoch's data order from there. The kill
steps are random; ``JAXAE_KILL_STEPS=a,b`` replays a failing pair.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys

import numpy as np
import orbax.checkpoint as ocp
import pytest

from jaxae.training import checkpoint as ckpt_lib
from tests.conftest import REPO_ROOT

EPOCHS, BATCH = 3, 32
ARGS = ["--config=configs/autorec_ml100k.py", f"--config.train.epochs={EPOCHS}",
        "--config.model.hidden=64", f"--config.train.batch_size={BATCH}",
        "--config.train.checkpoint_every_steps=7", "--config.train.log_every_steps=1",
        f"--config.train.eval_every_epochs={EPOCHS}", "--config.train.keep_checkpoints=2"]
STEP_LINE = re.compile(r"step (\d+)/(\d+)")


def _command(workdir) -> list[str]:
  return [sys.executable, "train.py", *ARGS, f"--workdir={workdir}"]


def _env() -> dict[str, str]:
  return dict(os.environ, JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1")


def _run(workdir) -> str:
  p = subprocess.run(_command(workdir), cwd=REPO_ROOT, env=_env(), capture_output=True, text=True,
                     timeout=600)
  assert p.returncode == 0, p.stderr[-3000:]
  return p.stdout


def _run_and_kill(workdir, at_step: int) -> tuple[int, int, str]:
  """Starts the run, SIGKILLs it as soon as it reports step >= ``at_step``; (step seen, total
  steps, output)."""
  p = subprocess.Popen(_command(workdir), cwd=REPO_ROOT, env=_env(), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
  seen, total, out = -1, -1, []
  try:
    for line in p.stdout:
      out.append(line)
      m = STEP_LINE.search(line)
      if m:
        seen, total = int(m.group(1)), int(m.group(2))
        if seen >= at_step:
          p.send_signal(signal.SIGKILL)
          break
  finally:
    if p.poll() is None:
      p.kill()
    p.wait(timeout=60)
    p.stdout.close()
  assert p.returncode == -signal.SIGKILL, "".join(out)[-3000:]
  return seen, total, "".join(out)


def _state_arrays(workdir) -> tuple[int, dict[str, np.ndarray]]:
  ckpt = ckpt_lib.Checkpointer(workdir, read_only=True)
  step = ckpt.latest_step()
  ckpt.close()
  with ocp.StandardCheckpointer() as c:
    tree = c.restore(os.path.join(workdir, "checkpoints", str(step), "state"))
  return step, {k: np.asarray(v) for k, v in ckpt_lib.tree_arrays(tree).items()}


@pytest.mark.slow
def test_sigkill_at_random_steps_then_resume_ends_bit_identical(tmp_path):
  steps_total = EPOCHS * -(-1000 // BATCH)        # 1000 items (rows) of the synthetic ratings
  replay = os.environ.get("JAXAE_KILL_STEPS")
  if replay:
    kills = [int(x) for x in replay.split(",")]
  else:
    rng = random.Random()
    kills = [rng.randint(2, steps_total // 2), rng.randint(steps_total // 2 + 5, steps_total - 3)]
  note = f"kill steps {kills} (replay: JAXAE_KILL_STEPS={','.join(map(str, kills))})"

  _run(tmp_path / "straight")
  wd = tmp_path / "killed"
  seen, total, _ = _run_and_kill(wd, kills[0])
  assert total == steps_total and seen < total, note
  seen2, _, out = _run_and_kill(wd, kills[1])
  assert seen2 < total, note
  resumed = re.search(r"resumed from .* at step (\d+)", out)
  # The second run went on from a checkpoint saved before the first kill (or from scratch when
  # the first kill came before any checkpoint was complete).
  assert resumed is None or int(resumed.group(1)) <= seen, (note, out[-2000:])
  final_out = _run(wd)
  assert "resumed from" in final_out, note

  step_a, a = _state_arrays(tmp_path / "straight")
  step_b, b = _state_arrays(wd)
  assert step_a == step_b == steps_total, note
  assert sorted(a) == sorted(b) and any(k.startswith("opt_state.") for k in a), note
  for name in a:
    assert a[name].dtype == b[name].dtype and a[name].tobytes() == b[name].tobytes(), (name, note)
