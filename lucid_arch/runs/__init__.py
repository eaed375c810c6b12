"""A training run directory as a model: what it was trained as, on which classes, with which
preprocessing, and which weights to load (run_dir.py); whether it is still running or was killed
(status.py); the model config that rebuilds it (rebuild.py). Torch-free, so the app and the
config-diff tool can read runs without importing torch.
"""

from __future__ import annotations

from .preprocessing import IMAGENET_MEAN, IMAGENET_STD, Preprocessing
from .rebuild import rebuilt_config
from .run_dir import Run, RunError, find_run, read_run, run_for_model, step_dirs
from .status import job_status, lock_holder

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "Preprocessing", "Run", "RunError", "find_run", "job_status", "lock_holder",
           "read_run", "rebuilt_config", "run_for_model", "step_dirs"]
