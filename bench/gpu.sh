#!/usr/bin/env bash
# The GPU runs of docs/benchmarks.md ("On a GPU"), in the order the figures there were taken.
#
#   bash bench/gpu.sh targets   # the issue-7 GPU targets: Melon CF AE bf16 / f32, top-K variants
#                               # and 1M users' top-100 with the fastest, equality tests on the GPU
#   bash bench/gpu.sh suite     # where the Melon step's time goes (bench.step_parts), the other
#                               # sizes: Netflix-like, song-as-user, encoder scaling
#   bash bench/gpu.sh entries   # the entries loss path against the dense target (step parts, Melon)
#   bash bench/gpu.sh cublas    # the Melon step with XLA's Triton GEMMs off; song-as-user, f32
#   bash bench/gpu.sh topk      # top-K variants and the 1M-user evaluation alone
#   bash bench/gpu.sh determinism  # tests/test_step.py with and without deterministic ops
#   bash bench/gpu.sh flags     # bench.step_parts under three XLA GEMM settings
#   bash bench/gpu.sh loop      # train.py itself on the full-scale synthetic Melon world, 4 epochs
#   bash bench/gpu.sh recheck   # what changed since the H100 figures (sessions 10-14, not yet on a
#                               # GPU): top-K with exclusion, column tiles and bfloat16 scoring
#                               # (Melon CF AE, 1M users), the Melon step again; their tests on the GPU
#   bash bench/gpu.sh serve     # Recommender calls per call size (and with 1,000 items excluded)
#                               # on a Mult-DAE and a tied deep AE
#                               # (synthetic data, one epoch each), the tied product; their tests
#
# Each command's whole output goes to $OUT/<name>.log (OUT defaults to ./gpu_out); a summary of the
# tables is printed last. Needs jax with its CUDA plugin and the package's dependencies importable
# (PYTHONPATH may point at extra site folders); nothing is installed here.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-gpu_out}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$PWD"
PY="${PYTHON:-python3}"
part="${1:-targets}"

run() {   # run NAME TIMEOUT_S CMD...: logs to $OUT/NAME.log, keeps going on failure
  local name=$1 limit=$2
  shift 2
  echo "=== $name: $*" | tee "$OUT/$name.log"
  local t0=$SECONDS
  timeout "$limit" "$@" >>"$OUT/$name.log" 2>&1
  local rc=$?
  echo "=== $name: rc=$rc, $((SECONDS - t0)) s" | tee -a "$OUT/$name.log"
}

melon=(-m bench.run --config=configs/melon_cf_ae.py --config.train.batch_size=1024
       --config.eval.batch_size=4096)

topk_and_1m() {   # top-K variants, then the 1M-user evaluation with the fastest exact one
  run "topk$1" 90 "$PY" -m bench.topk --rows=4096 --cols=277218 --k=100 --blocks=0,1024 \
      --groups=4,8,16,32,64
  local best flag
  best=$(awk '$NF == "reference" || $NF == "indices" {print $1, $4}' "$OUT/topk$1.log" \
         | sort -k2 -g | head -1 | cut -d' ' -f1)
  case "$best" in     # gN -> eval.topk_group=N; lax or the blocked form (not in the library) -> 0
    g*) flag="--config.eval.topk_group=${best#g}" ;;
    *) flag="--config.eval.topk_group=0" ;;
  esac
  run "melon_1m_bf16$1" 200 "$PY" "${melon[@]}" --size=melon_1m --config.model.dtype=bfloat16 \
      --eval_rows=1000000 --steps=5 --repeats=1 --eval_repeats=1 "$flag"
}

if [ "$part" = targets ]; then
  { nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
    "$PY" -c "import jax, flax, optax, orbax.checkpoint as o, numpy, scipy; print('jax', jax.__version__, 'flax', flax.__version__, 'optax', optax.__version__, 'orbax', o.__version__, 'numpy', numpy.__version__, 'scipy', scipy.__version__); print(jax.devices())"
  } 2>&1 | tee "$OUT/env.log"
  run melon_cf_bf16 150 "$PY" "${melon[@]}" --size=melon_cf --config.model.dtype=bfloat16 \
      --steps=112 --repeats=3
  topk_and_1m ""
  # The fast paths' equality tests, on the GPU (f32 matmuls at full precision: the tests compare
  # paths at float32 tolerances, which TF32 would not meet).
  run tests 150 env JAX_DEFAULT_MATMUL_PRECISION=highest "$PY" -m pytest -q -x -p no:cacheprovider \
      tests/test_fast_paths.py tests/test_gram_mse.py tests/test_eval_topn.py tests/test_step.py
  run melon_cf_f32 100 "$PY" "${melon[@]}" --size=melon_cf --steps=112 --repeats=3
elif [ "$part" = entries ]; then
  # The loss read at the batch's entries (the "auto" default since it was measured) against the
  # dense target, on the Melon CF AE target shape; the equality tests of both paths on the GPU.
  run step_parts 150 "$PY" -m bench.step_parts --size=melon_cf --batch_size=1024 --dtype=bfloat16
  run melon_cf_bf16 150 "$PY" "${melon[@]}" --size=melon_cf --config.model.dtype=bfloat16 \
      --steps=112 --repeats=3
  run melon_cf_bf16_dense 150 "$PY" "${melon[@]}" --size=melon_cf --config.model.dtype=bfloat16 \
      --steps=112 --repeats=3 --config.loss_impl.full_mse=dense
  run tests 120 env JAX_DEFAULT_MATMUL_PRECISION=highest "$PY" -m pytest -q -x -p no:cacheprovider \
      tests/test_gram_mse.py
elif [ "$part" = cublas ]; then
  # The same Melon step with XLA's Triton GEMMs off (cuBLAS for every product), and the sizes
  # whose default loss path became "entries" re-run (song-as-user, Melon f32).
  run step_parts_cublas 150 env XLA_FLAGS=--xla_gpu_enable_triton_gemm=false "$PY" \
      -m bench.step_parts --size=melon_cf --batch_size=1024 --dtype=bfloat16
  run melon_cf_bf16_cublas 150 env XLA_FLAGS=--xla_gpu_enable_triton_gemm=false "$PY" \
      "${melon[@]}" --size=melon_cf --config.model.dtype=bfloat16 --steps=112 --repeats=3
  run song_as_user_bf16 150 "$PY" -m bench.run --config=configs/song_as_user.py \
      --size=song_as_user --steps=50 --config.model.dtype=bfloat16
  run melon_cf_f32 150 "$PY" "${melon[@]}" --size=melon_cf --steps=112 --repeats=3
elif [ "$part" = topk ]; then
  # The group-maxima top-K against jax.lax.top_k and the blocked form; the 1M-user evaluation
  # again with the fastest exact variant.
  topk_and_1m "_groups"
elif [ "$part" = determinism ]; then
  # Bit-identical params from one seed: with XLA's deterministic ops, then the rest without.
  run tests_deterministic 200 env XLA_FLAGS=--xla_gpu_deterministic_ops=true \
      JAX_DEFAULT_MATMUL_PRECISION=highest "$PY" -m pytest -q -p no:cacheprovider tests/test_step.py
  run tests_default 100 env JAX_DEFAULT_MATMUL_PRECISION=highest "$PY" -m pytest -q \
      -p no:cacheprovider tests/test_step.py -k "not bit_identical"
elif [ "$part" = loop ]; then
  # The real training loop (host batching, prefetch, transfers, logging) on the synthetic Melon
  # world at full scale: 4 epochs, a log line (rows/s of its window) every 112 steps and at each
  # epoch's end, then with XLA's Triton GEMMs off.
  loop=(train.py --config=configs/melon_cf_ae.py --config.data.synthetic_size=melon
        --config.model.dtype=bfloat16 --config.train.batch_size=1024 --config.eval.batch_size=4096
        --config.train.epochs=4 --config.train.log_every_steps=112
        --config.train.eval_every_epochs=100 --config.train.checkpoint_every_epochs=100)
  wd=$(mktemp -d)
  run loop_default 240 "$PY" "${loop[@]}" --workdir="$wd/default"
  run loop_cublas 240 env XLA_FLAGS=--xla_gpu_enable_triton_gemm=false "$PY" "${loop[@]}" \
      --workdir="$wd/cublas"
elif [ "$part" = flags ]; then
  # bench.step_parts under XLA GEMM settings: default, cuBLASLt, cuBLASLt with Triton GEMMs off.
  run step_parts_default 90 "$PY" -m bench.step_parts --size=melon_cf --batch_size=1024 \
      --dtype=bfloat16
  run step_parts_cublaslt 90 env XLA_FLAGS=--xla_gpu_enable_cublaslt=true "$PY" \
      -m bench.step_parts --size=melon_cf --batch_size=1024 --dtype=bfloat16
  run step_parts_cublaslt_notriton 90 env \
      "XLA_FLAGS=--xla_gpu_enable_triton_gemm=false --xla_gpu_enable_cublaslt=true" "$PY" \
      -m bench.step_parts --size=melon_cf --batch_size=1024 --dtype=bfloat16
elif [ "$part" = recheck ]; then
  # The evaluation changes made after the H100 session, on the GPU: the top-K variants with the
  # evaluator's exclusion of ~46 training items a row (the Melon CF rows' mean), whole blocks vs
  # column tiles in float32 ("model") and bfloat16 scoring on the Melon CF AE (same process,
  # alternating), the 1M-user top-100 with bfloat16 scoring, the Melon CF AE bf16 step as the
  # reference figure, and the equality tests of those paths on the GPU. About 9 minutes.
  run topk_exclude 90 "$PY" -m bench.topk --rows=4096 --cols=277218 --k=100 --blocks=0,1024 \
      --groups=16,32,64 --exclude=46
  run score_tiles 200 "$PY" -m bench.score_tiles --config=configs/melon_cf_ae.py --size=melon_cf \
      --config.model.dtype=bfloat16 --config.eval.batch_size=4096 --tiles=16384,65536 \
      --score_dtypes=model,bfloat16 --ks=100 --rounds=3
  run melon_1m_bf16_score 120 "$PY" "${melon[@]}" --size=melon_1m --config.model.dtype=bfloat16 \
      --eval_rows=1000000 --steps=5 --repeats=1 --eval_repeats=1 --config.eval.score_dtype=bfloat16
  run melon_cf_bf16 60 "$PY" "${melon[@]}" --size=melon_cf --config.model.dtype=bfloat16 \
      --steps=112 --repeats=3 --eval_repeats=1
  run tests 80 env JAX_DEFAULT_MATMUL_PRECISION=highest "$PY" -m pytest -q -x -p no:cacheprovider \
      tests/test_eval_topn.py tests/test_score_dtype.py tests/test_score_tiles.py
elif [ "$part" = serve ]; then
  # New users ranked by jaxae.recommender.Recommender against the device's own ranking, per call
  # size (session 17, not yet on a GPU): runs of the Gowalla configs on their synthetic data.
  wd=$(mktemp -d)
  for m in mult_dae deep_ae; do
    run "train_$m" 200 "$PY" train.py --config="configs/${m}_gowalla.py" \
        --config.train.epochs=1 --config.train.eval_every_epochs=100 --workdir="$wd/$m"
    run "serve_$m" 300 "$PY" -m bench.serve --workdir="$wd/$m" --sizes=1,16,256,4096,65536 \
        --exclude=1000
  done
  run tied_product 60 "$PY" -m bench.tied_product --items=277218 --code=1024 \
      --rows=1,2,16,1024
  run tests 120 env JAX_DEFAULT_MATMUL_PRECISION=highest "$PY" -m pytest -q -x -p no:cacheprovider \
      tests/test_recommender.py tests/test_predict.py
elif [ "$part" = suite ]; then
  run step_parts 150 "$PY" -m bench.step_parts --size=melon_cf --batch_size=1024 --dtype=bfloat16
  run netflix_f32 200 "$PY" -m bench.run --config=configs/deeprec_netflix.py --size=netflix \
      --scale=0.2 --steps=50
  run netflix_bf16 200 "$PY" -m bench.run --config=configs/deeprec_netflix.py --size=netflix \
      --scale=0.2 --steps=50 --config.model.dtype=bfloat16
  run song_as_user_bf16 200 "$PY" -m bench.run --config=configs/song_as_user.py \
      --size=song_as_user --steps=50 --config.model.dtype=bfloat16
  run encoder_scaling 200 "$PY" -m bench.encoder_scaling --steps=50
else
  echo "usage: bash bench/gpu.sh targets|suite|entries|cublas|topk|determinism|flags|loop|recheck|serve" >&2
  exit 2
fi

echo
echo "########## summary ($part)"
for f in "$OUT"/*.log; do
  echo "--- $(basename "$f" .log)"
  case "$f" in
    */env.log) cat "$f" ;;
    */tests*.log) tail -3 "$f" ;;
    */loop_*.log) grep -E "^(dataset|epoch|loss:|train|final)|rows/s" "$f" | grep -v '^I1' | tail -12 ;;
    */step_parts*.log) grep -v '^[IWE][0-9][0-9][0-9][0-9] ' "$f" | tail -9 ;;
    */topk*.log | */score_tiles*.log) grep -v '^[IWE][0-9][0-9][0-9][0-9] ' "$f" | tail -16 ;;
    */serve_*.log | */tied_product.log) grep -E "^(jaxae bench|  *[0-9]+ |  *rows|  *users|===)" "$f" ;;
    */train_*.log) tail -2 "$f" ;;
    *) awk '/^jaxae bench:|^top-[0-9]+ of|^encoder-side step|rc=/{p=1} p' "$f" \
         | grep -v '^[IWE][0-9][0-9][0-9][0-9] ' | cut -c1-220 ;;
  esac
done
