"""A job as a TensorBoard run: a directory of event files.

Written with torch's ``torch.utils.tensorboard.SummaryWriter``, which needs the ``tensorboard``
package (the extra installs it): the one package a user needs anyway to look at the files, so
the extra adds nothing else (tensorboardX would be a second writer of the same format). Epoch
metrics are scalars at step = epoch; the flattened config is the run's hyperparameters in
TensorBoard's HParams tab, beside the final metrics, so a sweep's jobs compare there, and a
text summary ``config`` lists it too. Imported only when a job logs to TensorBoard.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import ConfigError, Problem
from ..config.logger_schema import TensorBoardConfig
from ..extras import require
from .names import hparam_value
from .where import Where, tensorboard_dir


class TensorBoardRun:
    name = "TensorBoard"

    def __init__(self, settings: TensorBoardConfig, where: Where):
        require("tensorboard", "logger=tensorboard")
        from torch.utils.tensorboard import SummaryWriter

        self.log_dir = tensorboard_dir(settings, where)
        try:
            self.writer = SummaryWriter(log_dir=str(self.log_dir))
        except OSError as error:
            raise ConfigError([Problem("logger.tensorboard.log_dir", (
                f"logger.tensorboard.log_dir: {self.log_dir} cannot be written ({error.strerror or error}); give a writable "
                "directory, or null for the job's directory/tensorboard."))]) from None
        self.logged_epochs = 0  # a rerun in the same directory rewrites its steps; TensorBoard drops the older ones
        self.params: dict[str, Any] = {}
        self.final: list[str] = []

    def info(self) -> dict[str, Any]:
        return {"log_dir": str(self.log_dir)}

    def log_params(self, params: dict[str, Any]) -> None:
        self.params.update(params)
        rows = "\n".join(f"| {k} | `{v}` |" for k, v in params.items())
        self.writer.add_text("config", f"| key | value |\n| --- | --- |\n{rows}")

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def set_tags(self, tags: dict[str, str]) -> None:
        if tags:
            self.writer.add_text("tags", "\n".join(f"- {k}: {v}" for k, v in tags.items()))

    def log_files(self, files: list[tuple[Path, str]]) -> None:
        """Nothing to copy: the event files sit beside the job's reports."""

    def note_final(self, keys: list[str]) -> None:
        """The metrics the HParams tab shows beside the config (each already written as a scalar)."""
        self.final = [k for k in keys if k not in self.final] + self.final

    def finish(self, status: str) -> None:
        from torch.utils.tensorboard.summary import hparams

        if self.params:
            summaries = hparams({k: hparam_value(v) for k, v in self.params.items()}, {k: 0.0 for k in self.final})
            for summary in summaries:
                self.writer.file_writer.add_summary(summary)
        self.writer.close()
