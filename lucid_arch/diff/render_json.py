"""JSON for CI: the whole report, plus the exit code, so a job can gate on either."""

from __future__ import annotations

import json

from .compare import DiffReport


def render(report: DiffReport) -> str:
    return json.dumps(report.to_dict(), indent=2, ensure_ascii=True)  # \u-escaped: inert in any log or terminal
