r"""Trains a jaxae model from a config file.

  python train.py --config=configs/song_as_user.py [--workdir=DIR] [--config.optim.lr=1e-3 ...]

Parses flags and calls `jaxae.training.loop.train_and_evaluate`; everything else lives in the library.
"""

from absl import app
from absl import flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Path to a config file.", lock_config=True)
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Where checkpoints, metrics and plots go; a workdir that holds a run is resumed. "
    "Default: workdirs/<config file name>.")
flags.mark_flags_as_required(["config"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  from jaxae import cli  # pylint: disable=import-outside-toplevel
  from jaxae.training.loop import train_and_evaluate  # pylint: disable=import-outside-toplevel
  cli.quiet_third_party_logs()
  workdir = _WORKDIR.value or cli.default_workdir(config_flags.get_config_filename(flags.FLAGS["config"]))
  cli.run(train_and_evaluate, _CONFIG.value, workdir)


if __name__ == "__main__":
  app.run(main)
