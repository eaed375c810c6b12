"""Training: the loop behind ``task=train``, its optimizer and schedule, checkpoints and DDP.

Knows nothing of Hydra: :func:`fit` takes a validated :class:`~lucid_arch.config.ModelConfig`,
the task's settings and a directory to write into; the app's task module supplies them.
"""

from .loop import TrainResult, fit

__all__ = ["TrainResult", "fit"]
