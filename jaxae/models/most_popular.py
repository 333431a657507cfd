"""Most popular: every row gets the same score for an item, the number of training rows that hold it.

The baseline any top-N result is read against (a personalized model that does not beat it has
learned little). Fitted in closed form (:func:`fit_most_popular_from_config`: the column counts of
the training matrix, on the host from its CSR structure, whatever the stored values are); scored
through the same ``apply(...)["recon"]`` path as every model, so the evaluators, ``jaxae.predict``
and the :class:`~jaxae.recommender.Recommender` rank it as they rank the others (with a row's own
items excluded where they exclude them). Ties keep the lower column index first (the rankers'
order), so results are deterministic.

It predicts no ratings: it is meant for the top-N evaluator (``check_config`` refuses it beside a
rating evaluator).
"""

from __future__ import annotations

from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

from jaxae.data.sparse import SparseBatch


def column_counts(matrix: Any) -> np.ndarray:
  """Training rows holding each column (stored entries per column; explicit zeros count, as the
  readers never store them), float32 (exact below 2**24 rows)."""
  m = sp.csr_matrix(matrix) if not sp.issparse(matrix) else matrix.tocsr()
  return np.bincount(m.indices, minlength=m.shape[1]).astype(np.float32)


def fit_most_popular_from_config(model_config, train: Any) -> dict[str, jax.Array]:
  """``CLOSED_FORM["most_popular"]``: ``{"counts": [n_cols]}`` of the training matrix (an
  ``Interactions``, a scipy matrix or an array); ``config.model`` has no setting it reads."""
  del model_config
  return {"counts": jnp.asarray(column_counts(getattr(train, "matrix", train)))}


class MostPopular(nn.Module):
  """``recon[b, j] = counts[j]`` for every row ``b`` (parameter "counts" [n_cols]).

  Not trainable (``trainable`` is False): its params come from
  :func:`fit_most_popular_from_config`; ``init`` gives zeros of the right shape.
  """

  n_cols: int

  trainable: ClassVar[bool] = False

  @nn.compact
  def __call__(self, x: jax.Array | SparseBatch, *, rows: jax.Array | None = None,
               train: bool = False) -> dict[str, jax.Array]:
    del rows, train
    counts = self.param("counts", nn.initializers.zeros, (self.n_cols,), jnp.float32)
    batch = x.batch_size if isinstance(x, SparseBatch) else x.shape[0]
    return {"recon": jnp.broadcast_to(counts, (batch, self.n_cols))}
