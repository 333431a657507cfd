"""The device mesh and the two shardings the engine uses: batch-sharded and replicated.

Every device of every host joins one ``("data", "model")`` mesh. Batches are split along their
leading axis over "data"; parameters and optimizer state are replicated (the "model" axis has size 1
until the item dimension is sharded over it). Host batches become global arrays with
``jax.make_array_from_process_local_data``, which works the same for one process and for many.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

from jaxae.errors import ConfigError

DATA_AXIS = "data"
MODEL_AXIS = "model"
_MESH_KEYS = ("data", "model")


def _mesh_value(mesh_config, key: str) -> int:
  if key not in mesh_config:
    raise ConfigError(f"config.mesh.{key} is missing")
  value = mesh_config[key]
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
    raise ConfigError(f"config.mesh.{key} must be an integer, got {value!r}")
  return int(value)


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
