"""The torch.export step: trace the model once into an ExportedProgram, write it as MODEL.pt2, run it back.

Non-strict tracing (``strict=False``, torch 2.13's default) runs the model's own Python with
fake tensors, so the model code decides what is traced (see modeling/layers/shapes.py for how
it keeps size-dependent shortcuts out of a symbolic trace). The program is saved as traced (the
ATen training IR), with an input check of its own in front (input_check.py) and the model's
metadata (metadata.py) beside it in the archive: AOTInductor, ExecuTorch and torch.onnx each lower
it further themselves.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

from .dynamic import InputShapes
from .metadata import PT2_FILE


_NOISY_LOGGERS = ("torch.onnx._internal.exporter._registration", "onnx_ir", "onnxscript")


class ExportFailed(RuntimeError):
    """An exporter could not handle the model; the message says which and what to change."""


_BOILERPLATE = ("For more information", "The error above occurred", "draft_export")
_SUGGESTION = re.compile(r"^\s*(\w+) = Dim\('\w+', (.*)\)\s*$")


def one_paragraph(error: BaseException, limit: int = 700) -> str:
    """An exporter's (multi-line, often long) message folded into one bounded paragraph."""
    lines = [line.strip(" -") for line in str(error).splitlines() if line.strip() and not any(b in line for b in _BOILERPLATE)]
    text = "; ".join(lines) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def suggested_ranges(error: BaseException) -> list[str]:
    """torch.export's "Suggested fixes" for a range it cannot keep, as 'width: min=61, max=4096'."""
    return [f"{m.group(1)}: {m.group(2)}" for m in map(_SUGGESTION.match, str(error).splitlines()) if m]


@contextlib.contextmanager
def quiet_exporters() -> Iterator[None]:
    """Silence what the exporters print that says nothing about this model: torchvision ops torch.onnx skips,
    onnx_ir's INFO lines for every initializer it merges (shown by the app's logging setup), a pytree notice."""
    import logging

    loggers = {name: logging.getLogger(name) for name in _NOISY_LOGGERS}
    levels = {name: logger.level for name, logger in loggers.items()}
    for logger in loggers.values():
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*LeafSpec.* is deprecated", category=FutureWarning)
            yield
    finally:
        for name, logger in loggers.items():
            logger.setLevel(levels[name])


def trace(model: nn.Module, shapes: InputShapes, name: str) -> torch.export.ExportedProgram:
    """``model`` (in eval mode) as an ExportedProgram taking one (B, C, H, W) float32 batch of ``shapes``."""
    try:
        with quiet_exporters():
            return torch.export.export(model, (shapes.example(),), dynamic_shapes=shapes.dynamic_shapes(), strict=False)
    except Exception as error:
        suggested = suggested_ranges(error)
        if suggested:  # the range reaches sizes where the model's code would take another path
            raise ExportFailed(
                f"torch.export cannot keep {name} dynamic over {shapes.text()}: it holds only for {'; '.join(suggested)}. "
                f"Leave task.min_side null (the model's smallest side) or raise it, or fix the size (task.dynamic)."
            ) from error
        fix = ("fixed sizes (task.dynamic=[]) or a narrower range (task.min_side, task.max_side) may trace where this range does not"
               if shapes.ranges else "the model must run with torch.export's fake tensors (no data-dependent shapes)")
        raise ExportFailed(f"torch.export could not trace {name} ({shapes.text()}): {one_paragraph(error)}; {fix}.") from error


def save(program: torch.export.ExportedProgram, path: Path, metadata: Optional[Mapping[str, Any]] = None) -> Path:
    """Write ``path`` whole or not at all, with ``metadata`` as the archive's extra file lucid_arch.json
    (``torch.export.load(path, extra_files={"lucid_arch.json": ""})`` fills that entry with it)."""
    extra = {PT2_FILE: json.dumps(dict(metadata), indent=1)} if metadata is not None else None
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")  # torch warns about an archive not named *.pt2
    try:
        torch.export.save(program, str(tmp), extra_files=extra)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def runner(path: Path) -> Callable[[torch.Tensor], object]:
    """The saved program, loaded back as a module: what a user of the .pt2 file runs."""
    return torch.export.load(str(path)).module()
