"""What an exported file says about its model, so that a consumer with only the file (onnxruntime in
another language, a serving stack) can prepare an image, run it and read the answer.

An ONNX file without this is a tensor function: nothing in it says that the input is RGB scaled to
[0, 1] and normalised with ImageNet's statistics, that segmentation logits come at a quarter of the
input's size, or which class channel 3 is. Hugging Face keeps that in ``preprocessor_config.json``
and ``config.json`` beside the weights; an exported file has to carry it itself. So every file
gets the same entries, under stable keys documented in docs/export.md:

- ONNX: ``metadata_props`` (onnxruntime reads them as ``get_modelmeta().custom_metadata_map``),
  one string each: plain text for ``format``, ``model`` and ``task``, JSON for the rest;
- ``.pt2``: one extra file in the archive, ``lucid_arch.json``, a JSON object of the same keys
  with the JSON values decoded (``torch.export.load(path, extra_files={"lucid_arch.json": ""})``);
- summary.json's ``export.metadata``: that same object.

The class names and preprocessing come from the training run the weights belong to
(:mod:`lucid_arch.runs`); for a model not trained here, ImageNet's statistics at the model's own
size (:meth:`Preprocessing.default`) and classes named "0", "1", ... as the predictor names them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from ..data.folder import CROP_FRACTION
from ..runs import Preprocessing, Run, RunError, find_run

FORMAT = "1"  # the layout of these entries; raised only when a key changes meaning
PREFIX = "lucid_arch."
PT2_FILE = "lucid_arch.json"  # the extra file of a .pt2 archive that holds the entries
TEXT_KEYS = ("format", "model", "task")  # plain strings in ONNX; every other key is JSON
KEYS = ("format", "model", "task", "classes", "preprocessing", "input", "outputs", "source")
TASKS = ("classification", "segmentation", "features", "detection")
# How each resize policy resamples (as lucid_arch/data and lucid_arch/inference do): PIL's bicubic
# for the classifier's crop, bilinear (antialiased when shrinking) for segmentation's keep-ratio resize.
INTERPOLATION = {"center_crop": "bicubic", "keep_ratio": "bilinear", "letterbox": "bilinear"}


@dataclass(frozen=True)
class Origin:
    """What the weights were trained as: class names, preprocessing and where they come from (None: not known)."""

    classes: Optional[tuple[str, ...]] = None
    preprocessing: Optional[Preprocessing] = None
    source: Optional[dict[str, Any]] = None


def origin_of(model: Any) -> Origin:
    """The origin of a model given as a name or path (a training run, checkpoint 'last'), or as a config
    whose ``pretrained`` points into a run (its ``checkpoint`` picks the weights) or at another file."""
    if isinstance(model, (str, os.PathLike)):
        from ..modeling.builder import run_named

        run = run_named(model)
        return _from_run(run, "last") if run is not None else Origin()
    get = model.get if isinstance(model, Mapping) else (lambda key, default=None: getattr(model, key, default))
    pretrained = get("pretrained")
    if not pretrained:
        return Origin()
    try:
        run = find_run(pretrained)
    except RunError:
        run = None  # building the model reports a bad run; the metadata then only names the file
    if run is None:
        return Origin(source={"weights": Path(str(pretrained)).name})
    return _from_run(run, get("checkpoint", "last") or "last")


def _from_run(run: Run, checkpoint: str) -> Origin:
    try:
        weights: Optional[str] = run.weights(checkpoint).resolve().relative_to(run.root.resolve()).as_posix()
    except (RunError, ValueError):
        weights = None
    source = {"run": run.root.resolve().name, "weights": weights, "checkpoint": checkpoint, "status": run.status}
    return Origin(tuple(run.classes), run.preprocessing, source)


def preprocessing_entry(prep: Preprocessing) -> dict[str, Any]:
    """Preprocessing.to_dict() and what its resize policy implies: the resampling, and the classifier's crop fraction."""
    entry = {**prep.to_dict(), "interpolation": INTERPOLATION[prep.resize]}
    if prep.resize == "center_crop":
        entry["crop_fraction"] = CROP_FRACTION  # shorter side to image_size / crop_fraction, then the central image_size
    return entry


def input_entry(name: str, sample: Sequence[int], ranges: Mapping[str, tuple[int, Optional[int]]]) -> dict[str, Any]:
    """The input tensor: name, layout, dtype, channels, and each of batch, height, width as {min, max} (max None: unbounded)."""
    dims = dict(zip(("batch", "channels", "height", "width"), sample))
    entry: dict[str, Any] = {"name": name, "layout": "NCHW", "dtype": "float32", "channels": dims["channels"]}
    for dim in ("batch", "height", "width"):
        lo, hi = ranges.get(dim, (dims[dim], dims[dim]))
        entry[dim] = {"min": lo, "max": hi}
    return entry


def output_entries(task: str, names: Sequence[str], channels: Sequence[int], strides: Sequence[int]) -> list[dict[str, Any]]:
    """Each output: its name, shape in words and meaning (``strides``: input pixels per output pixel, per map)."""
    if task == "classification":
        return [{"name": names[0], "shape": ["batch", "classes"],
                 "meaning": "class scores (logits): softmax gives probabilities, argmax the class"}]
    if task == "segmentation":
        s = strides[0]
        return [{"name": names[0], "shape": ["batch", "classes", f"height/{s}", f"width/{s}"], "stride": s,
                 "meaning": f"per-pixel class scores (logits) at 1/{s} of the input's height and width: upsample them "
                            "bilinearly (align_corners=False) to the image's size, then argmax over classes"}]
    return [{"name": n, "shape": ["batch", c, f"height/{s}", f"width/{s}"], "stride": s, "channels": c,
             "meaning": f"feature map at 1/{s} of the input's height and width"} for n, c, s in zip(names, channels, strides)]


def detection_outputs(cap: int) -> list[dict[str, Any]]:
    """A detector's outputs (lucid_arch/export/detection.py): up to ``cap`` detections of one image, best first."""
    return [{"name": "boxes", "shape": ["detections", 4], "max_detections": cap,
             "meaning": "x1, y1, x2, y2 in the input's pixels: divide by the letterbox's scale for the image's own"},
            {"name": "scores", "shape": ["detections"], "meaning": "each detection's score (sigmoid probability), best first"},
            {"name": "labels", "shape": ["detections"], "meaning": "each detection's class id, 0..classes-1 (names: lucid_arch.classes)"}]


def entries(*, model: str, task: str, classes: Sequence[str], preprocessing: Preprocessing, input: dict[str, Any],
            outputs: list[dict[str, Any]], source: Optional[dict[str, Any]]) -> dict[str, Any]:
    """The metadata as one object, keys prefixed (``lucid_arch.task``...): what summary.json and the .pt2 keep."""
    if task not in TASKS:
        raise ValueError(f"task = {task!r}: expected one of {', '.join(TASKS)}")
    values = {"format": FORMAT, "model": model, "task": task, "classes": list(classes),
              "preprocessing": preprocessing_entry(preprocessing), "input": input, "outputs": outputs, "source": source}
    return {PREFIX + key: values[key] for key in KEYS}


def as_strings(metadata: Mapping[str, Any]) -> dict[str, str]:
    """The object as ONNX metadata_props: text keys as they are, every other value as JSON."""
    return {k: v if k[len(PREFIX):] in TEXT_KEYS else json.dumps(v, separators=(",", ":")) for k, v in metadata.items()}


def from_strings(props: Mapping[str, str]) -> dict[str, Any]:
    """metadata_props (or onnxruntime's custom_metadata_map) back into the object; other keys are left out."""
    return {k: v if k[len(PREFIX):] in TEXT_KEYS else json.loads(v) for k, v in props.items() if k.startswith(PREFIX)}
