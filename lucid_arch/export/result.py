"""What an export wrote and how it was checked: the record export_model (and a detector's export) returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from .dynamic import InputShapes
from .verify import Check

INPUT_NAME = "image"


@dataclass
class ExportResult:
    """What was written and how it was checked. ``files``: format -> path ('onnx_data' for external ONNX weights)."""

    name: str
    output_dir: Path
    files: dict[str, Path]
    shapes: InputShapes
    opset: Optional[int]
    input_name: str
    output_names: list[str]
    checks: list[Check] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)  # what both files carry (metadata.py), keys lucid_arch.*

    def max_abs_diff(self, runtime: str) -> Optional[float]:
        diffs = [c.max_abs_diff for c in self.checks if c.runtime == runtime]
        return max(diffs) if diffs else None

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        """For summary.json: file names relative to the output directory (no machine paths)."""
        return {
            "files": {fmt: path.name for fmt, path in self.files.items()},
            "opset": self.opset,
            "input": {"name": self.input_name, **self.shapes.describe()},
            "outputs": self.output_names,
            "traced_input": list(self.shapes.sample),
            "checks": [c.to_dict() for c in self.checks],
            "seconds": {k: round(v, 2) for k, v in self.seconds.items()},
            "metadata": self.metadata,
        }
