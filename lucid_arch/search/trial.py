"""A search trial's job: told so by the sweeper, it reports its epochs and measures latency.

The sweeper sets ``LUCID_ARCH_SEARCH_TRIAL=NUMBER@LEDGER`` in each job's environment (as a
``hydra.job.env_set`` override: it reaches the job under every launcher, and leaves the job's
task overrides and directory name alone). The job then reads its search's definition from that
file, the sweep's ledger (lucid_arch.cli.sweep_ledger, its ``search`` entry), and

- when the search has a pruner, enters its validation accuracy per epoch into the pruning study
  (lucid_arch.search.study) and stops training (``StopTraining``) when the pruner says so;
- when ``search.objectives`` names ``latency_ms``, measures it (lucid_arch.search.latency).

Outside a search none of this runs: the variable is unset.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

ENV = "LUCID_ARCH_SEARCH_TRIAL"
MAX_LEDGER_BYTES = 64 << 20


@dataclass(frozen=True)
class TrialLink:
    number: int
    ledger: Path

    def search(self) -> dict[str, Any]:
        import json

        from ..safe_io import read_bounded

        ledger = json.loads(read_bounded(self.ledger, MAX_LEDGER_BYTES))  # the sweep's own file, bounded all the same
        return (ledger.get("search") if isinstance(ledger, dict) else None) or {}


def env_value(number: int, ledger: Path) -> str:
    return f"{number}@{Path(ledger).absolute()}"


def current() -> Optional[TrialLink]:
    raw = os.environ.get(ENV, "")
    number, at, where = raw.partition("@")
    return TrialLink(int(number), Path(where)) if at and number.isdigit() else None


HEADLINES = ("val_acc", "val_miou", "val_box_ap")  # what a training reports each epoch: a classifier's, a segmentation model's, a detector's

class EpochReporter:
    """``fit``'s on_epoch_end in a pruned search: one curve in the pruning study per job."""

    def __init__(self, link: TrialLink, search: dict[str, Any]):
        import hydra.utils
        import optuna

        from .study import CURVES, open_storage

        self.pruner = hydra.utils.instantiate(search["pruner"])
        self.curves = optuna.load_study(study_name=search["study_name"] + CURVES, storage=open_storage(search["storage"]),
                                        pruner=self.pruner)
        self.trial = self.curves.ask()
        self.trial.set_user_attr("trial", link.number)
        self.trial.set_user_attr("node", os.environ.get("SLURMD_NODENAME") or socket.gethostname())  # where it trained
        self.done, self.unnamed = False, True

    def __call__(self, record: dict[str, Any]) -> None:
        from optuna.trial import TrialState

        from ..training.loop import StopTraining

        name = next((k for k in HEADLINES if record.get(k) is not None), None)  # val_acc, or a segmentation's val_miou
        if name is None:
            return
        score = float(record[name])
        if self.unnamed:
            self._name_curves(name)
        self.trial.report(score, int(record["epoch"]))
        if self.trial.should_prune():
            self.curves.tell(self.trial, state=TrialState.PRUNED)
            self.done = True
            raise StopTraining(f"pruned after epoch {record['epoch']} by the {type(self.pruner).__name__}: {name} "
                               f"{score:.4f} was behind the trials before it at that epoch")

    def _name_curves(self, name: str) -> None:
        """The pruning study's one objective named after what it holds (val_acc, val_miou or val_box_ap), once per job."""
        import warnings

        import optuna

        self.unnamed = False
        if self.curves.metric_names != [name]:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                self.curves.set_metric_names([name])  # jobs doing it at once is harmless: Optuna upserts the attribute

    def fail(self) -> None:
        """The training failed: its curve is closed as FAIL, so the pruner never waits on it."""
        from optuna.trial import TrialState

        if not self.done:
            self.curves.tell(self.trial, state=TrialState.FAIL)
            self.done = True

    def close(self, final_score: Optional[float]) -> None:
        """The finished curve (its last val_acc, or val_miou), for later trials to be compared with."""
        if not self.done and final_score is not None:
            self.curves.tell(self.trial, float(final_score))
            self.done = True


def epoch_hook() -> Optional[EpochReporter]:
    """The reporter for this job's training, or None (not a search trial, or no pruner)."""
    link = current()
    if link is None:
        return None
    search = link.search()
    return EpochReporter(link, search) if search.get("pruner") else None


def with_measured_metrics(cfg: Any, model_cfg: Any, result: dict[str, Any]) -> dict[str, Any]:
    """The task's result, plus ``latency_ms`` when this job is a trial of a search that optimises it."""
    from .objectives import LATENCY

    if current() is None:
        return result
    from .settings import settings_of

    settings = settings_of(cfg)
    metrics = result.get("metrics", {})
    if LATENCY not in settings.objectives or LATENCY in metrics:
        return result
    from .candidate import job_model
    from .latency import measure_latency_ms

    model, _ = job_model(cfg, model_cfg)
    return {**result, "metrics": {**metrics, LATENCY: measure_latency_ms(model, settings.latency)}}
