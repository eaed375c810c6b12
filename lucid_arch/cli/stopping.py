"""Ctrl-C and SIGTERM: a stop the app finishes cleanly, said in one line, never a traceback.

Python turns SIGINT into KeyboardInterrupt but dies on SIGTERM without running a ``finally``
(what a scheduler, ``kill`` or a cluster's time limit sends). While the app runs, SIGTERM
raises :class:`Stopped`, a KeyboardInterrupt, so both unwind the same way: a job records
itself as interrupted (lucid_arch/cli/jobs.py), a sweep or search marks the jobs it had in
flight and still writes its report (lucid_arch/cli/sweeper.py, search_sweeper.py), and the app
prints the line a sweeper left here (or a plain one) and exits 128 + the signal's number, as a
shell reports a command a signal ended.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Any, Iterator, Optional


class Stopped(KeyboardInterrupt):
    """SIGTERM, raised where the main thread was, so that cleanups run."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


_stopped: Optional[tuple[int, str]] = None  # (signal number, the line to print) once a sweeper finished a stop


def signal_of(error: BaseException) -> int:
    """The signal behind a KeyboardInterrupt: SIGTERM for a :class:`Stopped`, else SIGINT (Ctrl-C)."""
    return error.signum if isinstance(error, Stopped) else int(signal.SIGINT)


def name_of(signum: int) -> str:
    return signal.Signals(signum).name


def exit_status(signum: int) -> int:
    return 128 + int(signum)


def record_stop(error: BaseException, line: str) -> None:
    """A sweep or search stopped cleanly: the app exits with the signal's status and prints ``line``."""
    global _stopped
    _stopped = (signal_of(error), line)


def stopped() -> Optional[tuple[int, str]]:
    return _stopped


def reset() -> None:
    global _stopped
    _stopped = None


@contextlib.contextmanager
def sigterm_raises(enabled: bool = True) -> Iterator[None]:
    """SIGTERM raises :class:`Stopped` for the duration (in the main thread; elsewhere signals cannot be handled).

    Not for one process of a distributed run (``enabled`` false): a rank blocked in a collective
    would run the handler only once the collective returns, so torchrun's SIGTERM would wait out
    its grace period instead of ending the rank.
    """
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        raise Stopped(signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
