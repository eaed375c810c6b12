"""The Optuna study of a search: its storage, the outcome of each trial, and what a resume finds.

Optuna's trial states say too little for a search that refuses candidates before running them,
so every trial also carries ``lucid_outcome`` (a user attribute) and ``lucid_reason``:

- ``complete``: its job ran and reported every objective;
- ``pruned``: its training was stopped by the pruner (Optuna state PRUNED);
- ``failed``: its job failed or died (FAIL);
- ``rejected``: refused before anything was built: invalid (FAIL) or over budget (PRUNED);
- ``repeat``: the same overrides as an earlier trial: not run again, told FAIL (samplers skip it),
  and the next candidate is drawn at random so that a sampler settled on known candidates moves on;
- ``interrupted``: running when the search was stopped; a resume marks it FAIL.

Only trials that ran (complete, pruned, failed) count toward ``n_trials``.

Multi-objective studies cannot take intermediate values (Optuna's ``Trial.report`` refuses
them), so pruning uses a second, single-objective study in the same storage, ``NAME.val_acc``:
each training job enters its validation accuracy (a segmentation model: mIoU) per epoch there, and the pruner compares it
with the curves of the trials before it.
"""

from __future__ import annotations

from typing import Any, Iterable

OUTCOME, REASON, OVERRIDES, JOB, BASELINE = "lucid_outcome", "lucid_reason", "lucid_overrides", "lucid_job", "lucid_baseline"
COUNTED = ("complete", "pruned", "failed")
CURVES = ".val_acc"  # suffix of the pruning study's name
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
    import optuna

    kwargs = {"connect_args": {"timeout": SQLITE_TIMEOUT_S}} if url.startswith("sqlite") else {}
    return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)


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
