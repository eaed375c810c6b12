"""The Optuna study of a search: its storage, the outcome of each trial, and what a resume finds.

Optuna's trial states say too little for a search that refuses candidates before running them,
so every trial also carries ``lucid_outcome`` (a user attribute) and ``lucid_reason``:

- ``complete``: its job ran and reported every objective;
- ``pruned``: its training was stopped by the pruner (Optuna state PRUNED);
- ``failed``: its job failed or died (FAIL);
- ``rejected``: refused before anything was built: invalid (FAIL) or over budget (PRUNED);
- ``repeat``: the same overrides as an earlier trial: not run again, told FAIL (samplers skip it),
  and the next candidate is drawn at random so that a sampler settled on known candidates moves on;
- ``interrupted``: running when the search was stopped: marked FAIL by the stop itself (Ctrl-C,
  SIGTERM) or, after a kill, by the search run again.

Only trials that ran (complete, pruned, failed) count toward ``n_trials``; Optuna counts every
trial of the study, so its count is the app's plus the rejected, repeated and interrupted ones
(the search's last line and pareto.md give both). The study names its objectives
(``set_metric_names``), and each trial that ran has its job's directory in ``lucid_dir``.

Multi-objective studies cannot take intermediate values (Optuna's ``Trial.report`` refuses
them), so pruning uses a second, single-objective study in the same storage, ``NAME.val_acc``:
each training job enters its validation accuracy (a segmentation model: mIoU) per epoch there, and the pruner compares it
with the curves of the trials before it.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional

from ..config import ConfigError, Problem
from ..safe_io import RefusedFile, open_regular

OUTCOME, REASON, OVERRIDES, JOB, BASELINE = "lucid_outcome", "lucid_reason", "lucid_overrides", "lucid_job", "lucid_baseline"
DIR = "lucid_dir"  # the job's directory, absolute
COUNTED = ("complete", "pruned", "failed")
CURVES = ".val_acc"  # suffix of the pruning study's name
SQLITE_PREFIX = "sqlite:///"
SQLITE_MAGIC = b"SQLite format 3\x00"  # the first 16 bytes of every SQLite database
SQLITE_TIMEOUT_S = 60  # parallel jobs and the sweeper share one SQLite file: wait for its lock, do not fail


def optuna_module() -> Any:
    """Optuna, quiet (the sweeper prints one line per trial), or None when it is not installed."""
    try:
        import optuna
    except ImportError:
        return None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def open_storage(url: str) -> Any:
    """Optuna's storage at ``url`` (lucid_arch.search.storage: an SQLite or database URL, or ``journal:FILE``);
    a study file that is not one is a ConfigError naming it (see :func:`study_errors`)."""
    import optuna

    from .storage import journal_file, with_driver

    check_study_file(url)
    journal = journal_file(url)
    with study_errors(url):
        if journal is not None:  # an append-only log on a filesystem the nodes share (JournalFileBackend's symlink lock)
            from optuna.storages.journal import JournalFileBackend

            return optuna.storages.JournalStorage(JournalFileBackend(str(journal)))
        kwargs = {"connect_args": {"timeout": SQLITE_TIMEOUT_S}} if url.startswith("sqlite") else {"pool_pre_ping": True}
        return optuna.storages.RDBStorage(with_driver(url), engine_kwargs=kwargs)


def sqlite_file(url: str) -> Optional[Path]:
    """The file of an SQLite URL (``sqlite:///study.db``, ``sqlite:////abs/study.db``); None for others."""
    if not url.startswith(SQLITE_PREFIX):
        return None
    path = url[len(SQLITE_PREFIX):].split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


def check_study_file(url: str) -> None:
    """Refuse, before SQLite opens it, a study file that is a FIFO or device (SQLite would wait on it for ever)
    or that is not an SQLite database (SQLAlchemy would say so in three lines that do not name it)."""
    from .storage import journal_file

    path = sqlite_file(url) or journal_file(url)
    if path is None or not os.path.lexists(path):
        return
    try:
        with open_regular(path) as f:
            head = f.read(len(SQLITE_MAGIC))
    except RefusedFile as err:
        raise _unusable(path, err.reason) from None
    except OSError as err:
        raise _unusable(path, f"cannot be read ({err.strerror or err})") from None
    if head and head != SQLITE_MAGIC and sqlite_file(url) is not None:
        raise _unusable(path, "is not an SQLite database (it does not start as one)")
    if head == SQLITE_MAGIC and journal_file(url) is not None:
        raise _unusable(path, "is an SQLite database, not Optuna's journal (hydra.sweeper.storage=sqlite reads it)")


@contextmanager
def study_errors(url: str) -> Iterator[None]:
    """Turn the storage's own errors (SQLAlchemy's, SQLite's, Optuna's) into one paragraph naming the study."""
    try:
        yield
    except ConfigError:
        raise
    except Exception as error:  # noqa: BLE001 -- whatever the database layer raised, said in one line
        from optuna.exceptions import DuplicatedStudyError

        if isinstance(error, DuplicatedStudyError):
            raise
        from .storage import journal_file, shown

        said = " ".join(str(getattr(error, "orig", None) or error).split())[:300]
        kind = type(getattr(error, "orig", None) or error).__name__
        if sqlite_file(url) is None and journal_file(url) is None:  # a database server: reach it, do not move files
            raise ConfigError([Problem("hydra.sweeper.storage", (
                f"the search's study at {shown(url)} cannot be opened ({kind}: {said}). Check that the database server is up "
                "and that the URL's user, host, port and database are right (keep a password out of the URL: PostgreSQL's "
                "client reads ~/.pgpass and PGPASSWORD), or point hydra.sweeper.storage at another storage."))]) from None
        raise _unusable(sqlite_file(url) or journal_file(url) or url, f"cannot be opened as an Optuna study ({kind}: {said})") from None


def _unusable(where: Any, why: str) -> ConfigError:
    return ConfigError([Problem("hydra.sweeper.storage", (
        f"the search's study {where} {why}. A search keeps its trials there, so it cannot go on with it: move the file "
        "aside (or remove it) to start the search afresh, or point hydra.sweeper.storage at another database."))])


def outcome(trial: Any) -> str:
    return str(trial.user_attrs.get(OUTCOME, ""))


def counted(trials: Iterable[Any]) -> int:
    """Trials that count toward n_trials: those whose job ran."""
    return sum(outcome(t) in COUNTED for t in trials)


def interrupt_running(study: Any, why: str) -> list[Any]:
    """Trials left RUNNING by a search that was stopped: marked FAIL (never complete), returned."""
    from optuna.trial import TrialState

    left = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.RUNNING]
    for t in left:
        study._storage.set_trial_user_attr(t._trial_id, OUTCOME, "interrupted")
        study._storage.set_trial_user_attr(t._trial_id, REASON, why)
        study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
    return left


def fail_curves(study: Any) -> None:
    """Pruning curves (``NAME.val_acc``) still RUNNING although their trial ended (interrupted): closed as FAIL.

    A job killed mid-training, or cancelled as it started (its curve opened after the stop), cannot
    close its own; no curve should stay RUNNING once its trial is over.
    """
    import optuna
    from optuna.trial import TrialState

    ended = {t.number for t in study.get_trials(deepcopy=False) if t.state.is_finished()}
    curves = optuna.load_study(study_name=study.study_name + CURVES, storage=study._storage)
    for t in curves.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if t.user_attrs.get("trial") in ended:
            curves.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
