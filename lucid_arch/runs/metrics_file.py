"""A run's metrics.jsonl read back: one record per epoch, as far as it is whole.

A kill can cut the last line short; what comes before it is still the run's history. The file is
read with a size bound (a FIFO or a planted huge file gives no records, never a hang).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..safe_io import read_bounded

METRICS_FILE = "metrics.jsonl"
MAX_METRICS_BYTES = 64 << 20  # years of epochs; a summary of 100,000 class names per epoch would still fit


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The epoch records of ``path`` up to the first line that is not whole JSON; [] when it cannot be read."""
    try:
        lines = read_bounded(path, MAX_METRICS_BYTES).decode("utf-8", "replace").splitlines()
    except (OSError, ValueError):
        return []
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut short by a kill
            break
    return [r for r in records if isinstance(r, dict)]
