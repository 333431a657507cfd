"""Tests of the autoencoder modules and the registry: shapes, dense == sparse first layer, tied
decoder, code dropout, corruption / input dropout, bf16, Xavier init."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ml_collections import ConfigDict

from jaxae.data.sparse import SparseBatch, densify, global_segments
from jaxae.errors import ConfigError
from jaxae.models import MODELS, build_model, is_trainable
from jaxae.models import layers as L
from jaxae.models.deep_ae import DeepAE

N_COLS = 12
N_ROWS = 9


def to_sparse_batch(dense: np.ndarray, rows: np.ndarray, num_shards: int, n_pad: int = 3,
                    n_padding_rows: int = 0) -> SparseBatch:
  """Packs dense rows (plus ``n_padding_rows`` empty padding rows) into the SparseBatch format."""
  dense = np.concatenate([dense, np.zeros((n_padding_rows, dense.shape[1]), dense.dtype)])
  rows = np.concatenate([rows, np.zeros(n_padding_rows, np.int64)]).astype(np.int32)
  b = dense.shape[0]
  assert b % num_shards == 0
  per = b // num_shards
  shards = []
  for s in range(num_shards):                     # a handful of shards in a test
    r, c = np.nonzero(dense[s * per:(s + 1) * per])
    shards.append((r, c, dense[s * per:(s + 1) * per][r, c]))
  n = max(len(sh[0]) for sh in shards) + n_pad
  cols = np.zeros((num_shards, n), np.int32)
  vals = np.zeros((num_shards, n), np.float32)
  seg = np.full((num_shards, n), per - 1, np.int32)
  for s, (r, c, v) in enumerate(shards):
    cols[s, :len(c)], vals[s, :len(c)], seg[s, :len(c)] = c, v, r
  mask = np.r_[np.ones(b - n_padding_rows), np.zeros(n_padding_rows)].astype(np.float32)
  return SparseBatch(rows=jnp.asarray(rows), mask=jnp.asarray(mask),
                     lengths=jnp.asarray((dense != 0).sum(1).astype(np.int32)),
                     cols=jnp.asarray(cols), vals=jnp.asarray(vals), seg=jnp.asarray(seg))


def random_rows(seed: int = 0, b: int = 4, n: int = N_COLS, density: float = 0.4) -> np.ndarray:
  rng = np.random.RandomState(seed)
  x = (rng.rand(b, n) < density) * rng.randint(1, 6, size=(b, n))
  x[:, 0] = np.maximum(x[:, 0], 1)                # no empty row
  return x.astype(np.float32)


def model_config(name: str, **overrides) -> ConfigDict:
  base = {
      "deep_ae": dict(layers=[8, 4], activation="selu", tied=False, code_dropout=0.0,
                      last_activation=False, sparse_input=True, dtype="float32"),
      "autorec": dict(hidden=5),
      "cdae": dict(hidden=5, corruption=0.0, output="sigmoid"),
      "mult_dae": dict(layers=[6, 3], input_dropout=0.0, activation="tanh"),
      "mult_vae": dict(layers=[6, 3], input_dropout=0.0, activation="tanh"),
  }[name]
  base.update(overrides)
  return ConfigDict(dict(name=name, **base))


def init(model, x, rows=None, seed=0):
  return model.init({"params": jax.random.key(seed), "dropout": jax.random.key(seed + 1)}, x,
                    rows=rows, train=False)["params"]


GRADIENT_MODELS = ["deep_ae", "autorec", "cdae", "mult_dae", "mult_vae"]
# logits: the linear output layer; score_input: its input (models.has_score_head)
EXPECTED_KEYS = {
    "deep_ae": {"recon", "logits", "code", "score_input"},
    "autorec": {"recon", "code"},
    "cdae": {"recon", "logits", "code", "score_input"},
    "mult_dae": {"recon", "logits", "code", "score_input"},
    "mult_vae": {"recon", "logits", "code", "kl", "score_input"},
}
CODE_DIM = {"deep_ae": 4, "autorec": 5, "cdae": 5, "mult_dae": 3, "mult_vae": 3}


# --------------------------------------------------------------------------- shapes, dense == sparse
@pytest.mark.parametrize("name", GRADIENT_MODELS)
def test_shapes_and_dense_equals_sparse(name):
  x = random_rows(1)
  rows = np.array([3, 0, 8, 5])
  model = build_model(model_config(name), N_COLS, N_ROWS)
  params = init(model, jnp.asarray(x), jnp.asarray(rows))
  batch = to_sparse_batch(x, rows, num_shards=2)
  for train in (False, True):   # train=True with all dropout off: same function
    rngs = {"dropout": jax.random.key(7)}
    dense = model.apply({"params": params}, jnp.asarray(x), rows=jnp.asarray(rows), train=train,
                        rngs=rngs)
    sparse = model.apply({"params": params}, batch, train=train, rngs=rngs)
    assert set(dense) == set(sparse) == EXPECTED_KEYS[name]
    assert dense["recon"].shape == sparse["recon"].shape == (4, N_COLS)
    assert dense["code"].shape == (4, CODE_DIM[name])
    for k in dense:
      assert dense[k].dtype == jnp.float32
      np.testing.assert_allclose(np.asarray(dense[k]), np.asarray(sparse[k]), rtol=1e-5, atol=1e-5)


def test_sparse_padding_rows_give_zero_input_rows():
  x = random_rows(2)
  batch = to_sparse_batch(x, np.arange(4), num_shards=2, n_padding_rows=2)
  model = build_model(model_config("deep_ae"), N_COLS, N_ROWS)
  dense_in = densify(batch, N_COLS)
  params = init(model, dense_in)
  a = model.apply({"params": params}, dense_in, train=False)
  b = model.apply({"params": params}, batch, train=False)
  np.testing.assert_allclose(np.asarray(a["recon"]), np.asarray(b["recon"]), rtol=1e-5, atol=1e-6)


def test_embedding_bag_equals_global_segment_sum_and_matmul():
  x = random_rows(3, b=6)
  batch = to_sparse_batch(x, np.arange(6), num_shards=3)
  table = jax.random.normal(jax.random.key(0), (N_COLS, 7))
  flat = jax.ops.segment_sum((table[batch.cols] * batch.vals[..., None]).reshape(-1, 7),
                             global_segments(batch).reshape(-1), num_segments=6)
  bag = L.embedding_bag(batch, table)
  np.testing.assert_allclose(np.asarray(bag), np.asarray(flat), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(np.asarray(bag), x @ np.asarray(table), rtol=1e-5, atol=1e-5)


def test_sparse_l2_normalization_and_input_dropout_on_nonzeros():
  x = random_rows(4)
  batch = to_sparse_batch(x, np.arange(4), num_shards=2)
  normed = L.l2_normalize_rows(batch)
  np.testing.assert_allclose(np.asarray(densify(normed, N_COLS)),
                             x / np.linalg.norm(x, axis=1, keepdims=True), rtol=1e-6)
  drop = L.InputDropout(0.5)
  out = drop.apply({}, batch, deterministic=False, rngs={"dropout": jax.random.key(3)})
  vals, new = np.asarray(batch.vals), np.asarray(out.vals)
  kept = new != 0
  np.testing.assert_allclose(new[kept], 2.0 * vals[kept], rtol=1e-6)   # survivors scaled 1/(1-q)
  assert 0 < (kept & (vals != 0)).sum() < (vals != 0).sum()          # some dropped, some kept
  same = drop.apply({}, batch, deterministic=True)
  np.testing.assert_array_equal(np.asarray(same.vals), vals)


# --------------------------------------------------------------------------- deep_ae
def _np_act(name, v):
  return {"selu": lambda a: 1.0507009873554805 * np.where(a > 0, a, 1.6732632423543772 *
                                                           np.expm1(np.minimum(a, 0))),
          "relu": lambda a: np.maximum(a, 0)}[name](v)


@pytest.mark.parametrize("tied,last_activation,act", [(True, False, "selu"), (False, True, "relu"),
                                                      (True, True, "relu")])
def test_deep_ae_forward_matches_numpy(tied, last_activation, act):
  x = random_rows(5)
  model = build_model(model_config("deep_ae", tied=tied, last_activation=last_activation,
                                    activation=act), N_COLS, N_ROWS)
  p = jax.tree.map(np.asarray, init(model, jnp.asarray(x)))
  h = x.astype(np.float64)
  for i in range(2):
    h = _np_act(act, h @ p[f"encoder_{i}"]["kernel"] + p[f"encoder_{i}"]["bias"])
  code = h
  for j in range(2):
    kern = p[f"encoder_{1 - j}"]["kernel"].T if tied else p[f"decoder_{j}"]["kernel"]
    if j == 1 and not tied:          # the output layer's kernel is stored one row per item
      kern = kern.T
    h = h @ kern + p[f"decoder_{j}"]["bias"]
    if j == 0 or last_activation:
      h = _np_act(act, h)
  out = model.apply({"params": p}, jnp.asarray(x), train=False)
  np.testing.assert_allclose(np.asarray(out["recon"]), h, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(np.asarray(out["code"]), code, rtol=1e-4, atol=1e-5)
  # One row alone (a matrix-vector product for XLA: the tied decoder's own code path).
  one = jax.jit(lambda v: model.apply({"params": p}, v, train=False)["recon"])(jnp.asarray(x[2:3]))
  np.testing.assert_allclose(np.asarray(one), h[2:3], rtol=1e-4, atol=1e-5)


def test_song_as_user_layout():
  model = build_model(model_config("deep_ae", layers=[16, 8]), 20, 1)
  p = init(model, jnp.ones((2, 20)))
  shapes = jax.tree.map(jnp.shape, p)
  assert [shapes[f"encoder_{i}"]["kernel"] for i in range(2)] == [(20, 16), (16, 8)]
  # The output layer's kernel is item-major: [items, width] (layers.ItemDense).
  assert [shapes[f"decoder_{i}"]["kernel"] for i in range(2)] == [(8, 16), (20, 16)]


def test_tied_decoder_shares_kernel_and_gradients_add():
  x = jnp.asarray(random_rows(6))
  target = jnp.asarray(random_rows(7))
  tied = build_model(model_config("deep_ae", tied=True), N_COLS, N_ROWS)
  untied = build_model(model_config("deep_ae", tied=False), N_COLS, N_ROWS)
  pt = init(tied, x)
  assert set(pt) == {"encoder_0", "encoder_1", "decoder_0", "decoder_1"}
  for j in range(2):
    assert set(pt[f"decoder_{j}"]) == {"bias"}        # no decoder kernel: it is shared
  # Non-zero biases so every path matters.
  pt = jax.tree.map(lambda a: a + 0.1 * jax.random.normal(jax.random.key(a.size), a.shape), pt)
  pu = {k: dict(v) for k, v in pt.items()}
  pu["decoder_0"]["kernel"] = pt["encoder_1"]["kernel"].T
  pu["decoder_1"]["kernel"] = pt["encoder_0"]["kernel"]        # item-major, as encoder_0's

  def loss(model, p):
    return jnp.sum(jnp.square(model.apply({"params": p}, x, train=False)["recon"] - target))

  np.testing.assert_allclose(loss(tied, pt), loss(untied, pu), rtol=1e-6)
  gt = jax.grad(lambda p: loss(tied, p))(pt)
  gu = jax.grad(lambda p: loss(untied, p))(pu)
  for enc, dec in (("encoder_0", "decoder_1"), ("encoder_1", "decoder_0")):
    dec_grad = gu[dec]["kernel"] if dec == "decoder_1" else gu[dec]["kernel"].T
    expected = gu[enc]["kernel"] + dec_grad
    np.testing.assert_allclose(np.asarray(gt[enc]["kernel"]), np.asarray(expected), rtol=1e-5,
                               atol=1e-6)
    assert float(jnp.abs(gu[dec]["kernel"]).max()) > 0     # the decoder use contributes
  for name in pt:
    np.testing.assert_allclose(np.asarray(gt[name]["bias"]), np.asarray(gu[name]["bias"]),
                               rtol=1e-5, atol=1e-6)


def test_code_dropout_only_on_code_layer_and_only_in_train():
  x = jnp.asarray(random_rows(8))
  model = build_model(model_config("deep_ae", code_dropout=0.5, layers=[16, 32]), N_COLS, N_ROWS)
  no_drop = build_model(model_config("deep_ae", code_dropout=0.0, layers=[16, 32]), N_COLS, N_ROWS)
  p = init(model, x)
  rngs = {"dropout": jax.random.key(11)}
  ev = model.apply({"params": p}, x, train=False, rngs=rngs)
  ref = no_drop.apply({"params": p}, x, train=False)
  np.testing.assert_array_equal(np.asarray(ev["recon"]), np.asarray(ref["recon"]))  # eval: no-op

  tr, inter = model.apply({"params": p}, x, train=True, rngs=rngs, capture_intermediates=True,
                          mutable=["intermediates"])
  # Layers before the code are untouched (same code, same first hidden layer).
  np.testing.assert_allclose(np.asarray(tr["code"]), np.asarray(ev["code"]), rtol=1e-6)
  it = inter["intermediates"]
  np.testing.assert_allclose(np.asarray(it["encoder_0"]["__call__"][0]),
                             np.asarray(x @ p["encoder_0"]["kernel"] + p["encoder_0"]["bias"]),
                             rtol=1e-5, atol=1e-6)
  dropped = np.asarray(it["code_drop"]["__call__"][0])
  code = np.asarray(ev["code"])
  zero = dropped == 0
  assert 0 < zero.sum() < zero.size
  np.testing.assert_allclose(dropped[~zero], 2.0 * code[~zero], rtol=1e-6)
  # ... and nothing is dropped after it: the output is the decoder of the dropped code.
  dec = model.apply({"params": p}, jnp.asarray(dropped), method=DeepAE.decode)
  np.testing.assert_allclose(np.asarray(tr["recon"]), np.asarray(dec), rtol=1e-6)
  assert not np.allclose(np.asarray(tr["recon"]), np.asarray(ev["recon"]))


def test_deep_ae_input_dropout_on_the_input_only_in_train():
  x = jnp.asarray(random_rows(9, b=6))
  sparse = to_sparse_batch(np.asarray(x), np.arange(6), num_shards=1)
  model = build_model(model_config("deep_ae", input_dropout=0.5), N_COLS, N_ROWS)
  plain = build_model(model_config("deep_ae"), N_COLS, N_ROWS)
  p = init(model, x)
  for inp in (x, sparse):                 # eval: the plain model
    np.testing.assert_allclose(np.asarray(model.apply({"params": p}, inp, train=False)["recon"]),
                               np.asarray(plain.apply({"params": p}, inp, train=False)["recon"]),
                               rtol=1e-6)
  tr, inter = model.apply({"params": p}, x, train=True, rngs={"dropout": jax.random.key(3)},
                          capture_intermediates=True, mutable=["intermediates"])
  dropped = np.asarray(inter["intermediates"]["input_drop"]["__call__"][0])
  xs = np.asarray(x)
  zero = (dropped == 0) & (xs != 0)
  assert zero.any() and (~zero & (xs != 0)).any()
  np.testing.assert_allclose(dropped[~zero], 2.0 * xs[~zero], rtol=1e-6)
  # Train mode = the plain model (no code dropout here) on the dropped input.
  np.testing.assert_allclose(np.asarray(tr["recon"]),
                             np.asarray(plain.apply({"params": p}, jnp.asarray(dropped),
                                                    train=False)["recon"]), rtol=1e-5, atol=1e-6)
  with pytest.raises(ConfigError, match="input_dropout"):
    build_model(model_config("deep_ae", input_dropout=1.5), N_COLS, N_ROWS)


def test_bfloat16_close_to_float32():
  x = jnp.asarray(random_rows(9))
  f32 = build_model(model_config("deep_ae", layers=[32, 16]), N_COLS, N_ROWS)
  bf16 = build_model(model_config("deep_ae", layers=[32, 16], dtype="bfloat16"), N_COLS, N_ROWS)
  p = init(f32, x)
  pb = init(bf16, x)
  assert all(a.dtype == jnp.float32 for a in jax.tree.leaves(pb))   # params stay float32
  a = f32.apply({"params": p}, x, train=False)["recon"]
  batch = to_sparse_batch(np.asarray(x), np.arange(4), num_shards=2)
  for inp in (x, batch):
    b = bf16.apply({"params": p}, inp, train=False)["recon"]
    assert b.dtype == jnp.float32
    err = float(jnp.abs(a - b).max()) / float(jnp.abs(a).max())
    assert 0 < err < 3e-2


def test_xavier_uniform_bounds_and_zero_biases():
  model = build_model(model_config("deep_ae", layers=[64]), 200, 1)
  p = init(model, jnp.ones((2, 200)))
  for name, fan_in, fan_out in (("encoder_0", 200, 64), ("decoder_0", 64, 200)):
    k = np.asarray(p[name]["kernel"])
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    assert np.abs(k).max() <= limit
    assert np.abs(k).max() > 0.95 * limit                  # uniform fills the range
    np.testing.assert_allclose(k.std(), limit / np.sqrt(3.0), rtol=0.05)
    np.testing.assert_array_equal(np.asarray(p[name]["bias"]), 0.0)


# --------------------------------------------------------------------------- autorec, cdae, mult
def test_autorec_forward_matches_numpy():
  x = random_rows(10)
  model = build_model(model_config("autorec"), N_COLS, N_ROWS)
  p = jax.tree.map(np.asarray, init(model, jnp.asarray(x)))
  h = 1.0 / (1.0 + np.exp(-(x @ p["encoder"]["kernel"] + p["encoder"]["bias"])))
  expected = h @ p["decoder"]["kernel"] + p["decoder"]["bias"]
  out = model.apply({"params": p}, jnp.asarray(x), train=True)
  np.testing.assert_allclose(np.asarray(out["recon"]), expected, rtol=1e-5, atol=1e-6)


def test_cdae_user_node_and_corruption():
  x = random_rows(11)
  rows = jnp.asarray([0, 1, 2, 3])
  model = build_model(model_config("cdae", corruption=0.5), N_COLS, N_ROWS)
  p = jax.tree.map(np.asarray, init(model, jnp.asarray(x), rows))
  ev = model.apply({"params": p}, jnp.asarray(x), rows=rows, train=False)
  v = p["user_embedding"]["embedding"][np.asarray(rows)]
  h = 1.0 / (1.0 + np.exp(-(x @ p["encoder"]["kernel"] + p["encoder"]["bias"] + v)))
  assert p["decoder"]["kernel"].shape == (N_COLS, 5)            # item-major output kernel
  logits = h @ p["decoder"]["kernel"].T + p["decoder"]["bias"]
  np.testing.assert_allclose(np.asarray(ev["logits"]), logits, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(np.asarray(ev["recon"]), 1 / (1 + np.exp(-logits)), rtol=1e-5)
  other = model.apply({"params": p}, jnp.asarray(x), rows=rows[::-1], train=False)
  assert not np.allclose(np.asarray(other["recon"]), np.asarray(ev["recon"]))  # V_u is used
  _, inter = model.apply({"params": p}, jnp.asarray(x), rows=rows, train=True,
                         rngs={"dropout": jax.random.key(0)}, capture_intermediates=True,
                         mutable=["intermediates"])
  corrupted = np.asarray(inter["intermediates"]["corrupt"]["__call__"][0])
  kept = corrupted != 0
  np.testing.assert_allclose(corrupted[kept], 2.0 * x[kept], rtol=1e-6)
  assert 0 < kept.sum() < (x != 0).sum()


def test_cdae_hidden_activation_and_output_bias_init():
  x = random_rows(13)
  rows = jnp.asarray([0, 1, 2, 3])
  model = build_model(model_config("cdae", hidden_activation="tanh", output_bias_init=-7.0),
                      N_COLS, N_ROWS)
  p = jax.tree.map(np.asarray, init(model, jnp.asarray(x), rows))
  np.testing.assert_array_equal(p["decoder"]["bias"], np.full(N_COLS, -7.0, np.float32))
  ev = model.apply({"params": p}, jnp.asarray(x), rows=rows, train=False)
  v = p["user_embedding"]["embedding"][np.asarray(rows)]
  h = np.tanh(x @ p["encoder"]["kernel"] + p["encoder"]["bias"] + v)
  np.testing.assert_allclose(np.asarray(ev["code"]), h, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(np.asarray(ev["logits"]),
                             h @ p["decoder"]["kernel"].T + p["decoder"]["bias"], rtol=1e-5,
                             atol=1e-5)
  # Absent keys are the paper's model: sigmoid hidden, output biases from 0.
  plain = build_model(model_config("cdae"), N_COLS, N_ROWS)
  assert (plain.hidden_activation, plain.output_bias_init) == ("sigmoid", 0.0)
  np.testing.assert_array_equal(np.asarray(init(plain, jnp.asarray(x), rows)["decoder"]["bias"]),
                                np.zeros(N_COLS, np.float32))
  for bad in (True, float("nan"), "prior"):
    with pytest.raises(ConfigError, match="model.output_bias_init"):
      build_model(model_config("cdae", output_bias_init=bad), N_COLS, N_ROWS)
  with pytest.raises(ConfigError, match="model.hidden_activation.*'tan'"):
    build_model(model_config("cdae", hidden_activation="tan"), N_COLS, N_ROWS)


def test_mult_vae_latent_kl_and_sampling():
  x = random_rows(12)
  model = build_model(model_config("mult_vae"), N_COLS, N_ROWS)
  p = init(model, jnp.asarray(x))
  ev, inter = model.apply({"params": p}, jnp.asarray(x), train=False, capture_intermediates=True,
                          mutable=["intermediates"])
  stats = np.asarray(inter["intermediates"]["encoder_1"]["__call__"][0], np.float64)
  mu, logvar = stats[:, :3], stats[:, 3:]
  np.testing.assert_allclose(np.asarray(ev["code"]), mu, rtol=1e-5, atol=1e-7)
  kl = 0.5 * np.sum(-logvar + np.exp(logvar) + mu ** 2 - 1, axis=1)
  np.testing.assert_allclose(np.asarray(ev["kl"]), kl, rtol=1e-5, atol=1e-7)
  ev2 = model.apply({"params": p}, jnp.asarray(x), train=False)
  np.testing.assert_array_equal(np.asarray(ev["recon"]), np.asarray(ev2["recon"]))  # mean at eval
  tr = model.apply({"params": p}, jnp.asarray(x), train=True, rngs={"dropout": jax.random.key(1)})
  assert not np.allclose(np.asarray(tr["recon"]), np.asarray(ev["recon"]))        # sampled at train


def test_mult_dae_forward_matches_numpy():
  """n -> 6 -> 3 -> 6 -> n, tanh, L2-normalized input; the output kernel one row per item."""
  x = random_rows(14)
  model = build_model(model_config("mult_dae"), N_COLS, N_ROWS)
  p = jax.tree.map(np.asarray, init(model, jnp.asarray(x)))
  assert p["decoder_1"]["kernel"].shape == (N_COLS, 6)
  h = x / np.sqrt(np.maximum(np.sum(x * x, axis=1, keepdims=True), 1e-12))
  for layer in ("encoder_0", "encoder_1", "decoder_0"):
    h = np.tanh(h @ p[layer]["kernel"] + p[layer]["bias"])
  logits = h @ p["decoder_1"]["kernel"].T + p["decoder_1"]["bias"]
  out = model.apply({"params": p}, jnp.asarray(x), train=False)
  np.testing.assert_allclose(np.asarray(out["logits"]), logits, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(np.asarray(out["score_input"]), h, rtol=1e-5, atol=1e-6)
  kernel, bias = model.score_layer(p)                       # the evaluators' [n, d] contract
  np.testing.assert_array_equal(np.asarray(kernel), p["decoder_1"]["kernel"])
  np.testing.assert_array_equal(np.asarray(bias), p["decoder_1"]["bias"])


def test_mult_dae_normalizes_input_rows():
  x = random_rows(13)
  model = build_model(model_config("mult_dae"), N_COLS, N_ROWS)
  p = init(model, jnp.asarray(x))
  a = model.apply({"params": p}, jnp.asarray(x), train=False)["logits"]
  b = model.apply({"params": p}, jnp.asarray(3.0 * x), train=False)["logits"]
  np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- registry
def test_registry_names_and_errors():
  assert set(MODELS) == {"deep_ae", "autorec", "cdae", "mult_dae", "mult_vae", "ease", "bspm",
                         "kernel_ae", "glocal_k", "most_popular"}
  assert is_trainable(model_config("deep_ae"))
  assert not is_trainable(ConfigDict({"name": "ease", "l2": 1.0}))
  assert build_model(ConfigDict({"name": "ease", "l2": 1.0}), 5, 3).trainable is False
  with pytest.raises(ConfigError, match="unknown model 'vae'.*autorec.*deep_ae"):
    build_model(ConfigDict({"name": "vae"}), N_COLS, N_ROWS)
  cfg = model_config("deep_ae")
  del cfg["tied"]
  with pytest.raises(ConfigError, match="missing key.*tied"):
    build_model(cfg, N_COLS, N_ROWS)
  with pytest.raises(ConfigError, match="unknown key.*dropout"):
    build_model(model_config("autorec", dropout=0.1), N_COLS, N_ROWS)
  with pytest.raises(ConfigError, match="model.activation.*'gelu2'.*selu"):
    build_model(model_config("deep_ae", activation="gelu2"), N_COLS, N_ROWS)
  with pytest.raises(ConfigError, match="code_dropout"):
    build_model(model_config("deep_ae", code_dropout=1.5), N_COLS, N_ROWS)
  with pytest.raises(ConfigError, match="layers"):
    build_model(model_config("mult_vae", layers=[]), N_COLS, N_ROWS)
  with pytest.raises(ConfigError, match="dtype"):
    build_model(model_config("deep_ae", dtype="float16"), N_COLS, N_ROWS)
  with pytest.raises(ConfigError, match="fixed by the paper"):
    build_model(model_config("autorec", encoder="relu"), N_COLS, N_ROWS)
  assert isinstance(build_model(model_config("deep_ae"), N_COLS, N_ROWS), nn.Module)


def test_all_activations_known():
  z = jnp.linspace(-2, 2, 5)
  for name in ("selu", "relu", "lrelu", "elu", "sigmoid", "tanh", "swish", "identity"):
    assert L.get_activation(name)(z).shape == (5,)
  np.testing.assert_allclose(np.asarray(L.get_activation("lrelu")(z)), [-0.02, -0.01, 0, 1, 2],
                             rtol=1e-6)
