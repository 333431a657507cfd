r"""Evaluates a trained run from its workdir, or scores a Melon results file.

  python eval.py --workdir=DIR [--step=N | --best] [--split=val|test] [--ensemble=DIR2,DIR3]
                 [--score_dtype=model|float32|bfloat16] [--override=eval.KEY=VALUE ...]
  python eval.py melon --answers=answers.json --results=results.json [--question_types=types.json]

The first form loads the checkpoint (the latest, or ``--step``), rebuilds the data from the saved
config, checks it is the data the model was trained on, runs the config's evaluators on the split,
writes ``DIR/metrics_<split>_step<N>.json`` and ``DIR/metrics.json`` (plus ``DIR/results.json``
for Melon) and prints a table. The ``melon`` subcommand scores a results file made by any system
with the official Kakao Arena metric (strict validation). Everything else is ``jaxae.evaluate``.
"""

from absl import app
from absl import flags
from absl import logging

from jaxae import cli

_WORKDIR = flags.DEFINE_string("workdir", None, "The run's directory (what train.py wrote).")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step to evaluate; default: the latest.")
_BEST = flags.DEFINE_bool(
    "best", False, "Evaluate the kept checkpoint with the best validation config.eval.metric "
    "(what train.py kept as the best) instead of the latest.")
_SPLIT = flags.DEFINE_enum("split", "val", ["val", "test"], "Which split to evaluate.")
_ENSEMBLE = flags.DEFINE_list(
    "ensemble", [], "Other workdirs trained on the same data: evaluate the mean of their scores "
    "and --workdir's (each at --step, its --best step, or its latest); the metrics go to "
    "DIR/metrics_<split>_step<N>_ensemble<K>.json.")
_ANSWERS = flags.DEFINE_string("answers", None, "melon: the answers JSON (id, songs, tags).")
_RESULTS = flags.DEFINE_string("results", None, "melon: the results JSON to score.")
_QUESTION_TYPES = flags.DEFINE_string(
    "question_types", None, "melon: optional JSON {playlist id: question type} for a breakdown.")
_EMPTY_ANSWERS = flags.DEFINE_enum(
    "empty_answers", "error", ["error", "skip"],
    "melon: an answer without songs or tags is an error (as officially) or left out of that mean.")
_SCORE_DTYPE = flags.DEFINE_enum(
    "score_dtype", None, list(cli.SCORE_DTYPES),
    "The top-N evaluator's output-layer product from operands in this dtype, float32 "
    "accumulation (config.eval.score_dtype; default: the run's config): bfloat16 was faster on "
    "an AMD CPU with AVX512_BF16, slower on an Intel one with it, and moves the metrics within "
    "its rounding (docs/benchmarks.md). The "
    "record says which was used.")
_OVERRIDE = flags.DEFINE_multi_string(
    "override", [], "KEY=VALUE (repeatable): a config.eval setting changed for this evaluation, "
    "the value a Python literal (strings in quotes), e.g. "
    "--override=eval.recommender_args.song_neighbours=100. Only eval.* keys: the model and the "
    "data are the checkpoint's. The record lists the overrides.")
cli.define_malloc_flags()

_COMMANDS = ("melon",)


def _evaluate() -> None:
  from jaxae import evaluate  # pylint: disable=import-outside-toplevel
  def pick(workdir):
    return evaluate.best_step(workdir) if _BEST.value else _STEP.value

  ensemble = tuple((w, pick(w)) for w in _ENSEMBLE.value)
  overrides = cli.parse_assignments(_OVERRIDE.value, "--override",
                                    example="eval.recommender='most_popular'")
  record = evaluate.evaluate_workdir(_WORKDIR.value, pick(_WORKDIR.value), _SPLIT.value,
                                     ensemble=ensemble, score_dtype=_SCORE_DTYPE.value,
                                     overrides=overrides)
  print(evaluate.format_table(record))


def _melon() -> None:
  from jaxae import evaluate  # pylint: disable=import-outside-toplevel
  scores = evaluate.score_melon_files(_ANSWERS.value, _RESULTS.value, _QUESTION_TYPES.value,
                                      empty_answers=_EMPTY_ANSWERS.value)
  print(evaluate.format_table(evaluate.melon_record(scores, _RESULTS.value)))


def main(argv):
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.ERROR)   # orbax logs every restore; --verbosity=0 shows it all
  args = argv[1:]
  if args and args[0] in _COMMANDS:
    if len(args) > 1:
      raise app.UsageError(f"unexpected arguments: {' '.join(args[1:])}")
    missing = [f"--{f.name}" for f in (_ANSWERS, _RESULTS) if not f.value]
    if missing:
      raise app.UsageError(f"eval.py melon needs {' and '.join(missing)}")
    if _WORKDIR.value:
      raise app.UsageError("eval.py melon scores files; --workdir belongs to the evaluation form")
    cli.run(_melon)
    return
  if args:
    raise app.UsageError(f"unexpected arguments: {' '.join(args)} (the only subcommand is "
                         f"{', '.join(_COMMANDS)})")
  if not _WORKDIR.value:
    raise app.UsageError("--workdir is required (or use the subcommand: eval.py melon ...)")
  if _BEST.value and _STEP.value is not None:
    raise app.UsageError("--best and --step both pick the checkpoint: give one of them")
  cli.tune_malloc()                               # before jax: may re-execute the process
  cli.run(_evaluate)


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
