"""The sections every config has, with their shared defaults. Variants call `get_base()` and override.

Sections (the config is the single source of truth: the library reads these keys and nothing else):
  seed                     one integer; the data's splits / carves, and (unless train.seed is set)
                           the batch order, init and dropout derive from it
  data                     set by each config: `name` picks the pipeline (jaxae.data.pipelines)
  model                    set by each config: `name` picks the model (jaxae.models)
  loss                     term name -> weight (jaxae.losses; a weight of 0 switches a term off)
  loss_anneal              KL annealing of Mult-VAE: total_steps (0 = off), beta_cap
  loss_impl                how the loss is computed: full_mse (see below; optional, absent = dense)
  optim, train, eval, mesh see below
"""

import ml_collections
from ml_collections import config_dict

# The top-N evaluator's top K (config.eval.topk_group): 0 = jax.lax.top_k over the whole row; N = the
# top K groups of N columns by their maxima, then the top K of those groups' columns. Exact (the
# same columns, ties included); groups of 64 were the fastest measured on a 2-core CPU (3.8x
# jax.lax.top_k for the top 20 of 40,981 columns, 5.5x for the top 100 of 277,218) and on the H100
# (12.7x over 277,218, measured with the earlier padded form): docs/benchmarks.md, `python -m
# bench.topk`.
TOPK_GROUP = 64
# Scoring in column tiles (config.eval.score_tile): 0 = the model scores a whole [chunk, n_cols]
# block, then it is ranked; N = for a model with a linear output layer (cdae, deep_ae, mult_dae,
# mult_vae), its scores are made N columns at a time and ranked as they come, so no score block is
# written to memory and read back (a multiple of TOPK_GROUP). Same metrics; docs/benchmarks.md.
SCORE_TILE = 0
# The output layer's product when the top-N evaluator scores (config.eval.score_dtype): "model" =
# the model's own forward, in its compute dtype; "bfloat16" | "float32" = that product from operands
# in this dtype, accumulated in float32 (models with a linear output layer, as above). bfloat16 was
# measured 1.24-1.46x faster for a top-20 on a 2-core AMD EPYC with AVX512_BF16, and 1.26-1.53x
# slower on a 2-core Intel Xeon with it (not measured on CPUs without it, nor on a GPU); it moved
# Recall@20 / NDCG@20 of trained Gowalla models by at most 4e-5: docs/benchmarks.md.
SCORE_DTYPE = "model"


def get_base() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.data = ml_collections.ConfigDict()
  c.model = ml_collections.ConfigDict()
  c.loss = ml_collections.ConfigDict()
  c.loss_anneal = ml_collections.ConfigDict(dict(total_steps=0, beta_cap=1.0))
  # full_mse (how every loss term reads its target; the name is historical): "dense" (the model's
  # [batch, items] output and a dense target) | "entries" (the dense output, the target read at
  # the batch's nonzeros: no [batch, items] target or mask; any term) | "gram" (with a linear last
  # layer: the MSE terms from the d x d Gram of its kernel and the batch's nonzeros, no dense
  # output) | "auto" (gram where it is faster: an "mse" term, no re-feeding, batch >= the crossover
  # times the last layer's input width; masked terms alone at the entries; else entries;
  # jaxae.losses.full_mse_impl, docs/benchmarks.md).
  c.loss_impl = ml_collections.ConfigDict(dict(full_mse="auto"))
  c.optim = ml_collections.ConfigDict(dict(
      # adam | adamw | sgd | momentum | adagrad | rmsprop | lbfgs (full batch; a config using it
      # adds memory_size and, optionally, restart_every: forget the curvature pairs every N steps)
      name="adam",
      lr=1e-3,
      momentum=0.9,                # for momentum / rmsprop
      weight_decay=0.0,            # adamw: decoupled; others: L2 added to the gradient
      clip_norm=config_dict.placeholder(float),  # global-norm clipping; None = off
      schedule="constant",         # constant | multistep | cosine | warmup_cosine
      milestones=(),               # epochs at which multistep multiplies lr by decay_factor
      decay_factor=0.1,
      warmup_epochs=0,
  ))
  c.train = ml_collections.ConfigDict(dict(
      batch_size=128,
      epochs=10,
      refeed_steps=0,              # dense re-feeding passes per step (Kuchaiev & Ginsburg 2017)
      refeed_noise=0.0,            # stddev of Gaussian noise on the re-fed input
      log_every_steps=50,
      eval_every_epochs=1,
      checkpoint_every_epochs=1,
      checkpoint_every_steps=0,    # also every N steps (mid-epoch; 0 = off): a kill loses less
      keep_checkpoints=2,          # the last N, plus the best by eval.metric
      # Early stopping: training ends once eval.metric has gone this many validation evaluations
      # without improving on its best (0 = off: every epoch runs; jaxae.training.early_stopping).
      patience=0,
      seed=config_dict.placeholder(int),   # init / dropout / batch order; None = config.seed
      # Fine-tuning: a workdir whose saved params initialize a fresh run (every one must exist
      # here with the same shape; the others start fresh); init_step: its step (None = latest).
      init_from=config_dict.placeholder(str),
      init_step=config_dict.placeholder(int),
      prefetch=2,                  # host batches prepared ahead in a background thread
      shuffle=True,
  ))
  c.eval = ml_collections.ConfigDict(dict(
      evaluators=(),               # names in jaxae.evaluation.EVALUATORS
      metric="loss",               # which metric picks the best checkpoint
      metric_mode="min",
      batch_size=1024,
      topk_group=TOPK_GROUP,
      score_tile=SCORE_TILE,
      score_dtype=SCORE_DTYPE,
  ))
  c.mesh = ml_collections.ConfigDict(dict(data=-1, model=1))
  return c


def lightgcn_data() -> ml_collections.ConfigDict:
  """The LightGCN/NGCF implicit-feedback data section (Gowalla & co.): 10% of the training entries
  held out at random for validation (``val_split="entries"``, ``splits.holdout``: users with few
  items may have none there; "per_user": 10% of each user's items, at least one, as test.txt was
  drawn, ``splits.per_user_holdout``), test.txt as the test split. Set ``path`` to the data
  folder."""
  return ml_collections.ConfigDict(dict(
      name="lightgcn",
      path=config_dict.placeholder(str),   # None: embedded synthetic implicit data
      val_fraction=0.1,
      val_split="entries",                 # "entries" | "per_user": how validation is carved
      binarize_threshold=config_dict.placeholder(float),
  ))


def csv_data(**settings) -> ml_collections.ConfigDict:
  """The ``csv`` pipeline's section (one delimited file of your own interactions;
  ``jaxae.data.pipelines.csv`` says what each key does), with ``settings`` over these defaults.
  Columns are set here, not assigned later: a column given by name is a string and one given by
  position an int, and a config's value keeps its type (``--config.data.user_col=...`` overrides
  it with the same type). Set ``path`` to the file."""
  section = dict(
      name="csv",
      path=config_dict.placeholder(str),   # None: embedded synthetic ratings with timestamps
      delimiter=",",                       # "," | "\t" (or "tab") | "::" | ... | None: blanks
      header="auto",                       # True | False | "auto": read when a column is named or
                                           # the first line is not numbers where numbers go
      encoding="utf-8",
      user_col=0, item_col=1,              # a header name or a 0-based position
      value_col=config_dict.placeholder(int),       # None: no value column (every line counts 1)
      timestamp_col=config_dict.placeholder(int),   # None: no times (no per_user_time split)
      ids="int",                           # "int" | "str"
      duplicates="last",                   # a repeated (user, item): "last" line | "sum" values
      feedback="implicit",                 # "implicit" (entries -> 1) | "rating" (RMSE)
      rating_range=config_dict.placeholder(tuple),  # (lo, hi) for feedback="rating"
      binarize_threshold=config_dict.placeholder(float),  # implicit: keep values above it
      min_user_entries=0, min_item_entries=0,       # k-core filter (0: none)
      split="per_user",                    # "entries" | "per_user" | "per_user_time" |
                                           # "users" (held-out users: strong generalization)
      test_fraction=0.2,                   # 0: no test split (fit on everything)
      val_fraction=0.1,                    # of what test leaves; 0: no validation
      fold_in_fraction=config_dict.placeholder(float),  # split="users": share of a held-out
                                           # user's entries given to the model (Liang et al. 0.8)
      min_entries_to_split=config_dict.placeholder(int),  # split="users": fewer: given all,
                                           # not scored (Liang et al. 5)
      orientation="user",                  # "user": rows = users | "item": rows = items
  )
  unknown = sorted(set(settings) - set(section))
  if unknown:
    raise KeyError(f"csv_data: unknown key(s) {unknown}; known: {sorted(section)}")
  section.update(settings)
  return ml_collections.ConfigDict(section)


def topn_eval(k: int = 20) -> ml_collections.ConfigDict:
  """Full-catalog top-N evaluation, the best checkpoint picked by Recall@k (LightGCN definition)."""
  return ml_collections.ConfigDict(dict(
      evaluators=("topn",), ks=(k,), metric=f"recall@{k}", metric_mode="max", batch_size=1024,
      topk_group=TOPK_GROUP, score_tile=SCORE_TILE, score_dtype=SCORE_DTYPE))
