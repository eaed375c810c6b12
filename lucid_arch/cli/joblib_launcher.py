"""Hydra's joblib launcher, whose workers always start where the sweep does.

loky keeps its worker processes between calls, each in the working directory it started in,
and Hydra resolves a relative ``hydra.sweep.dir`` in the worker: a second sweep run in the same
process (the Python API, a notebook, a test suite) from another directory would write its jobs
into the first one's directory and report its own as missing. Workers started elsewhere are
replaced before a batch is launched.
"""

from __future__ import annotations

import os
from typing import Any, Optional, Sequence

from hydra.core.utils import JobReturn
from hydra_plugins.hydra_joblib_launcher.joblib_launcher import JoblibLauncher as HydraJoblibLauncher

_workers_cwd: Optional[str] = None  # where this process's reusable loky workers were started


class JoblibLauncher(HydraJoblibLauncher):
    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        _workers_here()
        return super().launch(job_overrides, initial_job_idx)


def _workers_here() -> None:
    global _workers_cwd
    from joblib.externals.loky import reusable_executor

    cwd = os.getcwd()
    executor = getattr(reusable_executor, "_executor", None)
    if executor is not None and _workers_cwd not in (None, cwd):
        executor.shutdown(wait=True)
    _workers_cwd = cwd


def adopt(launcher: Any) -> Any:
    """Hydra's JoblibLauncher as the subclass above: same settings and Hydra context."""
    adopted = object.__new__(JoblibLauncher)
    adopted.__dict__.update(vars(launcher))
    return adopted
