"""The ``lucid-arch`` console script: a Hydra app over ``conf/``.

This module is the import path of ``--help``, ``--cfg``, ``--info`` and tab completion, so it
imports Hydra and the torch-free config layer only; a task imports torch when it runs.

Hydra reports a bad override with its own traceback-shaped text and exit status 1. Users of a
sweep tool need one sentence and a status a script can test, so :func:`main` asks Hydra to
raise (``HYDRA_FULL_ERROR``), turns what it raises into a :class:`ConfigError` paragraph on
stderr and exits with status 2. Set ``HYDRA_FULL_ERROR=1`` yourself to get Hydra's traceback.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import NoReturn, Optional, Sequence

import hydra
from omegaconf import DictConfig, OmegaConf

from ..training import launch_env
from ..config import ConfigError, Problem, config_dir, register_configs
from ..config.guard import model_files_checked
from . import completion, jobs, stopping, sweep_report
from .job_names import job_dir_name
from . import sweep_ledger
from .sweep_ledger import claim_new_dir
from .jobs import EXIT_FAILED


def _group_options(group: str) -> str:
    """The options of a config group, for --help: its YAMLs, without ``_``-prefixed bases."""
    return ", ".join(sorted(p.stem for p in (config_dir() / group).glob("*.yaml") if not p.stem.startswith("_")))


# The sweeper class of each hydra/sweeper option (conf/hydra/default.yaml names it through sweeper_class).
SWEEPERS = {"optuna": "hydra_plugins.lucid_arch_sweeps.OptunaSweeper"}
GRID_SWEEPER = "hydra_plugins.lucid_arch_sweeps.Sweeper"


def sweeper_class(*, _root_: DictConfig) -> str:
    """The class of the chosen hydra/sweeper: the app's grid sweeper unless it is one of SWEEPERS."""
    choice = OmegaConf.select(_root_, "hydra.runtime.choices", default={}) or {}
    return SWEEPERS.get(str(choice.get("hydra/sweeper", "")), GRID_SWEEPER)


OmegaConf.register_new_resolver("lucid_job_dir", job_dir_name, replace=True)
OmegaConf.register_new_resolver("lucid_sweeper_class", sweeper_class, replace=True)
OmegaConf.register_new_resolver("lucid_options", _group_options, replace=True)
OmegaConf.register_new_resolver("lucid_new_dir", claim_new_dir, replace=True, use_cache=True)  # once per sweep, like now
register_configs()


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="config")
def _app(cfg: DictConfig) -> None:
    jobs.run_job(cfg)  # torch-free until the task runs


_FLAGS_WITH_VALUES = ("-sc", "--shell-completion", "--experimental-rerun", "-cd", "--config-dir", "-cp", "--config-path", "-cn",
                      "--config-name", "-c", "--cfg", "-p", "--package")


def _overrides(argv: Sequence[str]) -> list[str]:
    """The overrides of a command line (every argument that is not one of Hydra's flags or their values)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in _FLAGS_WITH_VALUES:
            skip = True
        elif not arg.startswith("-"):
            out.append(arg)
    return out


def _after_last_override(argv: Sequence[str]) -> int:
    """Where one more override can go: beside the command line's own (argparse takes the overrides as one
    run of positionals), else first (so that no flag with an optional value, --info [TOPIC], reads it)."""
    last, skip = -1, False
    for i, arg in enumerate(argv):
        if skip:
            skip = False
        elif arg in _FLAGS_WITH_VALUES:
            skip = True
        elif not arg.startswith("-"):
            last = i
    return last + 1


def _config_dirs(argv: Sequence[str]) -> list[str]:
    """The directories ``-cd DIR`` / ``--config-dir[=]DIR`` add to the search path."""
    out = []
    for i, arg in enumerate(argv):
        if arg in ("-cd", "--config-dir") and i + 1 < len(argv):
            out.append(argv[i + 1])
        elif arg.startswith("--config-dir="):
            out.append(arg.split("=", 1)[1])
    return out


def _check_globs(argv: Sequence[str]) -> None:
    """A multirun whose ``group=glob(...)`` matches no option would run zero jobs and "succeed"; refuse it."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import ValueType

    from ..config.model_files import quote

    if not {"-m", "--multirun"} & set(argv):
        return
    try:
        parsed = OverridesParser.create().parse_overrides(_overrides(argv))
    except Exception:  # noqa: BLE001 - unparsable: Hydra names it when it composes
        return
    dirs = [config_dir(), *map(Path, _config_dirs(argv))]
    for override in parsed:
        if override.value_type != ValueType.GLOB_CHOICE_SWEEP:
            continue
        group = override.key_or_group
        options = sorted({p.stem for d in dirs for p in (d / group).glob("*.yaml") if not completion.hidden(p.stem)})
        if not override.value().filter(options):
            problem = (
                f"{quote(override.input_line)}: the pattern matches no {group}, so the sweep would run nothing; "
                f"the {group} options are {', '.join(options) or 'none'}."
            )
            raise ConfigError([Problem("overrides", problem)])


def _check_config_dirs(argv: Sequence[str]) -> None:
    """A missing ``-cd`` directory is named here; Hydra's own message would be read as "no such model"."""
    from ..config.model_files import quote

    for d in _config_dirs(argv):
        if not os.path.isdir(d):
            problem = f"-cd {quote(d)}: no such directory ({quote(os.path.abspath(d))}); give a directory holding model/*.yaml."
            raise ConfigError([Problem("config_dir", problem)], d)


def _is_sweep(overrides: Sequence[str]) -> bool:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        return any(o.is_sweep_override() for o in OverridesParser.create().parse_overrides(list(overrides)))
    except Exception:  # unparsable: compose again and let it name the bad override
        return False


def _explain(error: BaseException, argv: Sequence[str]) -> ConfigError:
    """A composition error as a ConfigError naming every bad key (see compose.diagnose).

    A sweep's error already names the job that failed to compose; a single run is composed
    again untyped so that every problem is reported, not just Hydra's first.
    """
    from ..config.compose import chosen, diagnose, explain_error

    overrides = _overrides(argv)
    name = chosen("model", overrides)
    if _is_sweep(overrides):
        found = ConfigError([explain_error(error, name, overrides=overrides)], name)
    else:
        others = [o for o in overrides if o.partition("=")[0].lstrip("~+") != "model"]
        found = diagnose(error, name, others, extra_dirs=[Path(d) for d in _config_dirs(argv)])
    if not any(p.key.startswith("model") for p in found.problems):
        return ConfigError(found.problems)  # the command line's slip, not the model's: naming the model misleads
    return found


def _fail(message: str, status: int) -> NoReturn:
    print(f"lucid-arch: {message}", file=sys.stderr)
    sys.exit(status)


def _quiet_rank(argv: list[str]) -> Optional[str]:
    """Under torchrun or srun, ranks other than 0 write nothing: their Hydra dirs go to a temporary folder.

    Every rank runs the whole app (and each job of a sweep) in step; rank 0 alone keeps the
    output directory, its logs and summary.json. Returns the temporary folder to remove.
    """
    rank = launch_env.rank()
    if rank == 0:
        return None
    import tempfile

    scratch = tempfile.mkdtemp(prefix=f"lucid-arch-rank{rank}-")
    argv += [f"hydra.run.dir={scratch}/run", f"hydra.sweep.dir={scratch}/sweep", "hydra.output_subdir=null",
             "hydra/job_logging=disabled", "hydra/hydra_logging=disabled"]
    return scratch


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Entry point of the console script (``argv`` defaults to ``sys.argv[1:]``)."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    argv = completion.completion_argv(list(sys.argv[1:] if argv is None else argv))
    scratch = _quiet_rank(argv)
    completing = "-sc" in argv or "--shell-completion" in argv  # runs no job; argparse takes no override before -sc's value
    hydra_argv = list(argv)  # what Hydra parses; argv stays the user's, for the checks and explanations below
    if not completing and not any(a.partition("=")[0].lstrip("+~") == "hydra/job_logging" for a in argv):
        # log records on stderr: stdout holds only the report (conf/hydra/job_logging)
        hydra_argv.insert(_after_last_override(argv), "hydra/job_logging=stderr")
    sweep_report.reset()
    stopping.reset()
    jobs.SHOW_TRACEBACK = os.environ.get("HYDRA_FULL_ERROR") == "1"
    saved_argv, sys.argv = sys.argv, [sys.argv[0] or "lucid-arch", *hydra_argv]
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra raises instead of printing; we explain below
    try:
        _check_config_dirs(argv)
        _check_globs(argv)
        # One process of several (torchrun, srun): their launcher stops them, as they expect, with no cleanup to wait on.
        alone = launch_env.detect().world_size == 1
        with model_files_checked(), completion.public_options(), stopping.sigterm_raises(alone):
            _app()
    except jobs.JobFailed as failed:  # a single run's job, already explained
        _fail(failed.message, int(failed.code))
    except KeyboardInterrupt as stop:  # Ctrl-C or SIGTERM in a single run (a sweep finishes its own stop: below)
        if jobs.SHOW_TRACEBACK:
            raise
        signum, line = stopping.stopped() or (stopping.signal_of(stop), "")  # a second Ctrl-C during a sweep's own stop
        _fail(line or f"stopped by {stopping.name_of(signum)}; {jobs.interrupted_note()}", stopping.exit_status(signum))
    except BrokenPipeError:  # `lucid-arch --info | head`: the reader left, nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(EXIT_FAILED)
    except (HydraException, OmegaConfBaseException) as error:  # composition: before any job ran
        if jobs.SHOW_TRACEBACK:
            raise
        _fail(*jobs.explain(_explain(error, argv)))
    except Exception as error:
        if jobs.SHOW_TRACEBACK:
            raise
        _fail(*jobs.explain(error))
    finally:
        sweep_ledger.release_unused_claims()
        sys.argv = saved_argv
        if scratch:
            import shutil

            shutil.rmtree(scratch, ignore_errors=True)
        if not jobs.SHOW_TRACEBACK:
            os.environ.pop("HYDRA_FULL_ERROR", None)
    if stopping.stopped():  # a sweep or search stopped by a signal: its jobs marked, its report written
        signum, line = stopping.stopped()
        _fail(line, stopping.exit_status(signum))
    if sweep_report.failed_jobs():
        _fail(f"{sweep_report.failed_jobs()} job(s) of the sweep failed or never ran; see the status column of sweep.md.", EXIT_FAILED)


if __name__ == "__main__":
    main()
