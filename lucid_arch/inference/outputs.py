"""What ``task=predict`` writes, each file whole or not at all.

A segmentation model's outputs mirror the inputs' relative paths (``street/a.jpg`` ->
``masks/street/a.png`` and ``overlays/street/a.png``):

- a label map: one pixel per input pixel, value = class id; mode L (8-bit) for up to 256
  classes, else 16-bit grey (mode I;16). A file of class ids, not a picture: a viewer shows it
  near-black, ``PIL.Image.open(p)`` / ``np.array`` reads the ids back;
- an overlay: the image with each pixel's class colour blended in (lucid_arch/report/palette.py).

Two inputs that would share an output name (``a.jpg`` and ``a.png`` side by side) keep their
extension instead (``a.jpg.png``, ``a.png.png``), so no output overwrites another.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..safe_io import atomic_write, write_text_atomic
from .inputs import Source

EIGHT_BIT = 256  # class ids 0..255 fit a mode L PNG


def output_names(sources: Sequence[Source]) -> list[str]:
    """The relative PNG name of each source's outputs (see the module docstring)."""
    stems = [str(Path(s.relative).with_suffix("")) + ".png" for s in sources]
    taken = Counter(stems)
    return [stem if taken[stem] == 1 else s.relative + ".png" for stem, s in zip(stems, sources)]


def atomic(path: Path, write: Callable[[Path], Any]) -> Path:
    """``write(tmp)`` then rename onto ``path`` (lucid_arch.safe_io): readers, and a rerun's skip test,
    never see half a file; the folders on the way are made first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, write)


def write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_text_atomic(path, text)


def mask_image(labels: torch.Tensor, num_classes: int) -> "PIL.Image.Image":  # noqa: F821
    """H x W class ids -> a PIL image holding them: mode L up to 256 classes, else 16-bit."""
    from PIL import Image

    ids = labels.cpu().numpy()
    if num_classes <= EIGHT_BIT:
        return Image.fromarray(ids.astype(np.uint8), mode="L")
    return Image.fromarray(ids.astype(np.uint16), mode="I;16")


def save_mask(path: Path, labels: torch.Tensor, num_classes: int) -> Path:
    image = mask_image(labels, num_classes)
    return atomic(path, lambda tmp: image.save(tmp, format="PNG"))


def read_mask(path: Path) -> torch.Tensor:
    """A label map written by :func:`save_mask`, as H x W int64 ids."""
    from PIL import Image

    with Image.open(path) as im:
        return torch.from_numpy(np.array(im).astype(np.int64))


def save_overlay(path: Path, pixels: torch.Tensor, labels: torch.Tensor, colours: np.ndarray, opacity: float) -> Path:
    """The image (uint8 3 x H x W) with the label map's colours blended in, as a PNG."""
    from PIL import Image

    from ..report.palette import overlay

    picture = Image.fromarray(overlay(pixels.permute(1, 2, 0).cpu().numpy(), labels.cpu().numpy(), colours, opacity))
    return atomic(path, lambda tmp: picture.save(tmp, format="PNG"))
