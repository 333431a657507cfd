"""`TrainState`: everything that changes during training, as one explicit pytree.

``step`` counts train steps (batches), ``params`` is the model's parameter pytree, ``opt_state`` the
optax state, ``rng`` the run's base PRNG key (raw uint32[2]; per-step keys are folded in from it, so
it never changes). The optax transformation rides along as static (non-pytree) data so the compiled
step can apply it; checkpoints hold only the array leaves.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from jaxae.data.sparse import SparseBatch


class TrainState(struct.PyTreeNode):
  step: jax.Array
  params: Any
  opt_state: Any
  rng: jax.Array
  tx: optax.GradientTransformation = struct.field(pytree_node=False)

  def apply_gradients(self, grads: Any, **extra_args) -> "TrainState":
    """One optimizer update of ``params`` (does not advance ``step``); ``extra_args`` go to the
    transformation's update (L-BFGS: ``value``, ``grad``, ``value_fn``)."""
    updates, opt_state = self.tx.update(grads, self.opt_state, self.params, **extra_args)
    return self.replace(params=optax.apply_updates(self.params, updates), opt_state=opt_state)


def example_input(n_cols: int, sparse_input: bool, batch_size: int = 1) -> Any:
  """A zero input of the right kind for ``module.init`` (dense [B, n_cols] or a SparseBatch)."""
  if not sparse_input:
    return jnp.zeros((batch_size, n_cols), jnp.float32)
  return SparseBatch(rows=jnp.zeros((batch_size,), jnp.int32),
                     mask=jnp.ones((batch_size,), jnp.float32),
                     lengths=jnp.zeros((batch_size,), jnp.int32),
                     cols=jnp.zeros((1, 1), jnp.int32), vals=jnp.zeros((1, 1), jnp.float32),
                     seg=jnp.zeros((1, 1), jnp.int32))


def init_params(model, n_cols: int, sparse_input: bool, key: jax.Array) -> Any:
  """The model's ``params`` collection for ``key`` (a pure function of the key)."""
  k_params, k_drop = jax.random.split(key)
  x = example_input(n_cols, sparse_input)
  variables = model.init({"params": k_params, "dropout": k_drop}, x,
                         rows=jnp.zeros((1,), jnp.int32), train=False)
  return variables["params"]


def create_train_state(model, tx: optax.GradientTransformation, n_cols: int, sparse_input: bool,
                       seed: int) -> TrainState:
  """A fresh state from the seed: ``init`` gets one half of ``PRNGKey(seed)``, dropout the other.

  Call it under ``jax.jit`` (with ``out_shardings``) to build the state directly on the mesh, or
  under ``jax.eval_shape`` to get the abstract state a checkpoint restores into.
  """
  root = jax.random.PRNGKey(seed)
  k_init, k_run = jax.random.split(root)
  params = init_params(model, n_cols, sparse_input, k_init)
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params),
                    rng=k_run, tx=tx)
