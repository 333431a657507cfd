"""What `train.py` and `eval.py` share: default paths and turning a JaxaeError into one line."""

from __future__ import annotations

import os
import pathlib
import sys
from typing import Any, Callable

from jaxae.errors import JaxaeError


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
