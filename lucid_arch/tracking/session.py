"""One job's tracking over its backends: parameters, each epoch, the final record and files.

Opening is strict: a backend whose package is missing, or a store that cannot be reached, is
an error before the job does any work (a user who asked for tracking learns it now, not after
ten hours of training). Once the job runs, tracking never ends it: a backend that fails
mid-run is named on stderr in one line and dropped, and the job goes on; its directory keeps
the whole record (summary.json, metrics.jsonl) either way.

Epochs reach the session twice: live, from the training's ``on_epoch_end`` (so a long run can
be watched), and at the end from the job's metrics.jsonl, which also holds the last epoch (the
loop asks no hook after it) and any epoch a failed backend call missed; each backend logs an
epoch once.
"""

from __future__ import annotations

import contextlib
import json
import sys
from typing import Any, Callable, Optional, Union

from ..config.logger_schema import LoggerConfig
from ..runs.metrics_file import METRICS_FILE, read_metrics
from ..safe_io import read_bounded
from .files import job_artifacts
from .names import epoch_metrics, final_metrics, flatten, metric_key, per_class_metrics
from .where import Where

MAX_RECORD_BYTES = 64 << 20
Params = Union[dict[str, Any], Callable[[], dict[str, Any]]]  # a callable: known only once the job has run a while


def open_session(settings: LoggerConfig, where: Where, params: Params, tags: dict[str, str]) -> "Session":
    """The job's session, every chosen backend open (or ConfigError / MissingExtra naming what to fix).

    Every backend's packages are checked before any is opened, and a backend that cannot open
    ends those opened before it, so a refused job leaves no run behind marked as running.
    """
    from ..extras import require

    for backend in settings.backends:
        require(backend, f"logger={backend}")
    user_tags = {**dict(settings.mlflow.tags), **tags}
    backends: list[Any] = []
    try:
        if "mlflow" in settings.backends:
            from .mlflow_run import MlflowRun

            backends.append(MlflowRun(settings.mlflow, where, user_tags))
        if "tensorboard" in settings.backends:
            from .tensorboard_run import TensorBoardRun

            backends.append(TensorBoardRun(settings.tensorboard, where))
            backends[-1].set_tags(user_tags)
    except BaseException:
        for backend in backends:
            with contextlib.suppress(Exception):
                backend.finish("failed")
        raise
    return Session(backends, where, params, settings)


class Session:
    def __init__(self, backends: list[Any], where: Where, params: Params, settings: LoggerConfig):
        self.backends, self.where, self.settings = backends, where, settings
        self._params: Optional[Params] = params
        self._classes: Optional[list[str]] = None
        self.epoch_keys: set[str] = set()
        self.last_epoch = 0
        self.info = {b.name.lower(): b.info() for b in backends}
        if not callable(params):
            self._log_params()

    def _guard(self, backend: Any, what: str, action: Callable[[], Any]) -> None:
        if backend not in self.backends:
            return
        try:
            action()
        except Exception as error:  # noqa: BLE001 - tracking must not end the job it tracks
            self.backends.remove(backend)
            why = " ".join(str(error).split())[:300]
            print(f"lucid-arch: {backend.name} stopped tracking this job ({what} failed: {type(error).__name__}: {why}); "
                  f"the job goes on, and its directory keeps the whole record.", file=sys.stderr)

    def _log_params(self) -> None:
        params, self._params = self._params, None
        if params is None:
            return
        try:
            values = flatten(params() if callable(params) else params)
        except Exception as error:  # noqa: BLE001 - reading the run's config failed: the run goes on without parameters
            print(f"lucid-arch: tracking logs no parameters for this job ({type(error).__name__}: {error}).", file=sys.stderr)
            return
        for backend in list(self.backends):
            self._guard(backend, "logging the parameters", lambda b=backend: b.log_params(values))

    def classes(self) -> list[str]:
        """The run's class names, from the inference.json training writes before its first step."""
        if self._classes is None:
            try:
                info = json.loads(read_bounded(self.where.job_dir / "inference.json", MAX_RECORD_BYTES))
                self._classes = [str(c) for c in info.get("classes", [])] if isinstance(info, dict) else []
            except (OSError, ValueError):
                self._classes = []
        return self._classes

    def log_epoch(self, record: dict[str, Any]) -> None:
        """One epoch record (as metrics.jsonl has it) to every backend that does not have it yet."""
        if self._params is not None:
            self._log_params()
        epoch = record.get("epoch")
        if not isinstance(epoch, int):
            return
        metrics = epoch_metrics(record, self.classes())
        self.epoch_keys.update(metrics)
        self.last_epoch = max(self.last_epoch, epoch)
        for backend in list(self.backends):
            if epoch > backend.logged_epochs:
                def log(b: Any = backend) -> None:
                    b.log_metrics(metrics, epoch)
                    b.logged_epochs = epoch
                self._guard(backend, f"logging epoch {epoch}", log)

    def _epochs_on_disk(self) -> list[dict[str, Any]]:
        return read_metrics(self.where.job_dir / METRICS_FILE)

    def finish(self, record: dict[str, Any]) -> None:
        """The job's end: parameters if still pending, epochs not yet logged, final metrics, status, files."""
        if self._params is not None:
            self._log_params()
        for epoch in self._epochs_on_disk():
            self.log_epoch(epoch)
        status = str(record.get("status", "running"))
        summary = final_metrics(record.get("metrics") or {}, already=self.epoch_keys)
        final = {**summary, **per_class_metrics(((record.get("eval") or {}).get("per_class")) or {})}
        headline = [*summary, *(k for k in map(metric_key, record.get("metrics") or {}) if k in self.epoch_keys)]
        tags = {"lucid.status": status if status != "running" else "interrupted"}
        if record.get("error"):
            tags["lucid.error"] = str(record["error"])
        files = job_artifacts(self.where.job_dir, self.settings.mlflow.log_weights) if self.settings.mlflow.log_artifacts else []
        for backend in list(self.backends):
            self._guard(backend, "logging the final metrics", lambda b=backend: b.log_metrics(final, self.last_epoch))
            if hasattr(backend, "note_final"):
                backend.note_final(headline)  # the summary's metrics, not a per-class table's hundreds
            self._guard(backend, "setting the run's tags", lambda b=backend: b.set_tags(tags))
            self._guard(backend, "uploading the job's files", lambda b=backend: b.log_files(files))
            self._guard(backend, "ending the run", lambda b=backend: b.finish(status))

