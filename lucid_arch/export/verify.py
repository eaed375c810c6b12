"""Checked, not hoped: every written file runs at several sizes and must agree with eager PyTorch.

An exporter can succeed and still be wrong at sizes other than the one it traced (a pooling
kernel worked out from the sample, a position table kept at its trained size), so each file is
loaded back the way its users load it (onnxruntime's CPU provider for ONNX, torch.export.load
for .pt2) and run at the export size and at two other sizes inside the dynamic range, one of
them non-square and one with odd sides (every stride leaves a remainder). The largest absolute
difference from the eager model, over all outputs, is reported per size and runtime; above
``atol`` the export has failed, and the error names each size and runtime that disagreed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

from ..config.geometry import size_text
from . import onnx_model, torch_program
from .dynamic import ExportSettingError, InputShapes

Runner = Callable[[torch.Tensor], Any]
# format -> (the runtime's name in reports, what loads a written file as a function of a batch)
RUNTIMES: dict[str, tuple[str, Callable[[Path], Runner]]] = {
    "onnx": ("onnxruntime", onnx_model.runner),
    "pt2": ("torch", torch_program.runner),
}


@dataclass(frozen=True)
class Check:
    runtime: str
    file: str
    shape: tuple[int, int, int, int]
    max_abs_diff: float
    atol: float

    @property
    def ok(self) -> bool:
        return self.max_abs_diff <= self.atol  # NaN is not ok

    @property
    def input(self) -> str:
        return size_text(self.shape)

    def to_dict(self) -> dict[str, Any]:
        return {"runtime": self.runtime, "file": self.file, "input": list(self.shape), "max_abs_diff": self.max_abs_diff, "ok": self.ok}


class VerificationError(AssertionError):
    """An exported file disagrees with eager PyTorch; ``checks`` holds every comparison, ``record`` what summary.json keeps."""

    def __init__(self, message: str, checks: list[Check]):
        super().__init__(message)
        self.checks = checks
        self.result: Any = None  # the ExportResult, set by export_model
        self.record: dict[str, Any] = {}  # what the app's summary.json keeps of a failed job


def flat_outputs(out: Any) -> list[torch.Tensor]:
    """A model's output as a list of tensors: a tensor, or a (nested) list, tuple or dict of them."""
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, (list, tuple)):
        return [t for item in out for t in flat_outputs(item)]
    raise TypeError(f"the model returned a {type(out).__name__}; export needs a tensor or a list, tuple or dict of tensors")


def max_abs_diff(got: Sequence[torch.Tensor], want: Sequence[torch.Tensor]) -> float:
    """Largest |got - want| over all outputs; infinite when the outputs' number or shapes differ."""
    if len(got) != len(want) or any(tuple(g.shape) != tuple(w.shape) for g, w in zip(got, want)):
        return float("inf")
    return max((float((g.float() - w.float()).abs().max()) for g, w in zip(got, want)), default=0.0)


def check_shapes(shapes: InputShapes, sizes: Optional[Sequence[tuple[int, int]]] = None) -> list[tuple[int, int, int, int]]:
    """The export shape first, then ``sizes`` (or two picked from the range), each inside the range.

    Picked: 3/4 of the export height by 5/4 of its width (non-square, and a v1 position table
    resized to another aspect), then about half of each side plus one (odd maps). Dimensions
    that are fixed keep the export size; a dynamic batch is checked at 1 and 3 besides the traced 2.
    """
    batch, channels, height, width = shapes.sample
    others = [1, 3] if "batch" in shapes.ranges else [batch, batch]
    if sizes is None:
        sizes = [(round(height * 3 / 4), round(width * 5 / 4)), (height // 2 + 1, width // 2 + 1)]
        sizes = [(_clamp(shapes, "height", h), _clamp(shapes, "width", w)) for h, w in sizes]
    out = [shapes.sample]
    for i, (h, w) in enumerate(sizes):
        shape = (others[min(i, 1)], channels, h, w)
        if not shapes.accepts(shape):
            raise ExportSettingError("verify_sizes", f"verify_sizes: {size_text((h, w))} is outside what the export accepts ({shapes.text()}).")
        if shape not in out:
            out.append(shape)
    return out


def _clamp(shapes: InputShapes, dim: str, value: int) -> int:
    axis = 2 if dim == "height" else 3
    if dim not in shapes.ranges:
        return shapes.sample[axis]
    lo, hi = shapes.ranges[dim]
    return max(lo, value if hi is None else min(hi, value))


def run_checks(
    model: nn.Module,
    files: dict[str, Path],
    shapes: Sequence[tuple[int, int, int, int]],
    atol: float,
    progress: Callable[[str], None] = lambda line: None,
    seed: int = 0,
) -> list[Check]:
    """Compare each file in ``files`` (format -> path) with ``model`` at every shape; the checks, worst last per runtime."""
    runners = {fmt: (RUNTIMES[fmt][0], path, RUNTIMES[fmt][1](path)) for fmt, path in files.items()}
    generator = torch.Generator().manual_seed(seed)
    checks = []
    for shape in shapes:
        x = torch.randn(shape, generator=generator)
        with torch.no_grad():
            want = flat_outputs(model(x))
            for runtime, path, run in runners.values():
                check = Check(runtime, path.name, shape, max_abs_diff(flat_outputs(run(x)), want), atol)
                progress(f"  {runtime:<11} {check.input:>16}  max |diff| {check.max_abs_diff:.2e}{'' if check.ok else f'  > {atol:g}'}")
                checks.append(check)
    return checks


def failure(checks: Sequence[Check], output_dir: Path) -> Optional[VerificationError]:
    """The error for the checks that failed (None when all passed): each size and runtime, in one paragraph."""
    bad = [c for c in checks if not c.ok]
    if not bad:
        return None
    which = "; ".join(f"{c.runtime} ({c.file}) at input {c.input}: max |diff| {c.max_abs_diff:.3g}" for c in bad)
    return VerificationError(
        f"the exported model disagrees with eager PyTorch by more than atol={bad[0].atol:g} (fp32): {which}. "
        f"{len(checks) - len(bad)} of {len(checks)} checks passed; the files stay in {output_dir.name}/ for inspection, not for shipping.",
        list(checks),
    )
