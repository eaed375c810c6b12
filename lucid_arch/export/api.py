"""export_model: a model (or any config that builds one) -> MODEL.pt2 and MODEL.onnx, checked against eager PyTorch.

The steps live in their own modules (dynamic: the input ranges; torch_program: torch.export;
onnx_model: torch.onnx; verify: the checks); this one orders them and keeps the record. It
works for any ``nn.Module`` whose forward takes one image batch and returns a tensor or a
list/tuple of tensors: a classifier, a ``features_only`` backbone, or a wrapper holding a PVT
(a segmentation model), whose smallest input is read from the PVT inside it; a detector goes whole,
its post-processing included, through detection.py. Both files carry
what using the model needs (metadata.py: task, class names, preprocessing, input and outputs),
from the training run the weights come from when there is one.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Optional, Union

import torch
from torch import nn

from ..config.export_schema import DEFAULT_ATOL, DEFAULT_OPSET, DIMS, FORMATS, ExportConfig, check_export, image_size
from ..config.geometry import image_hw, size_text
from ..extras import require
from ..modeling.model import PyramidVisionTransformer
from ..modeling.segmentation import SegmentationModel
from ..runs import Preprocessing
from . import metadata as meta
from . import onnx_model, torch_program
from .dynamic import ExportSettingError, InputShapes, find_spec, input_shapes
from .input_check import with_size_checks
from .result import INPUT_NAME, ExportResult
from .verify import check_shapes, failure, flat_outputs, run_checks

def _output_names(model: nn.Module, outputs: Sequence[torch.Tensor]) -> list[str]:
    """'logits' or 'stageN' for a PVT's outputs; 'output' / 'outputN' for any other model's."""
    if isinstance(model, PyramidVisionTransformer):
        return ["logits"] if model.spec.out_indices is None else [f"stage{i}" for i in model.spec.out_indices]
    if isinstance(model, SegmentationModel):
        return ["logits"]  # (B, classes, H/4, W/4)
    return ["output"] if len(outputs) == 1 else [f"output{i}" for i in range(len(outputs))]


def _as_module(model: Any) -> nn.Module:
    if isinstance(model, nn.Module):
        return model
    from ..modeling.builder import build_model, create_model

    return create_model(model) if isinstance(model, str) else build_model(model)


def export_model(
    model: Union[nn.Module, str, Mapping[str, Any], Any],
    output_dir: Union[str, Path] = ".",
    *,
    formats: Sequence[str] = FORMATS,
    dynamic: Sequence[str] = DIMS,
    opset: int = DEFAULT_OPSET,
    batch_size: int = 1,
    min_side: Optional[int] = None,
    max_side: int = 4096,
    verify: bool = True,
    verify_sizes: Optional[Sequence[Any]] = None,
    atol: float = DEFAULT_ATOL,
    img_size: Any = None,
    in_channels: Optional[int] = None,
    name: Optional[str] = None,
    classes: Optional[Sequence[str]] = None,
    preprocessing: Optional[Preprocessing] = None,
    origin: Optional[meta.Origin] = None,
    progress: Optional[Callable[[str], None]] = None,
) -> ExportResult:
    """Export ``model`` to ``output_dir``/NAME.pt2 and NAME.onnx, then check both against eager PyTorch.

    ``model``: an ``nn.Module``, a variant name or YAML path, or a config (dict, ModelConfig,
    composed Hydra config; its ``pretrained`` weights are loaded). The settings are
    ``task=export``'s (lucid_arch/config/export_schema.py documents each); ``img_size`` (the
    traced size, default the model's own), ``in_channels`` and ``name`` matter only for
    models that hold no PVT. ``classes`` (one name per class) and ``preprocessing`` go into the
    files' metadata; by default they are the training run's when the weights come from one (a run
    directory as ``model``, or a config whose ``pretrained`` points into a run; ``origin`` gives
    them found elsewhere), else classes "0", "1", ... and ImageNet's statistics at the model's
    size. Raises :class:`~lucid_arch.export.verify.VerificationError`
    (files kept, ``error.result`` set) when a check differs by more than ``atol``,
    :class:`~lucid_arch.extras.MissingExtra` when ONNX is asked for without ``lucid-arch[export]``.
    """
    say = progress or (lambda line: None)
    settings = ExportConfig(formats=list(formats), dynamic=list(dynamic), batch_size=batch_size, min_side=min_side,
                            max_side=max_side, opset=opset, verify=verify, atol=atol,
                            verify_sizes=None if verify_sizes is None else list(verify_sizes))
    check_export(settings)
    if "onnx" in formats:
        require("export", "ONNX export")  # before minutes of tracing, not after
    origin = origin or (meta.origin_of(model) if not isinstance(model, nn.Module) else meta.Origin())
    module = _as_module(model)
    if getattr(getattr(module, "spec", None), "detection", None) is not None:  # post-processing and all: detection.py
        from .detection import export_detector

        return export_detector(module, Path(output_dir), formats=formats, opset=opset, verify=verify, atol=atol,
                               name=name or module.spec.name, classes=classes, preprocessing=preprocessing, origin=origin,
                               progress=say)
    spec = find_spec(module)
    if img_size is None and spec is None:
        raise ExportSettingError("img_size", "this model holds no PyramidVisionTransformer: give img_size, the size to trace it at.")
    hw = image_hw(img_size) if img_size is not None else spec.input_size
    name = name or (spec.name if spec is not None else type(module).__name__.lower())
    channels = in_channels or (spec.in_channels if spec is not None else 3)
    shapes = input_shapes(module, hw, channels, tuple(dynamic), batch_size, min_side, max_side)
    sizes = None if verify_sizes is None else [image_size(v) for v in verify_sizes]
    targets = check_shapes(shapes, sizes) if verify else []  # a bad size is refused before any export
    out_dir = Path(output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            outputs = flat_outputs(module(torch.zeros(shapes.sample)))
        result = ExportResult(name, out_dir, {}, shapes, opset if "onnx" in formats else None, INPUT_NAME, _output_names(module, outputs))
        result.metadata = _metadata(module, spec, name, shapes, result.output_names, outputs, classes, preprocessing, origin)
        say(f"{name}: torch.export at {size_text(shapes.sample)} ({shapes.text()})")
        start = time.perf_counter()
        program = torch_program.trace(module, shapes, name)
        result.seconds["torch.export"] = time.perf_counter() - start
        if "pt2" in formats:
            result.files["pt2"] = torch_program.save(with_size_checks(program, shapes, name), out_dir / f"{name}.pt2", result.metadata)
            say(f"{name}: wrote {result.files['pt2'].name} ({time.perf_counter() - start:.1f} s)")
        if "onnx" in formats:
            onnx_model.write_into(result, program, shapes, out_dir, opset, INPUT_NAME, result.output_names, name,
                                  meta.as_strings(result.metadata), say)
        if targets:
            say(f"{name}: checking against eager PyTorch at {', '.join(size_text(s) for s in targets)}")
            start = time.perf_counter()
            checked = {fmt: result.files[fmt] for fmt in ("onnx", "pt2") if fmt in result.files}
            result.checks = run_checks(module, checked, targets, atol, progress=say)
            result.seconds["verify"] = time.perf_counter() - start
            error = failure(result.checks, out_dir)
            if error is not None:
                error.result = result
                raise error
        return result
    finally:
        module.train(was_training)


def _task(module: nn.Module, outputs: Sequence[torch.Tensor]) -> str:
    """What the outputs are: a segmentation model's logits, a classifier's scores, or feature maps."""
    if isinstance(module, SegmentationModel):
        return "segmentation"
    if len(outputs) == 1 and outputs[0].dim() == 2:
        return "classification"
    return "features"


def _metadata(module: nn.Module, spec: Any, name: str, shapes: InputShapes, output_names: list[str], outputs: Sequence[torch.Tensor],
              classes: Optional[Sequence[str]], preprocessing: Optional[Preprocessing], origin: meta.Origin) -> dict[str, Any]:
    """The files' metadata (metadata.py): given names and preprocessing, else the origin's, else the defaults."""
    task = _task(module, outputs)
    count = int(outputs[0].shape[1]) if task != "features" else 0
    if classes is not None and len(classes) != count:
        raise ExportSettingError("classes", f"{len(classes)} class names for a model with {count} classes: give one name per "
                                 f"output channel of {output_names[0]}.")
    if classes is None and origin.classes is not None and len(origin.classes) == count:
        classes = origin.classes  # a run's names; a head re-sized since (model.new_head) keeps numbered ones
    if preprocessing is None:
        size = spec.input_size if spec is not None else shapes.size
        preprocessing = origin.preprocessing or Preprocessing(image_size=tuple(size), resize="keep_ratio" if task == "segmentation" else "center_crop")
    strides = [max(1, round(shapes.size[0] / out.shape[-2])) if out.dim() == 4 else 1 for out in outputs]
    return meta.entries(
        model=name, task=task, classes=[str(c) for c in classes] if classes is not None else [str(i) for i in range(count)],
        preprocessing=preprocessing, input=meta.input_entry(INPUT_NAME, shapes.sample, shapes.ranges),
        outputs=meta.output_entries(task, output_names, [int(o.shape[1]) for o in outputs], strides), source=origin.source,
    )


def settings_from_task(task: ExportConfig) -> dict[str, Any]:
    """``task=export``'s settings as :func:`export_model`'s keyword arguments (named alike)."""
    return {k: v for k, v in dataclasses.asdict(task).items() if k not in ("name", "threads")}
