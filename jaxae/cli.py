"""What `train.py` and `eval.py` share: default paths and turning a JaxaeError into one line."""

from __future__ import annotations

import os
import pathlib
import sys
from typing import Any, Callable

from absl import logging

from jaxae.errors import JaxaeError


class _OwnInfoOnly:
  """A logging filter: INFO and below only from jaxae's own modules; warnings from anywhere."""

  def filter(self, record) -> bool:  # pylint: disable=missing-function-docstring
    return record.levelno >= logging.converter.ABSL_TO_STANDARD[logging.WARNING] or (
        f"{os.sep}jaxae{os.sep}" in record.pathname)


def quiet_third_party_logs() -> None:
  """Keeps jaxae's own INFO lines (what readers skipped, dataset shapes) and drops the INFO lines of
  libraries (Orbax logs every step of every save). ``--verbosity`` still raises or lowers the level."""
  logging.get_absl_handler().addFilter(_OwnInfoOnly())


def default_workdir(config_path: str) -> str:
  """``workdirs/<config file stem>`` under the current directory."""
  return os.path.join("workdirs", pathlib.Path(config_path).stem)


def run(fn: Callable[..., Any], *args, **kwargs) -> Any:
  """Calls ``fn``; a user mistake (JaxaeError) ends the process with its one-line message, exit 2."""
  try:
    return fn(*args, **kwargs)
  except JaxaeError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  except KeyboardInterrupt:
    print("interrupted: the last checkpoint in the workdir is intact; run the same command to resume",
          file=sys.stderr)
    sys.exit(130)
