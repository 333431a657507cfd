"""Tests of BSPM / GF-CF: the filter against a dense float64 numpy reference of the papers' formulas
(every solver and merge), the SVD solvers, config checks, and the fit -> checkpoint -> eval path."""

from __future__ import annotations

import ml_collections
import numpy as np
import pytest
import scipy.sparse as sp
from ml_collections import ConfigDict

from jaxae.errors import ConfigError
from jaxae.models import CLOSED_FORM, MODELS, build_model, bspm
from jaxae.training import checkpoint as ckpt_lib
from jaxae.training import loop
from tests.test_loop import rated_config, tiny_dataset

BASE = dict(name="bspm", factor_dim=6, idl_beta=0.2, blur_time=1.0, blur_steps=1, sharpen_time=2.5,
            sharpen_steps=1, sharpen_solver="rk4", merge="early", block_size=16,
            svd_solver="arpack", svd_oversample=10, svd_power_iters=4)


def _matrix(seed=0, users=50, items=37, density=0.15) -> np.ndarray:
  rng = np.random.default_rng(seed)
  x = (rng.random((users, items)) < density).astype(np.float32)
  x[:, 5] = 0.0                  # an item nobody has: zero degree, zero row / column of F
  x[3] = 0.0                     # a user with nothing
  return x


def _reference(x, factor_dim, beta, blur_time, blur_steps, sharpen_time, sharpen_steps, solver,
               merge):
  """The process on the identity's rows, in dense float64, straight from the papers' formulas."""
  x = x.astype(np.float64)
  du, di = x.sum(1), x.sum(0)
  dui = np.where(du > 0, 1 / np.sqrt(np.where(du > 0, du, 1)), 0.0)
  dii = np.where(di > 0, 1 / np.sqrt(np.where(di > 0, di, 1)), 0.0)
  rn = dui[:, None] * x * dii[None, :]
  p = rn.T @ rn
  n = x.shape[1]
  y = np.eye(n)
  for _ in range(blur_steps if blur_time else 0):
    y = y + (blur_time / blur_steps) * (y @ p - y)
  idl = np.zeros((n, n))
  if factor_dim:
    _, _, vt = np.linalg.svd(rn)
    v = vt[:factor_dim].T
    idl = (dii[:, None] * v) @ (v.T * np.sqrt(di)[None, :])

  def sharpen(z):
    if not sharpen_time:
      return z
    h = sharpen_time / sharpen_steps
    f = lambda w: -w @ p   # noqa: E731
    for _ in range(sharpen_steps):
      if solver == "euler":
        z = z + h * f(z)
      else:
        k1 = f(z); k2 = f(z + h / 2 * k1); k3 = f(z + h / 2 * k2); k4 = f(z + h * k3)  # noqa: E702
        z = z + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return z

  return sharpen(y + beta * idl) if merge == "early" else sharpen(y) + beta * idl


@pytest.mark.parametrize("overrides", [
    {},                                                              # BSPM-EM, Gowalla's settings
    dict(merge="late", sharpen_solver="euler", sharpen_steps=3),     # BSPM-LM, Euler
    dict(blur_time=2.0, blur_steps=2, sharpen_time=0.5),             # longer blur
    dict(sharpen_time=0.0, idl_beta=0.3),                            # GF-CF
    dict(factor_dim=0),                                              # no ideal low-pass term
    dict(block_size=37), dict(block_size=5),                         # one block; a cut last block
])
def test_filter_matches_dense_reference(overrides):
  cfg = {**BASE, **overrides}
  x = _matrix()
  f = np.asarray(CLOSED_FORM["bspm"](ConfigDict(cfg), sp.csr_matrix(x))["B"])
  want = _reference(x, cfg["factor_dim"], cfg["idl_beta"], cfg["blur_time"], cfg["blur_steps"],
                    cfg["sharpen_time"], cfg["sharpen_steps"], cfg["sharpen_solver"], cfg["merge"])
  assert f.dtype == np.float32 and f.shape == (37, 37)
  np.testing.assert_allclose(f, want, rtol=1e-4, atol=2e-5 * np.abs(want).max())
  np.testing.assert_array_equal(f[5], 0.0)          # the zero-degree item: no row, no column
  np.testing.assert_array_equal(f[:, 5], 0.0)


def test_randomized_svd_agrees_with_arpack_on_a_gapped_spectrum():
  rng = np.random.default_rng(1)
  low = rng.random((80, 4)) @ rng.random((4, 60))             # rank 4 plus noise: a clear gap
  x = (low + 0.05 * rng.random((80, 60))).astype(np.float32)
  norm = bspm.NormalizedMatrix(sp.csr_matrix(x))
  s_a, vt_a = bspm.top_right_singular_vectors(norm, 4, solver="arpack", oversample=0,
                                              power_iters=0)
  s_r, vt_r = bspm.top_right_singular_vectors(norm, 4, solver="randomized", oversample=8,
                                              power_iters=4)
  np.testing.assert_allclose(np.asarray(s_r), np.asarray(s_a), rtol=1e-4)
  # Same subspace (signs may differ): the projections agree.
  pa, pr = np.asarray(vt_a).T @ np.asarray(vt_a), np.asarray(vt_r).T @ np.asarray(vt_r)
  np.testing.assert_allclose(pr, pa, atol=1e-4)
  assert s_a[0] == pytest.approx(1.0, rel=1e-5)             # R~'s top singular value is 1


def test_scores_rank_like_the_filter():
  x = _matrix(2)
  params = CLOSED_FORM["bspm"](ConfigDict(BASE), sp.csr_matrix(x))
  model = build_model(ConfigDict(BASE), 37, 50)
  scores = np.asarray(model.apply({"params": params}, x[:7], train=False)["recon"])
  np.testing.assert_allclose(scores, x[:7] @ np.asarray(params["B"]), rtol=1e-5, atol=1e-6)


def test_memory_budget_error_states_bytes():
  x = sp.csr_matrix(_matrix())
  need = bspm.memory_needed(37, x.nnz, 6, 16)
  with pytest.raises(ConfigError, match=f"37 items \\({x.nnz} nonzeros\\) needs about {need} bytes"):
    CLOSED_FORM["bspm"](ConfigDict({**BASE, "max_bytes": need - 1}), x)


@pytest.mark.parametrize("edit,message", [
    (dict(sharpen_solver="dopri5"), r"sharpen_solver: unknown value 'dopri5'; known: euler, rk4"),
    (dict(merge="middle"), r"merge: unknown value 'middle'"),
    (dict(svd_solver="lanczos"), r"svd_solver: unknown value 'lanczos'; known: arpack, randomized"),
    (dict(idl_beta=-1.0), r"idl_beta: expected a finite number >= 0, got -1.0"),
    (dict(blur_time=float("nan")), r"blur_time: expected a finite number >= 0, got nan"),
    (dict(blur_steps=1.5), r"blur_steps: expected an integer >= 0"),
    (dict(block_size=0), r"config.model.block_size: expected an integer >= 1 and < 2147483648, got 0"),
    (dict(factor_dim=37), r"factor_dim=37 must be smaller than min\(rows, items\) = 37"),
    (dict(beta=0.2), r"unknown key\(s\) beta for model 'bspm'"),
])
def test_config_errors_name_the_key(edit, message):
  with pytest.raises(ConfigError, match=message):
    build_model(ConfigDict({**BASE, **edit}), 37, 50)


def test_missing_key_is_named():
  cfg = dict(BASE)
  del cfg["merge"]
  with pytest.raises(ConfigError, match=r"missing key\(s\) merge for model 'bspm'"):
    build_model(ConfigDict(cfg), 37, 50)
  assert "bspm" in MODELS


def test_fit_checkpoint_and_restore(tmp_path):
  ds = tiny_dataset(seed=3)
  config = rated_config(epochs=1)
  config.model = ml_collections.ConfigDict({**BASE, "factor_dim": 3, "block_size": 4,
                                            "sparse_input": True})
  first = loop.train_and_evaluate(config, tmp_path, dataset=ds)
  assert first["step"] == 0 and np.isfinite(first["rmse"])
  _, params, _ = ckpt_lib.load_for_eval(tmp_path)
  want = _reference(ds.train.matrix.toarray(), 3, 0.2, 1.0, 1, 2.5, 1, "rk4", "early")
  np.testing.assert_allclose(np.asarray(params["B"]), want, rtol=1e-4,
                             atol=2e-5 * np.abs(want).max())
  again = loop.train_and_evaluate(config, tmp_path, dataset=ds)     # restored, not refitted
  assert again["rmse"] == pytest.approx(first["rmse"], rel=1e-6)
