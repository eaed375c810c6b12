"""The ONNX step: the traced program through torch.onnx's dynamo exporter into MODEL.onnx; onnxruntime runs it back.

The ExportedProgram from the torch.export step is handed over as is (torch.onnx only lowers it
to its own operator set), so torch.export runs once and both files come from the same trace,
with the same dynamic dimensions, named batch, height and width in the ONNX input. Opset: :data:`lucid_arch.config.export_schema.DEFAULT_OPSET`, whose
comment says why. Weights over 2 GB go to a side file beside MODEL.onnx, which is then
listed among the outputs. The model's metadata (metadata.py) goes into the file's metadata_props.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Optional

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
    metadata: Optional[Mapping[str, str]] = None,
) -> list[Path]:
    """Write ``path`` (and its external weights, if any) with ``metadata`` as its metadata_props; the files written.

    The files are written into a hidden directory beside ``path`` and moved into place weights first,
    the model last (its external-data references name the final files), so a reader never finds half a model."""
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
    if metadata:
        onnx_program.model.metadata_props.update(metadata)
        onnx_program.model.doc_string = (f"{metadata.get('lucid_arch.model', name)} ({metadata.get('lucid_arch.task', 'model')}), "
                                         "exported by lucid_arch; metadata_props lucid_arch.* describe its input and outputs")
    staging = path.parent / f".{path.name}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        onnx_program.save(str(staging / path.name))
        written = sorted(staging.iterdir(), key=lambda p: (p.name == path.name, p.name))  # the model itself last
        for file in written:
            os.replace(file, path.parent / file.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return sorted((path.parent / f.name for f in written), key=lambda p: (p.name != path.name, p.name))  # MODEL.onnx first


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


def write_into(result: Any, program: torch.export.ExportedProgram, shapes: InputShapes, out_dir: Path, opset: int,
               input_name: str, output_names: Sequence[str], name: str, metadata: Optional[Mapping[str, str]],
               say: Callable[[str], None], what: str = "") -> None:
    """:func:`write` ``NAME.onnx`` into ``out_dir``, recording its files and time in ``result`` (an ExportResult)
    and saying so; ``what`` adds to the progress line (how post-processing is written, say)."""
    say(f"{name}: ONNX opset {opset}{f' ({what})' if what else ''}")
    start = time.perf_counter()
    written = write(program, shapes, out_dir / f"{name}.onnx", opset, input_name, output_names, name, metadata)
    result.files["onnx"] = written[0]
    result.files.update({"onnx_data": p for p in written[1:2]})
    result.seconds["onnx"] = time.perf_counter() - start
    say(f"{name}: wrote {', '.join(p.name for p in written)} ({result.seconds['onnx']:.1f} s)")
