"""Progress through a known number of items: a live bar on a terminal, a plain line every few seconds
in a pipe or a log file, or nothing.

A bar's carriage returns make a cluster's log unreadable, and a log with no line for an hour
looks like a hung job; so when stderr is not a terminal the ticker writes one line at a steady
interval (``every`` seconds: done, rate, time left) and always one at the end. Everything goes
to stderr, so a task's JSON on stdout stays machine-readable. Torch-free; rich only for the bar.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Callable, Optional, TextIO

MODES = ("auto", "bar", "log", "none")


def resolve(mode: str, stream: Optional[TextIO] = None) -> str:
    """``auto`` -> ``bar`` on a terminal, else ``log``; other modes as they are."""
    if mode == "auto":
        stream = stream or sys.stderr
        return "bar" if hasattr(stream, "isatty") and stream.isatty() else "log"
    if mode not in MODES:
        raise ValueError(f"progress mode {mode!r}: choose one of {', '.join(MODES)}.")
    return mode


class Ticker:
    """``with Ticker(total, label="predict") as tick: ... tick.advance()``.

    ``note`` (a short text such as "3 unreadable") is shown beside the count; ``clock`` is for tests."""

    def __init__(
        self,
        total: int,
        *,
        label: str = "",
        unit: str = "images",
        mode: str = "auto",
        every: float = 10.0,
        stream: Optional[TextIO] = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.total, self.label, self.unit, self.every = max(0, int(total)), label, unit, float(every)
        self.stream = stream or sys.stderr
        self.mode = resolve(mode, self.stream)
        self.clock = clock
        self.done = 0
        self.note = ""
        self._start = self._last = clock()
        self._bar: Any = None
        self._task: Any = None
        if self.mode == "bar":
            self._start_bar()

    def __enter__(self) -> "Ticker":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start_bar(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._bar = Progress(
            TextColumn(self.label), BarColumn(), MofNCompleteColumn(), TextColumn(self.unit),
            TextColumn("{task.fields[note]}"), TimeRemainingColumn(), console=Console(file=self.stream), transient=True,
        )
        self._bar.start()
        self._task = self._bar.add_task(self.label, total=self.total, note="")

    def advance(self, n: int = 1, note: Optional[str] = None) -> None:
        self.done += n
        if note is not None:
            self.note = note
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done, note=self.note)
        elif self.mode == "log" and self.clock() - self._last >= self.every and self.done < self.total:
            self._line()

    def line(self) -> str:
        """``predict: 12/40 images (30%), 3.1 images/s, about 9 s left; 1 unreadable``."""
        elapsed = max(self.clock() - self._start, 1e-9)
        rate = self.done / elapsed
        share = f" ({self.done / self.total:.0%})" if self.total else ""
        text = f"{self.label + ': ' if self.label else ''}{self.done}/{self.total} {self.unit}{share}, {rate:.3g} {self.unit}/s"
        if self.done < self.total and rate > 0:
            text += f", about {_duration((self.total - self.done) / rate)} left"
        elif self.done >= self.total:
            text += f", {_duration(elapsed)} in all"
        return text + (f"; {self.note}" if self.note else "")

    def _line(self) -> None:
        self._last = self.clock()
        try:
            print(self.line(), file=self.stream, flush=True)
        except BrokenPipeError:
            self.mode = "none"

    def close(self) -> None:
        """Stop the bar, then the closing line (done, rate, time taken); closing twice writes one line."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        if self.mode in ("bar", "log"):
            self._line()
            self.mode = "none"


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s" if seconds >= 1 else f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min {seconds % 60:02.0f} s"
    return f"{seconds // 3600:.0f} h {seconds % 3600 // 60:02.0f} min"
