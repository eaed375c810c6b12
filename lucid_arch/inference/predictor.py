"""``Predictor``: a trained model, its class names and its preprocessing, applied to images.

What Hugging Face splits into an image processor, a model and ``post_process_semantic_segmentation``
(and mmsegmentation into ``init_model`` and ``inference_model``) is one object here, built from a
training run so it cannot pair weights with the wrong classes or the wrong normalisation::

    predictor = Predictor.from_run("outputs/2026-01-01/12-00-00")
    result = predictor("street.jpg")            # a file, a PIL image, uint8 pixels, or a list of them
    result.mask                                 # H x W class ids at the image's own size
    result.present()                            # [{'id': 2, 'name': 'road', 'share': 0.41}, ...]

A classifier's result holds its top k (index, name, score) instead. Inputs of one size go
through the model together, ``batch_size`` at a time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence, Union

import torch
from torch import nn

from .classify import TopK, classify_probs, crop_batch, top_k
from .detect import DetectionResult, detect_batch
from .inputs import Source, Unreadable, decode, load_for_classifier
from .preprocess import check_pixel_budget, to_pixels
from .segment import SegmentOptions, pair, segment_batch

KINDS = ("classification", "segmentation", "detection")


@dataclass
class SegmentationResult:
    """A label map at the input's own size (and, when asked for, the class probabilities)."""

    mask: torch.Tensor  # H x W, int64 class ids
    classes: Sequence[str]
    probs: Optional[torch.Tensor] = None  # C x H x W float32, with return_probs=True
    source: Optional[str] = None  # the file it came from, if any

    def present(self) -> list[dict[str, Any]]:
        """The classes in the mask, most pixels first: id, name and share of the image's pixels."""
        counts = torch.bincount(self.mask.flatten().cpu(), minlength=len(self.classes))
        total = max(int(self.mask.numel()), 1)
        order = sorted((i for i in range(len(counts)) if counts[i] > 0), key=lambda i: (-int(counts[i]), i))
        return [{"id": i, "name": self.classes[i] if i < len(self.classes) else str(i), "share": round(int(counts[i]) / total, 6)}
                for i in order]

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "size": list(self.mask.shape), "classes": self.present()}


@dataclass
class ClassificationResult:
    """An image's best ``k`` classes, best first, and every class's probability."""

    top: list[TopK]
    probs: torch.Tensor = field(repr=False)  # C float32
    source: Optional[str] = None

    @property
    def label(self) -> str:
        return self.top[0].name

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "top": [t.to_dict() for t in self.top]}


Result = Union[SegmentationResult, ClassificationResult, DetectionResult]


def pick_device(device: Optional[str]) -> torch.device:
    """``auto``/None: CUDA when there is a GPU, else the CPU; otherwise as given (cpu, cuda, cuda:N, mps)."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r}: this torch build sees no CUDA device; use device='cpu' or 'auto'.")
    return torch.device(device)


def model_kind(model: nn.Module) -> str:
    if getattr(getattr(model, "spec", None), "detection", None) is not None:
        return "detection"
    return "segmentation" if getattr(model, "decode_head", None) is not None else "classification"


class Predictor:
    """Predictions from ``model`` with its ``classes`` (default "0".."N-1") and ``preprocessing``
    (default: ImageNet statistics at the model's own size, lucid_arch.runs.Preprocessing).

    Segmentation settings (``mode`` whole or slide, ``crop``, ``stride``, ``flip``, ``scales``) are
    lucid_arch.inference.segment's; ``top_k`` is a classifier's; ``score_threshold`` a detector's (detections
    scoring below it are left out of results; 0.3 is mmdetection's for showing them). The model is put
    in eval mode on ``device``.
    """

    def __init__(
        self,
        model: nn.Module,
        classes: Optional[Sequence[str]] = None,
        preprocessing: Any = None,
        *,
        device: Optional[str] = None,
        mode: str = "whole",
        crop: Optional[Sequence[int]] = None,
        stride: Optional[Sequence[int]] = None,
        flip: bool = False,
        scales: Optional[Sequence[float]] = None,
        top_k: int = 5,
        batch_size: int = 1,
        return_probs: bool = False,
        score_threshold: float = 0.3,
    ):
        self.kind = model_kind(model)
        num_classes = int(getattr(model, "num_classes", 0) or 0)
        if num_classes < 1:
            raise ValueError("this model has no classifier (a features_only backbone or num_classes=0): it predicts no classes.")
        self.classes = tuple(classes) if classes is not None else tuple(str(i) for i in range(num_classes))
        if len(self.classes) != num_classes:
            raise ValueError(f"{len(self.classes)} class names for a model with {num_classes} classes: give one name per class.")
        self.preprocessing = preprocessing if preprocessing is not None else _default_preprocessing(model, self.kind)
        self.device = pick_device(device)
        self.model = model.to(self.device).eval()
        self.options = SegmentOptions(mode=mode, crop=pair(crop), stride=pair(stride), flip=flip,
                                      scales=tuple(scales) if scales else (1.0,), batch_size=max(1, batch_size))
        if top_k < 1:
            raise ValueError(f"top_k = {top_k}: must be at least 1.")
        self.top_k = top_k
        if not 0.0 <= score_threshold <= 1.0:
            raise ValueError(f"score_threshold = {score_threshold}: give a score in [0, 1].")
        self.score_threshold = float(score_threshold)
        self.batch_size = max(1, int(batch_size))
        self.return_probs = return_probs

    @classmethod
    def from_run(cls, run: Union[str, os.PathLike], checkpoint: str = "last", device: Optional[str] = "cpu", **options: Any) -> "Predictor":
        """The model a training run trained (its ``best`` or ``last`` weights), with the run's class names and preprocessing."""
        from ..modeling.builder import create_model
        from ..runs import read_run

        info = read_run(run)
        with torch.device(pick_device(device)):
            model = create_model(str(run), checkpoint=checkpoint)
        return cls(model, info.classes, info.preprocessing, device=device, **options)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __call__(self, inputs: Any) -> Union[Result, list[Result]]:
        """One result for one input (a path, a PIL image, uint8 pixels); a list for a list (or an N x 3 x H x W batch)."""
        batch = isinstance(inputs, (list, tuple)) or (isinstance(inputs, torch.Tensor) and inputs.dim() == 4)
        items = list(inputs) if batch else [inputs]
        images, names = [], []
        for item in items:
            if isinstance(item, (str, os.PathLike)):
                try:
                    images.append(self.load(Path(item)))
                except Unreadable as why:
                    raise Unreadable(f"{item}: {why}") from None
                names.append(str(item))
            else:
                images.append(to_pixels(item))
                names.append(None)
        results = self.predict_pixels(images)
        for result, name in zip(results, names):
            result.source = name
        return results if batch else results[0]

    def load(self, path: Path) -> torch.Tensor:
        """A file's pixels as this model needs them (:class:`Unreadable` when it cannot be decoded):
        a classifier's centre crop at the training size, a segmentation model's whole image."""
        if self.kind == "classification":
            return load_for_classifier(path, self.preprocessing.image_size)
        if self.kind == "detection":  # resized inside the training size: the decoded pixels are what is bounded
            return decode(path, check=lambda h, w: check_pixel_budget((h, w), self.preprocessing, 0.0))
        largest = max(self.options.scales)
        return decode(path, check=lambda h, w: check_pixel_budget((h, w), self.preprocessing, largest))

    def predict_pixels(self, images: Sequence[torch.Tensor]) -> list[Result]:
        """Results for uint8 3 x H x W images, in order; same-size neighbours share a forward pass."""
        results: list[Result] = []
        group: list[torch.Tensor] = []
        for image in images:
            if group and self._full(group, image):
                results.extend(self._predict_group(group))
                group = []
            group.append(image)
        return results + (self._predict_group(group) if group else [])

    def _full(self, group: list[torch.Tensor], image: torch.Tensor) -> bool:
        """Whether ``image`` must start a new batch: this one is full, or (segmentation) of another size."""
        return len(group) >= self.batch_size or (self.kind == "segmentation" and image.shape != group[0].shape)

    def predict_files(
        self, sources: Iterable[Source], on_unreadable: Callable[[Source, str], None]
    ) -> Iterator[tuple[Source, torch.Tensor, Result]]:
        """(source, its pixels as loaded, result) for each readable file, in order, ``batch_size``
        decoded at a time; ``on_unreadable(source, why)`` for the others (they are skipped)."""
        pending: list[tuple[Source, torch.Tensor]] = []

        def flush() -> Iterator[tuple[Source, torch.Tensor, Result]]:
            results = self.predict_pixels([pixels for _, pixels in pending])
            for (source, pixels), result in zip(pending, results):
                result.source = str(source.path)
                yield source, pixels, result
            pending.clear()

        for source in sources:
            try:
                pixels = self.load(source.path)
            except Unreadable as why:
                on_unreadable(source, str(why))
                continue
            if pending and self._full([p for _, p in pending], pixels):
                yield from flush()
            pending.append((source, pixels))
        if pending:
            yield from flush()

    def _predict_group(self, group: list[torch.Tensor]) -> list[Result]:
        if self.kind == "detection":
            return detect_batch(self.model, group, self.preprocessing, self.classes, self.score_threshold)
        if self.kind == "classification":
            probs = classify_probs(self.model, crop_batch(group, self.preprocessing), self.preprocessing).cpu()
            return [ClassificationResult(top, p) for top, p in zip(top_k(probs, self.classes, self.top_k), probs)]
        labels, probs = segment_batch(self.model, torch.stack(group), self.preprocessing, self.options, probs=self.return_probs)
        labels = labels.cpu()
        return [SegmentationResult(labels[i], self.classes, None if probs is None else probs[i].cpu()) for i in range(len(group))]

    def __repr__(self) -> str:
        settings = f"top_k={self.top_k}" if self.kind == "classification" else (
            f"score_threshold={self.score_threshold}" if self.kind == "detection" else
            f"mode={self.options.mode!r}, flip={self.options.flip}, scales={list(self.options.scales)}")
        return (f"Predictor({self.kind}, {self.num_classes} classes, {self.preprocessing.resize} at "
                f"{self.preprocessing.image_size[0]}x{self.preprocessing.image_size[1]}, {settings}, device={str(self.device)!r})")


def _default_preprocessing(model: nn.Module, kind: str) -> Any:
    from ..modeling.model import PyramidVisionTransformer
    from ..runs import Preprocessing

    spec = next((m.spec for m in model.modules() if isinstance(m, PyramidVisionTransformer)), None)
    size = tuple(spec.input_size) if spec is not None else (224, 224)
    resize = {"segmentation": "keep_ratio", "detection": "letterbox"}.get(kind, "center_crop")
    return Preprocessing(image_size=(int(size[0]), int(size[1])), resize=resize)

