"""A detector exported whole, post-processing included: one letterboxed image in, its detections out.

RetinaNet goes through torch.export and ONNX (opset 23; torchvision's NMS becomes ONNX's
NonMaxSuppression) as one program: the encoder, FPN and head, the anchors, the box decoding,
per-level top-k, the score threshold, class-wise NMS and the cut to ``detections_per_image``.
Its input is one image, 1 x 3 x H x W at the training size, letterboxed as the run's
preprocessing says (the same static size every image is fitted into, so nothing is lost by a
fixed shape); its outputs ``boxes`` (K x 4, xyxy in the input's pixels), ``scores`` (K) and
``labels`` (K, class ids 0..num_classes-1), K varying with the image, at most
``detections_per_image``.

Two things of torchvision's detection code cannot be traced as they are, and are replaced
while tracing (:func:`traceable_nms`), with the same results: ``batched_nms`` picks its
algorithm by the number of boxes (a branch on data), so the export always takes its
coordinate-offset path, offsetting each class by the image's side + 1; and the fake
implementation of ``torchvision::nms`` promises at least two kept boxes, so two distant
sentinel boxes go in with every call and are dropped from its result.

Mask R-CNN is refused in one paragraph (:data:`MASK_RCNN_REFUSAL`): torchvision's RoI heads
decode boxes behind a branch on the number of proposals and paste each detected mask into the
image in a Python loop over the detections, whose number depends on the image, which neither
torch.export nor ONNX can carry.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence

import torch
from torch import nn

MASK_RCNN_REFUSAL = (
    "model.detector.type = mask_rcnn: {name} is a Mask R-CNN, and its post-processing cannot be exported: torchvision's RoI heads decode the "
    "proposals' boxes behind a branch on how many there are, and paste each detected mask into the image in a "
    "Python loop over the detections, whose number depends on the image; torch.export and ONNX carry neither "
    "(torch.export stops at 'Could not guard on data-dependent expression'). Use the model in PyTorch "
    "(task=predict, lucid_arch.inference.Predictor), or export a RetinaNet (model=retinanet_...), whose whole "
    "post-processing exports."
)
OUTPUT_NAMES = ["boxes", "scores", "labels"]
TIE = 1e-6  # scores this close are a tie two runtimes may break apart (see detection_diff)


class DetectorExportRefused(ValueError):
    """The detector cannot be exported whole; the message says why in one paragraph."""

    key = "model.detector.type"


class SingleImageDetector(nn.Module):
    """A detector as a function of one 1 x 3 x H x W tensor: (boxes, scores, labels)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        found = self.model([image[0]])[0]
        return found["boxes"], found["scores"], found["labels"]


@contextlib.contextmanager
def traceable_nms(side: int) -> Iterator[None]:
    """torchvision's ``batched_nms``, while tracing, in a form torch.export carries (see the module docstring)."""
    from torchvision.ops import boxes as box_ops

    original = box_ops.batched_nms
    offset = float(side + 1)  # boxes are clipped to the image: every class's boxes lie apart from the next's

    def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor, iou_threshold: float) -> torch.Tensor:
        count = boxes.shape[0]
        shifted = boxes + (idxs.to(boxes) * offset)[:, None]
        sentinels = boxes.new_tensor([[-4.0 * offset, -4.0 * offset, -3.0 * offset, -3.0 * offset],
                                      [-2.0 * offset, -2.0 * offset, -offset, -offset]])
        keep = box_ops.nms(torch.cat([shifted, sentinels]), torch.cat([scores, scores.new_tensor([-1.0, -2.0])]), iou_threshold)
        return keep[keep < count]

    box_ops.batched_nms = batched_nms
    try:
        with warnings.catch_warnings():  # torchvision's own fake nms calls an API torch has since renamed
            warnings.filterwarnings("ignore", message=".*create_unbacked_symint.*", category=FutureWarning)
            yield
    finally:
        box_ops.batched_nms = original


def refusal(model: nn.Module) -> Optional[str]:
    """Why ``model`` cannot be exported whole, or None."""
    detection = getattr(getattr(model, "spec", None), "detection", None)
    if detection is not None and detection.kind == "mask_rcnn":
        return MASK_RCNN_REFUSAL.format(name=model.spec.name)
    return None


def detection_diff(got: Sequence[torch.Tensor], want: Sequence[torch.Tensor], atol: float, cap: int) -> float:
    """The largest difference between two detection lists, matched one to one (same class, nearest box), order aside.

    Two runtimes round scores apart by ~1e-7, which decides which of two near-tied overlapping boxes
    NMS keeps, and which of near-tied detections make a cut at ``cap``. So a detection left
    unmatched is forgiven when its score is within ``TIE`` of another in its own list (or it lies
    at the cut); any other unmatched detection is an infinite difference.
    """
    boxes_g, scores_g, labels_g = (t.detach().float().cpu() for t in got)
    boxes_w, scores_w, labels_w = (t.detach().float().cpu() for t in want)
    used = torch.zeros(len(boxes_g), dtype=torch.bool)
    worst = 0.0

    def forgiven(scores: torch.Tensor, k: int) -> bool:
        gaps = (scores - scores[k]).abs()
        gaps[k] = float("inf")
        return bool(gaps.numel() > 1 and gaps.min() <= TIE) or (len(scores) >= cap and float(scores[k]) <= float(scores.min()) + atol)

    for k in range(len(boxes_w)):
        candidates = ((labels_g == labels_w[k]) & ~used).nonzero().flatten()
        if len(candidates):
            distance = torch.maximum((boxes_g[candidates] - boxes_w[k]).abs().amax(1), (scores_g[candidates] - scores_w[k]).abs())
            best = int(distance.argmin())
            if float(distance[best]) <= max(atol, 1e-3) * 100:  # a real match, not the nearest of strangers
                used[candidates[best]] = True
                worst = max(worst, float(distance[best]))
                continue
        if not forgiven(scores_w, k):
            return float("inf")
    if any(not forgiven(scores_g, int(i)) for i in (~used).nonzero().flatten()):
        return float("inf")
    return worst


def export_detector(module: nn.Module, output_dir: Path, *, formats: Sequence[str], opset: int, verify: bool, atol: float,
                    name: str, classes: Optional[Sequence[str]], preprocessing: Any, origin: Any,
                    progress: Callable[[str], None]) -> Any:
    """Export a RetinaNet ``module`` (see the module docstring) to NAME.pt2 / NAME.onnx and check both; an ExportResult (result.py)."""
    from ..config.geometry import size_text
    from ..runs import Preprocessing
    from . import metadata as meta
    from . import onnx_model, torch_program
    from .result import INPUT_NAME, ExportResult
    from .dynamic import InputShapes
    from .verify import failure

    why = refusal(module)
    if why:
        raise DetectorExportRefused(why)
    spec = module.spec
    height, width = spec.input_size
    shapes = InputShapes((1, 3, height, width))
    count = spec.detection.num_classes
    prep = preprocessing or origin.preprocessing or Preprocessing(image_size=(height, width), resize="letterbox")
    names = list(classes) if classes is not None else list(origin.classes) if origin.classes and len(origin.classes) == count \
        else [str(i) for i in range(count)]
    wrapper = SingleImageDetector(module).eval()
    out_dir = Path(output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = ExportResult(name, out_dir, {}, shapes, opset if "onnx" in formats else None, INPUT_NAME, list(OUTPUT_NAMES))
    result.metadata = meta.entries(model=name, task="detection", classes=names, preprocessing=prep,
                                   input=meta.input_entry(INPUT_NAME, shapes.sample, {}),
                                   outputs=meta.detection_outputs(spec.detection.settings.detections_per_image), source=origin.source)
    progress(f"{name}: torch.export at {size_text(shapes.sample)} (batch 1, fixed size: the letterbox every image is fitted into)")
    start = time.perf_counter()
    with torch.no_grad(), traceable_nms(max(height, width)), torch_program.quiet_exporters():
        try:
            program = torch.export.export(wrapper, (shapes.example(),), strict=False)
        except Exception as error:
            raise torch_program.ExportFailed(f"torch.export could not trace {name} with its post-processing: "
                                             f"{torch_program.one_paragraph(error)}.") from error
    result.seconds["torch.export"] = time.perf_counter() - start
    if "pt2" in formats:
        result.files["pt2"] = torch_program.save(program, out_dir / f"{name}.pt2", result.metadata)
        progress(f"{name}: wrote {result.files['pt2'].name}")
    if "onnx" in formats:
        onnx_model.write_into(result, program, shapes, out_dir, opset, INPUT_NAME, OUTPUT_NAMES, name,
                              meta.as_strings(result.metadata), progress, "NMS as NonMaxSuppression")
    if verify:
        start = time.perf_counter()
        result.checks = _checks(wrapper, result.files, shapes, atol, spec.detection.settings.detections_per_image)
        result.seconds["verify"] = time.perf_counter() - start
        error = failure(result.checks, out_dir)
        if error is not None:
            error.result = result
            raise error
    return result


def _checks(wrapper: nn.Module, files: dict[str, Path], shapes: Any, atol: float, cap: int) -> list[Any]:
    """Each file against eager PyTorch on two images: the traced sample and a structured one (distinct scores)."""
    from . import onnx_model, torch_program
    from .verify import Check

    runners = {"onnxruntime": (files["onnx"], onnx_model.runner(files["onnx"])) if "onnx" in files else None,
               "torch": (files["pt2"], torch_program.runner(files["pt2"])) if "pt2" in files else None}
    inputs = [shapes.example(), _structured(shapes.sample)]
    checks = []
    with torch.no_grad():
        wants = [wrapper(x) for x in inputs]
        for runtime, entry in runners.items():
            if entry is None:
                continue
            path, run = entry
            diff = max(detection_diff(list(run(x)), list(want), atol, cap) for x, want in zip(inputs, wants))
            checks.append(Check(runtime, path.name, tuple(shapes.sample), diff, atol))
    return checks


def _structured(sample: Sequence[int]) -> torch.Tensor:
    """A normalised image with a few bright squares on a dark ground: something to detect, scores far apart."""
    x = torch.full(tuple(sample), -1.5)
    height, width = sample[2], sample[3]
    for k, (top, left, side) in enumerate(((0.1, 0.1, 0.3), (0.5, 0.55, 0.35), (0.15, 0.6, 0.2))):
        y0, x0, s = int(top * height), int(left * width), max(2, int(side * min(height, width)))
        x[:, k % 3, y0 : y0 + s, x0 : x0 + s] = 2.0
    return x
