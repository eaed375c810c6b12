"""A sweep's own record of its jobs, and a directory no other sweep writes into.

The sweep report must say something of every job, including one whose process died before it
wrote a line, or that the launcher never started. Only the launching process knows which jobs
were launched, so the sweeper writes them here, ``SWEEP_DIR/.lucid-sweep.json``, before the
first one starts, and adds what the launcher said of any job that ended without a result.

Sweeps never mix: :func:`claim_new_dir` gives each default sweep directory
(``multirun/DATE/TIME``) to one sweep only, atomically (two sweeps started in the same second
get ``TIME`` and ``TIME-2``); :func:`open_ledger` refuses a directory that already holds
another sweep's jobs, and lets the same sweep, run again with the same jobs, continue in it.

A search (``hydra/sweeper=optuna``) does not know its jobs in advance: :func:`open_search_ledger`
keeps the search's definition instead (its space, fixed overrides and objectives: the same
command continues it, another search or a grid sweep is refused) and :func:`add_jobs` records
each batch of trials before it is launched, and each candidate refused before it ran.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from pathlib import Path
from typing import Any, Optional, Sequence

from ..config import ConfigError, Problem
from ..safe_io import RefusedFile
from .jobs import read_json, write_json

LEDGER = ".lucid-sweep.json"


def claim_new_dir(base: str) -> str:
    """``base`` if no directory has that name yet, else ``base-2``, ``base-3`` ...: created here, so no other sweep gets it.

    A Hydra resolver (``${lucid_new_dir:multirun/${now:...}/${now:...}}``), cached like ``now``, so
    every job of the sweep, and the report, see the one directory. Creating it when the name is
    first resolved is what makes the claim atomic (``--cfg hydra --resolve`` leaves one empty).
    """
    Path(base).parent.mkdir(parents=True, exist_ok=True)
    for n in range(1, 10_000):
        candidate = base if n == 1 else f"{base}-{n}"
        try:
            os.mkdir(candidate)
            _claimed.append(Path(candidate))
            return candidate
        except FileExistsError:
            continue
    raise ConfigError([Problem("hydra.sweep.dir", f"{base}: 10,000 sweeps already started in this second; set hydra.sweep.dir.")])


_claimed: list[Path] = []  # directories claim_new_dir created in this process


def release_unused_claims() -> None:
    """Remove the claimed directories nothing was written to, and the date folders they empty.

    OmegaConf resolves the default ``hydra.sweep.dir`` when a config merges another value over
    it (an experiment with a fixed sweep directory), and ``--cfg`` resolves without sweeping:
    either leaves an empty claim behind. A sweep's own directory always holds its ledger.
    """
    while _claimed:
        path = _claimed.pop()
        for folder in (path, *path.parents[:-1]):  # multirun/DATE/TIME, multirun/DATE, multirun (never '.')
            try:
                folder.rmdir()  # only if empty
            except OSError:
                break


def read_ledger(sweep_dir: Path) -> Optional[dict[str, Any]]:
    """The sweep's ledger, or None when the directory has none.

    One that cannot be the app's (damaged JSON, another kind of file, a FIFO or gigabytes in
    its place) is a ConfigError naming it: going on would either mix sweeps or overwrite it.
    """
    path = Path(sweep_dir) / LEDGER
    try:
        ledger = read_json(path)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        why = err.reason if isinstance(err, RefusedFile) else f"cannot be read ({' '.join(str(err).split())})"
        raise _damaged(sweep_dir, path, why) from None
    if not isinstance(ledger, dict) or not isinstance(ledger.get("jobs", []), list) or \
            not all(isinstance(j, dict) and isinstance(j.get("num"), int) for j in ledger.get("jobs", [])):
        raise _damaged(sweep_dir, path, "is not a sweep's record of its jobs")
    return ledger


def _damaged(sweep_dir: Path, path: Path, why: str) -> ConfigError:
    return ConfigError([Problem("hydra.sweep.dir", (
        f"hydra.sweep.dir = {str(sweep_dir)!r}: its ledger {path} {why}; the app keeps a sweep's jobs there and will "
        f"neither guess them nor overwrite it. Give this sweep a new directory, or remove {sweep_dir} first."))])


def job_dirs(sweep_dir: Path) -> list[Path]:
    """Directories under ``sweep_dir`` holding a Hydra job (its ``.hydra/overrides.yaml``)."""
    return [p.parent.parent for p in Path(sweep_dir).rglob(".hydra/overrides.yaml") if p.parent.parent != Path(sweep_dir)]


def open_ledger(sweep_dir: Path, jobs: Sequence[Sequence[str]]) -> dict[str, Any]:
    """Record a sweep's jobs in ``sweep_dir``; refuse a directory holding another sweep's jobs."""
    sweep_dir = Path(sweep_dir)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    planned = [{"num": num, "overrides": list(overrides)} for num, overrides in enumerate(jobs)]
    old = read_ledger(sweep_dir)
    if old is not None and old.get("search"):
        _refuse(sweep_dir, f"holds the search of {old['search'].get('started', old.get('started', '?'))} "
                           f"({len(old.get('jobs', []))} trials), and a grid sweep cannot continue a search")
    if old is not None and [j.get("overrides") for j in old.get("jobs", [])] != [j["overrides"] for j in planned]:
        _refuse(sweep_dir, f"holds the {len(old.get('jobs', []))} jobs of another sweep (started {old.get('started', '?')} "
                           f"on {old.get('host', '?')})")
    _refuse_earlier_jobs(sweep_dir, old)
    ledger = _new_ledger(old, planned)
    write_json(sweep_dir / LEDGER, ledger)
    return ledger


def open_search_ledger(sweep_dir: Path, search: dict[str, Any]) -> dict[str, Any]:
    """Record a search (``search["identity"]``: what makes two runs the same search); keep its jobs when it continues."""
    sweep_dir = Path(sweep_dir)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    old = read_ledger(sweep_dir)
    if old is not None:
        was = old.get("search")
        if not was:
            _refuse(sweep_dir, f"holds the {len(old.get('jobs', []))} jobs of a grid sweep (started {old.get('started', '?')})")
        elif not isinstance(was, dict) or was.get("identity") != search["identity"]:
            identity = (was.get("identity") if isinstance(was, dict) else None) or {}
            _refuse(sweep_dir, f"holds another search (started {was.get('started', '?') if isinstance(was, dict) else '?'}: "
                               f"objectives {identity.get('objectives')}, space {identity.get('space')})")
        elif old.get("host") == socket.gethostname() and old.get("pid") != os.getpid() and _alive(old.get("pid")):
            raise ConfigError([Problem("hydra.sweep.dir", (
                f"hydra.sweep.dir = {str(sweep_dir)!r} is being searched right now by process {old.get('pid')} on this "
                f"machine, and two searches in one directory would overwrite each other's ledger and trials. Wait for that "
                f"search to end (or stop it) and run this command again to continue it, or give this search a new directory."))])
    _refuse_earlier_jobs(sweep_dir, old)
    ledger = _new_ledger(old, (old or {}).get("jobs", []))
    ledger["launcher_errors"] = (old or {}).get("launcher_errors", {})
    ledger["search"] = {**search, "started": ((old or {}).get("search") or {}).get("started", ledger["started"])}
    write_json(sweep_dir / LEDGER, ledger)
    return ledger


def add_jobs(sweep_dir: Path, ledger: dict[str, Any], jobs: list[dict[str, Any]]) -> None:
    """Add a search's jobs (``num``, ``overrides``, and what the search knows of them) before they are launched."""
    ledger["jobs"].extend(jobs)
    write_json(Path(sweep_dir) / LEDGER, ledger)


def next_num(ledger: dict[str, Any]) -> int:
    return max((j["num"] for j in ledger["jobs"]), default=-1) + 1


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def _refuse_earlier_jobs(sweep_dir: Path, old: Optional[dict[str, Any]]) -> None:
    earlier = job_dirs(sweep_dir) if old is None else []
    if earlier:
        _refuse(sweep_dir, f"holds {len(earlier)} jobs of an earlier sweep")


def _new_ledger(old: Optional[dict[str, Any]], jobs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "sweep": uuid.uuid4().hex,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "runs": (old or {}).get("runs", 0) + 1,  # the same sweep, run again in its directory (e.g. to resume)
        "jobs": jobs,
        "launcher_errors": {},
    }


def record_launcher_errors(sweep_dir: Path, ledger: dict[str, Any], errors: dict[int, str], died: bool = False) -> None:
    """Add what the launcher said of jobs that ended without a result (or of a batch it lost).

    ``died``: the launcher ran these jobs and they ended without a result, so a job among them
    that left no directory (killed before its first record, say by a time-limit signal SLURM sent
    at once) is a failed row, not one that never started.
    """
    ledger["launcher_errors"].update({str(num): text for num, text in errors.items()})
    if died:
        for job in ledger["jobs"]:
            if job["num"] in errors:
                job["died"] = True
    write_json(Path(sweep_dir) / LEDGER, ledger)


def mark_interrupted(sweep_dir: Path, ledger: dict[str, Any], why: dict[int, str]) -> None:
    """Jobs a stop interrupted (``interrupted``: why): their rows say so, whatever their directories hold, as the study does."""
    for job in ledger["jobs"]:
        if job["num"] in why:
            job["interrupted"] = why[job["num"]]
    write_json(Path(sweep_dir) / LEDGER, ledger)


def record_study(sweep_dir: Path, ledger: dict[str, Any], study: dict[str, Any]) -> None:
    """A search's study as Optuna counts it (name, trials, outcomes), for the report to square with its rows."""
    ledger["search"]["study"] = study
    write_json(Path(sweep_dir) / LEDGER, ledger)


def _refuse(sweep_dir: Path, what: str) -> None:
    raise ConfigError([Problem("hydra.sweep.dir", (
        f"hydra.sweep.dir = {str(sweep_dir)!r} {what}; a sweep's report would mix their rows with this one's. "
        f"Give this sweep a new directory (or leave hydra.sweep.dir unset: every sweep gets its own "
        f"multirun/DATE/TIME), or remove {sweep_dir} first."))])
