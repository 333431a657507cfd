"""What `train.py`, `eval.py` and the other commands share: default paths, turning a JaxaeError into
one line, config settings given as ``KEY=VALUE`` flags, and glibc's malloc tuned for XLA:CPU
(``--hugepages``, ``--keep_heap``)."""

from __future__ import annotations

import ast
import importlib.util
import os
import pathlib
import sys
from typing import Any, Callable

from absl import flags
from absl import logging

from jaxae.errors import ConfigError, JaxaeError


class _OwnInfoOnly:
  """A logging filter: INFO and below only from jaxae's own modules; warnings from anywhere."""

  def filter(self, record) -> bool:  # pylint: disable=missing-function-docstring
    return record.levelno >= logging.converter.ABSL_TO_STANDARD[logging.WARNING] or (
        f"{os.sep}jaxae{os.sep}" in record.pathname)


def quiet_third_party_logs() -> None:
  """Keeps jaxae's own INFO lines (what readers skipped, dataset shapes) and drops the INFO lines of
  libraries (Orbax logs every step of every save). ``--verbosity`` still raises or lowers the level."""
  logging.get_absl_handler().addFilter(_OwnInfoOnly())


HUGETLB = "glibc.malloc.hugetlb=1"
HUGEPAGES_HELP = (
    "Run with GLIBC_TUNABLES=glibc.malloc.hugetlb=1 (re-executes the process once, on Linux): "
    "glibc's malloc then asks for transparent huge pages, and the per-step buffers XLA:CPU "
    "allocates stop page-faulting 4 KiB at a time (faster whole runs on a CPU: python -m "
    "bench.hugepages, docs/benchmarks.md). --nohugepages leaves this tunable out.")
# One heap for every thread (XLA's worker threads otherwise get arenas of their own, which take
# every large buffer from mmap whatever mmap_max says), no mmap, and freed memory never handed back:
# XLA:CPU's per-step buffers are then carved again from memory the process already holds.
KEEP_HEAP = ("glibc.malloc.arena_max=1", "glibc.malloc.mmap_max=0",
             f"glibc.malloc.trim_threshold={1 << 40}")
KEEP_HEAP_HELP = (
    "Run with GLIBC_TUNABLES=" + ":".join(KEEP_HEAP) + " (re-executes the process once, on "
    "Linux): all of malloc's memory in one heap that keeps what is freed, so the buffers XLA:CPU "
    "allocates for every step reuse memory the process holds instead of faulting in fresh pages. "
    "Some CPU steps run faster for a larger peak resident memory, hence off by default (the "
    "figures: python -m bench.run --keep_heap, docs/benchmarks.md).")
# The commands' malloc flags: name -> (default, the glibc tunables it adds).
MALLOC_FLAGS = {"hugepages": (True, (HUGETLB,)), "keep_heap": (False, KEEP_HEAP)}


# config.eval.score_dtype's values, for the commands' flags (read before jax is imported):
# "model" (the model's own forward) and the names of jaxae.models.layers.DTYPES (a test checks).
SCORE_DTYPES = ("model", "float32", "bfloat16")

# Flags defined through this module's helpers belong to the command that calls them (its --help).
flags.disclaim_key_flags()


def define_malloc_flags(note: str = "") -> None:
  """Defines a command's ``--hugepages`` (default on; help :data:`HUGEPAGES_HELP` plus ``note``) and
  ``--keep_heap`` (default off; :data:`KEEP_HEAP_HELP`) flags; the command calls
  :func:`tune_malloc` before it imports jax."""
  flags.DEFINE_bool("hugepages", MALLOC_FLAGS["hugepages"][0],
                    HUGEPAGES_HELP + (" " + note if note else ""))
  flags.DEFINE_bool("keep_heap", MALLOC_FLAGS["keep_heap"][0], KEEP_HEAP_HELP)


def malloc_mode() -> str:
  """How glibc's malloc is tuned for this process (for logs and benchmark headers)."""
  tun = os.environ.get("GLIBC_TUNABLES", "")
  return f"GLIBC_TUNABLES={tun}" if tun else "glibc malloc defaults (4 KiB pages)"


def reexec_with_tunables(tunables) -> None:
  """Re-executes this process's command line (``sys.orig_argv``: the same interpreter options,
  script or ``-m`` module and arguments) with ``tunables`` (``"name=value"`` strings) added to
  GLIBC_TUNABLES, which glibc reads only at process start. A tunable whose name GLIBC_TUNABLES
  already holds is not added (a user's own setting, or the re-executed process itself); a no-op
  off Linux or when nothing is added. Call it before any work: ``os.execve`` replaces the process
  (same pid, same open files). A glibc without a tunable (hugetlb: before 2.35) or a libc other
  than glibc ignores it."""
  tun = os.environ.get("GLIBC_TUNABLES", "")
  named = {t.partition("=")[0] for t in tun.split(":") if t}
  add = [t for t in tunables if t.partition("=")[0] not in named]
  if not sys.platform.startswith("linux") or not add:
    return
  env = dict(os.environ, GLIBC_TUNABLES=":".join(([tun] if tun else []) + add))
  sys.stdout.flush()
  sys.stderr.flush()
  os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)


def malloc_choice() -> dict[str, bool]:
  """``{flag: on}`` for each of :data:`MALLOC_FLAGS` as absl parsed the command line."""
  return {name: bool(flags.FLAGS[name].value) for name in MALLOC_FLAGS}


def _tunables(choice: dict[str, bool]) -> list[str]:
  """The glibc tunables of the flags of :data:`MALLOC_FLAGS` that ``choice`` turns on."""
  return [t for name, on in choice.items() if on for t in MALLOC_FLAGS[name][1]]


def tune_malloc(choice: dict[str, bool] | None = None) -> None:
  """What ``--hugepages`` / ``--keep_heap`` ask of a command (``choice``: their values; default:
  :func:`malloc_choice`): :func:`reexec_with_tunables` with the tunables of those that are on, then
  one log line saying how malloc is tuned (at ``--verbosity=1``: the commands' error output stays
  one line)."""
  choice = malloc_choice() if choice is None else choice
  reexec_with_tunables(_tunables(choice))
  off = "".join(f" (--no{name})" for name, on in choice.items()
                if not on and MALLOC_FLAGS[name][0])
  logging.vlog(1, "malloc: %s%s", malloc_mode(), off)


def malloc_early(argv: list[str]) -> None:
  """:func:`tune_malloc`'s re-execution for a ``python -m jaxae.<command>`` module that imports jax
  at its top: called first thing in its ``__main__`` (before those imports, before absl parses the
  flags), with each flag of :data:`MALLOC_FLAGS` read from the command line (``--keep_heap``,
  ``--nokeep_heap``, ``--keep_heap=false``; the last one given wins, as in absl; nothing after
  ``--``; a bad value: no re-execution, absl reports it). The command's own :func:`tune_malloc`
  call later finds the tunables set and logs."""
  choice = {name: default for name, (default, _) in MALLOC_FLAGS.items()}
  for arg in argv[1:]:
    if arg == "--":
      break
    name, _, value = arg.lstrip("-").partition("=")
    if not arg.startswith("-"):
      continue
    if name.startswith("no") and name[2:] in choice and not value:
      choice[name[2:]] = False
    elif name in choice:
      try:
        choice[name] = flags.BooleanParser().parse(value) if value else True
      except ValueError:
        return                                    # absl reports the bad value
  reexec_with_tunables(_tunables(choice))


def parse_assignments(specs: list[str], flag: str, form: str = "KEY=VALUE",
                      example: str = "eval.recommender='song_as_user'") -> dict[str, Any]:
  """``["a.b=1", "c='x'"]`` -> ``{"a.b": 1, "c": "x"}``: each value a Python literal
  (``ast.literal_eval``); a malformed spec or a key given twice is a one-line ConfigError naming
  ``flag``."""
  out: dict[str, Any] = {}
  for spec in specs:
    key, sep, raw = spec.partition("=")
    key = key.strip()
    if not sep or not key:
      raise ConfigError(f"{flag} {spec!r}: expected {form}")
    try:
      value = ast.literal_eval(raw.strip())
    except (ValueError, SyntaxError):
      raise ConfigError(f"{flag} {spec!r}: not a Python literal; strings need quotes, e.g. "
                        f"{example}") from None
    if key in out:
      raise ConfigError(f"{flag}: {key} is given twice")
    out[key] = value
  return out


def apply_override(config, key: str, value: Any, flag: str, open_sections=()) -> None:
  """Sets ``config.<key>`` (dotted) to ``value``; an unknown key or a wrong type is a one-line
  ConfigError naming ``flag``. A section in ``open_sections`` (dotted) may take keys it does not
  hold yet (keyword arguments that its reader checks, such as ``eval.recommender_args``)."""
  *parents, leaf = key.split(".")
  node = config
  for i, part in enumerate(parents):
    if not hasattr(node, "keys") or part not in node:
      raise ConfigError(f"{flag} {key}: the config has no section "
                        f"{'.'.join(parents[:i + 1])}")
    node = node[part]
  if not hasattr(node, "keys") or (leaf not in node and ".".join(parents) not in open_sections):
    raise ConfigError(f"{flag} {key}: the config has no key {key}")
  try:
    if leaf in node:
      node[leaf] = value
    else:
      with node.unlocked():
        node[leaf] = value
  except (TypeError, ValueError, KeyError, AttributeError) as e:
    raise ConfigError(f"{flag} {key}={value!r}: {' '.join(str(e).split())}") from None


def default_workdir(config_path: str) -> str:
  """``workdirs/<config file stem>`` under the current directory."""
  return os.path.join("workdirs", pathlib.Path(config_path).stem)


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing for ``app.run(main, flags_parser=parse_flags)``, every mistake one line.

  A bad flag value, an unknown flag, a ``--config.x.y=...`` override naming a key the config does
  not have or giving a value of the wrong type, or a config file that does not load: ``error:`` and
  one line on stderr, exit 2 (absl's own parser prints a traceback for some of these).
  """
  try:
    rest = flags.FLAGS(argv)
  except Exception as e:  # pylint: disable=broad-except  (flag parsing only: report, never trace)
    _exit_if_a_config_file_fails(argv)          # the config file itself, else an override
    text = " ".join(str(e).replace("\\n", " ").replace("\\'", "'").split())
    if len(text) > 1 and text[0] == text[-1] and text[0] in "'\"":
      text = text[1:-1]                       # a KeyError's repr inside an AttributeError
    overrides = [a for a in argv[1:] if a.startswith("--config.")]
    if isinstance(e, flags.Error):
      print(f"error: {text}", file=sys.stderr)
    else:
      applied = f" {' '.join(overrides)}" if overrides else ""
      print(f"error: cannot apply the config{applied}: {type(e).__name__}: {text}",
            file=sys.stderr)
    sys.exit(2)
  _exit_if_a_config_file_fails(argv, run=False)   # ml_collections defers a missing file's error
  return rest


def _exit_if_a_config_file_fails(argv: list[str], run: bool = True) -> None:
  """``error: --config=PATH: why`` and exit 2 when a config file on the command line gives no
  config (:func:`config_file_problem`; ``run`` False: only whether the file is there)."""
  for name, path in _config_files(argv):
    problem = config_file_problem(path, run)
    if problem:
      print(f"error: --{name}={path}: {problem}", file=sys.stderr)
      sys.exit(2)


def _config_files(argv: list[str]) -> list[tuple[str, str]]:
  """(flag name, value) of each config-file flag (``DEFINE_config_file``) on the command line."""
  # pylint: disable-next=import-outside-toplevel  (public, though not re-exported by the package)
  from ml_collections.config_flags.config_flags import is_config_flag
  names = [n for n in flags.FLAGS if is_config_flag(flags.FLAGS[n])]
  out = []
  for i, arg in enumerate(argv[1:], 1):
    for name in names:
      if arg.startswith(f"--{name}="):
        out.append((name, arg.split("=", 1)[1]))
      elif arg == f"--{name}" and i + 1 < len(argv):
        out.append((name, argv[i + 1]))
  return out


def _one_line(e: BaseException) -> str:
  return f"{type(e).__name__}: {' '.join(str(e).split())}"


def config_file_problem(path: str, run: bool = True) -> str | None:
  """Why the config file ``path`` (``FILE.py`` or ``FILE.py:ARG``, as ml_collections reads it)
  gives no config, in one line; None when ``get_config(ARG)`` returns one (``run`` False: when
  the file is there, without running it)."""
  file, *arg = path.split(":", 1)
  if not os.path.exists(file):
    return "no such file"
  if not os.path.isfile(file):
    return "not a file"
  if not run:
    return None
  try:
    spec = importlib.util.spec_from_file_location("jaxae_config_check", file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
  except Exception as e:  # pylint: disable=broad-except  (whatever the file raises, one line)
    return f"the config file does not load: {_one_line(e)}"
  get_config = getattr(module, "get_config", None)
  if not callable(get_config):
    return "the config file defines no get_config()"
  try:
    config = get_config(*arg)
  except Exception as e:  # pylint: disable=broad-except
    return f"get_config({', '.join(map(repr, arg))}) raised {_one_line(e)}"
  if config is None:
    return "get_config() returned None (a missing return?)"
  return None


def no_extra_args(argv: list[str]) -> None:
  """A command's first check: anything on its command line besides flags is a usage error (one
  line: ``unexpected arguments: ...``)."""
  if len(argv) > 1:
    from absl import app  # pylint: disable=import-outside-toplevel
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")


def quiet_unless_verbosity() -> None:
  """Only errors are logged unless ``--verbosity`` was given (the one-shot commands that restore a
  checkpoint: orbax logs every restore, and their summary line says what they did)."""
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.ERROR)


def os_error_line(e: OSError) -> str:
  """One line for an OSError: the OS reason and the file, e.g. ``No space left on device: x``."""
  reason = e.strerror or type(e).__name__
  name = e.filename if e.filename is not None else ""
  return f"{reason}: {name}" if name else f"{reason} ({' '.join(str(e).split())})"


def run(fn: Callable[..., Any], *args, **kwargs) -> Any:
  """Calls ``fn``; a user mistake (JaxaeError) ends the process with its one-line message, exit 2.

  An OSError that escapes the checks done up front (the disk filling up mid-run, a file removed
  under a running job) also ends in one line, exit 1 (checkpoints are atomic: the last complete one
  is what the same command resumes from).
  """
  try:
    return fn(*args, **kwargs)
  except JaxaeError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  except OSError as e:
    print(f"error: {os_error_line(e)}", file=sys.stderr)
    sys.exit(1)
  except KeyboardInterrupt:
    print("interrupted: the last checkpoint in the workdir is intact; run the same command to resume",
          file=sys.stderr)
    sys.exit(130)
