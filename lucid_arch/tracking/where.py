"""Where a job is tracked when the config leaves it open: the defaults of ``logger.*``, resolved.

The rules (docs/tracking.md says them to users):

- MLflow's store: ``logger.mlflow.tracking_uri``, else ``MLFLOW_TRACKING_URI``, else MLflow 3's
  own default, ``sqlite:///mlflow.db``, made absolute in the directory the app was started from:
  every job of a sweep, on whatever node or in whatever working directory it runs, writes the
  one file, and ``mlflow ui`` started in that directory finds it.
- The experiment: ``logger.mlflow.experiment``, else ``MLFLOW_EXPERIMENT_NAME``, else the sweep's
  directory (one experiment per sweep or search; a resumed search continues it), else the
  task's name.
- The run's name: ``logger.mlflow.run_name``, else the job's directory name in a sweep, else the
  model's name.
- TensorBoard: ``logger.tensorboard.log_dir``, else the job's directory/tensorboard.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..config.logger_schema import DEFAULT_DB, MlflowConfig, TensorBoardConfig

TENSORBOARD_DIR = "tensorboard"


@dataclass(frozen=True)
class Where:
    """A job as tracking sees it; the app's CLI fills it in from Hydra."""

    job_dir: Path
    start_dir: Path  # where the app was started (Hydra's runtime.cwd)
    task: str
    model: str
    sweep_dir: Optional[Path] = None  # a sweep's or search's directory; None for a single run
    job_num: int = 0
    overrides: tuple[str, ...] = ()

    def absolute(self, path: Path) -> Path:
        return path if path.is_absolute() else self.start_dir / path


def tracking_uri(settings: MlflowConfig, start_dir: Path) -> str:
    if settings.tracking_uri:
        return str(settings.tracking_uri)
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return f"sqlite:///{(Path(start_dir) / DEFAULT_DB).resolve()}"


def sweep_experiment(sweep_dir: Path, start_dir: Path) -> str:
    """A sweep's experiment: its directory as the user named it (relative to where the app started, when inside it)."""
    path = Path(sweep_dir) if Path(sweep_dir).is_absolute() else Path(start_dir) / sweep_dir
    try:
        return str(path.resolve().relative_to(Path(start_dir).resolve()))
    except ValueError:
        return str(path.resolve())


def experiment_name(settings: MlflowConfig, where: Where) -> str:
    if settings.experiment:
        return str(settings.experiment)
    if os.environ.get("MLFLOW_EXPERIMENT_NAME"):
        return os.environ["MLFLOW_EXPERIMENT_NAME"]
    if where.sweep_dir is not None:
        return sweep_experiment(where.sweep_dir, where.start_dir)
    return where.task


def run_name(settings: MlflowConfig, where: Where) -> str:
    if settings.run_name:
        return str(settings.run_name)
    return where.job_dir.name if where.sweep_dir is not None else where.model


def tensorboard_dir(settings: TensorBoardConfig, where: Where) -> Path:
    return where.absolute(Path(settings.log_dir)) if settings.log_dir else where.absolute(where.job_dir) / TENSORBOARD_DIR


def key_of(path: Path) -> str:
    """A short, quote-free key naming a directory (runs are found by it in MLflow's search filters)."""
    return hashlib.sha1(str(Path(path).resolve()).encode()).hexdigest()[:16]
