"""What a resumed run must share with the run that saved its checkpoint.

A workdir that holds checkpoints is resumed. The schedule may change on resume (more epochs,
another evaluation cadence), but the data and the model may not: a resume with another
``config.data.val_split``, another ``config.seed`` (the splits' draw) or another L2 weight of a
closed-form model would continue the saved run on other data, or reuse a fit of another model,
without a word. :func:`check_same_run` compares the saved config and data facts with this run's and
names every difference.

Compared: every key of ``config.model``; every key of ``config.data`` but ``path`` (data may move),
with the keys a pipeline took on after the run was saved filled as that run used them
(``pipelines.upgrade_saved``); ``config.seed``; and the data's facts (rows, columns, training
nonzeros), which also catch a path that now points to other data.
"""

from __future__ import annotations

import json
from typing import Any

import ml_collections

from jaxae.errors import ConfigError

FACTS = ("n_rows", "n_cols", "train_nnz")


def _plain(value: Any) -> Any:
  """JSON-normalized (tuples as lists), as the checkpoint stores a config."""
  return json.loads(json.dumps(value, default=str))


def _section(config, name: str) -> dict[str, Any]:
  """``config.<name>`` as JSON-normalized plain data ({} when the config has no such section)."""
  return _plain(config[name].to_dict()) if name in config else {}


def _differences(saved: dict[str, Any], now: dict[str, Any], prefix: str,
                 skip: tuple[str, ...] = ()) -> list[str]:
  """Keys whose values differ; keys only in ``now`` were added after the save and are skipped."""
  out = []
  for key in sorted(saved):
    if key in skip:
      continue
    if key not in now:
      out.append(f"{prefix}.{key}: saved {saved[key]!r}, absent now")
    elif saved[key] != now[key]:
      out.append(f"{prefix}.{key}: saved {saved[key]!r}, now {now[key]!r}")
  return out


def check_same_run(saved_config: dict[str, Any], saved_info: dict[str, Any], config,
                   info: dict[str, Any], where: str) -> None:
  """Raises ConfigError naming each difference between the run saved at ``where`` and this one.

  Args:
    saved_config: the ``config`` item of the checkpoint (JSON).
    saved_info: its ``dataset_info`` item.
    config: this run's ConfigDict.
    info: this run's data facts (``loop.dataset_info``).
    where: the checkpoint directory and step, for the message.
  """
  from jaxae.data import pipelines  # pylint: disable=import-outside-toplevel
  saved_data = pipelines.upgrade_saved(
      ml_collections.ConfigDict(saved_config.get("data") or {})).to_dict()
  diffs = _differences(_plain(saved_data), _section(config, "data"), "config.data",
                       skip=("path",))
  diffs += _differences(_plain(saved_config.get("model") or {}), _section(config, "model"),
                        "config.model")
  if "seed" in saved_config and _plain(saved_config["seed"]) != _plain(config.get("seed")):
    diffs.append(f"config.seed: saved {saved_config['seed']!r}, now {config.get('seed')!r}")
  for key in FACTS:
    if key in saved_info and key in info and int(saved_info[key]) != int(info[key]):
      diffs.append(f"the data's {key}: saved {saved_info[key]}, now {info[key]}")
  if diffs:
    raise ConfigError(
        f"{where} was saved by another run than this config describes ("
        + "; ".join(diffs) + "): resuming would continue it on other data or another model. "
        "Use a new --workdir (config.train.init_from starts a new run from its params), or "
        "set the keys back to resume it")
