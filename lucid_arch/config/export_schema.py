"""The export task's schema: every setting of ``task=export``, with its default and why.

``conf/task/export.yaml`` is composed onto :class:`ExportConfig` (registered as
``task/_export_schema`` by :mod:`lucid_arch.config.store`), so a misspelt key or a wrongly typed
value is caught before a job starts. Cross-field rules live in :func:`check_export`; the rules
that need the model (is the export size inside the dynamic range?) are checked by
:mod:`lucid_arch.export` and reported against the same keys. Imports neither torch nor Hydra.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any, List, Optional

from .checks import ConfigError, Problem

FORMATS = ("pt2", "onnx")
DIMS = ("batch", "height", "width")
# ONNX opsets torch 2.13's exporter (torch.onnx.export(dynamo=True)) writes: 18 is its oldest,
# 23 its newest (torch.onnx._constants.ONNX_MAX_OPSET).
OPSETS = (18, 23)
# The default: 23 turns scaled_dot_product_attention into one ONNX Attention node (new in
# opset 23) and GELU into one Gelu node (opset 20); at 18-22 both are spelt out as MatMul,
# Softmax, Erf, ... onnxruntime's CPU provider has run Attention-23 since 1.23 (the export
# extra's floor), and with onnxruntime 1.32 it is level with opset 18 at batch 1 and 9-11%
# faster at batch 8 for pvt_v2_b0/b2 (docs/export.md). 18 stays for older runtimes.
DEFAULT_OPSET = 23
DEFAULT_ATOL = 1e-4
MAX_SIDE = 16_384  # as model.img_size (config/schema.py VALUE_RANGES)


def _doc(text: str) -> dict:
    return {"help": " ".join(text.split())}


@dataclass
class ExportConfig:
    """``task=export``: the model as a torch.export program and an ONNX file, checked against eager PyTorch."""

    name: str = field(default="export", metadata=_doc("The task's name (conf/task/export.yaml)."))
    formats: List[str] = field(
        default_factory=lambda: list(FORMATS),
        metadata=_doc(
            """What to write into the job's directory: 'pt2' (MODEL.pt2, a torch.export program,
            torch.export.load reads it) and/or 'onnx' (MODEL.onnx, via torch.onnx.export(dynamo=True);
            needs pip install 'lucid-arch[export]')."""
        ),
    )
    dynamic: List[str] = field(
        default_factory=lambda: list(DIMS),
        metadata=_doc(
            """Input dimensions left free in the exported files: any of batch, height, width. The
            others are fixed at the export size (model.img_size, task.batch_size); [] fixes all."""
        ),
    )
    batch_size: int = field(
        default=1,
        metadata=_doc(
            """The batch of the exported input when batch is not dynamic. With a dynamic batch any
            batch from 1 up runs, and the export traces at batch 2 (torch.export fixes a traced size of 1)."""
        ),
    )
    min_side: Optional[int] = field(
        default=None,
        metadata=_doc(
            """Smallest dynamic height and width, in pixels. null: the smallest the model's stage
            geometry allows (every stage map at least 2 px, and at least 2 x sr_ratio where keys and
            values are reduced by a strided convolution), e.g. 61 for pvt_v2_*, 64 for pvt_v1."""
        ),
    )
    max_side: int = field(
        default=4096,
        metadata=_doc(
            """Largest dynamic height and width, in pixels. The .pt2 program refuses larger inputs;
            ONNX files carry no bound."""
        ),
    )
    opset: int = field(
        default=DEFAULT_OPSET,
        metadata=_doc(
            """ONNX opset, 18 to 23. 23 (default) writes attention as one Attention node and GELU as
            one Gelu node, which onnxruntime >= 1.23 runs on the CPU; 18 spells both out in basic
            operators for older runtimes."""
        ),
    )
    verify: bool = field(
        default=True,
        metadata=_doc(
            """Run every written file (onnxruntime for ONNX, torch for .pt2) at the export size and
            two other sizes, compare with eager PyTorch and fail the job when they differ by more
            than atol."""
        ),
    )
    verify_sizes: Optional[List[Any]] = field(
        default=None,
        metadata=_doc(
            """Sizes checked besides the export size: each one side or [height, width], inside the
            dynamic range. null: two picked from the range, one of them non-square (at fixed sizes,
            the export size alone)."""
        ),
    )
    atol: float = field(
        default=DEFAULT_ATOL,
        metadata=_doc("Largest absolute difference from eager PyTorch (fp32) a check accepts."),
    )
    threads: Optional[int] = field(
        default=None,
        metadata=_doc("CPU threads for torch and onnxruntime while checking; null: torch's default (one per core)."),
    )


def field_help(cls: type = ExportConfig) -> dict[str, str]:
    """Key -> documentation (for docs/export.md and the app's unknown-key hints)."""
    return {f.name: f.metadata["help"] for f in fields(cls) if f.metadata.get("help")}


def check_export(task: Any) -> None:
    """Cross-field rules a type cannot express; raises ConfigError naming every bad key."""
    problems: list[Problem] = []

    def bad(key: str, why: str) -> None:
        problems.append(Problem(f"task.{key}", f"task.{key} = {_plain(getattr(task, key))!r}: {why}"))

    formats = list(task.formats)
    if not formats or any(f not in FORMATS for f in formats) or len(set(formats)) != len(formats):
        bad("formats", f"give one or both of {', '.join(FORMATS)}, e.g. [pt2,onnx].")
    dims = list(task.dynamic)
    if any(d not in DIMS for d in dims) or len(set(dims)) != len(dims):
        bad("dynamic", f"give any of {', '.join(DIMS)} (each once), or [] for fixed sizes.")
    if task.batch_size < 1:
        bad("batch_size", "must be at least 1.")
    if not 2 <= task.max_side <= MAX_SIDE:
        bad("max_side", f"must lie in [2, {MAX_SIDE}].")
    if task.min_side is not None and not 2 <= task.min_side <= min(task.max_side, MAX_SIDE):
        bad("min_side", f"must lie in [2, task.max_side = {task.max_side}], or be null for the model's smallest.")
    if not OPSETS[0] <= task.opset <= OPSETS[1]:
        bad("opset", f"torch's ONNX exporter writes opsets {OPSETS[0]} to {OPSETS[1]}; {DEFAULT_OPSET} is the default.")
    if not task.atol > 0:
        bad("atol", "must be positive.")
    if task.threads is not None and task.threads < 1:
        bad("threads", "must be at least 1, or null for torch's default.")
    if task.verify_sizes is not None and not all(image_size(v) for v in task.verify_sizes):
        bad("verify_sizes", "give sizes as one side or [height, width], each at least 2 pixels, e.g. [[160,288],192].")
    if problems:
        raise ConfigError(problems, "task=export")


def image_size(value: Any) -> Optional[tuple[int, int]]:
    """(height, width) of one side or a [height, width] pair of integers >= 2; None if malformed."""
    pair = isinstance(value, Sequence) and not isinstance(value, str)
    sides = list(value) if pair else [value, value]
    if len(sides) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and 2 <= v <= MAX_SIDE for v in sides):
        return None
    return int(sides[0]), int(sides[1])


def _plain(value: Any) -> Any:
    """OmegaConf lists as plain lists, for messages."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [_plain(v) for v in value]
    return value
