"""The benchmark suite runs end to end (``python -m bench.run --smoke``): tiny data, a few steps, the
whole table printed. Not timed: speed claims come from the bench scripts, never from tests."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import REPO_ROOT

ROWS = ("compile (train step)", "step time (steady state)", "train rows/s", "model FLOPs per step",
        "achieved FLOP/s", "host batching rows/s", "eval top-20 users/s", "peak memory")


def _run(*args: str) -> str:
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  proc = subprocess.run([sys.executable, "-m", "bench.run", *args], cwd=REPO_ROOT, env=env,
                        capture_output=True, text=True, timeout=300, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return proc.stdout


@pytest.mark.parametrize("config", ["configs/deeprec_netflix.py", "configs/mult_dae_gowalla.py"])
def test_smoke_table_prints(config):
  out = _run(f"--config={config}", "--smoke")
  assert "SMOKE RUN, NOT A MEASUREMENT" in out
  lines = out.splitlines()
  for name in ROWS:
    row = [ln for ln in lines if ln.startswith(name)]
    assert row, f"row {name!r} missing from:\n{out}"
    value = row[0][len(name):].split()[0].replace(",", "")
    assert float(value) > 0, row[0]


def _module(module: str, *args: str) -> str:
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  proc = subprocess.run([sys.executable, "-m", module, *args], cwd=REPO_ROOT, env=env,
                        capture_output=True, text=True, timeout=300, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return proc.stdout


def test_topk_bench_checks_the_variants():
  out = _module("bench.topk", "--rows=16", "--cols=700", "--k=20", "--blocks=0,64",
                "--groups=4,16", "--repeats=1")
  rows = [ln.split() for ln in out.splitlines() if ln.split() and ln.split()[0] in
          ("lax", "64", "g4", "g16")]
  assert [r[0] for r in rows] == ["lax", "64", "g4", "g16"], out
  assert rows[0][-1] == "reference" and all(r[-2:] == ["same", "indices"] for r in rows[1:]), out
  # --exclude: the evaluator's top_k_excluding, group path (g) and write-then-rank (s) forms.
  out = _module("bench.topk", "--rows=16", "--cols=700", "--k=20", "--groups=4,16",
                "--repeats=1", "--exclude=30")
  assert "30 entries a row excluded" in out, out
  rows = [ln.split() for ln in out.splitlines() if ln.split() and ln.split()[0] in
          ("lax", "g4", "s4", "g16", "s16")]
  assert [r[0] for r in rows] == ["lax", "g4", "s4", "g16", "s16"], out
  assert rows[0][-1] == "reference" and all(r[-2:] == ["same", "indices"] for r in rows[1:]), out


def test_score_tiles_bench_checks_and_prints_every_variant():
  out = _module("bench.score_tiles", "--config=configs/cdae_gowalla.py", "--size=smoke",
                "--tiles=64,128", "--score_dtypes=model,bfloat16", "--ks=5,20", "--rounds=1",
                "--config.eval.batch_size=64")
  rows = [ln.split() for ln in out.splitlines() if ln.split() and ln.split()[0] in ("5", "20")]
  assert [(r[0], r[1], r[2]) for r in rows] == [
      (k, d, t) for k in ("5", "20") for d in ("model", "bfloat16") for t in ("0", "64", "128")]
  assert rows[0][5] == "1.00x" and "each score dtype give the same metrics" in out, out
  bad = subprocess.run([sys.executable, "-m", "bench.score_tiles",
                        "--config=configs/cdae_gowalla.py", "--score_dtypes=model,fp16"],
                       cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False)
  assert bad.returncode != 0 and "--score_dtypes:" in bad.stderr and "Traceback" not in bad.stderr


def test_hugepages_bench_runs_every_variant_and_compares_their_metrics():
  out = _module("bench.hugepages", "--config=configs/autorec_ml100k.py", "--rounds=1", "--",
                "--config.train.epochs=1")          # no data.path: the config's synthetic ratings
  rows = [ln.split() for ln in out.splitlines() if ln.split()[:1] == ["train.py"]]
  assert [r[1] for r in rows] == ["--hugepages", "--nohugepages", "--keep_heap"], out
  assert rows[1][-1] == "1.00x" and "final metrics: the same in every variant" in out, out


@pytest.fixture(scope="module")
def mult_dae_run(tmp_path_factory):
  """A run of the Mult-DAE config on its synthetic implicit data (one epoch)."""
  from configs import mult_dae_gowalla  # pylint: disable=import-outside-toplevel
  from jaxae.training.loop import train_and_evaluate  # pylint: disable=import-outside-toplevel
  cfg = mult_dae_gowalla.get_config()
  cfg.train.epochs = 1
  workdir = str(tmp_path_factory.mktemp("mult_dae"))
  train_and_evaluate(cfg, workdir)
  return workdir


def test_predict_bench_checks_recall_and_prints_every_variant(mult_dae_run):
  out = _module("bench.predict", f"--workdir={mult_dae_run}", "--rounds=1", "--nohugepages")
  lines = out.splitlines()
  for name in ("evaluate", "predict", "predict+tsv"):
    assert any(ln.split()[:1] == [name] for ln in lines), out
  assert "recall@20: from the written files" in out


def test_serve_bench_checks_the_variants_agree_and_prints_each(mult_dae_run):
  out = _module("bench.serve", f"--workdir={mult_dae_run}", "--sizes=1,5", "--rounds=1",
                "--calls=2", "--nohugepages")
  rows = [ln.split() for ln in out.splitlines() if ln.split()[:1] in (["1"], ["5"])]
  assert [(r[0], r[1], r[3]) for r in rows] == [
      (n, b, v) for n, b in (("1", "1"), ("5", "8")) for v in ("lists", "matrix", "device")], out
  assert all(r[-1] == "1.00x" for r in rows if r[3] == "device"), out


def test_tied_product_checks_the_two_forms_agree():
  out = _module("bench.tied_product", "--items=300", "--code=8", "--rows=1,3", "--steps=2")
  rows = [ln.split() for ln in out.splitlines() if ln.split()[:1] in (["1"], ["3"])]
  assert [r[0] for r in rows] == ["1", "3"], out
  assert all(r[-2].endswith("x") and r[-1] in ("yes", "no") for r in rows), out


def test_melon_votes_times_both_vote_settings():
  from configs import song_as_user  # pylint: disable=import-outside-toplevel
  out = _module("bench.melon_votes", "--size=tiny", "--dim=8", "--repeats=1")
  rows = {ln.split()[0]: ln for ln in out.splitlines() if "questions/s" in ln}
  configured = song_as_user.get_config().eval.recommender_args
  for name, n_songs in (("published", 10), ("configured", configured.song_neighbours)):
    assert float(rows[name].split()[1]) > 0, out
    assert f"song_neighbours={n_songs}," in rows[name], out
  assert "configured / published:" in out, out


def test_melon_votes_times_seed_a_settings():
  from configs import melon_hybrid  # pylint: disable=import-outside-toplevel
  out = _module("bench.melon_votes", "--recommender=hybrid", "--size=small", "--repeats=1")
  rows = {ln.split()[0]: ln for ln in out.splitlines() if "questions/s" in ln}
  configured = melon_hybrid.get_config().eval.recommender_args
  assert float(rows["published"].split()[1]) > 0 and "own_tag_weight=0.0," in rows["published"]
  assert f"own_tag_weight={configured.own_tag_weight}," in rows["configured"], out
  assert "content_workdir" not in out and "configured / published:" in out, out


def test_step_parts_prints_every_part():
  out = _module("bench.step_parts", "--size=smoke", "--scale=1", "--batch_size=64", "--steps=1")
  for name in ("full_mse=dense", "full_mse=entries", "SGD", "forward z @ W",
               "input gradient g @ W^T", "weight gradient z^T @ g", "decoder forward + backward",
               "Adam update alone"):
    assert name in out, f"{name!r} missing from:\n{out}"


def test_step_floor_prints_the_step_and_its_parts():
  out = _module("bench.step_floor", "--config=configs/deeprec_netflix.py", "--size=smoke",
                "--steps=1")
  for name in ("train step (bench.run's)", "pass 1 layer 1", "re-feed 1 layer 0", "input gradient",
               "forward (dense, for the re-feed)",
               "matrix products (sum of the above)", "optimizer update (momentum",
               "parts' sum (products + updates)"):
    assert name in out, f"{name!r} missing from:\n{out}"
  assert "pass 1 layer 0" not in out            # the sparse first layer is not a product


def test_step_floor_products_are_the_flop_count_but_the_gathers():
  from bench.flops import StepShape, step_flops, step_products
  chain = [(10, 4), (4, 10)]
  for sparse, entries, refeed in ((True, False, 0), (True, False, 1), (False, False, 2),
                                  (True, True, 0), (True, True, 1), (False, True, 1)):
    got = sum(2.0 * m * k * n
              for _, (m, k, n), _ in step_products(chain, 3, sparse, entries, refeed))
    bag = 2 * (2.0 * 6 * 4) if sparse else 0.0      # forward + weight gradient over 6 nonzeros
    gathered = 3 * (2.0 * 6 * 4) if entries else 0.0   # the output at the 6 entries, x3
    assert got + bag + gathered == step_flops(chain, StepShape(3, 6, sparse, entries, refeed))


def test_smoke_rejects_unknown_size():
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  proc = subprocess.run([sys.executable, "-m", "bench.run", "--config=configs/deeprec_netflix.py",
                         "--size=nope"], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                        timeout=300, check=False)
  assert proc.returncode == 2
  assert "unknown size 'nope'" in proc.stderr


def test_step_flops_counts_by_hand():
  from bench.flops import StepShape, step_flops
  chain = [(10, 4), (4, 10)]               # n=10 -> 4 -> 10
  # Sparse first layer (nnz 6): fwd 2*6*4=48, + weight grad 48; dense last layer on 3 rows:
  # fwd 2*3*4*10=240, x3 with both gradients = 720.
  assert step_flops(chain, StepShape(3, 6, True, False, 0)) == 48 + 48 + 720
  # Output only at the 6 entries: 3 * (2*6*4) = 144 instead of 720; re-feed adds the dense
  # forward of the output (240) and one dense pass: first 2*(2*3*10*4)=480, last 720.
  assert step_flops(chain, StepShape(3, 6, True, True, 0)) == 96 + 144
  assert step_flops(chain, StepShape(3, 6, True, True, 1)) == 96 + 144 + 240 + 480 + 720


def test_power_law_sizes_are_exact():
  from bench.sizes import holdout_rows, power_law
  inter = power_law(200, 50, 2_000, ratings=True, seed=3)
  lengths = inter.row_lengths()
  assert inter.shape == (200, 50) and lengths.min() >= 1 and lengths.max() <= 50
  assert abs(inter.nnz - 2_000) < 200
  vals = inter.matrix.data
  assert set(np.unique(vals)) <= {1.0, 2.0, 3.0, 4.0, 5.0}
  m = inter.matrix
  assert all(len(set(m.indices[m.indptr[i]:m.indptr[i + 1]])) == lengths[i] for i in range(200))
  train, split = holdout_rows(inter, 30, seed=1)
  assert train.nnz + split.targets.nnz == inter.nnz
  assert split.targets.matrix[30:].nnz == 0 and len(split.rows) == 30
