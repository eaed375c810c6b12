"""Training: the loop behind ``task=train``, its optimizer and schedule, checkpoints and DDP.

    loop.py         fit(): data -> model -> AdamW steps -> validation, checkpoints, metrics
    optim.py        parameter groups and the warm-up + cosine schedule
    checkpoint.py   atomic checkpoints, resume and its checks
    distributed.py  DDP set-up from launch_env
    launch_env.py   rank, world size and rendezvous from torchrun's or SLURM's environment (no torch)
    progress.py     the bar or log lines; run_lock.py: one writer per run directory

Knows nothing of Hydra: :func:`fit` takes a validated :class:`~lucid_arch.config.ModelConfig`,
the task's settings and a directory to write into; the app's task module supplies them.
``fit`` is imported lazily, so the command line can read ``launch_env`` without torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["TrainResult", "fit"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module(".loop", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
