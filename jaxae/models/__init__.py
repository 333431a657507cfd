"""The model registry: ``config.model`` -> a flax.linen module (or a closed-form fitter).

``build_model(model_config, n_cols, n_rows)`` checks the keys of ``config.model`` for the named model
(a missing or unknown key, or a bad value, is a ConfigError naming it) and builds the module. Every
module is called as ``module.apply({"params": params}, x, rows=rows, train=train,
rngs={"dropout": key})`` with ``x`` a dense [B, n_cols] array or a ``SparseBatch``, and returns a dict
with ``"recon"`` [B, n_cols] (plus ``"logits"``, ``"code"``, ``"kl"`` where the model has them).

How the engine tells closed-form models apart: ``is_trainable(config.model)`` (equivalently
``build_model(...).trainable``, a class attribute, or ``config.model.name in CLOSED_FORM``). For a
closed-form model the params come from ``CLOSED_FORM[name](config.model, dataset.train)`` (returns the
params pytree, e.g. ``{"B": B}`` for EASE) instead of init + training; scoring is the same
``apply(...)["recon"]`` as for the autoencoders.

Scoring in column tiles (``config.eval.score_tile``): a model whose output layer is a dense layer
followed by an elementwise function (cdae, deep_ae, mult_dae, mult_vae) also returns
``"score_input"`` [B, d] (float32: that layer's input at ``train=False``) and defines
``score_layer(params) -> (kernel [n, d], bias [n])`` (the stored kernel, one row per item, no
copy) and ``score_tile(hidden, kernel, bias, dtype=None)`` (the output layer on any run of its
item rows, float32; ``recon`` is it over all of them, up to ``n_cols``; ``dtype``,
``config.eval.score_dtype``, the product's operands). The
top-N evaluator then never holds a [chunk, n_cols] score block (``has_score_head``), and can score
from bfloat16 operands (``config.eval.score_dtype``).

Keys per model (``name`` always; the engine also reads ``sparse_input``):

  deep_ae:  layers, activation, tied, code_dropout, last_activation, sparse_input, dtype; optional
            input_dropout (denoising of the input entries at train time)
  autorec:  hidden; optional sparse_input, dtype, and encoder ("sigmoid") / decoder ("identity"),
            which the paper fixes
  cdae:     hidden, corruption, output ("sigmoid" | "identity"); optional sparse_input, dtype,
            hidden_activation (absent = "sigmoid", the paper's), output_bias_init (the output
            biases' starting value; absent = 0)
  mult_dae, mult_vae: layers, input_dropout, activation; optional sparse_input, dtype
  kernel_ae: hidden (list of hidden sizes), kernel_dim, activation; optional sparse_input, dtype,
            weight_init ("glorot", the authors' | "small"; absent = "glorot")
  glocal_k: kernel_ae's keys plus gk_size (side of the global convolution kernel), dot_scale;
            optional global_init ("random", the authors' | "identity": the fine-tuning starts at
            the local kernel; absent = "random"); a call must hold every row
            (``needs_all_rows``); its kernel layers load from a kernel_ae checkpoint
            (config.train.init_from)
  ease:     l2; optional sparse_input (score from the rows of B at the inputs' nonzeros: nnz x items
            work instead of the dense [batch, items] x [items, items] product), max_bytes (device
            memory budget; absent/None = the device's free memory),
            solver ("cholesky" | "blocked"; absent = "cholesky"), block_size (the blocked solver's
            tile size; absent = 2048)
  bspm:     factor_dim, idl_beta, blur_time, blur_steps, sharpen_time, sharpen_steps,
            sharpen_solver ("euler" | "rk4"), merge ("early" | "late"), block_size (filter rows per
            device step), svd_solver ("arpack" | "randomized"), svd_oversample, svd_power_iters;
            optional sparse_input, max_bytes (as ease; GF-CF is bspm without sharpening)
  most_popular: no setting (optional sparse_input); every row scores an item by its number of
            training rows (the top-N baseline)

An optional key that is absent means: sparse_input False, dtype "float32".
"""

from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn

from jaxae import checks
from jaxae.errors import ConfigError
from jaxae.models import layers as L
from jaxae.models import bspm as bspm_lib
from jaxae.models.autorec import AutoRec
from jaxae.models.cdae import CDAE, OUTPUTS
from jaxae.models.deep_ae import DeepAE
from jaxae.models.ease import EASE, fit_ease, fit_ease_from_config
from jaxae.models.glocal_k import GLOBAL_INITS, GLocalK
from jaxae.models.kernel_ae import KernelAE
from jaxae.models.ease import SOLVERS as EASE_SOLVERS
from jaxae.models.most_popular import MostPopular, fit_most_popular_from_config
from jaxae.models.mult_vae import MultDAE, MultVAE


def has_score_head(model) -> bool:
  """Whether ``model`` can be scored in column tiles (see the module docstring)."""
  return callable(getattr(model, "score_layer", None)) and callable(
      getattr(model, "score_tile", None))

BSPM = bspm_lib.BSPM

__all__ = [
    "MODELS", "CLOSED_FORM", "build_model", "is_trainable", "AutoRec", "CDAE", "DeepAE", "EASE",
    "MultDAE", "MultVAE", "BSPM", "KernelAE", "GLocalK", "MostPopular", "fit_ease", "needs_all_rows",
    "has_row_params",
]

_GRADIENT_OPTIONAL = ("sparse_input", "dtype")


# --------------------------------------------------------------------------- key checking
def _check_keys(cfg, name: str, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> None:
  keys = set(cfg.keys()) - {"name"}
  missing = [k for k in required if k not in keys]
  if missing:
    raise ConfigError(f"config.model: missing key(s) {', '.join(missing)} for model {name!r}; "
                      f"{name} needs: {', '.join(required)}")
  unknown = sorted(keys - set(required) - set(optional))
  if unknown:
    allowed = ", ".join(required + tuple(optional))
    raise ConfigError(f"config.model: unknown key(s) {', '.join(unknown)} for model {name!r}; "
                      f"known: {allowed}")


def _bool(cfg, key: str) -> bool:
  v = cfg[key]
  if not isinstance(v, bool):
    raise ConfigError(f"config.model.{key}: expected true/false, got {v!r}")
  return v


def _pos_int(cfg, key: str) -> int:
  return checks.number(cfg[key], f"model.{key}", minimum=1, below=2**31, integer=True)


def _sizes(cfg, key: str) -> tuple[int, ...]:
  v = cfg[key]
  if isinstance(v, (str, bytes)) or not hasattr(v, "__iter__"):
    raise ConfigError(f"config.model.{key}: expected a list of layer sizes, got {v!r}")
  v = tuple(v)
  if not v:
    raise ConfigError(f"config.model.{key}: expected a non-empty list of layer sizes, got []")
  return tuple(checks.number(s, f"model.{key}[{i}]", minimum=1, below=2**31, integer=True)
               for i, s in enumerate(v))


def _prob(cfg, key: str) -> float:
  return checks.number(cfg[key], f"model.{key}", minimum=0.0, below=1.0)


def _finite(cfg, key: str, *, positive: bool = False) -> float:
  return checks.number(cfg[key], f"model.{key}", minimum=0.0 if positive else None,
                       strict=positive)


def _activation(cfg, key: str = "activation") -> str:
  L.get_activation(cfg[key], key=f"model.{key}")
  return cfg[key]


def _dtype(cfg) -> str:
  name = cfg["dtype"] if "dtype" in cfg else "float32"
  L.get_dtype(name)
  return name


def _check_sparse_input(cfg) -> None:
  if "sparse_input" in cfg:
    _bool(cfg, "sparse_input")


# --------------------------------------------------------------------------- builders
def _build_deep_ae(cfg, n_cols: int, n_rows: int) -> DeepAE:
  del n_rows
  _check_keys(cfg, "deep_ae", ("layers", "activation", "tied", "code_dropout", "last_activation",
                               "sparse_input", "dtype"), ("input_dropout",))
  _check_sparse_input(cfg)
  return DeepAE(n_cols=n_cols, layers=_sizes(cfg, "layers"), activation=_activation(cfg),
                tied=_bool(cfg, "tied"), code_dropout=_prob(cfg, "code_dropout"),
                input_dropout=_prob(cfg, "input_dropout") if "input_dropout" in cfg else 0.0,
                last_activation=_bool(cfg, "last_activation"), dtype=_dtype(cfg))


def _build_autorec(cfg, n_cols: int, n_rows: int) -> AutoRec:
  del n_rows
  _check_keys(cfg, "autorec", ("hidden",), _GRADIENT_OPTIONAL + ("encoder", "decoder"))
  _check_sparse_input(cfg)
  for key, fixed in (("encoder", "sigmoid"), ("decoder", "identity")):
    if key in cfg and cfg[key] != fixed:
      raise ConfigError(f"config.model.{key}: AutoRec's {key} is {fixed!r} (fixed by the paper), "
                        f"got {cfg[key]!r}")
  return AutoRec(n_cols=n_cols, hidden=_pos_int(cfg, "hidden"), dtype=_dtype(cfg))


def _build_cdae(cfg, n_cols: int, n_rows: int) -> CDAE:
  _check_keys(cfg, "cdae", ("hidden", "corruption", "output"),
              _GRADIENT_OPTIONAL + ("hidden_activation", "output_bias_init"))
  _check_sparse_input(cfg)
  if cfg["output"] not in OUTPUTS:
    raise ConfigError(f"config.model.output: unknown CDAE output {cfg['output']!r}; known: "
                      f"{', '.join(OUTPUTS)}")
  if n_rows <= 0:
    raise ConfigError(f"cdae needs the number of rows for its per-user node, got n_rows={n_rows}")
  extra = {}                         # absent keys: the module's defaults, the paper's model
  if "hidden_activation" in cfg:
    extra["hidden_activation"] = _activation(cfg, "hidden_activation")
  if "output_bias_init" in cfg:
    extra["output_bias_init"] = _finite(cfg, "output_bias_init")
  return CDAE(n_cols=n_cols, n_rows=n_rows, hidden=_pos_int(cfg, "hidden"),
              corruption=_prob(cfg, "corruption"), output=cfg["output"], dtype=_dtype(cfg),
              **extra)


def _mult_builder(cls, name: str):
  def build(cfg, n_cols: int, n_rows: int):
    del n_rows
    _check_keys(cfg, name, ("layers", "input_dropout", "activation"), _GRADIENT_OPTIONAL)
    _check_sparse_input(cfg)
    return cls(n_cols=n_cols, layers=_sizes(cfg, "layers"),
               input_dropout=_prob(cfg, "input_dropout"), activation=_activation(cfg),
               dtype=_dtype(cfg))
  return build


def _weight_init(cfg) -> str:
  if "weight_init" not in cfg:
    return "glorot"
  return _choice(cfg, "weight_init", L.KERNEL_WEIGHT_INITS)


def _build_kernel_ae(cfg, n_cols: int, n_rows: int) -> KernelAE:
  del n_rows
  _check_keys(cfg, "kernel_ae", ("hidden", "kernel_dim", "activation"),
              _GRADIENT_OPTIONAL + ("weight_init",))
  _check_sparse_input(cfg)
  return KernelAE(n_cols=n_cols, hidden=_sizes(cfg, "hidden"), kernel_dim=_pos_int(cfg, "kernel_dim"),
                  activation=_activation(cfg), dtype=_dtype(cfg), weight_init=_weight_init(cfg))


def _build_glocal_k(cfg, n_cols: int, n_rows: int) -> GLocalK:
  _check_keys(cfg, "glocal_k", ("hidden", "kernel_dim", "activation", "gk_size", "dot_scale"),
              _GRADIENT_OPTIONAL + ("weight_init", "global_init"))
  _check_sparse_input(cfg)
  global_init = (_choice(cfg, "global_init", GLOBAL_INITS) if "global_init" in cfg
                 else "random")
  if n_rows <= 0:
    raise ConfigError(f"glocal_k needs the number of rows (its global kernel has one weight "
                      f"vector per row), got n_rows={n_rows}")
  return GLocalK(n_cols=n_cols, n_rows=n_rows, hidden=_sizes(cfg, "hidden"),
                 kernel_dim=_pos_int(cfg, "kernel_dim"), gk_size=_pos_int(cfg, "gk_size"),
                 dot_scale=_finite(cfg, "dot_scale", positive=True), activation=_activation(cfg),
                 dtype=_dtype(cfg), weight_init=_weight_init(cfg), global_init=global_init)


def needs_all_rows(model) -> bool:
  """Whether every call of ``model`` must hold all rows of the matrix (GLocal-K's global kernel)."""
  return bool(getattr(model, "needs_all_rows", False))


def has_row_params(model) -> bool:
  """Whether ``model`` holds parameters of each training row (its ``n_rows``: CDAE's per-user
  node, GLocal-K's global kernel): it scores the rows it was trained on, and a new row has no
  parameters to be scored with (fold-in, ``jaxae.recommender.check_fold_in``, refuses it)."""
  return int(getattr(model, "n_rows", 0) or 0) > 0


def _check_max_bytes(cfg) -> None:
  """The closed-form models' optional device-memory budget: a positive int, or None / absent."""
  mb = cfg["max_bytes"] if "max_bytes" in cfg else None
  if mb is not None:
    checks.number(mb, "model.max_bytes", minimum=1, integer=True)


def _build_ease(cfg, n_cols: int, n_rows: int) -> EASE:
  del n_rows
  _check_keys(cfg, "ease", ("l2",), ("max_bytes", "solver", "block_size", "sparse_input"))
  _check_sparse_input(cfg)
  _nonneg(cfg, "l2")
  _check_max_bytes(cfg)
  solver = cfg["solver"] if "solver" in cfg else None
  if solver is not None and solver not in EASE_SOLVERS:
    raise ConfigError(f"config.model.solver: unknown EASE solver {solver!r}; known: "
                      f"{', '.join(EASE_SOLVERS)}")
  if cfg.get("block_size") is not None:
    _pos_int(cfg, "block_size")
  return EASE(n_cols=n_cols)


def _nonneg(cfg, key: str, integer: bool = False) -> float | int:
  return checks.number(cfg[key], f"model.{key}", minimum=0, integer=integer,
                       maximum=2**31 - 1 if integer else None)


def _choice(cfg, key: str, choices: tuple[str, ...]) -> str:
  v = cfg[key]
  if v not in choices:
    raise ConfigError(f"config.model.{key}: unknown value {v!r}; known: {', '.join(choices)}")
  return v


def _build_bspm(cfg, n_cols: int, n_rows: int) -> nn.Module:
  _check_keys(cfg, "bspm", bspm_lib.KEYS, ("max_bytes", "sparse_input"))
  _check_sparse_input(cfg)
  for key in ("idl_beta", "blur_time", "sharpen_time"):
    _nonneg(cfg, key)
  for key in ("factor_dim", "blur_steps", "sharpen_steps", "svd_oversample", "svd_power_iters"):
    _nonneg(cfg, key, integer=True)
  _pos_int(cfg, "block_size")
  _choice(cfg, "sharpen_solver", bspm_lib.SOLVERS)
  _choice(cfg, "merge", bspm_lib.MERGES)
  _choice(cfg, "svd_solver", bspm_lib.SVD_SOLVERS)
  if n_rows > 0 and cfg["factor_dim"] >= min(n_rows, n_cols):
    raise ConfigError(f"config.model.factor_dim={cfg['factor_dim']} must be smaller than "
                      f"min(rows, items) = {min(n_rows, n_cols)}")
  _check_max_bytes(cfg)
  return BSPM(n_cols=n_cols)


def _build_most_popular(cfg, n_cols: int, n_rows: int) -> MostPopular:
  del n_rows
  _check_keys(cfg, "most_popular", (), ("sparse_input",))
  _check_sparse_input(cfg)
  return MostPopular(n_cols=n_cols)


MODELS: dict[str, Callable[[Any, int, int], nn.Module]] = {
    "deep_ae": _build_deep_ae,
    "autorec": _build_autorec,
    "cdae": _build_cdae,
    "mult_dae": _mult_builder(MultDAE, "mult_dae"),
    "mult_vae": _mult_builder(MultVAE, "mult_vae"),
    "ease": _build_ease,
    "bspm": _build_bspm,
    "kernel_ae": _build_kernel_ae,
    "glocal_k": _build_glocal_k,
    "most_popular": _build_most_popular,
}

# Closed-form (non-gradient) models: name -> fit(model_config, train) -> params pytree.
CLOSED_FORM: dict[str, Callable[[Any, Any], dict]] = {
    "ease": fit_ease_from_config,
    "bspm": bspm_lib.fit_bspm_from_config,
    "most_popular": fit_most_popular_from_config,
}


def _name(model_config) -> str:
  if "name" not in model_config:
    raise ConfigError(f"config.model: missing key name; known models: {', '.join(sorted(MODELS))}")
  name = model_config["name"]
  if not isinstance(name, str) or name not in MODELS:
    raise ConfigError(
        f"config.model.name: unknown model {name!r}; known: {', '.join(sorted(MODELS))}")
  return name


def build_model(model_config, n_cols: int, n_rows: int) -> nn.Module:
  """The flax module ``config.model`` names, for a matrix of ``n_rows`` x ``n_cols``."""
  if n_cols <= 0:
    raise ConfigError(f"cannot build a model for {n_cols} columns")
  return MODELS[_name(model_config)](model_config, int(n_cols), int(n_rows))


def is_trainable(model_config) -> bool:
  """False for closed-form models (fit with ``CLOSED_FORM[name]``), True for gradient models."""
  return _name(model_config) not in CLOSED_FORM
