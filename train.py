r"""Trains a jaxae model from a config file.

  python train.py --config=configs/song_as_user.py [--workdir=DIR] [--config.optim.lr=1e-3 ...]

Multi-process (multi-host): run the same command once per process with
  --coordinator_address=HOST:PORT --num_processes=N --process_id=I   (I = 0 .. N-1; HOST = process 0)
or with --distributed alone on a TPU VM (or under SLURM / Open MPI), where JAX finds them itself.
Every process reads the data and feeds only its rows of each global batch; process 0 logs, and
checkpoints are written once (Orbax coordinates the processes). See docs/tpu.md.

Parses flags and calls `jaxae.training.loop.train_and_evaluate`; everything else lives in the library.
"""

from absl import app
from absl import flags
from ml_collections import config_flags

from jaxae import cli

_CONFIG = config_flags.DEFINE_config_file("config", None, "Path to a config file.", lock_config=True)
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Where checkpoints, metrics and plots go; a workdir that holds a run is resumed. "
    "Default: workdirs/<config file name>.")
_DISTRIBUTED = flags.DEFINE_bool(
    "distributed", False, "Join a multi-process run: jax.distributed.initialize() with the three "
    "flags below, or with none of them to detect the processes (TPU VM, SLURM, Open MPI).")
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None, "HOST:PORT of process 0 (implies --distributed).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Number of processes (with "
                                      "--coordinator_address).")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index, 0 .. "
                                   "num_processes - 1 (with --coordinator_address).")
cli.define_malloc_flags()
flags.mark_flags_as_required(["config"])


def main(argv):
  cli.no_extra_args(argv)
  cli.tune_malloc()                               # before jax: may re-execute the process
  from jaxae.training.loop import train_and_evaluate  # pylint: disable=import-outside-toplevel
  cli.quiet_third_party_logs()
  if _DISTRIBUTED.value or any(f.value is not None for f in (_COORDINATOR, _NUM_PROCESSES,
                                                             _PROCESS_ID)):
    from jaxae.training import mesh  # pylint: disable=import-outside-toplevel
    cli.run(mesh.initialize_distributed, coordinator_address=_COORDINATOR.value,
            num_processes=_NUM_PROCESSES.value, process_id=_PROCESS_ID.value)
    import jax  # pylint: disable=import-outside-toplevel
    if jax.process_index() != 0:      # logs from process 0 only (warnings and errors from all)
      from absl import logging  # pylint: disable=import-outside-toplevel
      logging.set_verbosity(logging.WARNING)
  workdir = _WORKDIR.value or cli.default_workdir(config_flags.get_config_filename(flags.FLAGS["config"]))
  cli.run(train_and_evaluate, _CONFIG.value, workdir)


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
