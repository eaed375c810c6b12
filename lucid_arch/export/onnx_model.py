"""The ONNX step: the traced program through torch.onnx's dynamo exporter into MODEL.onnx; onnxruntime runs it back.

The ExportedProgram from the torch.export step is handed over as is (torch.onnx only lowers it
to its own operator set), so torch.export runs once and both files come from the same trace,
with the same dynamic dimensions, named batch, height and width in the ONNX input. Opset: :data:`lucid_arch.config.export_schema.DEFAULT_OPSET`, whose
comment says why. Weights over 2 GB go to a side file beside MODEL.onnx, which is then
listed among the outputs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from ..extras import require
from .dynamic import InputShapes
from .torch_program import ExportFailed, one_paragraph, quiet_exporters


def write(
    program: torch.export.ExportedProgram,
    shapes: InputShapes,
    path: Path,
    opset: int,
    input_name: str,
    output_names: Sequence[str],
    name: str,
) -> list[Path]:
    """Write ``path`` (and its external weights, if any); the files written."""
    require("export", "ONNX export")
    try:
        with quiet_exporters():
            onnx_program = torch.onnx.export(
                program,
                (shapes.example(),),  # unused with a program, but the signature wants it
                dynamo=True,
                opset_version=opset,
                dynamic_shapes=shapes.dynamic_shapes(),  # again, so the ONNX dims are named batch, height, width (not s0, s1)
                input_names=[input_name],
                output_names=list(output_names),
                optimize=True,  # constant folding, and Gelu / LayerNormalization / Attention as single nodes
                verbose=False,
            )
    except Exception as error:
        raise ExportFailed(f"torch.onnx could not convert {name} at opset {opset}: {one_paragraph(error)}.") from error
    onnx_program.save(str(path))
    return sorted(path.parent.glob(path.name + "*"))  # MODEL.onnx, then its external weights (beyond 2 GB)


def runner(path: Path) -> Callable[[torch.Tensor], list[torch.Tensor]]:
    """An onnxruntime CPU session of ``path`` as a function of a torch batch, with torch's thread count."""
    require("export", "Checking an ONNX file")
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = session.get_inputs()[0].name

    def run(x: torch.Tensor) -> list[torch.Tensor]:
        return [torch.from_numpy(out) for out in session.run(None, {feed: x.numpy()})]

    return run
