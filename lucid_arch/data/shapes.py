"""The built-in "shapes" dataset: ten geometric classes rendered from a seed, in memory.

Why it exists: ``lucid-arch task=train`` should show a model learning without a download, in a
few CPU minutes, and tell a good architecture from a poor one. So the class is carried only by
*geometry*; everything a shortcut could use is random per image:

    0 disc            a filled circle
    1 ring            a circle outline (stroke 0.24-0.38 of the radius)
    2 square          a filled square, any rotation
    3 square_outline  a square frame, any rotation
    4 triangle        a filled equilateral triangle, any rotation
    5 plus            a plus / cross (arm half-width 0.2-0.32), any rotation
    6 ellipse         a filled ellipse, axes ratio 0.40-0.55, any rotation
    7 star            a filled five-pointed star (inner/outer radius 0.5), any rotation
    8 crescent        a disc with an offset disc cut away, any rotation
    9 stripes         a square patch of 3-4.5 parallel bars, any orientation

Random per image: size (radius 0.22-0.38 of the side), position (shape fully inside), rotation,
foreground and background colours (independent, except that their luminances differ by at
least 0.25, in either direction: colour statistics say nothing about the class, yet the shape
always has an edge), a colour gradient and a blotchy low-frequency texture on the background,
pixel grain, up to two small blobs behind and up to three thin strokes over the shape (half of
them in the shape's own colour, so colour alone cannot segment it).

Why learnable but not trivial: the confusable pairs -- ring/square_outline, disc/ellipse/
crescent, square/triangle, plus/star -- differ in shape, not in pixels at fixed places. On
5000 training images at 64 px, class-mean templates score 10% and a logistic regression on
raw pixels 14% (chance: 10%), while pvt_v2_b0 reaches about 75% after 10 epochs of batch 64
(two CPU minutes; ring vs square_outline is the last pair it separates) and the same model
with v1's non-overlapping patch embedding and no depthwise convolution about 40%: room for a
better architecture to show. Tiny models need longer: the random colours must be learnt away.

Masks (``masks=True``, for segmentation): the same images, byte for byte, with a per-pixel
label map drawn from the same scene -- 0 background, ``1 + label`` where the shape is, 255
(ignore) where it is hidden. Class names: :data:`SEGMENTATION_CLASSES`. A pixel belongs to the
shape when its centre lies inside the shape's outline, i.e. the shape covers at least half of
it (coverage >= 0.5: the rule that makes the mask the image's own anti-aliased outline
thresholded at half, so its area matches the painted area). Blobs are drawn behind the shape
and never change its pixels. A stroke drawn over the shape in *another* colour hides it where
the stroke's alpha is >= 0.5 (its colour then dominates the pixel): those pixels are 255, since
"shape" would ask for an amodal completion the pixel does not show, and "background" would call
a pixel inside the outline background -- neither is what the picture says, so neither is
rewarded or penalised. A stroke in the shape's own colour leaves the shape's pixels as they
were (it is invisible there): they keep the shape's label, and where such a stroke crosses the
background it is background -- the case that makes colour alone unable to segment. About 0.06%
of the pixels are 255, and 84% are background (at 64 px, seed 0).

Boxes and instance masks (``detection=True``, for detectors): the same scenes, images byte for
byte, each holding one object -- its box and its instance mask are read off the label map
above, so they add no draw. The instance mask is every pixel of the shape's outline, hidden
ones (255 in the label map) included: a thin stroke across the shape does not cut the object
in two, and Mask R-CNN's mask loss has no ignore label to give those pixels. The box is the
mask's tight box in pixel edges, xyxy (a shape whose pixels span columns 3..9 has x0 = 3 and
x1 = 10), COCO's convention; the area is the mask's pixel count, which COCO's small/medium/large
ranges are judged by. Labels are 0..9 (:data:`CLASSES`); a detector's background class is the
model's own business.

No class changes under the training augmentation: a horizontal flip maps every class to
itself, and the ellipse's axes ratio is at most 0.55, so even the strongest aspect jitter of
the random resized crop (4/3) leaves it below the 0.75 a squeezed disc reaches. (A crop can
still cut a shape: that is the augmentation's usual label noise.)

Determinism: images come in chunks of ``CHUNK``, each drawn from its own ``torch.Generator``
seeded from (seed, split, chunk), so image i depends only on (seed, split, i, image_size) --
not on ``num_images`` -- and "val" never copies "train". Every per-pixel step is a single
elementwise IEEE operation (+ - * /, sqrt, floor, min/max, clamp, round): no floating-point
reductions, no matmul, no transcendental functions, no ``randn``, so the bytes do not depend on the thread
count or on which SIMD kernels a CPU has. (Changing ``CHUNK`` or the order of the draws
changes the dataset.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from .ignore import IGNORE
from .seeds import generator

CLASSES = (
    "disc",
    "ring",
    "square",
    "square_outline",
    "triangle",
    "plus",
    "ellipse",
    "star",
    "crescent",
    "stripes",
)
SEGMENTATION_CLASSES = ("background", *CLASSES)  # mask value k names SEGMENTATION_CLASSES[k]
SPLITS = ("train", "val")
CHUNK = 250  # images per generator; a multiple of 10, so every block of 10 holds each class once
MIN_IMAGE_SIZE = 16

_RADIUS = (0.22, 0.38)  # the shape's radius, as a share of the side
_MIN_CONTRAST = 0.25  # luminance difference of shape and background, at least
_TEXTURE = 0.15  # amplitude of the background blotches, per channel
_GRAIN = (0.02, 0.06)  # amplitude of the per-pixel noise
_DISTRACTOR_P = 0.5  # chance of each blob and stroke
_TEXTURE_GRID = 5  # the background texture's control points per side
_BLOBS = 2
_BLOB_MAX = 0.07  # largest blob radius / side: well below the smallest shape's 0.22
_STROKES = 3
_STROKE_REACH = 0.2  # a stroke spans at most +-0.4 of the side along each axis
_STROKE_WIDTH_MAX = 1.7  # pixels at 64 px, scaled with the side


class ShapesDataset(Dataset):
    """``num_images`` shapes rendered once at construction (6000 at 64 px: about 0.6 s on two cores).

    ``images``: uint8 N x 3 x S x S; ``labels``: int64 N, balanced (counts differ by at most 1);
    ``classes``: the ten names, indexed by label. With ``masks=True`` (segmentation) also
    ``masks``: uint8 N x S x S (see the module's docstring), items are (image, mask) and
    ``classes`` are the eleven :data:`SEGMENTATION_CLASSES`. With ``detection=True`` items are
    (image, target): ``target`` holds ``boxes`` (float32 1 x 4, xyxy pixels), ``labels`` (int64 1,
    0..9), ``masks`` (uint8 1 x S x S instance mask), ``area`` and ``image_id`` (the index);
    ``classes`` are the ten :data:`CLASSES` and ``boxes`` (float32 N x 4) holds every image's box.
    """

    def __init__(self, num_images: int, image_size: int | Sequence[int] = 64, seed: int = 0, split: str = "train",
                 masks: bool = False, detection: bool = False):
        if masks and detection:
            raise ValueError("shapes: masks=True (label maps, segmentation) and detection=True (boxes and instance masks) "
                             "are two ways of labelling the same images; choose one.")
        rendered = render_shapes(num_images, image_size, seed, split, masks=masks or detection)
        self.images, self.labels = rendered[0], rendered[1]
        self.masks = rendered[2] if masks or detection else None
        self.detection = detection
        self.boxes = instance_boxes(self.masks) if detection else None
        self.classes = list(SEGMENTATION_CLASSES if masks else CLASSES)
        self.image_size = image_size
        self.seed = seed
        self.split = split

    def __len__(self) -> int:
        return self.labels.shape[0]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int | torch.Tensor | dict]:
        if self.detection:
            instance = (self.masks[i] != 0).to(torch.uint8)[None]
            return self.images[i], {"boxes": self.boxes[i : i + 1].clone(), "labels": self.labels[i : i + 1].clone(),
                                    "masks": instance, "area": instance.sum((1, 2)).to(torch.float32), "image_id": i}
        if self.masks is not None:
            return self.images[i], self.masks[i]
        return self.images[i], int(self.labels[i])

    def ground_truth(self, i: int):
        """Image ``i``'s object as COCO's evaluation reads it (:class:`lucid_arch.data.coco.ImageRecord`)."""
        from .coco import ImageRecord

        instance = self.masks[i] != 0
        height, width = instance.shape
        return ImageRecord(i, f"{self.split}/{i}", int(height), int(width), boxes=[self.boxes[i].tolist()],
                           labels=[int(self.labels[i])], iscrowd=[0], areas=[float(instance.sum())], segmentations=[instance])

    def __repr__(self) -> str:
        what = ", boxes" if self.detection else ", masks" if self.masks is not None else ""
        return (
            f"ShapesDataset({len(self)} images, {self.images.shape[2]}x{self.images.shape[3]}, "
            f"seed={self.seed}, split={self.split!r}{what})"
        )


def instance_boxes(label_maps: torch.Tensor) -> torch.Tensor:
    """float32 N x 4: the tight xyxy box (pixel edges) of each map's non-zero pixels (the shape,
    hidden pixels included); an image without any (none at the sizes allowed) gets 0 0 0 0."""
    if label_maps.shape[0] == 0:
        return torch.zeros(0, 4)
    on = label_maps != 0
    cols, rows = on.any(1), on.any(2)  # N x W, N x H

    def span(hit: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = hit.shape[1]
        first = hit.to(torch.uint8).argmax(1)
        last = n - hit.flip(1).to(torch.uint8).argmax(1)
        empty = ~hit.any(1)
        return first.masked_fill(empty, 0), last.masked_fill(empty, 0)

    x0, x1 = span(cols)
    y0, y1 = span(rows)
    return torch.stack([x0, y0, x1, y1], 1).to(torch.float32)


def render_shapes(num_images: int, image_size: int | Sequence[int] = 64, seed: int = 0, split: str = "train",
                  masks: bool = False):
    """(uint8 N x 3 x H x W images, int64 N labels), chunk by chunk; with ``masks``, also the
    uint8 N x H x W masks as a third item (the images and labels are the same either way).

    ``image_size`` is a side or (height, width). A non-square image is the square scene at the
    shorter side, its edge pixels repeated out to the longer one: every shape stays whole and
    undistorted (a disc stays a disc), so the classes mean the same at any aspect ratio. The
    mask's edge is repeated the same way (it is background there: shapes keep a margin).
    """
    if not isinstance(image_size, int):
        height, width = (int(v) for v in image_size)
        rendered = render_shapes(num_images, min(height, width), seed, split, masks)
        if height == width:
            return rendered
        side = min(height, width)
        top, left = (height - side) // 2, (width - side) // 2
        padding = (left, width - side - left, top, height - side - top)
        padded = [F.pad(rendered[0].float(), padding, mode="replicate").to(torch.uint8), rendered[1]]
        if masks:
            padded.append(F.pad(rendered[2][:, None].float(), padding, mode="replicate")[:, 0].to(torch.uint8))
        return tuple(padded)
    if split not in SPLITS:
        raise ValueError(f"shapes: split={split!r}; choose 'train' or 'val'.")
    if num_images < 0:
        raise ValueError(f"shapes: num_images={num_images}; give 0 or more.")
    if image_size < MIN_IMAGE_SIZE:
        raise ValueError(
            f"shapes: image_size={image_size} is too small to draw ten distinguishable shapes; "
            f"use {MIN_IMAGE_SIZE} or more."
        )
    images = torch.empty(num_images, 3, image_size, image_size, dtype=torch.uint8)
    labels = torch.empty(num_images, dtype=torch.int64)
    label_maps = torch.empty(num_images, image_size, image_size, dtype=torch.uint8) if masks else None
    for chunk, start in enumerate(range(0, num_images, CHUNK)):
        count = min(CHUNK, num_images - start)
        gen = generator("shapes", seed, SPLITS.index(split), chunk)
        out = label_maps[start : start + count] if masks else None
        images[start : start + count], labels[start : start + count] = _render_chunk(gen, count, image_size, out)
    return (images, labels, label_maps) if masks else (images, labels)


# --- exact geometry -------------------------------------------------------------------------
# Constants from square roots only (cos and sin of 36 degrees), so no platform's libm enters the images.

_R5 = math.sqrt(5.0)
_C36, _S36 = (1.0 + _R5) / 4.0, math.sqrt(10.0 - 2.0 * _R5) / 4.0


def _half_planes(vertices: list[tuple[float, float]]) -> list[tuple[float, float, float]]:
    """(nx, ny, offset) of each edge of a convex, counter-clockwise polygon: inside is n.u < offset."""
    planes = []
    for (ax, ay), (bx, by) in zip(vertices, vertices[1:] + vertices[:1]):
        dx, dy = bx - ax, by - ay
        length = math.sqrt(dx * dx + dy * dy)
        nx, ny = dy / length, -dx / length
        planes.append((nx, ny, nx * ax + ny * ay))
    return planes


_TRIANGLE = _half_planes([(0.0, 1.05), (-1.05 * math.sqrt(3.0) / 2.0, -0.525), (1.05 * math.sqrt(3.0) / 2.0, -0.525)])


def _convex(ux: torch.Tensor, uy: torch.Tensor, planes) -> torch.Tensor:
    """Signed distance (exact near edges) to a convex polygon: the largest half-plane excess."""
    out = None
    for nx, ny, offset in planes:
        d = ux * nx + uy * ny - offset
        out = d if out is None else torch.maximum(out, d)
    return out


def _box(ux: torch.Tensor, uy: torch.Tensor, hx, hy) -> torch.Tensor:
    return torch.maximum(ux.abs() - hx, uy.abs() - hy)


def _length(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (x * x + y * y).sqrt()


# Each returns the signed distance in units of the shape's radius (negative inside);
# p holds per-image parameters shaped (b, 1, 1): t (stroke), a and b (shape-specific).
_SQUARE_HALF = 0.75


def _disc(ux, uy, p):
    return _length(ux, uy) - 1.0


def _ring(ux, uy, p):
    return (_length(ux, uy) - (1.0 - p["t"] * 0.5)).abs() - p["t"] * 0.5


def _square(ux, uy, p):
    return _box(ux, uy, _SQUARE_HALF, _SQUARE_HALF)


def _square_outline(ux, uy, p):
    edge = _SQUARE_HALF - p["t"] * 0.5
    return (_box(ux, uy, edge, edge)).abs() - p["t"] * 0.5


def _triangle(ux, uy, p):
    return _convex(ux, uy, _TRIANGLE)


def _plus(ux, uy, p):
    w = 0.2 + p["a"] * 0.12
    return torch.minimum(_box(ux, uy, 1.0, w), _box(ux, uy, w, 1.0))


def _ellipse(ux, uy, p):
    minor = 0.4 + p["a"] * 0.15
    return (_length(ux, uy / minor) - 1.0) * minor


def _star(ux, uy, p, outer: float = 1.05, inner_ratio: float = 0.5):
    """Exact distance, by folding the plane into one half-point with mirror lines at 36 degrees
    (after Inigo Quilez's sdStar5); a union of convex pieces would leave seams inside."""
    x, y = ux.abs(), uy
    for kx in (_C36, -_C36):  # mirrors with unit normals (+-cos 36, -sin 36)
        fold = (x * kx - y * _S36).clamp_min(0.0) * 2.0
        x, y = x - fold * kx, y + fold * _S36
    x, y = x.abs(), y - outer
    bx, by = inner_ratio * _S36, inner_ratio * _C36 - 1.0  # from the tip towards an inner vertex
    h = ((x * bx + y * by) / (bx * bx + by * by)).clamp(0.0, outer)
    return _length(x - h * bx, y - h * by) * (y * bx - x * by).sign()


def _crescent(ux, uy, p):
    cut_radius = 0.75 + p["a"] * 0.15
    offset = 0.45 + p["b"] * 0.15
    return torch.maximum(_length(ux, uy) - 1.0, cut_radius - _length(ux - offset, uy))


def _stripes(ux, uy, p):
    period = p["period"]
    f = ux / period + p["b"]
    band = ((f - f.floor()) - 0.5).abs() * period - period * 0.25  # bars of half the period
    return torch.maximum(_box(ux, uy, _SQUARE_HALF, _SQUARE_HALF), band)


_SDF = (_disc, _ring, _square, _square_outline, _triangle, _plus, _ellipse, _star, _crescent, _stripes)
assert len(_SDF) == len(CLASSES)


# --- drawing --------------------------------------------------------------------------------


class _Draws:
    """Hands out columns of one uniform (CHUNK, n) float64 draw, in a fixed order."""

    def __init__(self, gen: torch.Generator, columns: int):
        self.table = torch.rand(CHUNK, columns, generator=gen, dtype=torch.float64)
        self.next = 0

    def __call__(self, low: float = 0.0, high: float = 1.0) -> torch.Tensor:
        u = self.table[:, self.next]
        self.next += 1
        return (u * (high - low) + low).to(torch.float32)


def _unit_vectors(gen: torch.Generator, tries: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Uniformly random directions (cos, sin) without trigonometry: rejection-sampled in the disc."""
    xy = torch.rand(CHUNK, tries, 2, generator=gen, dtype=torch.float64) * 2.0 - 1.0
    r2 = xy[..., 0] * xy[..., 0] + xy[..., 1] * xy[..., 1]
    ok = (r2 > 0.01) & (r2 <= 1.0)
    first = torch.where(ok.any(1), ok.to(torch.uint8).argmax(1), torch.full_like(r2[:, 0], tries - 1, dtype=torch.long))
    pick = xy[torch.arange(CHUNK), first]
    norm = (pick[:, 0] * pick[:, 0] + pick[:, 1] * pick[:, 1]).sqrt().clamp_min(1e-3)
    return (pick[:, 0] / norm).to(torch.float32), (pick[:, 1] / norm).to(torch.float32)


def _luma(rgb: torch.Tensor) -> torch.Tensor:
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def _colours(gen: torch.Generator, tries: int = 16):
    """Background and foreground RGB in [0, 1] whose luminances differ by at least ``_MIN_CONTRAST``.

    Which of the two is brighter is random, so brightness says nothing about the class, but the
    shape always has an edge in luminance, as objects in photographs mostly do.
    """
    bg = torch.rand(CHUNK, 3, generator=gen, dtype=torch.float64)
    cand = torch.rand(CHUNK, tries, 3, generator=gen, dtype=torch.float64)
    ok = (_luma(cand) - _luma(bg)[:, None]).abs() >= _MIN_CONTRAST
    first = ok.to(torch.uint8).argmax(1)
    # Fallback (about 1 in 10^5 images): bg's hue at a quarter or three quarters of its level.
    dark = (_luma(bg) > 0.5)[:, None]
    fallback = torch.where(dark, bg * 0.25, bg * 0.25 + 0.75)
    fg = torch.where(ok.any(1)[:, None], cand[torch.arange(CHUNK), first], fallback)
    return bg.to(torch.float32), fg.to(torch.float32)


def _render_chunk(gen: torch.Generator, count: int, size: int, masks: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``count`` (<= CHUNK) images of a chunk. Every draw is CHUNK-sized, so image i of
    a chunk does not depend on ``count``. Pixels are painted at most ``_PAINT_PIXELS`` at a time
    (the whole chunk at 64 px), which bounds memory at large sizes; the bytes do not change.
    ``masks`` (count x S x S uint8), when given, is filled with the chunk's label maps."""
    scene = _draw_scene(gen, size)
    images = torch.empty(count, 3, size, size, dtype=torch.uint8)
    step = max(1, _PAINT_PIXELS // (size * size))
    for lo in range(0, count, step):
        hi = min(lo + step, count)
        images[lo:hi] = _paint(scene, lo, hi, size, None if masks is None else masks[lo:hi])
    return images, scene["label"][:count].clone()


_PAINT_PIXELS = 1 << 20  # ~12 MiB per float32 RGB buffer


def _draw_scene(gen: torch.Generator, size: int) -> dict:
    """Every random choice of a chunk, per image (rows) and in pixels; the draw order is fixed."""
    S = float(size)
    scene: dict = {}
    scene["label"] = torch.rand(CHUNK // len(CLASSES), len(CLASSES), generator=gen).argsort(dim=1, stable=True).flatten()
    draw = _Draws(gen, 64)
    radius = scene["radius"] = draw(*_RADIUS) * S
    margin = radius * 1.1
    scene["cx"] = margin + draw() * (S - 2.0 * margin)
    scene["cy"] = margin + draw() * (S - 2.0 * margin)
    scene["t"] = torch.maximum(draw(0.24, 0.38), 1.5 / radius)  # ring and frame stroke: >= 1.5 px
    scene["a"], scene["b"] = draw(), draw()
    stripe_count = draw(3.0, 4.5)
    scene["period"] = torch.maximum(2.0 * _SQUARE_HALF / stripe_count, 3.0 / radius)  # >= 3 px
    scene["ramp"] = torch.stack([draw(-0.12, 0.12) for _ in range(3)], 1)
    scene["ramp_x"], scene["ramp_y"] = draw(-1.0, 1.0), draw(-1.0, 1.0)
    scene["texture_rgb"] = torch.stack([draw(-_TEXTURE, _TEXTURE) for _ in range(3)], 1)
    scene["grain_amp"] = draw(*_GRAIN)
    scene["blobs"] = [
        {"on": (draw() < _DISTRACTOR_P).float(), "x": draw(0.0, S), "y": draw(0.0, S), "r": draw(0.03, _BLOB_MAX) * S, "same": draw()}
        for _ in range(_BLOBS)
    ]
    scene["strokes"] = []
    for _ in range(_STROKES):
        on, x, y = (draw() < _DISTRACTOR_P).float(), draw(0.0, S), draw(0.0, S)
        ex, ey = draw(-2 * _STROKE_REACH, 2 * _STROKE_REACH) * S, draw(-2 * _STROKE_REACH, 2 * _STROKE_REACH) * S
        half_width = (draw(0.8, _STROKE_WIDTH_MAX) * (S / 64.0)).clamp_min(0.5) * 0.5
        opacity = draw(0.6, 1.0) * on
        scene["strokes"].append({"x": x, "y": y, "ex": ex, "ey": ey, "hw": half_width, "opacity": opacity, "same": draw()})
    scene["cos"], scene["sin"] = _unit_vectors(gen)
    scene["bg"], scene["fg"] = _colours(gen)
    scene["other"] = torch.rand(CHUNK, _BLOBS + _STROKES, 3, generator=gen)
    scene["texture"] = torch.rand(CHUNK, _TEXTURE_GRID, _TEXTURE_GRID, generator=gen) - 0.5
    scene["grain"] = torch.randint(0, 256, (CHUNK, size, size), generator=gen, dtype=torch.uint8)
    return scene


def _paint(scene: dict, lo: int, hi: int, size: int, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Images lo..hi of a chunk's scene: background, blobs, the shape, strokes, grain.

    Painted channels-last (count, S, S, 3), so a distractor's window is a run of whole pixels.
    ``mask`` (count x S x S uint8), when given, receives the label maps, from the very coverages
    the image is painted with (the mask adds no draw and changes no byte of the image).
    """
    n, count, S = slice(lo, hi), hi - lo, float(size)

    def b(t: torch.Tensor) -> torch.Tensor:  # per-image scalars against (S, S) grids
        return t[n].view(-1, 1, 1)

    def rgb(t: torch.Tensor) -> torch.Tensor:
        return t.view(-1, 1, 1, 3)

    xs = (torch.arange(size, dtype=torch.float32) + 0.5).view(1, 1, size)
    ys = xs.view(1, size, 1)
    fg = scene["fg"][n]

    # Background: colour + gradient + blotches (bilinear from a coarse grid, by hand: no reductions).
    lin = (xs * (2.0 / S) - 1.0) * b(scene["ramp_x"]) + (ys * (2.0 / S) - 1.0) * b(scene["ramp_y"])
    image = rgb(scene["bg"][n]) + lin.unsqueeze(-1) * rgb(scene["ramp"][n])
    image = image + _upsample(scene["texture"][n], size).unsqueeze(-1) * rgb(scene["texture_rgb"][n])

    for j, blob in enumerate(scene["blobs"]):
        x, y, r, on = (blob[key][n].view(-1, 1, 1) for key in ("x", "y", "r", "on"))

        def blob_alpha(wx, wy, x=x, y=y, r=r, on=on):
            return _coverage(_length(wx - x, wy - y) - r) * on

        colour = _pick_colour(blob["same"][n], fg, scene["other"][n, j])
        _blend_window(image, blob["x"][n], blob["y"][n], _BLOB_MAX * S + 1.0, blob_alpha, colour)

    # The shape, in its own rotated frame scaled to unit radius, one class at a time.
    sdf_px = torch.empty(count, size, size)
    label = scene["label"][n]
    for k, fn in enumerate(_SDF):
        idx = (label == k).nonzero().flatten()
        if idx.numel():
            p = {key: scene[key][n][idx].view(-1, 1, 1) for key in ("cx", "cy", "cos", "sin", "radius", "t", "a", "b", "period")}
            dx, dy, inv_r = xs - p["cx"], ys - p["cy"], 1.0 / p["radius"]
            ux = (dx * p["cos"] + dy * p["sin"]) * inv_r
            uy = (dy * p["cos"] - dx * p["sin"]) * inv_r
            sdf_px.index_copy_(0, idx, fn(ux, uy, p) * p["radius"])
    coverage = _coverage(sdf_px)
    image = _lerp(image, coverage.unsqueeze(-1), rgb(fg))
    if mask is not None:
        mask.copy_(torch.where(coverage >= 0.5, (label + 1).to(torch.uint8).view(-1, 1, 1), 0))

    for j, stroke in enumerate(scene["strokes"]):
        x, y, ex, ey, hw, opacity = (stroke[key][n].view(-1, 1, 1) for key in ("x", "y", "ex", "ey", "hw", "opacity"))

        def stroke_alpha(wx, wy, x=x, y=y, ex=ex, ey=ey, hw=hw, opacity=opacity):
            return _coverage(_segment_distance(wx, wy, x, y, ex, ey) - hw) * opacity

        colour = _pick_colour(stroke["same"][n], fg, scene["other"][n, _BLOBS + j])
        half_extent = _STROKE_REACH * S + _STROKE_WIDTH_MAX * S / 128.0 + 1.0
        pixel, alpha = _blend_window(image, (x + ex * 0.5).flatten(), (y + ey * 0.5).flatten(), half_extent, stroke_alpha, colour)
        if mask is not None:  # another colour over the shape, dominating the pixel: hidden, ignored
            hides = (alpha >= 0.5) & (stroke["same"][n] >= 0.5).view(-1, 1, 1)
            flat = mask.view(-1)
            under = flat.index_select(0, pixel).view_as(hides)
            flat.index_copy_(0, pixel, torch.where(hides & (under > 0), IGNORE, under).flatten())

    grain = scene["grain"][n].to(torch.float32) * (1.0 / 255.0) - 0.5
    image = image + (grain * b(scene["grain_amp"] * 2.0)).unsqueeze(-1)
    return (image.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8).permute(0, 3, 1, 2)


def _lerp(image: torch.Tensor, alpha: torch.Tensor, colour: torch.Tensor) -> torch.Tensor:
    """Composite ``colour`` over ``image`` with coverage ``alpha`` (broadcasting, channels last)."""
    return image + alpha * (colour - image)  # three separate ops: no fused multiply-add


def _coverage(sdf_px: torch.Tensor) -> torch.Tensor:
    """Anti-aliased coverage of a pixel whose centre is ``sdf_px`` pixels outside the edge."""
    return (0.5 - sdf_px).clamp(0.0, 1.0)


def _blend_window(image: torch.Tensor, cx, cy, half_extent: float, alpha_fn, colour) -> tuple[torch.Tensor, torch.Tensor]:
    """Composite a small distractor into ``image`` (count, S, S, 3) in place, computing only a
    square window around its centre (cx, cy); returns the window's flat pixel indices and the
    (count, w, w) alphas, for the mask.

    Outside the window the coverage would be exactly 0 (the window reaches a pixel beyond
    ``half_extent``), so this equals painting the whole image, at a fraction of the work.
    """
    count, size = image.shape[0], image.shape[1]
    w = min(size, 2 * math.ceil(half_extent) + 3)
    offsets = torch.arange(w)
    cols = (cx - w / 2).floor().clamp(0, size - w).long()[:, None] + offsets  # (count, w)
    rows = (cy - w / 2).floor().clamp(0, size - w).long()[:, None] + offsets
    alpha = alpha_fn((cols.to(torch.float32) + 0.5).view(count, 1, w), (rows.to(torch.float32) + 0.5).view(count, w, 1))
    pixel = ((torch.arange(count).view(count, 1, 1) * size + rows.view(count, w, 1)) * size + cols.view(count, 1, w)).flatten()
    flat = image.view(-1, 3)
    patch = flat.index_select(0, pixel).view(count, w, w, 3)
    flat.index_copy_(0, pixel, _lerp(patch, alpha.unsqueeze(-1), colour).view(-1, 3))
    return pixel, alpha


def _pick_colour(same: torch.Tensor, fg: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """The shape's colour for about half the distractors, another random colour otherwise."""
    return torch.where((same < 0.5)[:, None], fg, other).view(-1, 1, 1, 3)


def _segment_distance(xs, ys, x0, y0, ex, ey) -> torch.Tensor:
    """Distance of each pixel centre to the segment from (x0, y0) to (x0 + ex, y0 + ey)."""
    px, py = xs - x0, ys - y0
    h = ((px * ex + py * ey) / (ex * ex + ey * ey + 1e-6)).clamp(0.0, 1.0)
    return _length(px - ex * h, py - ey * h)


def _upsample(grid: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear (b, G, G) -> (b, size, size), pixel centres spread over the control points."""
    g = grid.shape[-1]
    pos = (torch.arange(size, dtype=torch.float32) + 0.5) * ((g - 1) / size)
    i0 = pos.floor().long().clamp(max=g - 2)
    w = pos - i0.to(torch.float32)
    rows = grid.index_select(1, i0) * (1.0 - w).view(-1, 1) + grid.index_select(1, i0 + 1) * w.view(-1, 1)  # (b, S, G)
    return rows.index_select(2, i0) * (1.0 - w) + rows.index_select(2, i0 + 1) * w
