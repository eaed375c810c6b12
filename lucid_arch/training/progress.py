"""What a training run shows while it runs: a live bar in a terminal, plain lines in a log.

Everything goes to stderr, so ``format=json`` output on stdout stays machine-readable, and
only rank 0 reports. A cluster's log file gets a line every ``log_every`` steps instead of a
bar's carriage returns -- and at least one every ``log_seconds``, whichever comes first: with
slow steps (a large model, a busy node) 50 steps can take many minutes, and a log that stays
silent that long looks like a hung job.
"""

from __future__ import annotations

import sys
import time
from typing import Callable, Optional


def resolve_mode(mode: str) -> str:
    if mode == "auto":
        return "bar" if sys.stderr.isatty() else "log"
    return mode


class Progress:
    def __init__(self, mode: str, epochs: int, steps_per_epoch: int, log_every: int, acc_label: str = "acc",
                 log_seconds: float = 0.0, clock: Callable[[], float] = time.monotonic):
        self.mode = resolve_mode(mode)
        self.acc_label = acc_label  # "pixel acc" for a segmentation model
        self.epochs, self.steps_per_epoch, self.log_every = epochs, steps_per_epoch, log_every
        self.log_seconds = log_seconds  # 0: lines by steps only
        self._clock = clock
        self._last_line = clock()
        self._bar = None
        self._task = None

    def due(self, step_in_epoch: int) -> bool:
        """Whether :meth:`step` will show this step: always for a bar; in a log every ``log_every``
        steps, at the epoch's last step, or once ``log_seconds`` have passed since the last line."""
        if self.mode == "bar":
            return True
        if self.mode != "log":
            return False
        return (step_in_epoch % self.log_every == 0 or step_in_epoch == self.steps_per_epoch
                or (self.log_seconds > 0 and self._clock() - self._last_line >= self.log_seconds))

    def start_epoch(self, epoch: int, done_steps: int) -> None:
        if self.mode != "bar":
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress as RichProgress, TextColumn, TimeRemainingColumn

        self._bar = RichProgress(
            TextColumn(f"epoch {epoch + 1}/{self.epochs}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._bar.start()
        self._task = self._bar.add_task("train", total=self.steps_per_epoch, completed=done_steps, stats="")

    def step(self, epoch: int, step_in_epoch: int, loss: float, acc: Optional[float], lr: float, images_per_second: float) -> None:
        accuracy = "" if acc is None else f"  {self.acc_label} {acc:6.2%}"  # a detector has none
        stats = f"loss {loss:.4f}{accuracy}  lr {lr:.2e}  {images_per_second:,.0f} img/s"
        if self.mode == "bar" and self._bar is not None:
            self._bar.update(self._task, completed=step_in_epoch, stats=stats)
        elif self.mode == "log" and self.due(step_in_epoch):
            self._last_line = self._clock()
            print(f"epoch {epoch + 1}/{self.epochs} step {step_in_epoch}/{self.steps_per_epoch}  {stats}", file=sys.stderr, flush=True)

    def end_epoch(self, record: dict) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        if self.mode == "none":
            return
        train_acc = record.get("train_acc", record.get("train_pixel_acc"))
        accuracy = "" if train_acc is None else f" {self.acc_label} {train_acc:.2%}"
        line = (f"epoch {record['epoch']}/{self.epochs}: train loss {record['train_loss']:.4f}{accuracy}"
                f"  {record['images_per_second']:,.0f} img/s  {record['epoch_seconds']:.1f} s")
        if record.get("val_acc") is not None:
            line += f"  | val loss {record['val_loss']:.4f} acc {record['val_acc']:.2%}"
        if record.get("val_box_ap") is not None:
            line += f"  | val box AP {record['val_box_ap']:.1%} AP50 {record['val_box_ap50']:.1%}"
            if record.get("val_mask_ap") is not None:
                line += f" mask AP {record['val_mask_ap']:.1%}"
        if record.get("val_miou") is not None:
            line += f"  | val loss {record['val_loss']:.4f} mIoU {record['val_miou']:.2%} pixel acc {record['val_pixel_acc']:.2%}"
        self._last_line = self._clock()
        print(line, file=sys.stderr, flush=True)

    def note(self, text: str) -> None:
        if self.mode != "none":
            print(f"lucid-arch: {text}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


class Stopwatch:
    """Wall time of the steps only (evaluation and checkpoints excluded), for images/s."""

    def __init__(self, elapsed: float = 0.0):
        self.elapsed = elapsed
        self._since: Optional[float] = None

    def __enter__(self) -> "Stopwatch":
        self._since = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.elapsed += time.perf_counter() - self._since
