"""SLURM job states where the cluster keeps no accounting: ``scontrol show job`` instead of ``sacct``.

submitit asks sacct; without an accounting database sacct knows no job, every state reads
UNKNOWN and submitit waits for a job that died for ever. slurmctld itself still knows a job
for MinJobAge seconds after it ended (the local test cluster keeps them an hour), with its
state (CANCELLED, FAILED, TIMEOUT, OUT_OF_MEMORY ...), reason and exit code. Imported only
when a SLURM sweep is launched (it imports submitit).
"""

from __future__ import annotations

import re
import subprocess
import time
from typing import Any

from submitit.slurm.slurm import SlurmInfoWatcher

_WATCH_DELAY_S = 30  # longest wait between two state queries


_FIELD = re.compile(r"\b(JobId|ArrayJobId|ArrayTaskId|JobState|Reason|ExitCode)=(\S*)")


def _expand_tasks(spec: str) -> list[str]:
    """'0-2,5%2' -> ['0', '1', '2', '5']"""
    out: list[str] = []
    for part in spec.split("%")[0].split(","):
        low, _, high = part.partition("-")
        if low.isdigit():
            out += [str(i) for i in range(int(low), int(high or low) + 1)]
    return out


def parse_scontrol(text: str) -> dict[str, dict[str, str]]:
    """``scontrol show job -o`` lines -> {submitit's job id ("123" or "123_4"): {"State": ..., "Reason": ..., "ExitCode": ...}}"""
    found: dict[str, dict[str, str]] = {}
    for line in text.splitlines():
        fields = dict(_FIELD.findall(line))
        if "JobState" not in fields:
            continue
        info = {"State": fields["JobState"], "Reason": fields.get("Reason", ""), "ExitCode": fields.get("ExitCode", "")}
        if fields.get("ArrayJobId") and fields.get("ArrayTaskId"):
            for task in _expand_tasks(fields["ArrayTaskId"]):
                found[f"{fields['ArrayJobId']}_{task}"] = info
        elif fields.get("JobId"):
            found[fields["JobId"]] = info
    return found


class ScontrolWatcher(SlurmInfoWatcher):
    """submitit's SLURM job watcher, asking scontrol where the cluster keeps no accounting for sacct."""

    _instance: "ScontrolWatcher | None" = None

    @classmethod
    def for_this_cluster(cls) -> Any:
        """One shared watcher: submitit's own where sacct works, this one where accounting is off."""
        import submitit

        try:
            config = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, timeout=60).stdout
        except (OSError, subprocess.SubprocessError):
            return submitit.SlurmJob.watcher
        if not re.search(r"^AccountingStorageType\s*=\s*accounting_storage/none", config, re.M):
            return submitit.SlurmJob.watcher
        if cls._instance is None:
            cls._instance = cls(delay_s=_WATCH_DELAY_S)
        return cls._instance

    def update(self) -> None:
        """Ask scontrol about every unfinished job (one call per job or job array)."""
        waiting = self._registered - self._finished
        for main_id in sorted({job_id.split("_")[0] for job_id in waiting}):
            self._num_calls += 1
            try:
                proc = subprocess.run(["scontrol", "show", "job", "--oneliner", main_id], capture_output=True, text=True, timeout=60)
            except (OSError, subprocess.SubprocessError):  # slurmctld busy or restarting: ask again later
                continue
            info = parse_scontrol(proc.stdout)
            if proc.returncode and "Invalid job id" in proc.stderr:  # purged after MinJobAge
                gone = {"State": "PURGED", "Reason": "slurmctld_no_longer_knows_the_job"}
                info = {job_id: gone for job_id in waiting if job_id.split("_")[0] == main_id}
            self._info_dict.update(info)
        self._last_status_check = time.time()
        for job_id in self._registered - self._finished:
            if self.is_done(job_id, mode="cache"):
                self._finished.add(job_id)
