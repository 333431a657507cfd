"""jaxae.export: code / decoder embeddings of a tiny trained run, ids, metadata, on-device cosine
neighbours (a duplicated row finds its duplicate), the output layer of every model, EASE refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from configs.base import get_base
from jaxae import export
from jaxae.data.batching import dense_rows
from jaxae.data.dataset import Dataset
from jaxae.data.matrix import Interactions
from jaxae.errors import ConfigError
from jaxae.models import build_model
from jaxae.training import state as state_lib
from jaxae.training.checkpoint import load_for_eval
from jaxae.training.loop import train_and_evaluate

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N_ROWS, N_COLS, CODE = 40, 30, 6
DUP_OF, DUP = 3, 17          # row 17 is an exact copy of row 3


def item_dataset() -> Dataset:
  """Items x users ratings with string item ids; row DUP is a copy of row DUP_OF."""
  rng = np.random.default_rng(0)
  dense = rng.random((N_ROWS, N_COLS)) < 0.3
  dense[np.arange(N_ROWS), rng.integers(0, N_COLS, N_ROWS)] = True
  values = rng.integers(1, 6, (N_ROWS, N_COLS)).astype(np.float32)
  dense[DUP], values[DUP] = dense[DUP_OF], values[DUP_OF]
  r, c = np.nonzero(dense)
  row_ids = np.array([f"item{i:02d}" for i in range(N_ROWS)])
  col_ids = np.arange(100, 100 + N_COLS)
  train = Interactions.from_coo(row_ids[r], col_ids[c], values[r, c], row_ids=row_ids,
                                col_ids=col_ids)
  return Dataset(train, info={"name": "tiny_items", "orientation": "item"})


def config(model: str = "deep_ae"):
  c = get_base()
  c.data.name = "tiny_items"       # the dataset is passed in; nothing rebuilds it from config
  c.data.path = None
  if model == "ease":
    c.model.name = "ease"
    c.model.l2 = 10.0
  else:
    c.model.name = "deep_ae"
    c.model.layers = [CODE]
    c.model.activation = "selu"
    c.model.tied = False
    c.model.code_dropout = 0.0
    c.model.last_activation = False
    c.model.sparse_input = False
    c.model.dtype = "float32"
  c.loss.masked_mse = 1.0
  c.train.batch_size = 16
  c.train.epochs = 2
  c.train.log_every_steps = 2
  c.eval.batch_size = 16
  return c


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("run"))
  ds = item_dataset()
  train_and_evaluate(config(), workdir, dataset=ds)
  return workdir, ds


def read_ids(path):
  with open(path, encoding="utf-8") as f:
    return f.read().splitlines()


def test_code_export_round_trip(trained, tmp_path):
  workdir, ds = trained
  out = str(tmp_path / "out")
  meta = export.export_embeddings(workdir, out, top_k=3, dataset=ds)
  emb = np.load(os.path.join(out, "embeddings.npy"))
  assert emb.dtype == np.float32 and emb.shape == (N_ROWS, CODE)
  with np.load(os.path.join(workdir, "id_maps.npz")) as z:
    assert read_ids(os.path.join(out, "ids.tsv")) == z["row_ids"].tolist()

  # Each vector is the model's code of that row (computed here densely, independently).
  cfg, params, info = load_for_eval(workdir)
  model = build_model(cfg.model, N_COLS, N_ROWS)
  want = model.apply({"params": params}, jnp.asarray(dense_rows(ds.train, np.arange(N_ROWS))),
                     train=False)["code"]
  np.testing.assert_allclose(emb, np.asarray(want), rtol=1e-5, atol=1e-6)

  idx = np.load(os.path.join(out, "neighbors_idx.npy"))
  score = np.load(os.path.join(out, "neighbors_score.npy"))
  assert idx.shape == score.shape == (N_ROWS, 3) and idx.dtype == np.int32
  assert idx[DUP_OF, 0] == DUP and idx[DUP, 0] == DUP_OF
  assert score[DUP_OF, 0] == pytest.approx(1.0, abs=1e-5)
  assert score[DUP_OF, 1] < 1.0 - 1e-4                # no other row is a copy
  assert not (idx == np.arange(N_ROWS)[:, None]).any()  # never itself
  assert (np.diff(score, axis=1) <= 1e-7).all()       # best first

  with open(os.path.join(out, "metadata.json"), encoding="utf-8") as f:
    on_disk = json.load(f)
  assert on_disk == meta
  assert meta["model"] == "deep_ae" and meta["embedding"] == "code"
  assert meta["step"] == info["step"] and meta["n"] == N_ROWS and meta["dimension"] == CODE
  assert meta["normalized"] is False and meta["top_k"] == 3 and meta["orientation"] == "item"
  assert meta["config"]["model"]["layers"] == [CODE]


def test_decoder_export_and_normalize(trained, tmp_path):
  workdir, _ = trained
  out = str(tmp_path / "out")
  # First an export with neighbours, then one without: the stale neighbour files go away.
  export.export_embeddings(workdir, out, embedding="decoder", top_k=2)
  meta = export.export_embeddings(workdir, out, embedding="decoder", normalize=True)
  emb = np.load(os.path.join(out, "embeddings.npy"))
  _, params, _ = load_for_eval(workdir)
  kernel = np.asarray(params["decoder_0"]["kernel"])            # [N_COLS, CODE]: one row per item
  np.testing.assert_allclose(emb, kernel / np.linalg.norm(kernel, axis=1, keepdims=True),
                             rtol=1e-5)
  assert read_ids(os.path.join(out, "ids.tsv")) == [str(i) for i in range(100, 100 + N_COLS)]
  assert meta["embedding"] == "decoder" and meta["normalized"] is True and meta["n"] == N_COLS
  assert not os.path.exists(os.path.join(out, "neighbors_idx.npy"))


def test_export_cli(trained, tmp_path):
  workdir, _ = trained
  out = str(tmp_path / "cli")
  cmd = [sys.executable, "-m", "jaxae.export", f"--workdir={workdir}", f"--out={out}",
         "--embedding=decoder", "--top_k=4"]
  proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=120)
  assert proc.returncode == 0, proc.stderr
  assert np.load(os.path.join(out, "embeddings.npy")).shape == (N_COLS, CODE)
  assert np.load(os.path.join(out, "neighbors_idx.npy")).shape == (N_COLS, 4)
  # A user mistake: one line, exit 2.
  proc = subprocess.run(cmd[:-1] + [f"--top_k={N_COLS}"], capture_output=True, text=True,
                        cwd=REPO, timeout=120)
  assert proc.returncode == 2
  assert proc.stderr.strip().splitlines() == [
      f"error: --top_k must be between 1 and {N_COLS - 1} (the other rows), got {N_COLS}"]


def test_ease_is_refused(tmp_path):
  workdir = str(tmp_path / "ease")
  train_and_evaluate(config("ease"), workdir, dataset=item_dataset())
  with pytest.raises(ConfigError, match="ease is not an embedding model"):
    export.export_embeddings(workdir, str(tmp_path / "out"))


@pytest.mark.parametrize("group", [0, 3])   # 3: through group maxima (config.eval.topk_group)
def test_cosine_neighbors_match_brute_force(group):
  rng = np.random.default_rng(1)
  v = rng.normal(size=(10, 4)).astype(np.float32)
  v[6] = 3.0 * v[2]                                  # same direction: cosine 1
  v[8] = 0.0                                         # zero vector: cosine 0 with everything
  idx, score = jax.device_get(export.cosine_neighbors(jnp.asarray(v), 3, chunk=3, group=group))
  u = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-6)
  sims = u @ u.T
  np.fill_diagonal(sims, -np.inf)
  want = np.sort(sims, axis=1)[:, ::-1][:, :3]
  np.testing.assert_allclose(score, want, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(np.take_along_axis(sims, idx, axis=1), want, rtol=1e-5, atol=1e-6)
  assert idx[2, 0] == 6 and idx[6, 0] == 2
  np.testing.assert_allclose(score[8], 0.0)
  with pytest.raises(ConfigError, match="--top_k"):
    export.cosine_neighbors(jnp.asarray(v), 10)


def _model_config(name: str, **kw):
  return ml_collections.ConfigDict(dict(name=name, **kw))


@pytest.mark.parametrize("model_config", [
    _model_config("deep_ae", layers=[5], activation="selu", tied=False, code_dropout=0.0,
                  last_activation=False, sparse_input=False, dtype="float32"),
    _model_config("deep_ae", layers=[5], activation="selu", tied=True, code_dropout=0.0,
                  last_activation=False, sparse_input=False, dtype="float32"),
    _model_config("autorec", hidden=5),
    _model_config("cdae", hidden=5, corruption=0.0, output="identity"),
    _model_config("mult_dae", layers=[5], input_dropout=0.0, activation="tanh"),
], ids=["deep_ae", "deep_ae_tied", "autorec", "cdae", "mult_dae"])
def test_decoder_vectors_are_the_output_layer(model_config):
  """recon = code @ vectors.T + bias: the exported vectors are what scores each column."""
  n_cols, n_rows = 9, 6
  model = build_model(model_config, n_cols, n_rows)
  params = state_lib.init_params(model, n_cols, False, jax.random.PRNGKey(0))
  x = jnp.asarray(np.random.default_rng(0).random((n_rows, n_cols)), jnp.float32)
  out = model.apply({"params": params}, x, rows=jnp.arange(n_rows), train=False)
  vectors = export.decoder_vectors(model_config, params, n_cols)
  assert vectors.shape == (n_cols, 5)
  bias = np.asarray(out["recon"] - out["code"] @ vectors.T)
  np.testing.assert_allclose(bias, np.broadcast_to(bias[0], bias.shape), atol=1e-5)
  if model_config.name == "deep_ae" and model_config.tied:
    np.testing.assert_array_equal(vectors, params["encoder_0"]["kernel"])


def test_mult_vae_decoder_vectors():
  """Mult-VAE (600 -> 200 style, here 7 -> 5): the last decoder layer reads the decoder hidden."""
  cfg = _model_config("mult_vae", layers=[7, 5], input_dropout=0.0, activation="tanh")
  n_cols = 9
  model = build_model(cfg, n_cols, 4)
  params = state_lib.init_params(model, n_cols, False, jax.random.PRNGKey(0))
  x = jnp.asarray(np.random.default_rng(0).random((4, n_cols)), jnp.float32)
  out = model.apply({"params": params}, x, train=False)
  hidden = jnp.tanh(out["code"] @ params["decoder_0"]["kernel"] + params["decoder_0"]["bias"])
  vectors = export.decoder_vectors(cfg, params, n_cols)
  assert vectors.shape == (n_cols, 7)
  np.testing.assert_allclose(out["recon"], hidden @ vectors.T + params["decoder_1"]["bias"],
                             rtol=1e-5, atol=1e-5)
