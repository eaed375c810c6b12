"""The app's sweeper: Hydra's basic sweeper, made so that a launcher's failure never loses a sweep.

Hydra's basic sweeper calls the launcher and re-raises the first failed job's error; when the
launcher itself raises (a joblib worker killed: TerminatedWorkerError; a submitit job
cancelled: UncompletedJobError) the multirun ends there, ``on_multirun_end`` is never called,
and no sweep.csv / .md / .png is written. This one (set in conf/hydra/default.yaml):

0. runs Hydra's submitit launchers as lucid_arch.cli.launchers' subclasses, which wait for every
   job and say why one ended without a result, instead of raising at the first,
1. composes every job first (an invalid sweep value is still reported before any job runs),
2. records the jobs in the sweep's ledger (lucid_arch.cli.sweep_ledger), refusing a directory
   that holds another sweep's jobs,
3. launches them batch by batch; what a launcher raises, or says of a job that ended without a
   result, goes into the ledger beside the jobs it concerns, and the sweep goes on,
4. returns, so Hydra calls the sweep report (lucid_arch.cli.sweep_report), which writes a row
   for every job from what it left on disk and what the ledger says; the app exits 1;
5. on Ctrl-C or SIGTERM (lucid_arch.cli.stopping) records why the jobs not done have no result,
   and returns all the same: the report is written, and the app prints one line and exits 130 or 143.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, List

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobStatus
from omegaconf import OmegaConf

from ..safe_io import atomic_write
from . import stopping, sweep_ledger


class Sweeper(BasicSweeper):
    def setup(self, *, hydra_context: Any, task_function: Any, config: Any) -> None:
        super().setup(hydra_context=hydra_context, task_function=task_function, config=config)
        self.launcher = keep_every_outcome(self.launcher)

    def sweep(self, arguments: List[str]) -> Any:
        assert self.config is not None and self.launcher is not None and self.hydra_context is not None
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        self.overrides = self.split_arguments(parser.parse_overrides([*self._parse_config(), *arguments]), self.max_batch_size)
        for batch in self.overrides:
            self.validate_batch_is_legal(batch)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        ledger = sweep_ledger.open_ledger(sweep_dir, [job for batch in self.overrides for job in batch])
        atomic_write(sweep_dir / "multirun.yaml", lambda tmp: OmegaConf.save(self.config, tmp))

        returns = []
        first = 0
        try:
            while not self.is_done():
                batch = self.get_job_batch()
                nums = range(first, first + len(batch))
                try:
                    results = self.launcher.launch(batch, initial_job_idx=first)
                except Exception as error:  # noqa: BLE001 -- whatever the launcher lost, the report still has every job
                    reason = f"the {type(self.launcher).__name__} lost the batch: {type(error).__name__}: {_one_line(error)}"
                    print(f"lucid-arch: {reason}", file=sys.stderr)
                    sweep_ledger.record_launcher_errors(sweep_dir, ledger, {num: reason for num in nums})
                    results = []
                else:
                    died = {num: _one_line(r._return_value) for num, r in zip(nums, results) if r.status == JobStatus.FAILED}
                    if died:
                        sweep_ledger.record_launcher_errors(sweep_dir, ledger, died, died=True)
                returns.append(results)
                first += len(batch)
        except KeyboardInterrupt as stop:  # Ctrl-C or SIGTERM: the jobs not done say why, and the report is still written
            name = stopping.name_of(stopping.signal_of(stop))
            states = _job_states(sweep_dir)
            left = [j["num"] for j in ledger["jobs"] if states.get(j["num"]) not in ("ok", "failed", "pruned")]
            sweep_ledger.record_launcher_errors(sweep_dir, ledger, {  # a job that started says so in its own summary.json
                num: f"the sweep was stopped by {name} before this job started" for num in left if num not in states})
            stopping.record_stop(stop, (
                f"sweep stopped by {name}: {len(ledger['jobs']) - len(left)} of {len(ledger['jobs'])} jobs had finished, the "
                f"other {len(left)} are interrupted or missing rows; the same command runs the sweep again in its directory "
                f"(the rows so far: {sweep_dir / 'sweep.md'})."))
        return returns


def _job_states(sweep_dir: Path) -> dict[int, str]:
    """The status each started job's summary.json gives, by job number."""
    from .jobs import SUMMARY_FILE, read_json

    states = {}
    for job_dir in sweep_ledger.job_dirs(sweep_dir):
        head = job_dir.name.split("_")[0]
        try:
            record = read_json(job_dir / SUMMARY_FILE)
        except (OSError, ValueError):
            record = {}
        if head.isdigit():
            states[int(head)] = str(record.get("status", "")) if isinstance(record, dict) else ""
    return states


def keep_every_outcome(launcher: Any) -> Any:
    """Hydra's submitit launchers as lucid_arch.cli.launchers' subclasses, its joblib launcher as
    lucid_arch.cli.joblib_launcher's; any other launcher as it is.

    Each module imports its plugin (an extra), so it is imported only when its launcher is used.
    """
    if type(launcher).__module__.startswith("hydra_plugins.hydra_submitit_launcher"):
        from .launchers import adopt

        return adopt(launcher)
    if type(launcher).__module__.startswith("hydra_plugins.hydra_joblib_launcher"):
        from . import joblib_launcher

        return joblib_launcher.adopt(launcher)
    return launcher


def _one_line(error: BaseException, limit: int = 400) -> str:
    text = " ".join(str(error).split())
    return text[:limit] + ("..." if len(text) > limit else "")
