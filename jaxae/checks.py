"""The check behind every numeric config value: one rule and one message for the model builders,
the optimizer, the loss weights and the loop's up-front validation (and the Melon recommenders'
on/off arguments)."""

from __future__ import annotations

import math

import numpy as np

from jaxae.errors import ConfigError


def _bound(x) -> str:
  return f"{x:g}" if isinstance(x, float) else str(x)


def number(value, name: str, *, minimum=None, strict: bool = False, maximum=None, below=None,
           integer: bool = False) -> float | int:
  """``value`` as a float (an int with ``integer``) if it is a finite real number (not a bool)
  ``>= minimum`` (``>`` with ``strict``), ``<= maximum`` and ``< below`` (each bound may be None);
  else a ConfigError naming ``config.<name>``, what it must be, and the value."""
  kinds = (int, np.integer) if integer else (int, float, np.integer, np.floating)
  ok = not isinstance(value, (bool, np.bool_)) and isinstance(value, kinds)
  if ok:
    ok = (math.isfinite(value)
          and (minimum is None or (value > minimum if strict else value >= minimum))
          and (maximum is None or value <= maximum)
          and (below is None or value < below))
  if not ok:
    bounds = ([f"{'>' if strict else '>='} {_bound(minimum)}"] if minimum is not None else [])
    bounds += [f"<= {_bound(maximum)}"] if maximum is not None else []
    bounds += [f"< {_bound(below)}"] if below is not None else []
    kind = "an integer" if integer else "a finite number"
    raise ConfigError(f"config.{name}: expected {kind}"
                      f"{' ' + ' and '.join(bounds) if bounds else ''}, got {value!r}")
  return int(value) if integer else float(value)


def recommender_ints(values) -> None:
  """Each ``(name, value, minimum)`` of a Melon recommender's arguments an integer ``>= minimum``;
  else a ConfigError naming the key that sets it: ``config.eval.recommender_args.<name>``, or
  ``config.eval.topk_group`` for ``topk_group`` (the evaluator passes that one itself)."""
  for name, value, minimum in values:
    key = "eval.topk_group" if name == "topk_group" else f"eval.recommender_args.{name}"
    number(value, key, minimum=minimum, integer=True)


def recommender_flag(name: str, value) -> bool:
  """A Melon recommender's on/off argument as a bool; else a ConfigError naming
  ``config.eval.recommender_args.<name>``."""
  if not isinstance(value, (bool, np.bool_)):
    raise ConfigError(f"config.eval.recommender_args.{name}: expected true or false, got "
                      f"{value!r}")
  return bool(value)
