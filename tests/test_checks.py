"""The one numeric config check (``jaxae.checks.number``) and the places that use it: bad numbers
end in one message naming the key, including NaN / inf, which a plain ``<`` comparison lets through."""

from __future__ import annotations

import math

import numpy as np
import pytest
from ml_collections import ConfigDict

from configs import base
from jaxae import checks
from jaxae import losses
from jaxae.errors import ConfigError
from jaxae.training import optim


@pytest.mark.parametrize("value,kw,expected", [
    (0.5, dict(minimum=0.0), 0.5),
    (0, dict(minimum=0.0), 0.0),
    (np.float32(2.0), dict(minimum=0.0, strict=True), 2.0),
    (1.0, dict(minimum=0.0, maximum=1.0), 1.0),
    (3, dict(minimum=0, integer=True), 3),
    (np.int64(7), dict(integer=True), 7),
    (-4.0, {}, -4.0),
    (0.0, dict(minimum=0.0, below=1.0), 0.0),
])
def test_number_accepts(value, kw, expected):
  out = checks.number(value, "x.key", **kw)
  assert out == expected and type(out) is type(expected)


@pytest.mark.parametrize("value,kw,message", [
    (math.nan, {}, r"config.x.key: expected a finite number, got nan"),
    (math.inf, dict(minimum=0.0), r"config.x.key: expected a finite number >= 0, got inf"),
    (-math.inf, {}, r"expected a finite number, got -inf"),
    (0.0, dict(minimum=0.0, strict=True), r"expected a finite number > 0, got 0.0"),
    (1.5, dict(minimum=0.0, maximum=1.0), r"expected a finite number >= 0 and <= 1, got 1.5"),
    (True, {}, r"expected a finite number, got True"),
    ("1", {}, r"expected a finite number, got '1'"),
    (None, {}, r"got None"),
    (1.5, dict(minimum=0, integer=True), r"expected an integer >= 0, got 1.5"),
    (2**31, dict(minimum=0, maximum=2**31 - 1, integer=True), r"<= 2147483647, got 2147483648"),
    (1.0, dict(minimum=0.0, below=1.0), r"expected a finite number >= 0 and < 1, got 1.0"),
])
def test_number_refuses_naming_the_key(value, kw, message):
  with pytest.raises(ConfigError, match=message):
    checks.number(value, "x.key", **kw)


def _optim(**edits):
  c = base.get_base().optim
  c.name, c.lr, c.momentum = "momentum", 0.1, 0.9
  for k, v in edits.items():
    c[k] = v
  return c


@pytest.mark.parametrize("key,value", [("lr", math.nan), ("lr", math.inf), ("momentum", math.nan),
                                       ("momentum", 1.5), ("weight_decay", math.nan),
                                       ("weight_decay", math.inf), ("clip_norm", math.nan)])
def test_make_optimizer_refuses_non_finite_and_out_of_range_numbers(key, value):
  """Before, ``make_optimizer`` took a NaN learning rate (the update then made the params NaN past
  the guard, which checks the gradients) and a NaN weight decay (silently no decay)."""
  with pytest.raises(ConfigError, match=rf"config.optim.{key}: expected a finite number"):
    optim.make_optimizer(_optim(**{key: value}), 10, 2)


def test_loss_weights_must_be_finite_and_non_negative():
  for w in (math.nan, math.inf, -1.0):
    with pytest.raises(ConfigError, match=r"config.loss.mse: expected a finite number >= 0"):
      losses.check_loss_config(ConfigDict({"masked_mse": 1.0, "mse": w}))
