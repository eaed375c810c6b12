"""What to predict on: a file, a folder (searched recursively) or a glob, and each image decoded.

A folder is listed like the training data (lucid_arch/data/folder.py): image extensions only,
hidden files and folders skipped, sorted by relative path so two runs list the same order. Each
input keeps its path relative to what was given, so outputs mirror the input tree. Decoding obeys
the data layer's pixel bound and refuses to open anything but a regular file: a FIFO or a device
named by a glob would block or stream forever. A file that cannot be decoded is :class:`Unreadable`,
counted and named by the caller, never the end of a long run.
"""

from __future__ import annotations

import glob
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch

from ..data.folder import IMAGE_EXTENSIONS, _reason
from ..safe_io import NotRegularFile, open_regular

GLOB_CHARS = "*?["


class InputError(ValueError):
    """``task.input`` names nothing to predict on; the message says what was found and what to give."""


@dataclass(frozen=True)
class Source:
    """One input image: where it is, and the path its outputs mirror (relative, POSIX)."""

    path: Path
    relative: str


class Unreadable(Exception):
    """An input that cannot be decoded (or is not a regular file); ``str()`` says why in a few words."""


def list_inputs(spec: Any) -> list[Source]:
    """The images ``spec`` names: one file, every image below a folder, or a glob's matches (``**`` recurses)."""
    text = os.path.expanduser(str(spec))
    if any(c in text for c in GLOB_CHARS) and not Path(text).exists():
        return _globbed(text)
    path = Path(text)
    if path.is_dir():
        found = [Source(p, p.relative_to(path).as_posix()) for p in _images_below(path)]
        if not found:
            raise InputError(f"task.input = {spec}: the folder holds no images ({', '.join(IMAGE_EXTENSIONS)}, searched recursively). "
                             "Point it at a folder of images, an image file or a glob such as 'photos/*.jpg'.")
        return found
    if path.exists() or path.is_symlink():
        return [Source(path, path.name)]
    raise InputError(f"task.input = {spec}: no such file or folder. Give an image file, a folder of images or a glob "
                     "(quote it: task.input='photos/**/*.jpg').")


def _globbed(pattern: str) -> list[Source]:
    base = Path(_static_prefix(pattern))
    matches = sorted(Path(m) for m in glob.glob(pattern, recursive=True))
    files = [m for m in matches if not m.is_dir()]
    if not files:
        raise InputError(f"task.input = {pattern}: the glob matches no files. Check the pattern (** matches folders at any "
                         "depth: 'photos/**/*.jpg'), or give a folder to take every image in it.")
    return [Source(m, _relative(m, base)) for m in files]


def _static_prefix(pattern: str) -> str:
    """The folder part of a glob before its first wildcard: outputs mirror paths relative to it."""
    parts = Path(pattern).parts
    fixed = []
    for part in parts[:-1]:
        if any(c in part for c in GLOB_CHARS):
            break
        fixed.append(part)
    return str(Path(*fixed)) if fixed else "."


def _relative(path: Path, base: Path) -> str:
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return path.name


def _images_below(folder: Path) -> list[Path]:
    """Image files below ``folder``, hidden ones skipped, symlinked folders followed once (no loops)."""
    found: list[tuple[str, Path]] = []
    seen: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        st = os.stat(dirpath)
        if (st.st_dev, st.st_ino) in seen:
            dirnames[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS:
                path = Path(dirpath) / name
                found.append((path.relative_to(folder).as_posix(), path))
    return [path for _, path in sorted(found)]


def decode(path: Path, check: Optional[Any] = None) -> torch.Tensor:
    """uint8 3 x H x W RGB pixels of ``path`` at full resolution, or :class:`Unreadable`.

    ``check(height, width)`` runs on the header's size before any pixel is decoded and may raise
    ValueError (the pixel bound of what the image will be resized to)."""
    import numpy as np
    from PIL import Image

    try:
        with warnings.catch_warnings(), open_regular(path) as file:
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(file) as im:  # reads the header only
                if check is not None:
                    check(im.size[1], im.size[0])
                if im.mode == "P" and "transparency" in im.info:
                    im = im.convert("RGBA")
                im = im.convert("RGB")  # decodes the whole file: truncation surfaces here
    except NotRegularFile as exc:
        raise Unreadable(f"{exc.reason}; not opened") from None
    except Exception as exc:  # noqa: BLE001 -- any decoder failure is one bad file, not the end of the run
        raise Unreadable(_why(exc, path)) from None
    return torch.from_numpy(np.array(im, dtype=np.uint8)).permute(2, 0, 1).contiguous()


def _why(exc: BaseException, path: Path) -> str:
    """The decoder's message in a few words, without the path or the open file's repr it repeats."""
    return re.sub(r"\s*<_io\.\w+ name=[^>]*>", "", _reason(exc, str(path))) or type(exc).__name__


def load_for_classifier(path: Path, image_size: Any) -> torch.Tensor:
    """uint8 3 x S x S exactly as training's validation loads ``path`` (data/folder.py load_image), or :class:`Unreadable`."""
    from ..data.folder import load_image

    try:
        return load_image(path, image_size)  # opens regular files only (lucid_arch.safe_io)
    except NotRegularFile as exc:
        raise Unreadable(f"{exc.reason}; not opened") from None
    except Exception as exc:  # noqa: BLE001
        raise Unreadable(_why(exc, path)) from None
