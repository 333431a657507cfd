"""The project's error type: one readable line for every user mistake.

Every reader, config check and checkpoint check raises :class:`JaxaeError` (or a subclass) with a
message that names the file / record / key and what is wrong.  Entry points (`train.py`, `eval.py`)
catch it and print only the message, never a traceback.
"""

from __future__ import annotations


class JaxaeError(ValueError):
  """A user-facing error whose ``str()`` is a single readable line."""

  def __init__(self, message: str):
    # Keep it to one line: newlines in user data (e.g. a bad JSON record) must not split it.
    super().__init__(" ".join(str(message).split("\n")))


class DataError(JaxaeError):
  """Bad input data: a file, line or record that cannot be read as the format says."""


class ConfigError(JaxaeError):
  """A config key or value that is unknown or out of range."""


class CheckpointError(JaxaeError):
  """A missing, corrupt or mismatched checkpoint."""


def where(path, line: int | None = None, record: str | None = None) -> str:
  """Formats the location part of a message: ``path:line`` or ``path record ...``."""
  loc = str(path)
  if line is not None:
    loc += f":{line}"
  if record is not None:
    loc += f" ({record})"
  return loc
