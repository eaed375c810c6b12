"""Images and their per-pixel label maps, for segmentation: ``task.data.root`` + ``task.data.masks``.

Layout: every image below ``root`` (any sub-folders; ``root/train`` and ``root/val`` give a fixed
split) has its label map at the same relative path below ``masks``, as a PNG:
``root/a/x.jpg`` -> ``masks/a/x.png``. A label map is 8-bit, mode L or P (palette indices are
the ids, as in VOC), value = class id, 255 = ignore (no loss, no metric). Class names come from
``masks/classes.txt`` (line k names id k) or, numbered, from ``task.data.num_classes``.

Bad pairs, each named by file, treated by what they most likely are:

- an image without a mask stops the run at start: a layout slip (another folder, another
  extension) that training on the remaining pairs would quietly hide;
- a mask that cannot be decoded, or of another size than its image, is skipped like an
  unreadable image (named once on stderr): that one file is damaged, the run goes on;
- a class id >= the number of classes (other than 255), or a colour (RGB) mask, stops the run:
  the class list, or the masks' format, does not describe the dataset, and skipping those
  masks would train on a silently chosen subset.

Geometry: image and mask get the same resize (bicubic for the image, nearest for the mask) to
cover the training size, then the same centre crop. Unlike a classifier's image (resized to
size / 0.875 and centre-cropped, the ImageNet convention for a centred object) nothing beyond
the aspect-ratio excess is cut away: every pixel here is a label.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch.utils.data import Dataset

from .folder import DatasetError, DatasetNotFoundError, _check_pixels, _hw, _images_under, _key, _reason, _resized, _stratified
from ..safe_io import open_regular, special_kind
from .ignore import IGNORE
from .names import name_file_problem, names_problem, read_name_lines

CLASSES_FILE = "classes.txt"
MASK_MODES = ("L", "P")
_NAMED = 3  # missing masks named in the error; the rest are counted


class MaskError(DatasetError):
    """Label maps that do not fit their images or the class list; the message names the file and the fix."""

    key = "task.data.masks"


class MaskFolderNotFoundError(MaskError, DatasetNotFoundError):
    """task.data.masks does not exist."""


class MaskFolder(Dataset):
    """(image, mask) pairs of one split: items are (uint8 3 x H x W, uint8 H x W), or ``None`` for a
    pair that cannot be used (named on stderr once per run; the collate drops it).

    Build both splits with :meth:`splits` (one scan). ``classes``: the class names, id order.
    """

    def __init__(self, samples: list[tuple[str, str]], classes: list[str], image_size: int | Sequence[int], root: Path, split: str):
        self.samples, self.classes, self.image_size, self.root, self.split = samples, classes, _hw(image_size), root, split
        # Shared memory: DataLoader workers see each other's marks, so a bad pair is named once per run.
        self._reported = torch.zeros(len(samples), dtype=torch.uint8).share_memory_()

    @classmethod
    def splits(cls, root: str | os.PathLike, masks: str | os.PathLike, image_size: int | Sequence[int], val_fraction: float = 0.1,
               seed: int = 0, num_classes: int | None = None) -> tuple[MaskFolder, MaskFolder]:
        """(train, val): ``root/train`` and ``root/val`` when both exist, else ``val_fraction`` of the
        images drawn for val with a generator seeded from ``seed`` (the same split on every machine)."""
        root, masks = Path(root).expanduser(), Path(masks).expanduser()
        classes = class_names(masks, num_classes)
        if root.is_dir() and root.resolve() == masks.resolve():
            raise MaskError(f"task.data.masks and task.data.root are the same folder ({masks}): every image's label map would be "
                            f"itself, or a PNG image another image's mask. Keep the label maps in a folder of their own, laid out "
                            f"like the images (root/a/x.jpg -> masks/a/x.png), and point task.data.masks at it.")
        found = _scan(root, masks)
        if not isinstance(found, dict):  # no fixed split: draw one
            found = dict(zip(("train", "val"), _stratified(found, val_fraction, seed, "segmentation")))
        mask_of = _masks_of([image for images in found.values() for image in images], root, masks)
        parts = {split: [(str(image), mask_of[image]) for image in images] for split, images in found.items()}
        for split, samples in parts.items():
            if not samples:
                raise DatasetError(f"The {split} split of {root} is empty: {root} holds a single image. Add images (two or "
                                   f"more), or give a fixed split as {root}/train and {root}/val.")
        return cls(parts["train"], classes, image_size, root, "train"), cls(parts["val"], classes, image_size, root, "val")

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        image_path, mask_path = self.samples[i]
        try:
            return load_pair(image_path, mask_path, self.image_size, len(self.classes))
        except DatasetError:
            raise
        except Exception as exc:  # noqa: BLE001 -- any decoder failure is one bad pair, not a crash
            if not self._reported[i]:
                self._reported[i] = 1
                print(f"lucid-arch: skipping {_what_failed(exc, image_path, mask_path)}", file=sys.stderr, flush=True)
            return None

    def __repr__(self) -> str:
        return (f"MaskFolder({str(self.root)!r}, split={self.split!r}, {len(self)} images, {len(self.classes)} classes, "
                f"{self.image_size[0]}x{self.image_size[1]})")


class _PairError(Exception):
    """One damaged pair (mask unreadable or of the wrong size): skipped with this reason."""

    def __init__(self, reason: str, path: str):
        super().__init__(reason)
        self.path = path


def _what_failed(exc: BaseException, image_path: str, mask_path: str) -> str:
    if isinstance(exc, _PairError):
        return f"{exc.path} ({exc})"
    return f"unreadable image {image_path} ({_reason(exc, image_path)})"


def class_names(masks: Path, num_classes: int | None) -> list[str]:
    """The names in ``masks/classes.txt`` (line k names id k), else "0" .. "num_classes - 1"."""
    file = masks / CLASSES_FILE
    if not masks.is_dir():
        what = "is a file, not a folder" if masks.exists() else "does not exist"
        raise MaskFolderNotFoundError(f"Mask folder {masks} {what}. Point task.data.masks at the folder of PNG label maps, laid "
                                   f"out like task.data.root (root/a/x.jpg -> masks/a/x.png).")
    if not os.path.lexists(file):
        if num_classes is None:
            raise MaskError(f"{masks} has no {CLASSES_FILE} and task.data.num_classes is not set, so the number of classes is "
                               f"unknown. Write the class names to {file}, one per line (line k names id k; 255 is ignore), "
                               f"or set task.data.num_classes=N for classes named 0 .. N-1.")
        return [str(k) for k in range(num_classes)]
    names = read_class_names(file, IGNORE)
    if num_classes is not None and num_classes != len(names):
        raise MaskError(f"task.data.num_classes = {num_classes}, but {file} names {len(names)} classes. Drop "
                           f"task.data.num_classes (the file decides) or make the two agree.")
    return names


def read_class_names(file: Path, most: int) -> list[str]:
    """The class names of a ``classes.txt`` (line k names id k), each line checked; MaskError naming the file and line.

    Bounded before anything is read (:data:`lucid_arch.data.names.MAX_LIST_BYTES`): the names
    end up in every summary and report, so a file of gigabytes, or of one enormous line, is
    refused rather than copied.
    """
    fix = "Write one class name per line, background (id 0) first if the masks have one."
    try:
        lines = read_name_lines(file)
    except (OSError, ValueError) as err:
        raise MaskError(f"{file}: {name_file_problem(err, file)}. {fix}") from None
    while lines and not lines[-1].strip():
        lines.pop()
    names = [line.strip() for line in lines]
    blank = [k for k, name in enumerate(names) if not name]
    if blank or len(names) < 2 or len(names) > most:
        why = (f"line {blank[0] + 1} is blank (line k names id k - 1: a blank would leave a class unnamed)" if blank else
               f"it names {len(names)} class(es); a segmentation needs 2 to {most} (id {IGNORE} is ignore)")
        raise MaskError(f"{file}: {why}. {fix}")
    problem = names_problem(names, lambda k: f"line {k + 1}")
    if problem:
        raise MaskError(f"{file}: {problem}. {fix}")
    return names


def _scan(root: Path, masks: Path) -> list[Path] | dict[str, list[Path]]:
    """The images below ``root``, or per split when root has train/ and val/ (images elsewhere in root are not read)."""
    if not root.is_dir():
        what = "is a file, not a folder" if root.exists() else "does not exist"
        raise DatasetNotFoundError(f"Image folder {root} {what}. Point task.data.root at the folder of images whose label "
                                   f"maps are in task.data.masks (or at one with train/ and val/ sub-folders).")
    has_train, has_val = (root / "train").is_dir(), (root / "val").is_dir()
    if has_train != has_val:
        present, missing = ("train", "val") if has_train else ("val", "train")
        raise DatasetError(f"Image folder {root} has a {present}/ sub-folder but no {missing}/: a fixed split needs both. Add "
                           f"{root / missing}, or point task.data.root at {root / present} to split it by task.data.val_fraction.")
    not_images = {_key(masks)} if masks.is_dir() else set()  # a mask folder inside root holds no images
    folders = {"train": root / "train", "val": root / "val"} if has_train else {"all": root}
    found, claimed = {}, set()
    for split, folder in folders.items():
        found[split] = _images_under(folder, root, not_images, claimed)
        if not found[split]:
            raise DatasetError(f"Image folder {folder} holds no images (searched recursively). Point task.data.root at the "
                               f"images whose label maps are in task.data.masks.")
    return found if has_train else found["all"]


def _mode_fix(mode: str) -> str:
    """What a mask of ``mode`` is, and the conversion that makes it a label map."""
    if mode == "1":
        return ("It has 1 bit per pixel, which PIL reads as 0 and 255, and 255 is ignore: save it as mode L with the class "
                "ids themselves (0 and 1), e.g. Image.fromarray((np.array(mask) > 0).astype(np.uint8)).")
    if mode.startswith(("I", "F")):
        kind = "floating-point" if mode.startswith("F") else "16- or 32-bit"
        return (f"It holds {kind} values: save the ids as 8-bit (np.uint8, ids 0 .. 254) with mode L; more than 255 "
                "classes do not fit a label map read here.")
    if mode in ("LA", "PA", "La"):
        return f"It holds ids with an alpha channel: drop the alpha channel, mask.getchannel(0) saved as mode {mode[0]}."
    return "It is colour-coded (several channels per pixel): convert colour-coded masks to ids (one id per colour), saved as mode L or P."


def _masks_of(images: list[Path], root: Path, masks: Path) -> dict[Path, str]:
    """Each image's mask path; every image must have its mask, and it must be a file."""
    pairs, missing, special = {}, [], []
    for image in images:
        mask = masks / image.relative_to(root).with_suffix(".png")
        kind = special_kind(mask)
        if kind:
            special.append(f"{mask} is {kind}")
        elif mask.is_file():
            pairs[image] = str(mask)
        else:
            missing.append((image, mask))
    if special:
        more = f" (and {len(special) - _NAMED} more)" if len(special) > _NAMED else ""
        raise MaskError(f"{len(special)} label map path(s) under task.data.masks={masks} are not regular files: "
                        f"{'; '.join(special[:_NAMED])}{more}. A label map is a PNG file: replace each with its image's "
                        f"label map, or move the image out of {root}.")
    if missing:
        named = "; ".join(f"{image} has no {mask}" for image, mask in missing[:_NAMED])
        more = f" (and {len(missing) - _NAMED} more)" if len(missing) > _NAMED else ""
        raise MaskError(f"{len(missing)} of the {len(images)} images under {root} have no label map: {named}{more}. Each "
                           f"image needs a PNG of the same name at the same place under task.data.masks={masks}; add the "
                           f"masks, or move the images without one out of {root}.")
    return pairs


def load_pair(image_path: str | os.PathLike, mask_path: str | os.PathLike, image_size: int | Sequence[int],
              num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(uint8 3 x H x W image, uint8 H x W mask): both resized (bicubic, nearest) to cover H x W, then centre-cropped.

    Raises _PairError for a damaged pair, DatasetError for a mask the class list or format does
    not fit, and PIL's errors for an unreadable image.
    """
    import numpy as np
    from PIL import Image

    crop_h, crop_w = _hw(image_size)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with open_regular(image_path) as f, Image.open(f) as im:  # a FIFO or device: refused, never waited on
            _check_pixels(im.size, crop_h, crop_w)
            size = im.size
            im.draft("RGB", (crop_w, crop_h))  # JPEG: decode at a reduced scale, still >= the target
            if im.mode == "P" and "transparency" in im.info:
                im = im.convert("RGBA")
            im = im.convert("RGB")
        try:
            with open_regular(mask_path) as f, Image.open(f) as mask:
                if mask.mode not in MASK_MODES:
                    raise MaskError(f"Mask {mask_path} is a mode {mask.mode} image; a label map is 8-bit, mode L or P, each "
                                    f"pixel a class id (255: ignore). {_mode_fix(mask.mode)}")
                if mask.size != size:
                    raise _PairError(f"{mask.size[0]}x{mask.size[1]} pixels, but its image {image_path} is {size[0]}x{size[1]}; "
                                     f"a label map must have its image's size: resize it with nearest-neighbour, or remove the pair", str(mask_path))
                labels = np.array(mask, dtype=np.uint8)
        except (DatasetError, _PairError):
            raise
        except Exception as exc:  # noqa: BLE001 -- a damaged mask is one bad pair
            raise _PairError(f"unreadable label map: {_reason(exc, str(mask_path))}", str(mask_path)) from exc
    ids = np.unique(labels)
    bad = [int(v) for v in ids if num_classes <= v != IGNORE]
    if bad:
        raise MaskError(f"Mask {mask_path} holds class id(s) {', '.join(map(str, bad[:8]))}, but there are {num_classes} "
                           f"classes (ids 0 .. {num_classes - 1}; {IGNORE} is ignore). Name every class in task.data.masks's "
                           f"{CLASSES_FILE} (or raise task.data.num_classes), or map the ids the model should not learn to {IGNORE}.")
    new_w, new_h = _resized(size, crop_h, crop_w)
    left, top = round((new_w - crop_w) / 2), round((new_h - crop_h) / 2)
    box = (left, top, left + crop_w, top + crop_h)
    image = im.resize((new_w, new_h), Image.Resampling.BICUBIC).crop(box)
    mask_im = Image.fromarray(labels).resize((new_w, new_h), Image.Resampling.NEAREST).crop(box)
    return (torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).contiguous(),
            torch.from_numpy(np.array(mask_im, dtype=np.uint8)))
