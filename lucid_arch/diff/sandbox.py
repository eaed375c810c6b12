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

A child's answer for a variant whose chain resolved depends only on the bytes of that chain's
files and on the request, so a :class:`Memo` hands it to a later request for a snapshot holding
the same bytes (a review's unchanged variants, a shipped variant named again in one process)
instead of composing it again; a request is also composed once however often one call asks it.
Failures are never kept.
"""

from __future__ import annotations

import base64
import hashlib
import json
import signal
import subprocess
import sys
import tempfile
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Optional, Sequence

from .trees import ModelDir
from .worker import relabel

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


def _child(snapshot: ModelDir, items: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The worker's answers, files not yet labelled; one ``error`` per item when it could not answer."""
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


def _key(item: dict[str, Any]) -> str:
    return json.dumps(item, sort_keys=True)


CHAINS_PER_REQUEST = 4


def _digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


class Memo:
    """Answers already composed, each with digests of the chain files it came from.

    ``size`` bounds how many requests are kept (the oldest go first), and each request keeps
    its answers for its last :data:`CHAINS_PER_REQUEST` different chains; None keeps everything.
    """

    def __init__(self, size: Optional[int] = None) -> None:
        self._answers: OrderedDict[str, list[tuple[dict[str, bytes], dict[str, Any]]]] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()  # the process's memo may serve several threads

    def recall(self, snapshot: ModelDir, item: dict[str, Any]) -> Optional[dict[str, Any]]:
        with self._lock:
            kept = list(self._answers.get(_key(item), ()))
        for chain, answer in kept:
            if all(n in snapshot.files and n not in snapshot.refused and _digest(snapshot.files[n]) == d for n, d in chain.items()):
                return answer
        return None

    def remember(self, snapshot: ModelDir, item: dict[str, Any], answer: dict[str, Any]) -> None:
        files = answer.get("files")
        if "error" in answer or not isinstance(files, list) or item["name"] not in files:
            return  # a failure, or a chain that did not resolve: nothing says what else it depends on
        if not all(isinstance(n, str) and n in snapshot.files and n not in snapshot.refused for n in files):
            return
        key, chain = _key(item), {n: _digest(snapshot.files[n]) for n in files}
        with self._lock:
            kept = self._answers.setdefault(key, [])
            kept.append((chain, answer))
            del kept[:-CHAINS_PER_REQUEST]
            self._answers.move_to_end(key)
            if self._size is not None and len(self._answers) > self._size:
                self._answers.popitem(last=False)


# What one process has composed: sides named again (a shipped variant in one diff after another) are not composed again.
_SHARED = Memo(size=128)


def compose(snapshot: ModelDir, items: Sequence[dict[str, Any]], memo: Optional[Memo] = None) -> list[dict[str, Any]]:
    """Compose each item (``name``, ``overrides``, ``set_name``) of one snapshot in one child.

    Returns one answer per item: ``config`` (a plain dict, or None), ``problems``, ``chain``
    and ``sources``; or ``error``, one sentence, when the child could not answer. ``memo``
    (by default, this process's) answers what it can, and keeps what the child composes.
    """
    return compose_many([(snapshot, items)], memo)[0]


def compose_many(
    jobs: Sequence[tuple[ModelDir, Sequence[dict[str, Any]]]], memo: Optional[Memo] = None
) -> list[list[dict[str, Any]]]:
    """:func:`compose` for several snapshots at once, one child each (none where nothing is left to compose), in parallel."""
    memo = memo if memo is not None else _SHARED
    distinct = [{_key(i): i for i in items} for _, items in jobs]  # a request asked twice is composed once
    known = [{k: memo.recall(snapshot, i) for k, i in d.items()} for (snapshot, _), d in zip(jobs, distinct)]
    wanted = [[d[k] for k, answer in kn.items() if answer is None] for d, kn in zip(distinct, known)]
    runs = [(snapshot, w) for (snapshot, _), w in zip(jobs, wanted) if w]
    if len(runs) > 1:
        with ThreadPoolExecutor(max_workers=len(runs)) as pool:
            results = iter(list(pool.map(lambda run: _child(*run), runs)))
    else:
        results = iter([_child(*run) for run in runs])
    out = []
    for (snapshot, items), w, kn in zip(jobs, wanted, known):
        for item, answer in zip(w, next(results) if w else []):
            kn[_key(item)] = answer
            memo.remember(snapshot, item, answer)
        labels = {n: snapshot.label(n) for n in snapshot.names()}
        out.append([relabel(kn[_key(i)], labels) for i in items])
    return out
