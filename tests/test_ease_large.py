"""EASE for large catalogs: the blocked (tiled, in-place) solver against the dense Cholesky solver
and numpy float64, its tile layout and stated memory, the config plumbing and its errors."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse as sp
from ml_collections import ConfigDict

from jaxae.errors import ConfigError, JaxaeError
from jaxae.models import CLOSED_FORM, build_model, ease
from tests.test_ease import _matrix, _numpy_ease


@pytest.mark.parametrize("items,block_size", [
    (37, 8),      # 5 tiles of 8: 40 padded columns, the last tile mostly padding
    (64, 16),     # 4 tiles, no padding
    (50, 64),     # one tile (block larger than the catalog)
    (45, 20),     # 3 tiles of 16 (rounded to 8): 48 padded columns
])
def test_blocked_equals_cholesky_and_float64(items, block_size):
  x = _matrix(seed=items, users=3 * items, items=items, density=0.15)
  x[:, 3] = 0.0                                   # an item nobody has: kept finite by l2
  csr = sp.csr_matrix(x)
  blocked = np.asarray(ease.fit_ease(csr, 4.0, solver="blocked", block_size=block_size))
  dense = np.asarray(ease.fit_ease(csr, 4.0, solver="cholesky"))
  assert blocked.dtype == np.float32 and blocked.shape == (items, items)
  np.testing.assert_array_equal(np.diag(blocked), 0.0)
  np.testing.assert_allclose(blocked, dense, rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(blocked, _numpy_ease(x, 4.0), rtol=1e-4, atol=1e-6)


def test_blocked_takes_dense_input_and_config():
  x = _matrix(seed=5, users=60, items=30)
  want = _numpy_ease(x, 2.0)
  np.testing.assert_allclose(np.asarray(ease.fit_ease(jnp.asarray(x), 2.0, solver="blocked",
                                                      block_size=8)), want, rtol=1e-4, atol=1e-6)
  cfg = ConfigDict({"name": "ease", "l2": 2.0, "solver": "blocked", "block_size": 8})
  build_model(cfg, 30, 60)                         # the keys are accepted
  params = CLOSED_FORM["ease"](cfg, sp.csr_matrix(x))
  np.testing.assert_allclose(np.asarray(params["B"]), want, rtol=1e-4, atol=1e-6)


def test_tile_layout_and_memory_needed():
  # ceil(10 / 4) = 3 tiles of ceil(10 / 3) = 4 items, rounded up to 8: 24 padded columns.
  assert ease.tile_layout(10, 4) == (3, 8)
  assert ease.tile_layout(40981, 2048) == (21, 1952)       # 21 * 1952 = 40992 >= 40981
  assert ease.tile_layout(64, 16) == (4, 16)
  # blocked: 4 bytes x (n^2 for B + (T(T+1)/2 + 2) tiles of t^2) = 4 x (100 + 8 x 64).
  assert ease.memory_needed(10, "blocked", 4) == 4 * (100 + 8 * 64)
  assert ease.memory_needed(10, "cholesky") == ease.memory_needed(10)
  # Gowalla's 40,981 items: the blocked solver fits this 24 GiB machine, the dense one does not.
  blocked, dense = ease.memory_needed(40981, "blocked"), ease.memory_needed(40981, "cholesky")
  assert blocked < 11 * 2**30 < 24 * 2**30 < dense
  with pytest.raises(ConfigError, match="unknown EASE solver 'lu'"):
    ease.memory_needed(10, "lu")
  with pytest.raises(ConfigError, match="block_size"):
    ease.tile_layout(10, 0)


def test_memory_errors_state_the_solver_and_bytes():
  x = sp.csr_matrix(_matrix())
  need = ease.memory_needed(16, "blocked", 8)
  with pytest.raises(ConfigError, match=f"needs about {need} bytes .* with the blocked solver"):
    ease.fit_ease(x, 1.0, max_bytes=need - 1, solver="blocked", block_size=8)
  ease.fit_ease(x, 1.0, max_bytes=need, solver="blocked", block_size=8)
  with pytest.raises(ConfigError, match="solver='blocked'"):
    ease.fit_ease(x, 1.0, max_bytes=100, solver="cholesky")
  with pytest.raises(ConfigError, match="unknown EASE solver"):
    build_model(ConfigDict({"name": "ease", "l2": 1.0, "solver": "cg"}), 16, 40)
  with pytest.raises(ConfigError, match="block_size"):
    build_model(ConfigDict({"name": "ease", "l2": 1.0, "block_size": -1}), 16, 40)


def test_blocked_singular_gram_raises():
  x = _matrix(2)
  x[:, 3] = 0
  with pytest.raises(JaxaeError, match="not positive definite"):
    ease.fit_ease(sp.csr_matrix(x), 0.0, solver="blocked", block_size=8)
