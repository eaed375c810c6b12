"""``logger=mlflow|tensorboard|many`` in the app: where Hydra's view of a job meets lucid_arch.tracking.

Three hooks, so that neither the job layer nor the training loop knows a tracking backend:

- :func:`job_started` / :func:`job_ended`, called by ``run_job`` (lucid_arch/cli/jobs.py) around
  every task: the job's run is opened before the task does any work (a bad setting or a
  missing extra fails the job there) and ended with the job's record, whatever the task;
- :func:`epoch_hook`, which the train task composes with a search trial's pruning hook, so each
  epoch is logged live, before the pruner may stop the run;
- :class:`SweepTracking`, a Hydra callback (conf/hydra/default.yaml): a sweep's or search's
  parent run in MLflow, opened before its first job and given the sweep's report at the end.

Only rank 0 tracks: under torchrun or srun every rank runs the job, and one run per job is wanted.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any, Callable, Optional

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from ..config import ModelConfig
from ..config.logger_schema import LoggerConfig, check_logger
from ..tracking import Session, Where, open_session
from ..training import launch_env

_session: Optional[Session] = None  # the job running in this process (jobs of a basic sweep run one after another)


def logger_settings(cfg: DictConfig) -> LoggerConfig:
    """The composed ``logger`` section, checked (ConfigError naming each bad key); none when the config has no such section."""
    node = OmegaConf.select(cfg, "logger")
    if node is None:
        settings = LoggerConfig()
    else:  # typed already when composed from conf/logger; merged onto the schema when a config of one's own has it untyped
        settings = OmegaConf.to_object(node if OmegaConf.get_type(node) is LoggerConfig else
                                       OmegaConf.merge(OmegaConf.structured(LoggerConfig), node))
    check_logger(settings)
    return settings


def _hydra_dirs(job: Any) -> tuple[Path, Optional[Path]]:
    """(the directory the app started in, the sweep's directory or None)."""
    from hydra.core.hydra_config import HydraConfig

    hc = HydraConfig.get()
    return Path(hc.runtime.cwd), (Path(hc.sweep.dir) if job.multirun else None)


def _tags(where: Where) -> dict[str, str]:
    tags = {"lucid.task": where.task, "lucid.model": where.model, "lucid.job_dir": str(where.absolute(where.job_dir)),
            "lucid.overrides": " ".join(where.overrides)}
    if where.sweep_dir is not None:
        tags.update({"lucid.job": str(where.job_num), "lucid.sweep_dir": str(where.absolute(where.sweep_dir))})
    if launch_env.slurm_job_id():
        tags["lucid.slurm_job"] = str(launch_env.slurm_job_id())
    return tags


def _params(cfg: DictConfig, model_cfg: ModelConfig, where: Where) -> Any:
    """The model and task configs; for a training, the model as trained (its class count and size follow the data),
    read from the run's first checkpoint when the first epoch is logged (the composed one if none was written)."""
    composed = {"model": dataclasses.asdict(model_cfg), "task": OmegaConf.to_container(cfg.task, resolve=True)}
    if where.task != "train":
        return composed

    def as_trained() -> dict[str, Any]:
        from ..runs import RunError, read_run

        try:
            run = read_run(where.job_dir)
        except (RunError, OSError):
            return composed
        return {"model": run.model, "task": run.task or composed["task"]}

    return as_trained


def job_started(cfg: DictConfig, model_cfg: ModelConfig, job: Any) -> dict[str, Any]:
    """Open the job's tracking (nothing for logger=none, or on a rank other than 0); what summary.json keeps of it."""
    global _session
    _session = None
    settings = logger_settings(cfg)
    if not settings.backends or launch_env.rank() != 0:
        return {}
    start_dir, sweep_dir = _hydra_dirs(job)
    where = Where(job_dir=Path(job.output_dir).absolute(), start_dir=start_dir, task=str(cfg.task.name), model=model_cfg.name,
                  sweep_dir=sweep_dir, job_num=job.num, overrides=tuple(job.overrides))
    _session = open_session(settings, where, _params(cfg, model_cfg, where), _tags(where))
    return {"tracking": _session.info}


def epoch_hook(then: Optional[Callable[[dict[str, Any]], None]]) -> Optional[Callable[[dict[str, Any]], None]]:
    """``then`` (a search trial's pruning hook, or None), with each epoch logged first."""
    session = _session
    if session is None:
        return then

    def hook(record: dict[str, Any]) -> None:
        session.log_epoch(record)
        if then is not None:
            then(record)

    return hook


def job_ended(job: Any, record: dict[str, Any]) -> None:
    """End the job's tracking with its record: final metrics, status, files (after summary.json is written)."""
    global _session
    session, _session = _session, None
    if session is None:
        return
    try:
        session.finish(record)
    except Exception as error:  # noqa: BLE001 - the job's own outcome stands; its summary.json is already written
        _warn(f"tracking could not finish this job's run: {type(error).__name__}: {error}")


class SweepTracking(Callback):
    """A sweep or search in MLflow: one experiment, a parent run holding sweep.md/csv/png, the jobs' runs under it."""

    def _mlflow(self, config: DictConfig) -> Optional[tuple[Any, Where]]:
        if launch_env.rank() != 0:
            return None
        try:
            settings = logger_settings(config)
        except Exception:  # noqa: BLE001 - every job reports the bad setting itself, one paragraph each
            return None
        if "mlflow" not in settings.backends:
            return None
        sweep_dir = Path(str(config.hydra.sweep.dir))
        task = str(OmegaConf.select(config, "task.name", default=""))
        start_dir = Path(str(OmegaConf.select(config, "hydra.runtime.cwd", default=None) or Path.cwd()))
        where = Where(job_dir=sweep_dir, start_dir=start_dir, task=task, model=str(OmegaConf.select(config, "model.name", default="")),
                      sweep_dir=sweep_dir, overrides=tuple(OmegaConf.select(config, "hydra.overrides.task", default=[]) or []))
        return settings.mlflow, where

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        found = self._mlflow(config)
        if found is None:
            return
        from ..tracking.mlflow_run import open_sweep_run

        choices = OmegaConf.select(config, "hydra.runtime.choices", default={}) or {}
        kind = "search" if str(choices.get("hydra/sweeper", "")) == "optuna" else "sweep"
        try:
            open_sweep_run(*found, kind)
        except Exception as error:  # noqa: BLE001 - each job then fails on the same setting, with the whole paragraph
            _warn(f"MLflow: the {kind}'s parent run could not be opened: {error}")

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        found = self._mlflow(config)
        if found is None:
            return
        from ..tracking.files import sweep_artifacts
        from ..tracking.mlflow_run import close_sweep_run

        settings, where = found
        try:
            counts = _job_counts(where.job_dir / "sweep.csv")
            note = where.job_dir / "sweep.md"
            close_sweep_run(settings, where, sweep_artifacts(where.job_dir) if settings.log_artifacts else [], counts,
                            note.read_text(encoding="utf-8") if note.is_file() else None)
        except Exception as error:  # noqa: BLE001 - the sweep itself is done and reported; only its MLflow copy is missing
            _warn(f"MLflow: the sweep's report could not be added to its parent run: {type(error).__name__}: {error}")


def _job_counts(table: Path) -> dict[str, int]:
    """How many jobs the sweep report counted, by status (its sweep.csv)."""
    import csv
    import io

    rows = list(csv.DictReader(io.StringIO(table.read_text(encoding="utf-8"), newline=""))) if table.is_file() else []
    return {"jobs": len(rows), **{s: sum(r.get("status") == s for r in rows)
                                  for s in ("ok", "failed", "interrupted", "missing", "pruned", "rejected")}}


def _warn(text: str) -> None:
    print(f"lucid-arch: {' '.join(text.split())}", file=sys.stderr)
