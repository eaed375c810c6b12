"""The images an evaluation scores, and the check that their classes are the model's.

The training data's readers are reused (lucid_arch/data), with one difference for segmentation:
mmsegmentation scores a prediction against the *original* label map, at the image's own size
(the model sees the image resized to the test scale; its logits are resized back). So a mask
folder's pairs are read here at their own resolution -- with the data layer's checks (mode L or
P, the image's size, class ids in range) -- instead of cropped to the training size. The shapes
images are generated at the size asked for, which is then their own; a classifier's images are
centre-cropped exactly as training's validation crops them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import torch
from torch.utils.data import ConcatDataset, Dataset, Subset

from ..data import DatasetError, ImageFolder, MaskError, MaskFolder, ShapesDataset
from ..data.mask_folder import CLASSES_FILE
from ..safe_io import open_regular


class ClassMismatch(DatasetError):
    """The data's classes are not the ones the model predicts; ``key`` names the setting that chose the data."""

    def __init__(self, message: str, key: str):
        super().__init__(message)
        self.key = key


@dataclass
class EvalSet:
    """What is scored: items (uint8 3 x H x W, int label or uint8 H x W label map) or None (unreadable)."""

    dataset: Dataset
    classes: list[str]
    split: str  # val, train or all
    where: str  # the data in a few words, for reports
    key: str  # the setting that chose the data, for errors about it
    numbered: bool  # the class names are only numbers (masks without classes.txt): the model's names are better


def resolve_split(split: str, data: Any, own: bool) -> str:
    """``auto`` -> val for shapes, for the run's own data, for a folder with a fixed val/ and for COCO files with
    val_annotations; all for any other folder or instances file."""
    if split != "auto":
        return split
    if data.dataset == "shapes" or own:
        return "val"
    if data.dataset == "coco":  # a fixed validation file is what a COCO-format set is scored on; one file alone is a test set
        return "val" if getattr(data, "val_annotations", None) else "all"
    root = Path(data.root).expanduser()
    return "val" if (root / "train").is_dir() and (root / "val").is_dir() else "all"


def eval_set(data: Any, segmentation: bool, split: str, max_images: Optional[int] = None) -> EvalSet:
    """The ``split`` (val, train or all) of ``data`` (a resolved DataConfig), the first ``max_images`` of it when given."""
    size = data.image_size if isinstance(data.image_size, int) else tuple(int(v) for v in data.image_size)
    if data.dataset == "shapes":
        counts = {"train": int(data.num_train), "val": int(data.num_val)}
        parts = {s: ShapesDataset(counts[s], size, int(data.seed), s, masks=segmentation) for s in _parts(split)}
        classes = list(next(iter(parts.values())).classes)
        where, key, numbered = f"shapes (seed {data.seed})", "task.data.dataset", False
    elif segmentation:
        train, val = MaskFolder.splits(data.root, data.masks, size, float(data.val_fraction), int(data.seed), data.num_classes)
        parts = {s: NativeSizePairs(folder) for s, folder in (("train", train), ("val", val)) if s in _parts(split)}
        classes = list(train.classes)
        masks = Path(data.masks).expanduser()
        where, key, numbered = f"{data.root} with label maps {data.masks}", "task.data.masks", not (masks / CLASSES_FILE).is_file()
    else:
        train, val = ImageFolder.splits(data.root, size, float(data.val_fraction), int(data.seed))
        parts = {s: folder for s, folder in (("train", train), ("val", val)) if s in _parts(split)}
        classes = list(train.classes)
        where, key, numbered = str(data.root), "task.data.root", False
    chosen = [parts[s] for s in _parts(split)]
    dataset: Dataset = chosen[0] if len(chosen) == 1 else ConcatDataset(chosen)
    if max_images is not None and max_images < len(dataset):
        dataset = Subset(dataset, range(max_images))
    return EvalSet(dataset, classes, split, where, key, numbered)


def _parts(split: str) -> tuple[str, ...]:
    return ("train", "val") if split == "all" else (split,)


def model_classes(found: EvalSet, expected: Sequence[str], expected_numbered: bool, whose: str) -> list[str]:
    """The class names to report: the model's and the data's must be the same list.

    Names that are only numbers on either side (label maps without classes.txt, a checkpoint
    with no names) say nothing but the count, so there only the counts must agree, and the real
    names win. Otherwise a mismatch is a ClassMismatch naming both lists: the data's label ids
    would be scored against other classes than the model's, and every figure would be wrong.
    """
    data, model = list(found.classes), list(expected)
    if len(data) == len(model) and (data == model or found.numbered or expected_numbered):
        return data if expected_numbered and not found.numbered else model
    raise ClassMismatch(
        f"The data's classes are not the model's: {whose} predicts {_names(model)}, but {found.where} "
        f"(split: {found.split}) has {_names(data)}. Scoring one against the other would count each label id as another "
        f"class. Evaluate on data labelled with the same classes in the same order (for label maps: the same "
        f"{CLASSES_FILE}), or point model.pretrained at a model trained on these classes.", found.key)


def _names(names: Sequence[str], shown: int = 12) -> str:
    listed = ", ".join(names[:shown]) + (f", ... ({len(names) - shown} more)" if len(names) > shown else "")
    return f"{len(names)} classes ({listed})"


def _own_size(path: str) -> Optional[tuple[int, int]]:
    """(height, width) from an image's header; None when it cannot be read (the pair's read then says why)."""
    from PIL import Image

    try:
        with open_regular(path) as f, Image.open(f) as im:  # a FIFO or a device is refused, never waited on
            return im.size[1], im.size[0]
    except Exception:  # noqa: BLE001 -- reported by the read that follows, as training reports it
        return None


class NativeSizePairs(MaskFolder):
    """A :class:`MaskFolder`'s (image, label map) pairs at their own resolution, with all of its checks.

    The folder's reading is reused as it is -- a pair that cannot be used (an unreadable image, a
    damaged mask, one of another size than its image) is named on stderr once and its item is
    None; a mask whose ids the class list does not cover stops the evaluation -- only the size
    each pair is read at is its image's own, so that nothing is resized or cropped.
    """

    def __init__(self, folder: MaskFolder):
        super().__init__(folder.samples, folder.classes, folder.image_size, folder.root, folder.split)

    def __getitem__(self, i: int) -> Optional[tuple[torch.Tensor, torch.Tensor]]:
        self.image_size = _own_size(self.samples[i][0]) or self.image_size  # per item: each process reads one at a time
        return super().__getitem__(i)


def nothing_scored(found: EvalSet, images: int, unreadable: int) -> DatasetError:
    """The error for an evaluation with nothing to score: every item unreadable, or every label ignore."""
    if unreadable and not images:
        return DatasetError(f"Every one of the {unreadable} items of {found.where} (split: {found.split}) was unusable (each "
                            f"was named on stderr). Check the files and that PIL decodes them, or point the data settings "
                            f"at an intact set.")
    return MaskError(f"Every pixel of the {images} label maps of {found.where} (split: {found.split}) is 255 "
                     f"(ignore): there is nothing to score. Check the masks' values (class ids, 255 only where no class applies).")
