"""A job as an MLflow run; a sweep or search as the parent run of its jobs' runs.

MLflow's client (``MlflowClient``) is used rather than its fluent API (``mlflow.start_run``):
the fluent API keeps one "active run" per process in globals, and one process of the app runs
every job of a basic sweep in turn. ``mlflow`` is imported here only, when a job logs to it.

A sweep is one experiment. Its launching process opens a parent run at the sweep's start
(:func:`open_sweep_run`), each job's run names it (``mlflow.parentRunId``, so MLflow's UI folds
the jobs under the sweep, the way its hyperparameter-tuning guide lays out searches), and the
sweep's report files become the parent's artifacts at the end (:func:`close_sweep_run`). Runs
are found again by tags holding a hash of their directory (``lucid.job_key``,
``lucid.sweep_key``): a resumed search continues its parent run, and a job that SLURM requeued or
that ``task.resume`` continues in its own directory continues its own run instead of starting a
second one.
"""

from __future__ import annotations

import getpass
import os
import socket
import time
from pathlib import Path
from typing import Any, Optional
from urllib.parse import urlsplit, urlunsplit

from ..config import ConfigError, Problem
from ..config.logger_schema import MlflowConfig
from ..extras import require
from .names import param_text
from .where import Where, experiment_name, key_of, run_name, tracking_uri

# A job's status (summary.json) -> the MLflow run status it ends with; any other ("running": the job was
# interrupted) ends KILLED. A pruned search trial is the search working: FINISHED, its tag says pruned.
END_STATUS = {"ok": "FINISHED", "pruned": "FINISHED", "failed": "FAILED"}
MAX_TAG = 8000  # MLflow's limit on a tag's value
MAX_NOTE = 20000  # ... on an experiment tag's value (the experiment's description)


def public_uri(uri: str) -> str:
    """The tracking URI without a password or token in it: what may be printed and written to summary.json."""
    parts = urlsplit(uri)
    if "@" not in parts.netloc:
        return uri
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def _client(uri: str) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)  # a SQLite store's tables are made here, the first time


def _unreachable(settings: MlflowConfig, uri: str, error: BaseException) -> ConfigError:
    why = " ".join(str(error).split())[:400]
    if settings.tracking_uri:
        given = f"logger.mlflow.tracking_uri = {public_uri(uri)!r}"
    elif os.environ.get("MLFLOW_TRACKING_URI"):
        given = f"MLFLOW_TRACKING_URI = {public_uri(uri)!r} (logger.mlflow.tracking_uri is null)"
    else:
        given = f"the default store {uri!r} (logger.mlflow.tracking_uri is null)"
    return ConfigError([Problem("logger.mlflow.tracking_uri", (
        f"{given}: MLflow could not use it ({type(error).__name__}: {why}). Check that the server is up and the URI "
        "right, or that the directory exists and is writable; set logger.mlflow.tracking_uri (or MLFLOW_TRACKING_URI) "
        "to another store."))])


def _experiment_id(client: Any, name: str) -> str:
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found is None:
        try:
            return client.create_experiment(name)
        except MlflowException:  # another job of the sweep created it in the meantime
            found = client.get_experiment_by_name(name)
            if found is None:
                raise
    if found.lifecycle_stage == "deleted":
        raise ConfigError([Problem("logger.mlflow.experiment", (
            f"logger.mlflow.experiment = {name!r}: that experiment was deleted in MLflow, which keeps the name taken. "
            f"Restore it (mlflow experiments restore --experiment-id {found.experiment_id}), or give another name."))])
    return found.experiment_id


def _find(client: Any, experiment_id: str, tag: str, value: str) -> list[Any]:
    """Runs of the experiment whose ``tag`` is ``value`` (a hex key: no quoting to get wrong), newest first."""
    return client.search_runs([experiment_id], filter_string=f"tags.`{tag}` = '{value}'", max_results=20,
                              order_by=["attributes.start_time DESC"])


def _alive_here(tags: dict[str, str]) -> bool:
    """Whether the process a run's tags name is alive on this machine (then it is not ours to continue)."""
    if tags.get("lucid.host") != socket.gethostname():
        return False
    try:
        os.kill(int(tags.get("lucid.pid", "0")), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return int(tags.get("lucid.pid", "0")) > 0


def _metric(key: str, value: float, step: int) -> Any:
    from mlflow.entities import Metric

    return Metric(key=key, value=float(value), timestamp=int(time.time() * 1000), step=int(step))


class MlflowRun:
    """The job's run: opened (or continued) at the job's start, ended with the job's status."""

    name = "MLflow"

    def __init__(self, settings: MlflowConfig, where: Where, tags: dict[str, str]):
        require("mlflow", "logger=mlflow")
        self.settings = settings
        self.uri = tracking_uri(settings, where.start_dir)
        try:
            self.client = _client(self.uri)
            self._open(where, tags)
        except ConfigError:
            raise
        except Exception as error:  # noqa: BLE001 - a store that cannot be reached or written: the setting's fault
            raise _unreachable(settings, self.uri, error) from error

    def _open(self, where: Where, tags: dict[str, str]) -> None:
        self.experiment = experiment_name(self.settings, where)
        self.experiment_id = _experiment_id(self.client, self.experiment)
        own = {"lucid.job_key": key_of(where.absolute(where.job_dir)), "lucid.host": socket.gethostname(),
               "lucid.pid": str(os.getpid())}
        previous = [r for r in _find(self.client, self.experiment_id, "lucid.job_key", own["lucid.job_key"])
                    if r.info.status in ("RUNNING", "KILLED") and not _alive_here(r.data.tags)]
        self.logged_epochs = 0
        self.params: dict[str, str] = {}
        if previous:  # this job's directory already has an unfinished run: a requeued or resumed job continues it
            run = previous[0]
            self.run_id = run.info.run_id
            self.params = dict(run.data.params)
            self.client.update_run(self.run_id, status="RUNNING")
            self.set_tags(own)
            self.logged_epochs = int(max((m.step for m in self.client.get_metric_history(self.run_id, "epoch")), default=0))
        else:
            parent = (_find(self.client, self.experiment_id, "lucid.sweep_key", key_of(where.absolute(where.sweep_dir)))
                      if where.sweep_dir is not None else [])
            tags = {**tags, **own, "mlflow.user": getpass.getuser(), "mlflow.source.name": "lucid-arch",
                    "mlflow.source.type": "LOCAL", **({"mlflow.parentRunId": parent[0].info.run_id} if parent else {})}
            self.run_id = self.client.create_run(self.experiment_id, run_name=run_name(self.settings, where),
                                                 tags={k: v[:MAX_TAG] for k, v in tags.items()}).info.run_id
        self.run_name = self.client.get_run(self.run_id).info.run_name

    def info(self) -> dict[str, Any]:
        return {"tracking_uri": public_uri(self.uri), "experiment": self.experiment, "experiment_id": self.experiment_id,
                "run_id": self.run_id, "run_name": self.run_name}

    def log_params(self, params: dict[str, Any]) -> None:
        """Parameters not logged yet (a continued run keeps the ones it has: MLflow refuses to change one)."""
        from mlflow.entities import Param

        new = [Param(k, param_text(v)) for k, v in params.items() if k not in self.params]
        self.client.log_batch(self.run_id, params=new)
        self.params.update({p.key: p.value for p in new})

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        self.client.log_batch(self.run_id, metrics=[_metric(k, v, step) for k, v in metrics.items()])

    def set_tags(self, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)[:MAX_TAG]) for k, v in tags.items()])

    def log_files(self, files: list[tuple[Path, str]]) -> None:
        for path, folder in files:
            self.client.log_artifact(self.run_id, str(path), folder or None)

    def finish(self, status: str) -> None:
        self.client.set_terminated(self.run_id, END_STATUS.get(status, "KILLED"))


def sweep_tags(where: Where, kind: str) -> dict[str, str]:
    sweep_dir = where.absolute(where.job_dir)
    return {"lucid.role": kind, "lucid.sweep_key": key_of(sweep_dir), "lucid.sweep_dir": str(sweep_dir),
            "lucid.overrides": " ".join(where.overrides)[:MAX_TAG], "mlflow.user": getpass.getuser(),
            "mlflow.source.name": "lucid-arch", "mlflow.source.type": "LOCAL"}


def open_sweep_run(settings: MlflowConfig, where: Where, kind: str) -> tuple[str, str]:
    """The parent run of the sweep in ``where.job_dir`` (found again when the sweep continues): (experiment, run id)."""
    require("mlflow", "logger=mlflow")
    uri = tracking_uri(settings, where.start_dir)
    try:
        client = _client(uri)
        experiment = experiment_name(settings, where)
        experiment_id = _experiment_id(client, experiment)
        found = _find(client, experiment_id, "lucid.sweep_key", key_of(where.absolute(where.job_dir)))
        if found:
            client.update_run(found[0].info.run_id, status="RUNNING")
            return experiment, found[0].info.run_id
        return experiment, client.create_run(experiment_id, run_name=kind, tags=sweep_tags(where, kind)).info.run_id
    except ConfigError:
        raise
    except Exception as error:  # noqa: BLE001
        raise _unreachable(settings, uri, error) from error


def close_sweep_run(settings: MlflowConfig, where: Where, files: list[tuple[Path, str]], counts: dict[str, int],
                    note: Optional[str]) -> Optional[str]:
    """End the sweep's parent run: its report files as artifacts, its job counts as metrics, sweep.md as the
    experiment's description (MLflow's UI shows it above the runs). Returns the run id, or None when there is none."""
    client = _client(tracking_uri(settings, where.start_dir))
    experiment = client.get_experiment_by_name(experiment_name(settings, where))
    if experiment is None:
        return None
    found = _find(client, experiment.experiment_id, "lucid.sweep_key", key_of(where.absolute(where.job_dir)))
    if not found:
        return None
    run_id = found[0].info.run_id
    client.log_batch(run_id, metrics=[_metric(k, v, 0) for k, v in counts.items()])
    for path, folder in files:
        client.log_artifact(run_id, str(path), folder or None)
    if note and len(note) <= MAX_NOTE:
        client.set_experiment_tag(experiment.experiment_id, "mlflow.note.content", note)
    client.set_terminated(run_id, "FAILED" if counts.get("failed") else "FINISHED")
    return run_id
