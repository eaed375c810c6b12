"""The two short endings every task's report shares: the whole record as JSON, or a sweep's one line per job."""

from __future__ import annotations

import json
from typing import Any

from ..report.tables import emit
from .jobs import Job


def said_in_brief(job: Job, document: Any, headline: str) -> bool:
    """Print ``document`` as JSON (``format=json``), or one line for this job of a sweep (``format=auto``
    in a multirun, where a table per job would bury the others); False when the task prints its tables."""
    if job.format == "json":
        emit(json.dumps(document, indent=2))
        return True
    if job.multirun and job.format == "auto":
        emit(f"job {job.num} {' '.join(job.overrides)}: {headline}")
        return True
    return False
