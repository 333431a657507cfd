"""Tests of EASE: closed form vs numpy float64, zero diagonal, chunked Gram, memory check, scoring."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse as sp
from ml_collections import ConfigDict

from jaxae.data.matrix import Interactions
from jaxae.errors import ConfigError, JaxaeError
from jaxae.models import CLOSED_FORM, build_model, ease
from tests.test_models import to_sparse_batch


def _matrix(seed=0, users=40, items=16, density=0.3) -> np.ndarray:
  rng = np.random.RandomState(seed)
  return ((rng.rand(users, items) < density) * rng.randint(1, 4, (users, items))).astype(np.float32)


def _numpy_ease(x: np.ndarray, l2: float) -> np.ndarray:
  x = x.astype(np.float64)
  g = x.T @ x + l2 * np.eye(x.shape[1])
  p = np.linalg.inv(g)
  b = p / (-np.diag(p))
  np.fill_diagonal(b, 0.0)
  return b


@pytest.mark.parametrize("kind", ["csr", "jax"])
def test_fit_ease_matches_numpy_float64(kind):
  x = _matrix()
  inp = sp.csr_matrix(x) if kind == "csr" else jnp.asarray(x)
  b = np.asarray(ease.fit_ease(inp, 5.0))
  assert b.dtype == np.float32 and b.shape == (16, 16)
  np.testing.assert_array_equal(np.diag(b), 0.0)
  np.testing.assert_allclose(b, _numpy_ease(x, 5.0), rtol=1e-4, atol=1e-6)


def test_chunked_gram_accumulates_every_chunk(monkeypatch):
  monkeypatch.setattr(ease, "_MIN_CHUNK_ELEMS", 16)         # chunks of 16 x 16 -> 3 chunks
  calls = []
  real = ease._accumulate_gram
  monkeypatch.setattr(ease, "_accumulate_gram", lambda *a, **k: calls.append(k) or real(*a, **k))
  x = _matrix(1, users=40)
  np.testing.assert_allclose(np.asarray(ease.gram(sp.csr_matrix(x))), x.T.astype(np.float64) @ x,
                             rtol=1e-6)
  assert len(calls) == 3 and calls[0]["chunk_rows"] == 16
  np.testing.assert_allclose(np.asarray(ease.fit_ease(sp.csr_matrix(x), 2.0)),
                             _numpy_ease(x, 2.0), rtol=1e-4, atol=1e-6)


def test_memory_budget_error_states_bytes():
  assert ease.memory_needed(10_000) == 4 * 5 * 10_000 ** 2
  x = sp.csr_matrix(_matrix())
  need = ease.memory_needed(16)
  with pytest.raises(ConfigError, match=f"16 items needs about {need} bytes"):
    ease.fit_ease(x, 1.0, max_bytes=need - 1)
  ease.fit_ease(x, 1.0, max_bytes=need)                        # exactly enough is fine
  with pytest.raises(ConfigError, match=r"needs about \d+ bytes"):
    CLOSED_FORM["ease"](ConfigDict({"name": "ease", "l2": 1.0, "max_bytes": 1000}), x)


def test_singular_gram_without_l2_raises():
  x = _matrix(2)
  x[:, 3] = 0                                                  # an item nobody has
  with pytest.raises(JaxaeError, match="not positive definite"):
    ease.fit_ease(sp.csr_matrix(x), 0.0)


def test_scores_dense_sparse_and_module():
  x = _matrix(3)
  inter = Interactions(sp.csr_matrix(x), np.arange(40), np.arange(16))
  cfg = ConfigDict({"name": "ease", "l2": 3.0})
  params = CLOSED_FORM["ease"](cfg, inter)
  b = np.asarray(params["B"])
  rows = x[:4]
  dense = np.asarray(ease.ease_scores(params["B"], jnp.asarray(rows)))
  np.testing.assert_allclose(dense, rows @ b, rtol=1e-5, atol=1e-5)
  batch = to_sparse_batch(rows, np.arange(4), num_shards=2)
  np.testing.assert_allclose(np.asarray(ease.ease_scores(params["B"], batch)), dense, rtol=1e-5,
                             atol=1e-5)
  model = build_model(cfg, 16, 40)
  shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((2, 16)), train=False))
  assert shapes["params"]["B"].shape == (16, 16)
  out = model.apply({"params": params}, batch, train=False)
  assert set(out) == {"recon"}
  np.testing.assert_allclose(np.asarray(out["recon"]), dense, rtol=1e-5, atol=1e-5)


def test_ease_config_errors():
  with pytest.raises(ConfigError, match="missing key.*l2"):
    build_model(ConfigDict({"name": "ease"}), 5, 5)
  with pytest.raises(ConfigError, match="l2"):
    build_model(ConfigDict({"name": "ease", "l2": -1.0}), 5, 5)
  with pytest.raises(ConfigError, match="unknown key.*lam"):
    build_model(ConfigDict({"name": "ease", "l2": 1.0, "lam": 2}), 5, 5)
