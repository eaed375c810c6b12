"""Whether a job is still running, finished, or was killed: read from its summary.json and its lock.

A job writes summary.json with status "running" (and its pid and host) when it starts and
rewrites it when it ends, so a job killed with SIGKILL, or on a node that went down, leaves
"running" behind for ever. Read later, that word is wrong. A training holds ``.lock`` (flock)
for as long as it trains; the kernel drops the lock with the process, so a free lock means no
process is training there. A summary saying "running" whose lock is free, and whose process is
gone where that can be checked (the same host), is a job that was interrupted.
"""

from __future__ import annotations

import fcntl
import os
import socket
import stat
from pathlib import Path
from typing import Any, Optional

LOCK_FILE = ".lock"  # lucid_arch/training/run_lock.py writes it


def lock_holder(job_dir: Path) -> Optional[str]:
    """Who trains in ``job_dir`` now ('pid N on HOST since ...'), or None when nobody does."""
    try:  # non-blocking: a FIFO planted as .lock must not hang whoever reads the run
        fd = os.open(Path(job_dir) / LOCK_FILE, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            return os.read(fd, 512).decode("utf-8", "replace").strip() or "a process that did not say who it is"
        finally:
            os.close(fd)
    except OSError:
        os.close(fd)
        return None
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)
    return None


def _alive_here(record: dict[str, Any]) -> bool:
    """Whether the job's process is alive, where that can be known (its host is this one)."""
    pid = record.get("pid")
    if record.get("host") != socket.gethostname() or not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def job_status(job_dir: Path, record: Optional[dict[str, Any]]) -> tuple[str, str]:
    """(status, one sentence) of a job whose summary.json says ``record`` (None: there is none).

    Only a "running" record is re-judged: "running" while a process trains there or lives,
    "interrupted" otherwise.
    """
    record = record or {}
    status = str(record.get("status", ""))
    who = f"pid {record.get('pid')} on {record.get('host')}" if record.get("pid") else "its process"
    if status != "running":
        return status, ""
    holder = lock_holder(job_dir)
    if holder:
        return "running", f"still training ({holder})"
    if _alive_here(record):
        return "running", f"still running ({who})"
    return "interrupted", f"interrupted: its process ({who}) ended before the job finished (killed, or its node went down)"


def run_status(root: Path, summary: Optional[dict[str, Any]], finished: bool) -> tuple[str, str]:
    """(finished | running | interrupted | failed | pruned, one sentence) of a training run.

    ``finished``: the run's final weights exist. A run trained from Python (no summary.json) is
    judged by its lock and its final weights alone.
    """
    holder = lock_holder(root)
    if holder:
        return "running", f"still training ({holder}): its weights are the newest checkpoint's"
    if summary is None:
        if finished:
            return "finished", "finished"
        return "interrupted", "interrupted: it stopped before writing its final weights; its weights are the newest checkpoint's"
    status, note = job_status(root, summary)
    if status == "ok":
        return "finished", "finished"
    if status == "running":
        return "running", f"{note}: its weights are the newest checkpoint's"
    if status == "interrupted":
        note = note or f"interrupted: {summary.get('error') or 'it stopped before it finished'}"  # the job said so itself (Ctrl-C, SIGTERM)
        return "interrupted", f"{note}; its weights are the newest checkpoint's"
    if status == "pruned":
        return "pruned", f"stopped early by the search's pruner ({summary.get('error', '')})".replace(" ()", "")
    error = str(summary.get("error") or "no error recorded").split("\n")[0]
    return "failed", f"failed ({error[:200]}{'...' if len(error) > 200 else ''})"
