"""The data-parallel training engine: mesh, optimizer, state, compiled step, checkpoints, loop.

``train_and_evaluate(config, workdir)`` is the entry point (``train.py`` calls it);
``load_for_eval(workdir)`` loads a saved model in a process that has only the workdir.
"""

from jaxae.training.checkpoint import Checkpointer, load_for_eval, restore_latest
from jaxae.training.loop import check_config, train_and_evaluate
from jaxae.training.mesh import batch_sharding, make_mesh, replicated
from jaxae.training.optim import make_optimizer, make_schedule
from jaxae.training.state import TrainState, create_train_state
from jaxae.training.step import make_eval_fns, make_train_step

__all__ = [
    "Checkpointer", "TrainState", "batch_sharding", "check_config", "create_train_state",
    "load_for_eval", "make_eval_fns", "make_mesh", "make_optimizer", "make_schedule",
    "make_train_step", "replicated", "restore_latest", "train_and_evaluate",
]
