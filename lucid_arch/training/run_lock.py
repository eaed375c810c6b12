"""One writer per run directory: a lock taken for the whole of a training, released when it ends.

Two trainings writing one directory (the same ``hydra.run.dir`` twice, a job resubmitted while
its first copy still runs) would interleave checkpoints and metrics into a run that is neither.
The lock is ``flock`` on ``RUN_DIR/.lock``: the kernel drops it when the process dies, however
it dies, so a killed run never leaves a stale lock behind (and Linux's NFS client maps it to a
lock every node sees). The file says who holds it, for the error the second writer gets.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import time
from pathlib import Path
from typing import Iterator

LOCK_FILE = ".lock"


class RunDirLocked(RuntimeError):
    """Another process is training into this run directory."""


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = path.read_text().strip() or "a process that did not say who it is"
            raise RunDirLocked(
                f"{run_dir} is being written by another training ({holder}); two runs in one directory would mix "
                f"their checkpoints and metrics. Wait for it to end, or give this run its own directory "
                f"(hydra.run.dir=...; task.resume=... to continue from that run's checkpoints)."
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
        yield
    finally:
        os.close(fd)  # releases the lock
