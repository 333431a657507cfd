"""Tests of the loss terms against numpy / hand-computed values, padding rows, and compute_loss."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ml_collections import ConfigDict

from jaxae import losses
from jaxae.errors import ConfigError


def _data(seed=0, b=5, n=7):
  rng = np.random.RandomState(seed)
  target = ((rng.rand(b, n) < 0.5) * rng.randint(1, 6, (b, n))).astype(np.float32)
  observed = (target != 0).astype(np.float32)
  recon = rng.randn(b, n).astype(np.float32) * 2
  row_mask = np.ones(b, np.float32)
  return target, observed, recon, row_mask


def _call(term, outputs, target, observed, row_mask, params=None):
  return float(losses.LOSSES[term]({k: jnp.asarray(v) for k, v in outputs.items()},
                                   jnp.asarray(target), jnp.asarray(observed),
                                   jnp.asarray(row_mask), params))


def test_masked_mse_hand_computed():
  # Two real rows, one padding row. Observed: (0,0)=4 pred 3, (0,2)=2 pred 2.5, (1,1)=5 pred 1.
  target = np.array([[4, 0, 2], [0, 5, 0], [3, 3, 3]], np.float32)
  observed = (target != 0).astype(np.float32)
  recon = np.array([[3, 9, 2.5], [7, 1, -4], [0, 0, 0]], np.float32)
  row_mask = np.array([1, 1, 0], np.float32)
  # (1 + 0.25 + 16) / 3 observed entries of the real rows
  assert _call("masked_mse", {"recon": recon}, target, observed, row_mask) == pytest.approx(
      17.25 / 3, rel=1e-6)


def test_masked_mse_ignores_unobserved_entries():
  target, observed, recon, row_mask = _data(1)
  base = _call("masked_mse", {"recon": recon}, target, observed, row_mask)
  changed = recon.copy()
  changed[observed == 0] += 100.0
  assert _call("masked_mse", {"recon": changed}, target, observed, row_mask) == pytest.approx(
      base, rel=1e-6)
  changed = recon.copy()
  i, j = np.argwhere(observed == 1)[0]
  changed[i, j] += 1.0
  assert _call("masked_mse", {"recon": changed}, target, observed, row_mask) != pytest.approx(base)


def test_mse_bce_multinomial_kl_against_numpy():
  target, observed, recon, row_mask = _data(2)
  binary = (target > 0).astype(np.float32)
  kl = np.random.RandomState(3).rand(5).astype(np.float32)
  d = recon.astype(np.float64)
  assert _call("mse", {"recon": recon}, target, observed, row_mask) == pytest.approx(
      np.mean((d - target) ** 2), rel=1e-5)
  p = 1 / (1 + np.exp(-d))
  bce = -(binary * np.log(p) + (1 - binary) * np.log(1 - p)).sum(1).mean()
  assert _call("bce", {"logits": recon}, binary, observed, row_mask) == pytest.approx(bce, rel=1e-5)
  logp = d - np.log(np.exp(d).sum(1, keepdims=True))
  mult = -(logp * target).sum(1).mean()
  assert _call("multinomial", {"logits": recon}, target, observed, row_mask) == pytest.approx(
      mult, rel=1e-5)
  assert _call("kl", {"kl": kl}, target, observed, row_mask) == pytest.approx(kl.mean(), rel=1e-6)


def test_l2_sums_kernels_and_embeddings_not_biases():
  rng = np.random.RandomState(4)
  params = {"encoder": {"kernel": rng.randn(3, 2), "bias": rng.randn(2)},
            "user_embedding": {"embedding": rng.randn(4, 2)},
            "decoder_0": {"bias": rng.randn(3)}}
  expected = 0.5 * ((params["encoder"]["kernel"] ** 2).sum()
                    + (params["user_embedding"]["embedding"] ** 2).sum())
  got = _call("l2", {}, np.zeros((1, 1)), np.zeros((1, 1)), np.ones(1),
              jax.tree.map(jnp.asarray, params))
  assert got == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("term,key", [("masked_mse", "recon"), ("mse", "recon"), ("bce", "logits"),
                                      ("multinomial", "logits"), ("kl", "kl")])
def test_padding_rows_ignored(term, key):
  target, observed, recon, row_mask = _data(5, b=3)
  if term == "bce":
    target = (target > 0).astype(np.float32)
  kl = np.array([0.3, 0.1, 0.7], np.float32)
  out = {"recon": recon, "logits": recon, "kl": kl}
  base = _call(term, {key: out[key]}, target, observed, row_mask)
  # Two padding rows with garbage predictions / targets / observed flags.
  pad_pred = np.full((2,) + out[key].shape[1:], 1e3, np.float32)
  padded = {key: np.concatenate([out[key], pad_pred])}
  t = np.concatenate([target, np.ones((2, target.shape[1]), np.float32)])
  o = np.concatenate([observed, np.ones((2, target.shape[1]), np.float32)])
  m = np.r_[row_mask, [0.0, 0.0]].astype(np.float32)
  assert _call(term, padded, t, o, m) == pytest.approx(base, rel=1e-6)


def test_kl_weight_anneal():
  assert float(losses.kl_weight(0, 100, 0.2)) == 0.0
  assert float(losses.kl_weight(10, 100, 0.2)) == pytest.approx(0.1)
  assert float(losses.kl_weight(1000, 100, 0.2)) == pytest.approx(0.2)
  assert float(losses.kl_weight(5, 0, 0.3)) == pytest.approx(0.3)
  assert float(jax.jit(lambda s: losses.kl_weight(s, 100, 1.0))(jnp.int32(25))) == 0.25


def test_compute_loss_weighted_sum_jit_and_anneal():
  target, observed, recon, row_mask = _data(6)
  kl = np.full(5, 2.0, np.float32)
  outputs = {"recon": jnp.asarray(recon), "logits": jnp.asarray(recon), "kl": jnp.asarray(kl)}
  params = {"dense": {"kernel": jnp.ones((2, 3))}}
  cfg = ConfigDict({"masked_mse": 15.0, "mse": 200.0, "multinomial": 1.0, "kl": 1.0, "l2": 0.5})
  anneal = ConfigDict({"total_steps": 100, "beta_cap": 0.2})

  @jax.jit
  def f(step):
    return losses.compute_loss(cfg, outputs, jnp.asarray(target), jnp.asarray(observed),
                               jnp.asarray(row_mask), params, step, anneal=anneal)

  total, terms = f(jnp.int32(50))
  assert set(terms) == {"masked_mse", "mse", "multinomial", "kl", "kl_beta", "l2"}
  assert float(terms["kl_beta"]) == pytest.approx(0.2)
  assert float(terms["l2"]) == pytest.approx(3.0)
  expected = (15 * terms["masked_mse"] + 200 * terms["mse"] + terms["multinomial"]
              + 0.2 * 2.0 + 0.5 * 3.0)
  assert float(total) == pytest.approx(float(expected), rel=1e-6)
  total10, terms10 = f(jnp.int32(10))
  assert float(terms10["kl_beta"]) == pytest.approx(0.1)
  expected10 = (15 * terms10["masked_mse"] + 200 * terms10["mse"] + terms10["multinomial"]
                + 0.1 * 2.0 + 0.5 * 3.0)
  assert float(total10) == pytest.approx(float(expected10), rel=1e-6)
  assert float(total - total10) == pytest.approx(0.1 * 2.0, abs=float(total) * 1e-6)


def test_compute_loss_config_errors():
  args = ({"recon": jnp.zeros((2, 3))}, jnp.zeros((2, 3)), jnp.ones((2, 3)), jnp.ones(2), {}, 0)
  with pytest.raises(ConfigError, match="unknown loss term 'rmse'.*masked_mse.*multinomial"):
    losses.compute_loss(ConfigDict({"rmse": 1.0}), *args)
  with pytest.raises(ConfigError, match="loss_anneal"):
    losses.compute_loss(ConfigDict({"masked_mse": 1.0, "kl": 1.0}), *args)
  with pytest.raises(ConfigError, match=r"config.loss.masked_mse: expected a finite number >= 0, got .one."):
    losses.compute_loss(ConfigDict({"masked_mse": "one"}), *args)
  with pytest.raises(ConfigError, match="'logits'.*recon"):
    losses.compute_loss(ConfigDict({"bce": 1.0}), *args)
  with pytest.raises(ConfigError, match="config.loss"):
    losses.compute_loss(ConfigDict({}), *args)


def test_compute_loss_zero_weight_term_is_switched_off():
  """A term of weight 0 is neither computed nor reported: an infinite l2 value (weight 0) leaves
  the loss and its gradient finite (0 x inf would be nan), and the gradient equals the one without
  the term."""
  target, observed, recon, row_mask = _data(7)
  params = {"kernel": jnp.asarray([1.0, jnp.inf]), "r": jnp.asarray(recon)}

  def f(p, cfg):
    outputs = {"recon": p["r"] * p["kernel"][0]}
    return losses.compute_loss(cfg, outputs, jnp.asarray(target), jnp.asarray(observed),
                               jnp.asarray(row_mask), {"kernel": p["kernel"]}, 0)

  with_zero = ConfigDict({"masked_mse": 1.0, "l2": 0.0})
  (loss, terms), grads = jax.value_and_grad(f, has_aux=True)(params, with_zero)
  (loss_ref, _), grads_ref = jax.value_and_grad(f, has_aux=True)(params,
                                                                ConfigDict({"masked_mse": 1.0}))
  assert set(terms) == {"masked_mse"}
  assert np.isfinite(float(loss)) and float(loss) == float(loss_ref)
  for g, g_ref in zip(jax.tree.leaves(grads), jax.tree.leaves(grads_ref)):
    np.testing.assert_array_equal(np.asarray(g), np.asarray(g_ref))
  # The same with a positive weight is not finite: the test would see a 0 x inf.
  loss_l2, _ = f(params, ConfigDict({"masked_mse": 1.0, "l2": 1.0}))
  assert not np.isfinite(float(loss_l2))


def test_every_weight_zero_is_a_config_error():
  args = ({"recon": jnp.zeros((2, 3))}, jnp.zeros((2, 3)), jnp.ones((2, 3)), jnp.ones(2), {}, 0)
  with pytest.raises(ConfigError, match="every term has weight 0 \\(l2, masked_mse\\)"):
    losses.compute_loss(ConfigDict({"masked_mse": 0.0, "l2": 0}), *args)


def test_a_zero_weight_term_does_not_choose_the_loss_path():
  """``mse`` at weight 0 is off: masked terms alone take the entries path, as without it."""
  kw = dict(last_width=8, batch_size=16, refeed_steps=0)
  assert losses.full_mse_impl(None, ConfigDict({"masked_mse": 1.0}), **kw) == "gram"
  assert losses.full_mse_impl(None, ConfigDict({"masked_mse": 1.0, "mse": 0.0}), **kw) == "gram"
  assert losses.full_mse_impl(None, ConfigDict({"masked_mse": 1.0, "mse": 1.0}), **kw) == "dense"
