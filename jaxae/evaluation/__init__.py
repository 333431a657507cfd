"""The evaluator registry: config names -> evaluator factories.

``config.eval.evaluators`` lists names from :data:`EVALUATORS`. A factory is called as
``factory(eval_config, dataset, split)`` and returns an :class:`Evaluator` whose ``run(ctx)`` gives
flat metrics ("rmse", "recall@20", "ndcg@20_liang" ...). To add an evaluator, import its factory
here and add one line to :data:`EVALUATORS`.
"""

from __future__ import annotations

from typing import Callable

from jaxae.data.dataset import Dataset
from jaxae.errors import ConfigError
from jaxae.evaluation.context import EvalContext, Evaluator, config_value, get_split
from jaxae.evaluation.melon import MelonEvaluator
from jaxae.evaluation.rating import RatingEvaluator
from jaxae.evaluation.topn import TopNEvaluator

EvaluatorFactory = Callable[..., Evaluator]

EVALUATORS: dict[str, EvaluatorFactory] = {
    "rating": RatingEvaluator,   # rmse, mae on held-out ratings
    "topn": TopNEvaluator,       # recall@K, recall@K_liang, ndcg@K over the full catalog
    "melon": MelonEvaluator,     # Kakao Arena music_ndcg, tag_ndcg, melon_score of a recommender
}


def build_evaluators(eval_config, dataset: Dataset, split: str) -> list[Evaluator]:
  """Builds the evaluators named in ``eval_config.evaluators`` for ``split`` ("val" | "test")."""
  names = config_value(eval_config, "evaluators")
  if isinstance(names, str):
    raise ConfigError(f"config.eval.evaluators must be a list of names, got the string {names!r}")
  out = []
  for name in list(names):
    if name not in EVALUATORS:
      raise ConfigError(f"config.eval.evaluators: unknown evaluator {name!r}; known: "
                        f"{sorted(EVALUATORS)}")
    out.append(EVALUATORS[name](eval_config, dataset, split))
  return out


def evaluators_with(flag: str) -> tuple[str, ...]:
  """The registered evaluator names whose class sets ``flag`` (``feeds_all_rows``,
  ``scores_only``: :class:`Evaluator`)."""
  return tuple(n for n, f in EVALUATORS.items() if getattr(f, flag, False))


def check_all_rows(model, n_rows: int, eval_config, train_batch_size: int | None = None) -> None:
  """For a model that must see every row at once (GLocal-K): the batch sizes must cover all
  ``n_rows`` rows and the evaluators must be ones that feed all rows; else a ConfigError."""
  from jaxae.models import needs_all_rows  # pylint: disable=import-outside-toplevel
  if not needs_all_rows(model):
    return
  sizes = [("train.batch_size", train_batch_size)] if train_batch_size is not None else []
  sizes.append(("eval.batch_size", int(config_value(eval_config, "batch_size"))))
  for key, size in sizes:
    if size < n_rows:
      raise ConfigError(f"config.{key} = {size}: this model ({type(model).__name__}) reads the "
                        f"whole matrix at every call, so a batch must hold all {n_rows} rows; set "
                        f"{key} >= {n_rows}")
  names = list(config_value(eval_config, "evaluators"))
  able = evaluators_with("feeds_all_rows")
  other = [n for n in names if n not in able]
  if other:
    raise ConfigError(f"config.eval.evaluators: {', '.join(map(repr, other))} cannot score "
                      f"{type(model).__name__}, which reads the whole matrix at every call; use "
                      f"{', '.join(able)}")


def split_available(names, dataset: Dataset, split: str) -> bool:
  """Whether every evaluator in ``names`` finds its data for ``split`` in ``dataset`` (its
  ``has_split``; a factory without one gets :meth:`Evaluator.has_split`'s default). An unknown name
  counts as available, so that :func:`build_evaluators` reports it."""
  for name in names:
    factory = EVALUATORS.get(name)
    if factory is None:
      continue
    if not getattr(factory, "has_split", Evaluator.has_split)(dataset, split):
      return False
  return True


__all__ = ["EVALUATORS", "evaluators_with", "check_all_rows", "EvalContext", "Evaluator",
           "build_evaluators", "config_value", "get_split", "split_available", "RatingEvaluator",
           "TopNEvaluator"]
