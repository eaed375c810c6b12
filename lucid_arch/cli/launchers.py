"""Hydra's submitit launchers, made to keep every job's outcome and to run one job on many tasks.

The app's sweeper (lucid_arch.cli.sweeper) runs ``hydra/launcher=submitit_slurm`` and
``submitit_local`` as these subclasses (:func:`adopt`): same settings, same requeue hook, so a
user's command line does not change. What they add:

- **Every job is waited for.** Hydra's launchers wait for the jobs in turn and raise at the
  first one that ended without a result (cancelled, killed, out of memory or time), so the
  sweep stops watching the others and writes no report. Here each job ends as a JobReturn;
  one that died is FAILED with what the scheduler says of it (``CANCELLED``, ``TIMEOUT``,
  ``OUT_OF_MEMORY``, ``FAILED`` with its exit code) and the last line of its log, and the
  sweep (lucid_arch.cli.sweeper) records that in the sweep's ledger for the report.
- **A cluster without accounting.** submitit asks ``sacct`` for job states; where SLURM keeps
  no accounting, sacct knows no job, submitit sees UNKNOWN forever and would wait for a dead
  job for ever. :class:`ScontrolWatcher` asks ``scontrol show job`` there instead.
- **A stopped sweep stops its jobs.** Ctrl-C or SIGTERM on the sweep cancels the jobs it is
  waiting for (scancel), so that no job runs on that nobody watches or records.
- **One training on many tasks.** With ``hydra.launcher.nodes=N tasks_per_node=G`` every task
  of a job runs the job: together they are one DDP run (lucid_arch.training.launch_env gives each its
  rank). Task 0 alone writes the job's directory; the others write theirs into a temporary
  folder that is removed afterwards.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any, Sequence

from hydra.core.utils import JobReturn, JobStatus
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from hydra_plugins.hydra_submitit_launcher import submitit_launcher as hydra_launchers

from ..training import launch_env

# Scheduler states after which no result can appear: the job is failed at once, without
# waiting out submitit's grace period for a slow shared filesystem.
FINAL_FAILURES = frozenset({"BOOT_FAIL", "CANCELLED", "DEADLINE", "FAILED", "INTERRUPTED", "NODE_FAIL", "OUT_OF_MEMORY",
                            "PREEMPTED", "PURGED", "TIMEOUT"})

# The fix for a job SLURM ended, by its state: said in the failed row next to SLURM's word.
STATE_FIXES = {
    "TIMEOUT": "it ran past its time limit: raise hydra.launcher.timeout_min, or let it requeue "
    "(hydra.launcher.max_num_timeout, with task.checkpoint_every so that it resumes)",
    "OUT_OF_MEMORY": "it used more memory than it asked for: raise hydra.launcher.mem_gb, or lower task.batch_size",
    "NODE_FAIL": "its node failed: the same sweep run again into its hydra.sweep.dir continues (task.resume=auto for trainings)",
}


class JobDied(RuntimeError):
    """A job that ended without a result; the message is what the scheduler says of it."""


class _KeepEveryOutcome:
    """What both launchers add to Hydra's (mixed in before them)."""

    _EXECUTOR: str
    params: dict[str, Any]

    def __call__(self, sweep_overrides: list[str], job_dir_key: str, job_num: int, job_id: str, singleton_state: Any) -> JobReturn:
        launch = launch_env.detect()
        if launch.is_main:
            return super().__call__(sweep_overrides, job_dir_key, job_num, job_id, singleton_state)  # type: ignore[misc]
        scratch = tempfile.mkdtemp(prefix=f"lucid-arch-rank{launch.rank}-")
        quiet = [f"hydra.sweep.dir={scratch}", "hydra.output_subdir=null", "hydra/job_logging=disabled"]
        try:
            return super().__call__([*sweep_overrides, *quiet], job_dir_key, job_num, job_id, singleton_state)  # type: ignore[misc]
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list[JobReturn]:
        import submitit
        from hydra.core.singleton import Singleton

        sweep_dir = Path(str(self.config.hydra.sweep.dir))  # type: ignore[attr-defined]
        sweep_dir.mkdir(parents=True, exist_ok=True)
        if self._EXECUTOR == "slurm":
            from .slurm_states import ScontrolWatcher

            submitit.SlurmJob.watcher = ScontrolWatcher.for_this_cluster()
        executor = submitit.AutoExecutor(cluster=self._EXECUTOR, folder=self.params["submitit_folder"], **self._init_parameters())
        executor.update_parameters(**self._job_parameters())
        nums = [initial_job_idx + i for i in range(len(job_overrides))]
        calls = [(list(o), "hydra.sweep.dir", num, f"job_id_for_{num}", Singleton.get_state()) for num, o in zip(nums, job_overrides)]
        jobs = executor.map_array(self, *zip(*calls))
        try:
            return [_outcome(job, list(overrides)) for job, overrides in zip(jobs, job_overrides)]
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM on the sweep: its jobs stop with it, none runs on unwatched
            for job in jobs:
                try:
                    job.cancel(check=False)
                except Exception:  # noqa: BLE001 - already ended, or the scheduler is gone: nothing left to stop
                    pass
            raise

    def _init_parameters(self) -> dict[str, Any]:
        """Executor arguments: max_num_timeout (prefixed with the cluster's name, as submitit wants)."""
        return {f"{self._EXECUTOR}_max_num_timeout": self.params["max_num_timeout"]} if "max_num_timeout" in self.params else {}

    def _job_parameters(self) -> dict[str, Any]:
        """Job settings: the shared ones (timeout_min, nodes ...) as they are, the cluster's own prefixed."""
        shared = set(BaseQueueConf.__dataclass_fields__)
        return {key if key in shared else f"{self._EXECUTOR}_{key}": value for key, value in self.params.items()
                if key not in ("submitit_folder", "max_num_timeout")}


class SlurmLauncher(_KeepEveryOutcome, hydra_launchers.SlurmLauncher):
    """Hydra's SLURM launcher, keeping every job's outcome."""


class LocalLauncher(_KeepEveryOutcome, hydra_launchers.LocalLauncher):
    """Hydra's local submitit launcher, keeping every job's outcome."""


def adopt(launcher: Any) -> Any:
    """Hydra's submitit launcher, as the subclass above that keeps every outcome; any other launcher as it is.

    The sweeper calls this on the launcher Hydra instantiated from ``hydra/launcher=...``, so
    the plugin's own config names and settings stay the user's interface.
    """
    upgrade = {hydra_launchers.SlurmLauncher: SlurmLauncher, hydra_launchers.LocalLauncher: LocalLauncher}.get(type(launcher))
    if upgrade is None:
        return launcher
    adopted = object.__new__(upgrade)
    adopted.__dict__.update(vars(launcher))  # same settings and Hydra context: only launch() and __call__() differ
    return adopted


# --- a job's outcome --------------------------------------------------------------------------


def _outcome(job: Any, overrides: list[str]) -> JobReturn:
    """Task 0's JobReturn, or a FAILED one saying why the job ended without a result."""
    from submitit.core.utils import FailedJobError, UncompletedJobError

    job.wait()  # every task
    task = job.task(0)
    state = str(task.state)
    local = hasattr(task, "_process")
    if local or state.split(" ")[0].upper() in FINAL_FAILURES:
        task._results_timeout_s = 2  # no result is coming (no shared filesystem lags here); only a file being written
    try:
        return task.result()
    except FailedJobError as exc:  # (a kind of UncompletedJobError) submitit raised in the job, e.g. its signal handler
        error: Exception = JobDied(_requeue_refusal(str(exc)) or f"{type(exc).__name__}: {_last_line(str(exc))}")
    except UncompletedJobError:
        error = JobDied(_death_notice(job, task, state))
    return JobReturn(overrides=overrides, status=JobStatus.FAILED, _return_value=error)


def _requeue_refusal(text: str) -> str:
    """The fix for a job submitit's requeue handler ended (SLURM's signal may come before the app's job began), or ""."""
    from .jobs import REQUEUE_REFUSALS

    fix = next((v for k, v in REQUEUE_REFUSALS.items() if k in text), None)
    return f"{fix} (submitit: {_last_line(text)})" if fix else ""


def _death_notice(job: Any, task: Any, state: str) -> str:
    text = task.stderr() or ""
    if _requeue_refusal(text):
        return _requeue_refusal(text)
    log = _last_line(text)
    tail = f"; its log ends: {log}" if log else ""
    if hasattr(task, "_process"):  # a local job: submitit's controller process does not keep its task's exit status
        return f"local job {job.job_id} ended without a result: its process was killed or crashed{tail}"
    info = task.watcher.get_info(job.job_id, mode="cache")  # what SLURM last said of it
    details = [f"{k.lower()} {info[k]}" for k in ("Reason", "ExitCode") if info.get(k) not in (None, "", "None", "0:0")]
    fix = STATE_FIXES.get(state.split(" ")[0].upper())
    return (f"SLURM job {job.job_id} ended without a result: {state}" + (f" ({', '.join(details)})" if details else "")
            + (f"; {fix}" if fix else "") + tail)


def _last_line(text: str, limit: int = 240) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip() and not set(line.strip()) <= set("-=")]
    return lines[-1][:limit] if lines else ""
