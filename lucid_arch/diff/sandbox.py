"""Run :mod:`lucid_arch.diff.worker` in a child process that has nothing to leak and little to spend.

Defence in depth for reviewing configs from strangers: even if a hole were found in the
model-file rules, the process that reads and composes a reviewed tree has

- an empty environment (no CI token, no secret for ``${oc.env:...}`` to read),
- Python's isolated mode (``-I``: no ``PYTHON*`` variables, no user site, and neither the
  working directory nor a script directory on ``sys.path``, so a reviewed checkout cannot
  shadow a module), and a private temporary working directory,
- limits on CPU time (:data:`CPU_SECONDS`), address space (:data:`MEMORY_BYTES`), the size
  of any file it writes (:data:`FILE_BYTES`), open files, and no core dumps,
- a wall-clock timeout (:data:`WALL_SECONDS`).

A limit that is hit, or any other failure, is that side's problem in the report (exit 2),
described in one sentence. This is not an operating-system sandbox: the child can still read
files the user can; it is simply never asked to, and never given a path to the reviewed tree.
"""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Sequence

from .trees import ModelDir

CPU_SECONDS = 20
WALL_SECONDS = 60
MEMORY_BYTES = 2 * 1024**3
FILE_BYTES = 16 * 1024**2
OPEN_FILES = 256
_PACKAGE_PARENT = str(Path(__file__).resolve().parent.parent.parent)
# The worker sets its limits itself, first thing, before it reads a byte of the request (a
# preexec_fn would do the same but is unsafe beside the threads of compose_many).
_START = (
    f"import sys; sys.path.insert(0, {_PACKAGE_PARENT!r}); from lucid_arch.diff.worker import main; "
    f"main(cpu_seconds={CPU_SECONDS}, memory_bytes={MEMORY_BYTES}, file_bytes={FILE_BYTES}, open_files={OPEN_FILES})"
)


def _request(snapshot: ModelDir, items: Sequence[dict[str, Any]]) -> bytes:
    return json.dumps(
        {
            "files": {n: base64.b64encode(b).decode() for n, b in snapshot.files.items()},
            "refused": snapshot.refused,
            "labels": {n: snapshot.label(n) for n in snapshot.names()},
            "requests": list(items),
        }
    ).encode()


def _failure(proc: subprocess.CompletedProcess) -> str:
    if proc.returncode == -signal.SIGXCPU:
        return f"used more than its {CPU_SECONDS} s of CPU time"
    if proc.returncode < 0:
        return f"was stopped by signal {signal.Signals(-proc.returncode).name} (its memory limit is {MEMORY_BYTES // 2**20:,} MiB)"
    if b"MemoryError" in proc.stderr:
        return f"ran out of the {MEMORY_BYTES // 2**20:,} MiB of memory it may use"
    last = proc.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
    return f"failed (exit {proc.returncode}: {last[0][:200]})"


def compose(snapshot: ModelDir, items: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Compose each item (``name``, ``overrides``, ``set_name``) of one snapshot in one child.

    Returns one answer per item: ``config`` (a plain dict, or None), ``problems``, ``chain``
    and ``sources``; or ``error``, one sentence, when the child could not answer.
    """
    with tempfile.TemporaryDirectory(prefix="lucid_arch_review_") as cwd:
        try:
            proc = subprocess.run(
                [sys.executable, "-I", "-X", "utf8", "-c", _START],
                input=_request(snapshot, items),
                capture_output=True,
                cwd=cwd,
                env={},
                timeout=WALL_SECONDS,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return [{"error": f"took longer than {WALL_SECONDS} s"}] * len(items)
    try:
        answer = json.loads(proc.stdout) if proc.returncode == 0 else {"error": _failure(proc)}
    except ValueError:
        answer = {"error": _failure(proc)}
    results = answer.get("results")
    if not isinstance(results, list) or len(results) != len(items):
        return [{"error": str(answer.get("error") or _failure(proc))}] * len(items)
    return results


def compose_many(jobs: Sequence[tuple[ModelDir, Sequence[dict[str, Any]]]]) -> list[list[dict[str, Any]]]:
    """:func:`compose` for several snapshots at once, one child each, in parallel."""
    if len(jobs) == 1:
        return [compose(*jobs[0])]
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        return list(pool.map(lambda job: compose(*job), jobs))
