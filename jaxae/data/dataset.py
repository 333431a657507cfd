"""`Dataset`: what a data pipeline hands to training and evaluation.

A pipeline (``jaxae.data.pipelines``, picked by ``config.data.name``) turns files (or the embedded
synthetic data) into one of these. Every matrix in it shares the column space of ``train``; the
evaluation splits also share its row space, so a row index means the same user/item/song everywhere.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from jaxae.data.matrix import Interactions


@dataclasses.dataclass
class EvalSplit:
  """Rows to score and what they should predict.

  Attributes:
    inputs: what the model sees for each evaluated row (e.g. a user's training items, or the
      fold-in part under strong generalization); same columns as ``Dataset.train``.
    targets: the held-out entries of the same rows (ratings for RMSE, items for top-N).
    rows: indices (into ``inputs``) of the rows to evaluate; ``None`` means every row that has at
      least one target.
    info: counts the evaluators report (e.g. ``{"targets_unseen_in_train": 12}``).
  """

  inputs: Interactions
  targets: Interactions
  rows: Any = None
  info: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Dataset:
  """The training matrix, the evaluation splits, and pipeline-specific extras.

  Attributes:
    train: the matrix the autoencoder trains on; each row is one example (input = target).
    val, test: evaluation splits (``None`` when the data has none).
    info: plain facts about the data (``name``, ``orientation`` such as "item"/"user"/"song",
      ``rating_range`` for explicit ratings, counts of what loading skipped), saved with checkpoints.
    extras: pipeline-specific objects the recommenders need (e.g. Melon playlists and questions).
    train_rows: indices of the rows of ``train`` that training iterates over; ``None`` means every
      row. Set under strong generalization, where ``train`` keeps every user's row (so indices
      agree with the evaluation splits) but the held-out users' rows are empty and must not be
      trained on (an empty row would still enter a batch's mean and, for Mult-VAE, its KL term).
  """

  train: Interactions
  val: EvalSplit | None = None
  test: EvalSplit | None = None
  info: dict = dataclasses.field(default_factory=dict)
  extras: dict = dataclasses.field(default_factory=dict)
  train_rows: Any = None

  @property
  def n_rows(self) -> int:
    return self.train.shape[0]

  @property
  def n_cols(self) -> int:
    return self.train.shape[1]
