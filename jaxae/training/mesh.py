"""The device mesh and the shardings the engine uses, plus joining a multi-process (multi-host) run.

Every device of every host joins one ``("data", "model")`` mesh. Batches are split along their
leading axis over "data". With ``config.mesh.model == 1`` parameters and optimizer state are
replicated. With ``config.mesh.model > 1`` the item dimension is split over "model"
(:func:`item_axis_spec`, a rule on the shapes of the params pytree): the first layer's kernel by
rows, the last layer's kernel by its item axis (rows of the item-major ``[n, d]`` of the deep AE,
CDAE and Mult-DAE / Mult-VAE, columns of AutoRec's and the kernelized models' ``[d, n]``) and its
bias, so a catalog too large for one device is cut into ``model`` slices; everything else stays
replicated, and the optimizer state follows the params (Adam's moments have the params' shapes, so
the same rule places them). Dense [batch, items] arrays (targets, outputs) are split over both axes
(:func:`items_sharding`); XLA's SPMD partitioner turns the embedding-bag gather into a local masked
gather plus a sum over "model", and the output layer into a local matmul. Models that can pad their
item dimension (``item_shards``) are padded to a multiple of the model axis (:func:`shard_items`);
others need the item count to divide evenly.

Host batches become global arrays with ``jax.make_array_from_process_local_data``, which works the
same for one process and for many; :func:`initialize_distributed` joins the processes first.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

from jaxae import checks
from jaxae.errors import ConfigError, JaxaeError

DATA_AXIS = "data"
MODEL_AXIS = "model"
_MESH_KEYS = ("data", "model")


def _mesh_value(mesh_config, key: str) -> int:
  if key not in mesh_config:
    raise ConfigError(f"config.mesh.{key} is missing")
  return checks.number(mesh_config[key], f"mesh.{key}", integer=True)


def make_mesh(mesh_config, devices: list | None = None) -> Mesh:
  """Builds the ``("data", "model")`` mesh over all devices (of every process).

  Args:
    mesh_config: ``config.mesh`` with ``data`` (-1 = all devices / model) and ``model`` (>= 1).
    devices: the devices to use; default ``jax.devices()`` (all hosts).

  Raises:
    ConfigError: when the sizes are not positive or do not multiply to the device count.
  """
  devices = list(jax.devices() if devices is None else devices)
  data = _mesh_value(mesh_config, "data")
  model = _mesh_value(mesh_config, "model")
  n = len(devices)
  if model < 1:
    raise ConfigError(f"config.mesh.model must be >= 1, got {model}")
  if data == -1:
    if n % model:
      raise ConfigError(f"config.mesh.model={model} does not divide the {n} devices")
    data = n // model
  if data < 1:
    raise ConfigError(f"config.mesh.data must be -1 or >= 1, got {data}")
  if data * model != n:
    raise ConfigError(f"config.mesh data={data} x model={model} = {data * model} devices, but "
                      f"there are {n}; use data=-1 for all devices")
  return jax.make_mesh((data, model), (DATA_AXIS, MODEL_AXIS),
                       axis_types=(AxisType.Auto, AxisType.Auto), devices=devices)


def data_size(mesh: Mesh) -> int:
  """Size of the data axis: the number of shards a batch is cut into."""
  return int(mesh.shape[DATA_AXIS])


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Leading axis split over "data", the rest replicated (fits [B], [B, n] and [S, N] alike)."""
  return NamedSharding(mesh, P(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
  """Every device holds the whole array (parameters, optimizer state, scalar metrics)."""
  return NamedSharding(mesh, P())


def put_global(tree: Any, sharding: NamedSharding) -> Any:
  """Turns this process's numpy arrays (its rows of the global batch) into global jax arrays.

  Every leaf's leading axis is the one split over "data"; with one process the local array is the
  global one.
  """
  return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)),
                      tree)


def put_replicated(tree: Any, mesh: Mesh) -> Any:
  """Places a pytree (e.g. freshly initialised parameters) replicated on every device."""
  return jax.device_put(tree, replicated(mesh))


# --------------------------------------------------------------------------- the model axis
def model_size(mesh: Mesh) -> int:
  """Size of the model axis: how many slices the item dimension is cut into."""
  return int(mesh.shape[MODEL_AXIS])


def padded_items(n_items: int, shards: int) -> int:
  """``n_items`` rounded up to a multiple of ``shards`` (the item dimension a padded model holds)."""
  shards = max(int(shards), 1)
  return -(-int(n_items) // shards) * shards


def shard_items(model, mesh: Mesh, n_items: int):
  """The model to train on ``mesh``: padded to ``item_shards = model axis`` when it supports it.

  A model with an ``item_shards`` attribute (Deep AE) holds ``padded_items(n, model)`` items in
  its first and last layer (the extra rows / columns are zeros that never reach an output, so it
  computes the same function as the unpadded model). Other models need ``n_items`` to be a multiple
  of the model axis.

  Raises:
    ConfigError: the model axis is > 1, the model cannot pad and ``n_items`` does not divide.
  """
  shards = model_size(mesh)
  if shards == 1:
    return model
  if hasattr(model, "item_shards"):
    return model.clone(item_shards=shards)
  if int(n_items) % shards:
    raise ConfigError(f"config.mesh.model={shards} must divide the {n_items} items for model "
                      f"{type(model).__name__} (only deep_ae pads its item dimension); use a "
                      f"divisor of {n_items} or mesh.model=1")
  return model


def item_axis_spec(shape: tuple[int, ...], n_items_padded: int) -> P:
  """The rule: the last axis whose length is the (padded) item count goes over "model".

  It picks the first layer's kernel rows ``[n, d]``, the last layer's kernel rows (an item-major
  ``[n, d]``, ``layers.ItemDense``) or columns (``[d, n]``) and bias ``[n]`` (and an item-item
  ``[n, n]`` matrix by columns); other leaves are replicated.
  """
  for axis in range(len(shape) - 1, -1, -1):
    if int(shape[axis]) == int(n_items_padded):
      return P(*([None] * axis + [MODEL_AXIS]))
  return P()


def param_shardings(params: Any, mesh: Mesh, n_items: int) -> Any:
  """A NamedSharding per leaf of ``params`` (arrays or ShapeDtypeStructs) by :func:`item_axis_spec`;
  all replicated when the model axis has size 1."""
  shards = model_size(mesh)
  n_pad = padded_items(n_items, shards)

  def one(x):
    if shards == 1:
      return NamedSharding(mesh, P())
    return NamedSharding(mesh, item_axis_spec(np.shape(x), n_pad))

  return jax.tree.map(one, params)


def state_shardings(state: Any, mesh: Mesh, n_items: int) -> Any:
  """Shardings of a TrainState (arrays or abstract): params and optimizer state by the item rule
  (the optimizer's moments have the params' shapes, so they follow), step and rng replicated."""
  rep = replicated(mesh)
  return state.replace(step=rep, rng=rep, params=param_shardings(state.params, mesh, n_items),
                       opt_state=param_shardings(state.opt_state, mesh, n_items))


def items_sharding(mesh: Mesh) -> NamedSharding:
  """[batch, items] arrays: rows over "data", items over "model"."""
  return NamedSharding(mesh, P(DATA_AXIS, MODEL_AXIS))


def constrain_items(x: jax.Array, mesh: Mesh | None) -> jax.Array:
  """``with_sharding_constraint`` of a [batch, items] array to :func:`items_sharding` (inside jit);
  a no-op without a mesh or with a model axis of 1."""
  if mesh is None or model_size(mesh) == 1:
    return x
  return jax.lax.with_sharding_constraint(x, items_sharding(mesh))


# --------------------------------------------------------------------------- multi-process runs
def initialize_distributed(*, coordinator_address: str | None = None,
                           num_processes: int | None = None, process_id: int | None = None,
                           cpu_collectives: str | None = "gloo") -> None:
  """Joins this process to a multi-process JAX run (before anything touches the devices).

  With all three of ``coordinator_address`` ("host:port" of process 0), ``num_processes`` and
  ``process_id`` given, those are used; with none of them, ``jax.distributed.initialize()``
  discovers them from the environment (TPU VM metadata, SLURM, Open MPI). On CPU the processes
  exchange gradients over ``cpu_collectives`` ("gloo"; None leaves JAX's setting).

  Raises:
    ConfigError: only some of the three are given, or they are out of range.
    JaxaeError: the coordinator cannot be reached (the message says which address).
  """
  given = [v is not None for v in (coordinator_address, num_processes, process_id)]
  if any(given) and not all(given):
    raise ConfigError("--coordinator_address, --num_processes and --process_id go together: give "
                      "all three, or none to detect them from the environment (TPU VM)")
  if all(given):
    if int(num_processes) < 1 or not 0 <= int(process_id) < int(num_processes):
      raise ConfigError(f"--process_id={process_id} must be in [0, --num_processes="
                        f"{num_processes})")
  if cpu_collectives:
    jax.config.update("jax_cpu_collectives_implementation", cpu_collectives)
  try:
    if all(given):
      jax.distributed.initialize(coordinator_address=coordinator_address,
                                 num_processes=int(num_processes), process_id=int(process_id))
    else:
      jax.distributed.initialize()
  except (RuntimeError, ValueError) as e:
    where = coordinator_address or "the address found in the environment"
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    raise JaxaeError(f"cannot join the multi-process run at {where}: {first}") from None


def with_saved_padding(model, config):
  """``model`` padded as a checkpoint saved under ``config`` has it (``config.mesh.model`` item
  shards), whatever mesh it is restored on; unchanged for models that do not pad."""
  shards = int(config.mesh.model) if "mesh" in config and "model" in config.mesh else 1
  if shards > 1 and hasattr(model, "item_shards"):
    return model.clone(item_shards=shards)
  return model
