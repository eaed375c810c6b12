"""One job of the app: validate the config, run its task, record the outcome in summary.json.

Tasks are looked up by ``task.name`` in :data:`TASKS` (module paths, imported when used, so the
app stays torch-free until a job runs). Each task module has ``run(cfg, model_cfg, job) -> dict``.

In a multirun a failing job must not sink the sweep: its error is written to its summary.json
and reported on stderr, and the sweep goes on; the sweep report shows it as a failed row. A
single run re-raises, so the app exits with a status that says what went wrong.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import socket
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ..training import launch_env
from ..config import ConfigError, Problem, validate_model
from ..config.checks import suggest
from ..extras import MissingExtra
from ..safe_io import read_bounded, write_text_atomic
from ..search import trial as search_trial
from .from_run import announce, model_from_run, run_record
from . import tracking_hooks
from .stopping import name_of, signal_of

TASKS = {"summary": "lucid_arch.cli.summary", "benchmark": "lucid_arch.cli.benchmark", "train": "lucid_arch.cli.train",
         "export": "lucid_arch.cli.export", "predict": "lucid_arch.cli.predict", "eval": "lucid_arch.cli.eval"}
FORMATS = ("auto", "rich", "text", "json")
SUMMARY_FILE = "summary.json"
MAX_RECORD_BYTES = 64 << 20  # a summary of 100,000 class names is ~2 MB
EXIT_USAGE = 2  # an invalid config or override, like argparse
EXIT_FAILED = 1  # a job ran and failed
SHOW_TRACEBACK = False  # set by the app when the user asked for HYDRA_FULL_ERROR=1

# Why submitit's requeue handler ended a job (it raises inside the job), in the user's terms.
REQUEUE_REFUSALS = {
    "timed-out too many times": "SLURM's time limit came and the job had no requeue left: raise hydra.launcher.timeout_min, "
    "or hydra.launcher.max_num_timeout (a requeued training resumes from its last checkpoint: task.checkpoint_every)",
}


@dataclass(frozen=True)
class Job:
    """Where and how a task runs: what it needs from Hydra, and nothing else of Hydra."""

    output_dir: Path
    overrides: tuple[str, ...]
    num: int
    multirun: bool
    model_choice: str
    format: str
    searchpath: tuple[str, ...] = ()  # config dirs added by -cd or hydra.searchpath, as Hydra URLs


def current_job(cfg: DictConfig) -> Job:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hc = HydraConfig.get()
    return Job(
        output_dir=Path(hc.runtime.output_dir),
        overrides=tuple(hc.overrides.task),
        num=int(hc.job.num) if hc.mode == RunMode.MULTIRUN else 0,
        multirun=hc.mode == RunMode.MULTIRUN,
        model_choice=str(hc.runtime.choices.get("model", "")),
        format=str(cfg.get("format", "auto")),
        searchpath=tuple(
            f"{src.schema}://{src.path}" for src in hc.runtime.config_sources if src.provider not in ("hydra", "main", "schema")
        ),
    )


def _check_task_and_format(cfg: DictConfig, job: Job) -> str:
    problems = []
    task = str(OmegaConf.select(cfg, "task.name", default=""))
    if task not in TASKS:
        problems.append(Problem("task.name", f"task.name = {task!r}: no such task{suggest(task, TASKS)}; choose one of {', '.join(TASKS)} (task=NAME)."))
    if job.format not in FORMATS:
        problems.append(Problem("format", f"format = {job.format!r}: choose one of {', '.join(FORMATS)}{suggest(job.format, FORMATS)}."))
    if problems:
        raise ConfigError(problems, job.model_choice)
    return task


def _validated_model(cfg: DictConfig, job: Job):
    """The job's model config; its problems name the file and line (or override) that set each key."""
    try:
        return validate_model(cfg, source=job.model_choice)
    except ConfigError as error:
        from ..config.compose import locate

        others = [o for o in job.overrides if o.partition("=")[0].lstrip("~+") != "model"]
        dirs = [Path(url.removeprefix("file://")) for url in job.searchpath if url.startswith("file://")]
        raise ConfigError(locate(error.problems, job.model_choice, others, extra_dirs=dirs), job.model_choice) from None


class JobFailed(SystemExit):
    """A single run's failure, already explained; passes through Hydra (which catches Exception)."""

    def __init__(self, message: str, status: int):
        super().__init__(status)
        self.message = message


def explain(error: BaseException) -> tuple[str, int]:
    """The one paragraph a user sees for a failed job, and the exit status."""
    if isinstance(error, ConfigError):
        return f"{error} Run `lucid-arch --help` for the options.", EXIT_USAGE
    if isinstance(error, MissingExtra):  # already the one sentence that names the pip command
        return str(error), EXIT_FAILED
    return f"the job failed: {type(error).__name__}: {error} (set HYDRA_FULL_ERROR=1 for the traceback).", EXIT_FAILED


def job_error(error: BaseException) -> str:
    """The error a failed job's row shows: the config's problems, or the exception in one line."""
    if isinstance(error, (ConfigError, MissingExtra)):
        return str(error)
    text = f"{type(error).__name__}: {error}"
    if type(error).__name__ == "UncompletedJobError":  # submitit's, raised by its signal handler
        fix = next((v for k, v in REQUEUE_REFUSALS.items() if k in str(error)), None)
        return f"{fix} (submitit: {error})" if fix else text
    return text


def run_job(cfg: DictConfig) -> None:
    global _interrupted
    _interrupted = None
    job = current_job(cfg)
    record: dict[str, Any] = {
        "job": job.num,
        "overrides": list(job.overrides),
        "model": job.model_choice,
        "task": str(OmegaConf.select(cfg, "task.name", default="")),
        "status": "running",
        "host": socket.gethostname(),  # where to look for (or kill) a job that seems stuck
        "pid": os.getpid(),
    }
    if launch_env.slurm_job_id():
        record["slurm_job"] = launch_env.slurm_job_id()
    write_json(job.output_dir / SUMMARY_FILE, record)  # a job killed from here on still leaves a trace
    try:
        task = _check_task_and_format(cfg, job)
        model_cfg = _validated_model(cfg, job)
        model_cfg, run = model_from_run(cfg, model_cfg, job)  # model.pretrained=RUN: the run's own model
        if run is not None:
            record["run"] = run_record(run, model_cfg)
            if launch_env.rank() == 0:
                announce(run, model_cfg)
        record["model"] = model_cfg.name
        record.update(tracking_hooks.job_started(cfg, model_cfg, job))  # logger=mlflow|tensorboard: the job's run, opened now
        result = importlib.import_module(TASKS[task]).run(cfg, model_cfg, job)
        result = search_trial.with_measured_metrics(cfg, model_cfg, result)  # latency_ms, when a search asks for it
        record.update(result, status=result.get("status", "ok"))  # a task may say "pruned" (a search stopped it)
    except KeyboardInterrupt as stop:  # Ctrl-C, or SIGTERM (lucid_arch/cli/stopping.py): the app ends, saying so in one line
        record.update(status="interrupted", error=f"stopped by {name_of(signal_of(stop))} before the job finished")
        _interrupted = job.output_dir
        raise
    except Exception as error:
        message, status = explain(error)
        # What the task did before failing (files written, checks run), if it says: a failed export still names its files.
        record.update(getattr(error, "record", None) or {})
        record.update(status="failed", error=job_error(error))
        if not isinstance(error, ConfigError):
            record["traceback"] = traceback.format_exc()
        if not job.multirun:
            if SHOW_TRACEBACK:
                raise
            raise JobFailed(message, status) from error
        # A sweep goes on: this job is a failed row of the sweep report.
        print(f"lucid-arch: job {job.num} ({' '.join(job.overrides) or 'no overrides'}) failed: {record['error']}", file=sys.stderr)
    finally:
        write_json(job.output_dir / SUMMARY_FILE, record)
        tracking_hooks.job_ended(job, record)  # its final metrics, status and files (summary.json among them)


_interrupted: Path | None = None  # the directory of the last job a signal stopped in this process


def interrupted_note() -> str:
    """What a stopped single run left: its job's record, or that nothing had started."""
    if _interrupted is None:
        return "no job had started."
    return f"the job's record says so: {_interrupted / SUMMARY_FILE} (status interrupted)."


def write_json(path: Path, data: Any) -> None:
    """Write atomically: a sweep report never reads half a file; a killed job leaves its last whole record.

    Standard JSON only: a NaN or infinite figure (a failed export check's difference, a diverged
    loss) is written as null, which every reader parses, where Python's NaN/Infinity are not JSON.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(_finite(data), indent=2, default=str, allow_nan=False) + "\n")


def read_json(path: Path) -> Any:
    """A JSON record the app wrote (a job's summary.json, a sweep's ledger), read bounded.

    Another file may stand in its place: a FIFO or device raises NotRegularFile and a file over
    :data:`MAX_RECORD_BYTES` FileTooLarge (both ValueErrors, like damaged JSON), before a byte is
    waited for or copied; a missing file raises FileNotFoundError.
    """
    return json.loads(read_bounded(path, MAX_RECORD_BYTES))


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
