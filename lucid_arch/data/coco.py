"""COCO-format detection data: a folder of images and an instances JSON (``task.data.dataset=coco``).

The layout mmdetection and torchvision read: ``annotations`` is an instances file
(``images``, ``annotations``, ``categories``), each image's ``file_name`` is relative to
``root``; a fixed validation set is a second file (``val_annotations``, its images under
``val_root``, default ``root``), else ``val_fraction`` of the images is held out, drawn from
``seed``. Category ids may be anything (COCO's run 1..90 with gaps): sorted, they become
the contiguous class ids 0..K-1 every other part of lucid_arch uses, named by the
categories' names.

The file may be large (COCO's train set: 450 MB) and may come from anyone, so it is read
with a size bound, and every entry is checked before training starts: types, finite boxes
of non-negative size, ids that exist, file names that stay inside ``root``. All problems
are reported at once, each naming the file, the entry and the fix.

Items follow mmdetection's pipeline: the image resized keep-ratio to fit ``image_size``
(bilinear), padded bottom and right to it with the mean colour (zero once normalised, as
mmdetection pads after normalising), its boxes scaled alike. Training skips crowd
annotations (torchvision's detectors have no ignore regions; mmdetection 2.x's RetinaNet and
Mask R-CNN assigners do not use them either) and boxes under one pixel, and images with no
box left; validation keeps every image, and scores against the file's own annotations,
crowds included, at each image's original size (:meth:`CocoDetection.ground_truth`).
"""

from __future__ import annotations

import json
import math
import os
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch
from torch.utils.data import Dataset

from ..safe_io import FileTooLarge, RefusedFile, open_regular, read_bounded
from .folder import MAX_PIXELS, DatasetError, DatasetNotFoundError, _hw, _reason
from .names import names_problem
from .seeds import generator

# A bound, not a size anyone reaches: COCO's largest instances file is 450 MB, Objects365's about 2 GB.
MAX_ANNOTATION_BYTES = 3 << 30
MAX_PROBLEMS_SHOWN = 5
MIN_BOX_SIDE = 1.0  # training boxes narrower or lower than this (in the file's pixels) are skipped, as mmdetection does


class AnnotationError(DatasetError):
    """An instances file that cannot be used; ``key`` names the setting that points at it."""

    def __init__(self, message: str = "", key: str = "task.data.annotations"):
        super().__init__(message)
        self.key = key


@dataclass
class ImageRecord:
    """One image of an instances file and its annotations, in the file's own pixels."""

    id: int
    file_name: str
    height: int
    width: int
    boxes: list[list[float]] = field(default_factory=list)  # xyxy
    labels: list[int] = field(default_factory=list)  # contiguous 0..K-1
    iscrowd: list[int] = field(default_factory=list)
    areas: list[float] = field(default_factory=list)
    segmentations: list[Any] = field(default_factory=list)  # polygons, RLE or None, per annotation


@dataclass
class Instances:
    """What an instances file holds, checked: its images (in file order) and class names."""

    path: Path
    images: list[ImageRecord]
    classes: list[str]
    category_ids: list[int]  # the file's id of each class, in class order


def read_instances(path: str | os.PathLike, key: str = "task.data.annotations", masks: bool = True) -> Instances:
    """Read and check an instances JSON (see the module docstring); AnnotationError names every problem.

    Without ``masks`` the annotations' segmentations are checked but not kept (COCO's polygons are
    most of the file: a box-only detector has no use for them)."""
    file = Path(path).expanduser()
    data = _load_json(file, key)
    problems: list[str] = []
    if not isinstance(data, dict):
        raise AnnotationError(f"{file}: the top level is a {type(data).__name__}, not an object with 'images', 'annotations' "
                              f"and 'categories'; give a COCO instances file (e.g. annotations/instances_train2017.json).", key)
    for part in ("images", "annotations", "categories"):
        if not isinstance(data.get(part), list):
            problems.append(f"'{part}' is {'missing' if part not in data else 'not a list'}")
    if problems:
        raise _error(file, problems, key)
    categories = _categories(data["categories"], problems)
    index = {cid: k for k, cid in enumerate(sorted(categories))}
    images = _images(data["images"], problems)
    by_id = {record.id: record for record in images}
    _annotations(data["annotations"], by_id, index, problems, masks)
    if problems:
        raise _error(file, problems, key)
    if not categories:
        raise AnnotationError(f"{file}: 'categories' is empty: a detector needs at least one class. Give each class as "
                              f"{{\"id\": 1, \"name\": \"person\"}}.", key)
    if not images:
        raise AnnotationError(f"{file}: 'images' is empty: there is nothing to train or score on.", key)
    ids = sorted(categories)
    return Instances(file, images, [categories[i] for i in ids], ids)


def _load_json(file: Path, key: str) -> Any:
    if not file.exists() or file.is_dir():
        what = "is a folder, not a file" if file.is_dir() else "does not exist"
        raise AnnotationError(f"Annotations {file} {what}. Point {key} at a COCO instances JSON (images, annotations, "
                              f"categories), e.g. coco/annotations/instances_train2017.json.", key)
    try:
        text = read_bounded(file, MAX_ANNOTATION_BYTES)
    except FileTooLarge as err:
        raise AnnotationError(f"{file}: {err.reason}, far beyond any COCO-format instances file; not read. Point {key} at "
                              f"the instances JSON itself (or split the data set).", key) from None
    except (OSError, RefusedFile) as err:
        raise AnnotationError(f"{file}: cannot be read ({getattr(err, 'reason', None) or err.strerror or err}).", key) from None
    try:
        return json.loads(text)
    except RecursionError:
        raise AnnotationError(f"{file}: nested too deeply to be an instances file; not read.", key) from None
    except (ValueError, UnicodeDecodeError) as err:
        raise AnnotationError(f"{file}: not valid JSON ({str(err).splitlines()[0]}); the file is damaged or not an "
                              f"instances file.", key) from None


def _error(file: Path, problems: list[str], key: str) -> AnnotationError:
    shown = "; ".join(problems[:MAX_PROBLEMS_SHOWN])
    more = f" (and {len(problems) - MAX_PROBLEMS_SHOWN} more)" if len(problems) > MAX_PROBLEMS_SHOWN else ""
    return AnnotationError(f"{file} is not a usable COCO instances file: {shown}{more}. Fix those entries (every image needs "
                           f"an integer id, a relative file_name, width and height; every annotation an image_id and "
                           f"category_id that exist and a bbox [x, y, width, height] of finite numbers), or point {key} at "
                           f"another file.", key)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _categories(entries: list, problems: list[str]) -> dict[int, str]:
    out: dict[int, str] = {}
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not _is_int(entry.get("id")) or not isinstance(entry.get("name"), str):
            problems.append(f"categories[{i}] needs an integer 'id' and a string 'name'")
        elif entry["id"] in out:
            problems.append(f"categories[{i}] repeats id {entry['id']}")
        else:
            out[entry["id"]] = entry["name"]
    names = [out[k] for k in sorted(out)]
    problem = names_problem(names, lambda k: f"the category {names[k]!r}") if names else ""
    if problem:
        problems.append(problem)
    return out


def _images(entries: list, problems: list[str]) -> list[ImageRecord]:
    out, seen = [], set()
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not _is_int(entry.get("id")) or not isinstance(entry.get("file_name"), str):
            problems.append(f"images[{i}] needs an integer 'id' and a string 'file_name'")
            continue
        if entry["id"] in seen:
            problems.append(f"images[{i}] repeats id {entry['id']}")
            continue
        name, height, width = entry["file_name"], entry.get("height"), entry.get("width")
        if not _is_int(height) or not _is_int(width) or height < 1 or width < 1 or height * width > MAX_PIXELS:
            problems.append(f"images[{i}] ({name!r}): height and width must be positive integers (at most {MAX_PIXELS:,} pixels)")
            continue
        parts = Path(name).parts
        if not name or "\0" in name or Path(name).is_absolute() or ".." in parts or name.startswith("~"):
            problems.append(f"images[{i}]: file_name {name!r} must be a path relative to the image folder, without '..'")
            continue
        seen.add(entry["id"])
        out.append(ImageRecord(entry["id"], name, height, width))
    return out


def _annotations(entries: list, images: dict[int, ImageRecord], index: dict[int, int], problems: list[str], masks: bool) -> None:
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            problems.append(f"annotations[{i}] is not an object")
            continue
        image, category, bbox = entry.get("image_id"), entry.get("category_id"), entry.get("bbox")
        if not _is_int(image) or image not in images:
            problems.append(f"annotations[{i}]: image_id {image!r} names no image of the file")
            continue
        if not _is_int(category) or category not in index:
            problems.append(f"annotations[{i}]: category_id {category!r} names no category of the file")
            continue
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(_is_number(v) for v in bbox) and bbox[2] >= 0 and bbox[3] >= 0):
            problems.append(f"annotations[{i}]: bbox {_short(bbox)} is not [x, y, width, height] of finite numbers, sizes >= 0")
            continue
        crowd, area, segmentation = entry.get("iscrowd", 0), entry.get("area"), entry.get("segmentation")
        if crowd not in (0, 1) or isinstance(crowd, bool):
            problems.append(f"annotations[{i}]: iscrowd {crowd!r} is neither 0 nor 1")
            continue
        if area is not None and not (_is_number(area) and area >= 0):
            problems.append(f"annotations[{i}]: area {_short(area)} is not a finite number >= 0")
            continue
        if segmentation is not None and not _segmentation_ok(segmentation):
            problems.append(f"annotations[{i}]: segmentation is neither polygons [[x1, y1, x2, y2, x3, y3, ...], ...] nor an "
                            f"RLE {{'counts': ..., 'size': [height, width]}}")
            continue
        record = images[image]
        x, y, w, h = (float(v) for v in bbox)
        record.boxes.append([x, y, x + w, y + h])
        record.labels.append(index[category])
        record.iscrowd.append(int(crowd))
        record.areas.append(float(area) if area is not None else w * h)
        record.segmentations.append(segmentation if masks else None)


def _segmentation_ok(value: Any) -> bool:
    if isinstance(value, list):
        return all(isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0 and all(_is_number(v) for v in p) for p in value)
    if isinstance(value, dict):
        size = value.get("size")
        return (isinstance(size, list) and len(size) == 2 and all(_is_int(v) and v >= 0 for v in size)
                and isinstance(value.get("counts"), (str, list)))
    return False


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# --- the dataset ----------------------------------------------------------------------------


class CocoDetection(Dataset):
    """The images of ``records`` under ``root``, as detection items (see the module docstring).

    Items are (uint8 3 x H x W at ``image_size``, target) with target ``boxes`` (float32 N x 4,
    xyxy in the item's pixels), ``labels`` (int64 N, 0..K-1), ``masks`` (uint8 N x H x W, with
    ``masks=True``, training items only), ``image_id`` (the index of the item), ``scale`` (item pixels per file
    pixel) and ``size`` (the file's height and width); None for an image that cannot be used
    (named on stderr once).
    """

    def __init__(self, root: str | os.PathLike, instances: Instances, records: list[ImageRecord], image_size: int | Sequence[int],
                 split: str, masks: bool = False, pad: Sequence[int] = (124, 116, 104), train: bool = True):
        self.root = Path(root).expanduser()
        self.instances = instances
        self.classes = list(instances.classes)
        self.records = records
        self.image_size = _hw(image_size)
        self.split = split
        self.masks = masks
        self.pad = tuple(int(v) for v in pad)
        self.train = train
        self._reported = torch.zeros(len(records), dtype=torch.uint8).share_memory_()

    @classmethod
    def splits(cls, root: Any, annotations: Any, image_size: Any, val_fraction: float = 0.1, seed: int = 0,
               val_annotations: Any = None, val_root: Any = None, masks: bool = False,
               pad: Sequence[int] = (124, 116, 104)) -> tuple["CocoDetection", "CocoDetection"]:
        """(train, val): val from ``val_annotations`` (images under ``val_root`` or ``root``), else held out of ``annotations``."""
        root_dir = _folder(root, "task.data.root")
        train = read_instances(annotations, masks=masks)
        if masks:
            _need_masks(train, "task.data.annotations")
        if val_annotations:
            val = read_instances(val_annotations, "task.data.val_annotations", masks)
            if (val.classes, val.category_ids) != (train.classes, train.category_ids):
                raise AnnotationError(
                    f"{val.path} and {train.path} name different categories ({_cats(val)} against {_cats(train)}): validation "
                    f"would score each class id as another class. Use instances files of the same categories.",
                    "task.data.val_annotations")
            val_dir = _folder(val_root or root, "task.data.val_root" if val_root else "task.data.root")
            train_records, val_records = train.images, val.images
        else:
            val, val_dir = train, root_dir
            train_records, val_records = _held_out(train.images, val_fraction, seed)
        train_records = [r for r in train_records if _trainable(r)]
        if not train_records:
            raise AnnotationError(f"{train.path}: no training image has a usable box (non-crowd, at least {MIN_BOX_SIDE:g} px "
                                  f"wide and high): there is nothing to learn from.", "task.data.annotations")
        if not val_records:
            raise AnnotationError(f"{train.path}: its {len(train.images)} images leave none for validation at "
                                  f"task.data.val_fraction={val_fraction}; raise it, or give task.data.val_annotations.",
                                  "task.data.val_fraction")
        return (cls(root_dir, train, train_records, image_size, "train", masks, pad, train=True),
                cls(val_dir, val, val_records, image_size, "val", masks, pad, train=False))

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> Optional[tuple[torch.Tensor, dict[str, Any]]]:
        record = self.records[i]
        path = self.root / record.file_name
        try:
            image, scale = load_fitted(path, self.image_size, self.pad, (record.height, record.width))
        except Exception as exc:  # noqa: BLE001 -- one bad file is skipped and named, as for image folders
            if not self._reported[i]:
                self._reported[i] = 1
                print(f"lucid-arch: skipping unusable image {path} ({_reason(exc, str(path))})", file=sys.stderr, flush=True)
            return None
        keep = [k for k in range(len(record.boxes)) if not self.train or _usable(record, k)]
        if self.train:  # crowds and slivers out; validation scores against ground_truth() instead
            keep = [k for k in keep if not record.iscrowd[k]]
        boxes = torch.tensor([record.boxes[k] for k in keep], dtype=torch.float32).view(-1, 4) * scale
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, self.image_size[1])
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, self.image_size[0])
        if self.train:  # a box drawn beyond its image's edge (it happens in real files) is left with nothing inside it
            inside = ((boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])).tolist()
            keep = [k for k, ok in zip(keep, inside) if ok]
            boxes = boxes[torch.tensor(inside, dtype=torch.bool)] if inside else boxes
        target: dict[str, Any] = {"boxes": boxes, "labels": torch.tensor([record.labels[k] for k in keep], dtype=torch.int64),
                                  "image_id": i, "scale": scale, "size": (record.height, record.width)}
        if self.masks and self.train:  # validation scores the file's own masks (ground_truth), at the image's size
            target["masks"] = instance_masks(record, keep, scale, self.image_size)
        return image, target

    def ground_truth(self, i: int) -> ImageRecord:
        """Item ``i``'s annotations as the file gives them (crowds included), for COCO's evaluation."""
        return self.records[i]

    def __repr__(self) -> str:
        return (f"CocoDetection({str(self.root)!r}, {self.instances.path.name}, split={self.split!r}, {len(self)} images, "
                f"{len(self.classes)} classes, {self.image_size[0]}x{self.image_size[1]})")


def eval_parts(data: Any, split: str, masks: bool, pad: Sequence[int]) -> list[CocoDetection]:
    """Every image of ``split`` for scoring (none filtered out): 'val' is val_annotations' file (else the
    held-out share), 'train' the training file (less the held-out share), 'all' both."""
    root = _folder(data.root, "task.data.root")
    train = read_instances(data.annotations, masks=masks)
    if masks:
        _need_masks(train, "task.data.annotations")
    size = data.image_size if isinstance(data.image_size, int) else tuple(int(v) for v in data.image_size)
    if data.val_annotations:
        val = read_instances(data.val_annotations, "task.data.val_annotations", masks)
        parts = {"train": (root, train, train.images),
                 "val": (_folder(data.val_root or data.root, "task.data.val_root" if data.val_root else "task.data.root"), val, val.images)}
    else:
        kept, held = _held_out(train.images, float(data.val_fraction), int(data.seed))
        parts = {"train": (root, train, kept), "val": (root, train, held)}
    chosen = ("train", "val") if split == "all" else (split,)
    return [CocoDetection(where, instances, records, size, name, masks, pad, train=False)
            for name, (where, instances, records) in parts.items() if name in chosen and records]


def _folder(root: Any, key: str) -> Path:
    if not root:
        raise AnnotationError(f"dataset=coco needs the image folder: {key}=/path/to/images (file_name is relative to it).", key)
    path = Path(root).expanduser()
    if not path.is_dir():
        raise DatasetNotFoundError(f"Image folder {path} {'is a file, not a folder' if path.exists() else 'does not exist'}. "
                                   f"Point {key} at the folder the instances file's file_name entries are relative to.")
    return path


def _cats(instances: Instances) -> str:
    shown = ", ".join(f"{i}:{n}" for i, n in zip(instances.category_ids[:6], instances.classes[:6]))
    return f"{len(instances.classes)} ({shown}{', ...' if len(instances.classes) > 6 else ''})"


def _need_masks(instances: Instances, key: str) -> None:
    lacking = sum(1 for r in instances.images for s, c in zip(r.segmentations, r.iscrowd) if s is None and not c)
    if lacking:
        raise AnnotationError(f"{instances.path}: {lacking} annotations have no 'segmentation', and Mask R-CNN learns instance "
                              f"masks from them. Add polygons or RLE masks, or train a box-only detector (model=retinanet_...).", key)


def _held_out(records: list[ImageRecord], val_fraction: float, seed: int) -> tuple[list[ImageRecord], list[ImageRecord]]:
    """(train, val): round(n * val_fraction) images (at least one when n >= 2) drawn from ``seed``; file order kept."""
    n = len(records)
    n_val = min(max(math.floor(n * val_fraction + 0.5), 1 if n >= 2 else 0), max(n - 1, 0))
    held = set(torch.randperm(n, generator=generator("coco-split", seed))[:n_val].tolist())
    return [r for i, r in enumerate(records) if i not in held], [r for i, r in enumerate(records) if i in held]


def _usable(record: ImageRecord, k: int) -> bool:
    x0, y0, x1, y1 = record.boxes[k]
    return x1 - x0 >= MIN_BOX_SIDE and y1 - y0 >= MIN_BOX_SIDE


def _trainable(record: ImageRecord) -> bool:
    return any(_usable(record, k) and not record.iscrowd[k] for k in range(len(record.boxes)))


def fitted_size(height: int, width: int, image_size: tuple[int, int]) -> tuple[int, int, float]:
    """(new height, new width, scale): the keep-ratio resize that fits ``image_size`` (mmdetection's keep_ratio)."""
    scale = min(image_size[0] / height, image_size[1] / width)
    return max(1, min(image_size[0], round(height * scale))), max(1, min(image_size[1], round(width * scale))), scale


def load_fitted(path: Path, image_size: tuple[int, int], pad: Sequence[int],
                expected: Optional[tuple[int, int]] = None) -> tuple[torch.Tensor, float]:
    """(uint8 3 x H x W, scale): ``path`` resized keep-ratio (bilinear) into ``image_size``, padded with ``pad``.

    ``expected`` (height, width) is what the annotations say; a file of another size would put every
    box in the wrong place, so it is refused (the item is skipped and named).
    """
    import numpy as np
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with open_regular(path) as f, Image.open(f) as im:
            w, h = im.size
            if w * h > MAX_PIXELS or w < 1 or h < 1:
                raise ValueError(f"{w}x{h} pixels is over the limit of {MAX_PIXELS:,} pixels; not decoded")
            if expected is not None and (h, w) != tuple(expected):
                raise ValueError(f"the file is {w}x{h} pixels but the annotations say {expected[1]}x{expected[0]}: its boxes "
                                 "would be misplaced")
            new_h, new_w, scale = fitted_size(h, w, image_size)
            im.draft("RGB", (new_w, new_h))
            if im.mode == "P" and "transparency" in im.info:
                im = im.convert("RGBA")
            im = im.convert("RGB")
    im = im.resize((new_w, new_h), Image.Resampling.BILINEAR)
    out = torch.tensor(list(pad), dtype=torch.uint8).view(3, 1, 1).repeat(1, *image_size)
    out[:, :new_h, :new_w] = torch.from_numpy(np.array(im, dtype=np.uint8)).permute(2, 0, 1)
    return out, scale


def decode_masks(record: ImageRecord, keep: Sequence[int]) -> torch.Tensor:
    """uint8 N x height x width: annotations ``keep``'s masks at the file's size (polygons or RLE, by pycocotools)."""
    from ..extras import require

    require("detection", "Instance masks from a COCO instances file")
    from pycocotools import mask as coco_mask

    out = torch.zeros(len(keep), record.height, record.width, dtype=torch.uint8)
    for row, k in enumerate(keep):
        segmentation = record.segmentations[k]
        if segmentation is None:
            continue
        if isinstance(segmentation, list):
            rle = coco_mask.merge(coco_mask.frPyObjects(segmentation, record.height, record.width))
        elif isinstance(segmentation["counts"], list):
            rle = coco_mask.frPyObjects(segmentation, record.height, record.width)
        else:
            rle = segmentation
        decoded = torch.from_numpy(coco_mask.decode(rle).copy())
        if decoded.shape == out.shape[1:]:
            out[row] = decoded
    return out


def instance_masks(record: ImageRecord, keep: Sequence[int], scale: float, image_size: tuple[int, int]) -> torch.Tensor:
    """uint8 N x H x W: the masks resized as the image was (nearest) and padded alike."""
    full = decode_masks(record, keep)
    new_h, new_w, _ = fitted_size(record.height, record.width, image_size)
    out = torch.zeros(len(keep), *image_size, dtype=torch.uint8)
    if len(keep):
        resized = torch.nn.functional.interpolate(full[:, None].float(), size=(new_h, new_w), mode="nearest")[:, 0]
        out[:, :new_h, :new_w] = resized.to(torch.uint8)
    return out
