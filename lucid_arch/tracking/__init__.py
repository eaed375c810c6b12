"""Tracking jobs where people look: MLflow runs and TensorBoard event files (``logger=...``).

The app's CLI opens a :class:`~lucid_arch.tracking.session.Session` for each job
(lucid_arch/cli/tracking_hooks.py), which logs the flattened model and task config as
parameters, every epoch of a training, the job's final metrics, status and report files.
Where each backend writes when the config leaves it open is decided in ``where.py``; what the
keys are called, in ``names.py``; which files are uploaded, in ``files.py``. Importing this
package imports neither torch, MLflow nor TensorBoard: each backend imports its own package
when a job uses it, and a missing one is one sentence naming the pip command (lucid_arch.extras).
"""

from .session import Session, open_session
from .where import Where

__all__ = ["Session", "Where", "open_session"]
