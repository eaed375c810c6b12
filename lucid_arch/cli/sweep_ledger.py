"""A sweep's own record of its jobs, and a directory no other sweep writes into.

The sweep report must say something of every job, including one whose process died before it
wrote a line, or that the launcher never started. Only the launching process knows which jobs
were launched, so the sweeper writes them here, ``SWEEP_DIR/.lucid-sweep.json``, before the
first one starts, and adds what the launcher said of any job that ended without a result.

Sweeps never mix: :func:`claim_new_dir` gives each default sweep directory
(``multirun/DATE/TIME``) to one sweep only, atomically (two sweeps started in the same second
get ``TIME`` and ``TIME-2``); :func:`open_ledger` refuses a directory that already holds
another sweep's jobs, and lets the same sweep, run again with the same jobs, continue in it.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from pathlib import Path
from typing import Any, Optional, Sequence

from ..config import ConfigError, Problem
from .jobs import write_json

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
            return candidate
        except FileExistsError:
            continue
    raise ConfigError([Problem("hydra.sweep.dir", f"{base}: 10,000 sweeps already started in this second; set hydra.sweep.dir.")])


def read_ledger(sweep_dir: Path) -> Optional[dict[str, Any]]:
    try:
        return json.loads((Path(sweep_dir) / LEDGER).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def job_dirs(sweep_dir: Path) -> list[Path]:
    """Directories under ``sweep_dir`` holding a Hydra job (its ``.hydra/overrides.yaml``)."""
    return [p.parent.parent for p in Path(sweep_dir).rglob(".hydra/overrides.yaml") if p.parent.parent != Path(sweep_dir)]


def open_ledger(sweep_dir: Path, jobs: Sequence[Sequence[str]]) -> dict[str, Any]:
    """Record a sweep's jobs in ``sweep_dir``; refuse a directory holding another sweep's jobs."""
    sweep_dir = Path(sweep_dir)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    planned = [{"num": num, "overrides": list(overrides)} for num, overrides in enumerate(jobs)]
    old = read_ledger(sweep_dir)
    if old is not None and [j["overrides"] for j in old.get("jobs", [])] != [j["overrides"] for j in planned]:
        _refuse(sweep_dir, f"holds the {len(old.get('jobs', []))} jobs of another sweep (started {old.get('started', '?')} "
                           f"on {old.get('host', '?')})")
    earlier = job_dirs(sweep_dir) if old is None else []
    if earlier:
        _refuse(sweep_dir, f"holds {len(earlier)} jobs of an earlier sweep")
    ledger = {
        "sweep": uuid.uuid4().hex,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "runs": (old or {}).get("runs", 0) + 1,  # the same sweep, run again in its directory (e.g. to resume)
        "jobs": planned,
        "launcher_errors": {},
    }
    write_json(sweep_dir / LEDGER, ledger)
    return ledger


def record_launcher_errors(sweep_dir: Path, ledger: dict[str, Any], errors: dict[int, str]) -> None:
    """Add what the launcher said of jobs that ended without a result (or of a batch it lost)."""
    ledger["launcher_errors"].update({str(num): text for num, text in errors.items()})
    write_json(Path(sweep_dir) / LEDGER, ledger)


def _refuse(sweep_dir: Path, what: str) -> None:
    raise ConfigError([Problem("hydra.sweep.dir", (
        f"hydra.sweep.dir = {str(sweep_dir)!r} {what}; a sweep's report would mix their rows with this one's. "
        f"Give this sweep a new directory (or leave hydra.sweep.dir unset: every sweep gets its own "
        f"multirun/DATE/TIME), or remove {sweep_dir} first."))])
