"""A folder of images, one sub-folder per class: ``root/CLASS/**/*.jpg``.

Real image collections hold a few files that cannot be decoded (truncated downloads, HTML
saved as .jpg, zero-byte placeholders, decompression bombs). One of them must not end a run
of many hours, so :meth:`ImageFolder.__getitem__` returns ``None`` for it and names the file
on stderr once; :func:`collate_skip_bad` drops the ``None`` samples from the batch.

PIL is imported only when an image is decoded, so ``import lucid_arch.data`` and the shapes
dataset do not pay for it.
"""

from __future__ import annotations

import math
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch.utils.data import Dataset

from ..safe_io import open_regular
from .names import names_problem
from .seeds import generator

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
CROP_FRACTION = 0.875  # resize the shorter side to size / 0.875, then center-crop: the ImageNet convention
# Pixels an image may have, as stored and once resized, before it is decoded: a 4 KB PNG can
# declare 1 x 1,000,000 pixels, and resizing its shorter side up to 73 would take gigabytes.
# 2**27 (134 M) is 5x a 24-megapixel photo and 1 GB of RGB bytes as decoded.
MAX_PIXELS = 1 << 27


class DatasetError(ValueError):
    """An image folder that cannot be used as it is; the message says which path and how to fix it.

    Raised in a DataLoader worker, it reaches the training process rebuilt by torch from
    "Caught ... Original Traceback ..." and the whole traceback; the rebuilt error keeps only
    the original one-paragraph message, which is what the user needs.
    """

    key = "task.data.root"  # the setting the message is about

    def __init__(self, message: str = ""):
        super().__init__(_worker_message(message, type(self)))


def _worker_message(message: str, cls: type) -> str:
    """The original message of an error torch re-raises from a DataLoader worker (else ``message``)."""
    if not (isinstance(message, str) and message.startswith("Caught ") and "\nOriginal Traceback" in message):
        return message
    last = message.rstrip().splitlines()[-1]
    prefix = f"{cls.__module__}.{cls.__qualname__}: "
    return last[len(prefix):] if last.startswith(prefix) else message


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """The image folder does not exist."""


class ImageFolder(Dataset):
    """Images under ``root``, labelled by the sorted names of its class sub-folders.

    ``root/train/CLASS`` and ``root/val/CLASS`` give a fixed split (classes from train/);
    otherwise each class gives ``val_fraction`` of its files (at least one when it has two or
    more) to "val", drawn with a generator seeded from (``seed``, class name) -- so the split
    is the same on every machine, and a class gaining files leaves the others' splits alone.

    Items are (uint8 3 x S x S, label): shorter side resized to round(S / 0.875) (bicubic),
    then center-cropped to S x S; ``None`` for a file that cannot be decoded.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        image_size: int,
        split: str = "train",
        val_fraction: float = 0.1,
        seed: int = 0,
    ):
        if split not in ("train", "val"):
            raise ValueError(f"ImageFolder: split={split!r}; choose 'train' or 'val'.")
        index = scan_image_folder(root)
        self._init(index, image_size, split, val_fraction, seed)

    def _init(self, index: FolderIndex, image_size: int | Sequence[int], split: str, val_fraction: float, seed: int) -> None:
        hw = _hw(image_size)
        if min(hw) < 1:
            raise ValueError(f"ImageFolder: image_size={image_size}; give a positive side (or height and width) in pixels.")
        self.root = index.root
        self.image_size = hw
        self.split = split
        self.classes = list(index.classes)
        self.samples: list[tuple[str, int]] = index.split_samples(split, val_fraction, seed)
        if not self.samples:
            raise DatasetError(_empty_split_message(index, split))
        # One byte per sample in shared memory: DataLoader workers (forked or spawned) see each
        # other's marks, so an unreadable file is reported once per run, not once per worker or epoch.
        self._reported = torch.zeros(len(self.samples), dtype=torch.uint8).share_memory_()

    @classmethod
    def splits(
        cls, root: str | os.PathLike, image_size: int, val_fraction: float = 0.1, seed: int = 0
    ) -> tuple[ImageFolder, ImageFolder]:
        """(train, val) from one scan of ``root`` (a large tree is listed once, not twice)."""
        index = scan_image_folder(root)
        out = []
        for split in ("train", "val"):
            ds = cls.__new__(cls)
            ds._init(index, image_size, split, val_fraction, seed)
            out.append(ds)
        return out[0], out[1]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int] | None:
        path, label = self.samples[i]
        try:
            image = load_image(path, self.image_size)
        except Exception as exc:  # noqa: BLE001 -- any decoder failure is one bad file, not a crash
            if not self._reported[i]:
                self._reported[i] = 1
                print(f"lucid-arch: skipping unreadable image {path} ({_reason(exc, path)})", file=sys.stderr, flush=True)
            return None
        return image, label

    def __repr__(self) -> str:
        return (
            f"ImageFolder({str(self.root)!r}, split={self.split!r}, {len(self)} images, "
            f"{len(self.classes)} classes, {self.image_size[0]}x{self.image_size[1]})"
        )


def collate_skip_bad(batch: Sequence, image_size: int | Sequence[int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack the readable samples of ``batch`` into (uint8 B x 3 x H x W, int64 B), dropping ``None``;
    samples whose target is a label map (segmentation) give their B x H x W maps stacked instead,
    and a detector's target dicts come as a list of B.

    A batch with no readable sample gives B = 0 (the training loop should skip it); its image
    tensor is 0 x 3 x H x W when ``image_size`` is given (``functools.partial``), else 0 x 3 x 0 x 0.
    """
    good = [item for item in batch if item is not None]
    if not good:
        height, width = _hw(image_size or 0)
        return torch.empty(0, 3, height, width, dtype=torch.uint8), torch.empty(0, dtype=torch.int64)
    images = torch.stack([image for image, _ in good])
    if isinstance(good[0][1], dict):  # a detector's targets: boxes, labels (and masks) per image, counts differ
        return images, [target for _, target in good]
    if isinstance(good[0][1], torch.Tensor) and good[0][1].dim():
        return images, torch.stack([mask for _, mask in good])
    labels = torch.tensor([int(label) for _, label in good], dtype=torch.int64)
    return images, labels


def _hw(image_size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(image_size, int):
        return image_size, image_size
    height, width = image_size
    return int(height), int(width)


def load_image(path: str | os.PathLike, image_size: int | Sequence[int]) -> torch.Tensor:
    """Decode ``path`` to uint8 3 x H x W: RGB, resized (aspect kept) to cover H x W / 0.875, center crop.

    For a square size S that is: shorter side to round(S / 0.875), then the central S x S.
    Raises on anything unreadable: truncated files are not padded (``LOAD_TRUNCATED_IMAGES``
    is left alone) and PIL's decompression-bomb warning is raised as an error.
    """
    import numpy as np
    from PIL import Image

    crop_h, crop_w = _hw(image_size)
    cover_h, cover_w = max(crop_h, round(crop_h / CROP_FRACTION)), max(crop_w, round(crop_w / CROP_FRACTION))
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with open_regular(path) as f, Image.open(f) as im:  # a FIFO or device is refused, never waited on; the header only
            _check_pixels(im.size, cover_h, cover_w)
            im.draft("RGB", (cover_w, cover_h))  # JPEG: decode at a reduced scale, still >= the target
            if im.mode == "P" and "transparency" in im.info:
                im = im.convert("RGBA")  # PIL asks palette images with transparency to go through RGBA
            im = im.convert("RGB")  # decodes the whole file: truncation surfaces here
    new_w, new_h = _resized(im.size, cover_h, cover_w)
    im = im.resize((new_w, new_h), Image.Resampling.BICUBIC)
    left, top = round((new_w - crop_w) / 2), round((new_h - crop_h) / 2)
    im = im.crop((left, top, left + crop_w, top + crop_h))
    return torch.from_numpy(np.array(im, dtype=np.uint8)).permute(2, 0, 1).contiguous()


def _resized(size: tuple[int, int], cover_h: int, cover_w: int) -> tuple[int, int]:
    """(w, h) covering ``cover_w`` x ``cover_h`` with the aspect ratio kept."""
    w, h = size
    if cover_w * h <= cover_h * w:  # the height binds: it becomes cover_h, the width follows
        return max(cover_w, round(w * cover_h / h)), cover_h
    return cover_w, max(cover_h, round(h * cover_w / w))


def _check_pixels(size: tuple[int, int], cover_h: int, cover_w: int) -> None:
    w, h = size
    if w < 1 or h < 1:
        raise ValueError(f"the file declares {w}x{h} pixels")
    rw, rh = _resized(size, cover_h, cover_w)
    if w * h > MAX_PIXELS or rw * rh > MAX_PIXELS:
        raise ValueError(f"{w}x{h} pixels ({rw}x{rh} once resized) is over the limit of {MAX_PIXELS:,} pixels; not decoded")


def _reason(exc: BaseException, path: str) -> str:
    """PIL's message on one line, without the path it repeats."""
    text = str(exc).replace(repr(str(path)), "").replace(str(path), "").strip(" :")
    text = " ".join(text.split())
    return text or type(exc).__name__


# --- listing the folder ---------------------------------------------------------------------


class FolderIndex:
    """The files of each class, found once; splits are derived from it without touching disk."""

    def __init__(self, root: Path, classes: list[str], files: dict[str, list[Path]], fixed_val: dict | None = None):
        self.root = root
        self.classes = classes
        self.files = files  # class -> sorted files (the train/ side when fixed_val is given)
        self.fixed_val = fixed_val  # class -> sorted files under root/val, or None

    def split_samples(self, split: str, val_fraction: float, seed: int) -> list[tuple[str, int]]:
        samples: list[tuple[str, int]] = []
        for label, name in enumerate(self.classes):
            if self.fixed_val is not None:
                chosen = self.files[name] if split == "train" else self.fixed_val.get(name, [])
            else:
                chosen = _stratified(self.files[name], val_fraction, seed, name)[split == "val"]
            samples.extend((str(path), label) for path in chosen)
        return samples


def _stratified(files: list[Path], val_fraction: float, seed: int, name: str) -> tuple[list[Path], list[Path]]:
    """(train, val) of one class: round(n * val_fraction) files to val, at least 1 if n >= 2, at most n - 1."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"ImageFolder: val_fraction={val_fraction}; give a share strictly between 0 and 1.")
    n = len(files)
    n_val = min(max(math.floor(n * val_fraction + 0.5), 1 if n >= 2 else 0), max(n - 1, 0))
    held_out = set(torch.randperm(n, generator=generator("folder-split", seed, name))[:n_val].tolist())
    train = [f for i, f in enumerate(files) if i not in held_out]
    val = [f for i, f in enumerate(files) if i in held_out]
    return train, val


def scan_image_folder(root: str | os.PathLike) -> FolderIndex:
    """List ``root``: its class folders and their image files (recursively, sorted)."""
    root = Path(root).expanduser()
    if not root.is_dir():
        what = "is a file, not a folder" if root.exists() else "does not exist"
        raise DatasetNotFoundError(
            f"Image folder {root} {what}. Point task.data.root at a folder holding one sub-folder "
            f"of images per class (root/CLASS/*.jpg), or root/train/CLASS and root/val/CLASS."
        )
    has_train, has_val = (root / "train").is_dir(), (root / "val").is_dir()
    if has_train != has_val:
        present, missing = ("train", "val") if has_train else ("val", "train")
        raise DatasetError(
            f"Image folder {root} has a {present}/ sub-folder but no {missing}/: a fixed split needs "
            f"both ({root / 'train'}/CLASS and {root / 'val'}/CLASS). Add {root / missing}, or point "
            f"task.data.root at {root / present} to split it by task.data.val_fraction."
        )
    if not has_train:
        classes, files = _scan_classes(root)
        return FolderIndex(root, classes, files)
    classes, files = _scan_classes(root / "train")
    val_classes, val_files = _scan_classes(root / "val", training=False)
    unknown = [name for name in val_classes if name not in files]
    if unknown:
        raise DatasetError(
            f"{root / 'val'} has class folders that {root / 'train'} lacks: {', '.join(unknown)}. "
            f"The model can only learn classes it trains on: add them to train/ or remove them from val/."
        )
    return FolderIndex(root, classes, files, fixed_val=val_files)


def _scan_classes(root: Path, training: bool = True) -> tuple[list[str], dict[str, list[Path]]]:
    classes = sorted(entry.name for entry in os.scandir(root) if entry.is_dir() and not entry.name.startswith("."))
    if not classes:
        raise DatasetError(
            f"Image folder {root} has no class sub-folders. Put each class's images in its own "
            f"folder: {root}/CLASS_NAME/image.jpg (the folder names become the class names)."
        )
    problem = names_problem(classes, lambda k: f"the class folder {str(root / classes[k])!r}")
    if problem:
        raise DatasetError(f"Image folder {root}: {problem}. The folder names become the class names: rename that folder.")
    if len(classes) == 1 and training:  # a fixed split's val/ may hold a subset of train/'s classes
        raise DatasetError(
            f"Image folder {root} has one class folder ({classes[0]}): a classifier needs two or more. Add a "
            f"folder of images per other class beside {root / classes[0]}, or point task.data.root at the "
            f"folder that holds all the classes."
        )
    files: dict[str, list[Path]] = {}
    class_dirs = {_key(root / name) for name in classes}
    claimed: set[tuple[int, int]] = set()  # folders already listed, for every class: none is counted twice
    for name in classes:
        found = _images_under(root / name, root, class_dirs | claimed, claimed)
        if not found:
            raise DatasetError(
                f"Class folder {root / name} holds no images ({', '.join(IMAGE_EXTENSIONS)}, searched "
                f"recursively). Add images to it, or remove it if {name!r} is not a class."
            )
        files[name] = found
    return classes, files


def _images_under(folder: Path, root: Path, off_limits: set[tuple[int, int]], claimed: set[tuple[int, int]]) -> list[Path]:
    """Image files below ``folder``, sorted by relative path; hidden files and folders skipped
    (e.g. macOS ``._name.jpg`` resource forks).

    Symlinked folders are followed, but never into a folder in ``off_limits`` (the class folders
    and those listed already: a loop, a folder linked twice, another class's images that would
    count twice and under the wrong class), nor into ``root`` or a folder above it (a link to a
    parent would list every class again; ``folder`` may be ``root`` itself: segmentation's flat
    image folders). Folders listed are added to ``claimed``.
    """
    found: list[tuple[str, Path]] = []
    above = {_key(p) for p in (root.resolve(), *root.resolve().parents)} - ({_key(root)} if folder == root else set())
    off_limits = (off_limits - {_key(folder)}) | above
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        key = _key(Path(dirpath))
        if key in off_limits:
            dirnames[:] = []
            continue
        claimed.add(key)
        off_limits.add(key)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))  # the same walk on every machine
        for filename in filenames:
            if not filename.startswith(".") and os.path.splitext(filename)[1].lower() in IMAGE_EXTENSIONS:
                path = Path(dirpath) / filename
                found.append((path.relative_to(folder).as_posix(), path))
    return [path for _, path in sorted(found)]


def _key(path: Path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def _empty_split_message(index: FolderIndex, split: str) -> str:
    if index.fixed_val is not None:
        where = index.root / split
        return (
            f"The {split} split of {index.root} is empty: {where} holds no images of the classes in "
            f"{index.root / 'train'}. Add images to {where}/CLASS folders."
        )
    return (
        f"The {split} split of {index.root} is empty: every class folder has a single image, and one "
        f"image cannot be both trained on and held out. Add images (two or more per class), or give a "
        f"fixed split as {index.root}/train/CLASS and {index.root}/val/CLASS."
    )
