"""Patch-embedding geometry: kernels, strides, paddings and the feature-map sizes they give.

Shared by the validator (a stage must not shrink to nothing at ``img_size``) and by the stage
specs the builder and the analysis read, so both agree on every shape by construction.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional, Sequence


class PatchGeometry(NamedTuple):
    kernel: int
    stride: int
    padding: int


def image_hw(img_size: Any) -> tuple[int, int]:
    """(height, width) of a checked ``img_size``: one side (a square), or [height, width]."""
    if isinstance(img_size, (list, tuple)):
        return int(img_size[0]), int(img_size[1])
    return int(img_size), int(img_size)


def size_text(hw: Sequence[int]) -> str:
    """'512x1024' for reports and messages."""
    return "x".join(str(int(v)) for v in hw)


def default_patch_sizes(patch_embed: str, num_stages: int) -> list[int]:
    """Upstream kernels for any number of stages: 7,3,3,... (v2) or 4,2,2,... (v1)."""
    first, rest = (7, 3) if patch_embed == "overlapping" else (4, 2)
    return [first] + [rest] * (num_stages - 1)


def default_patch_strides(num_stages: int) -> list[int]:
    return [4] + [2] * (num_stages - 1)


def patch_geometry(
    patch_embed: str,
    num_stages: int,
    patch_sizes: Optional[Sequence[int]] = None,
    patch_strides: Optional[Sequence[int]] = None,
) -> list[PatchGeometry]:
    kernels = list(patch_sizes) if patch_sizes is not None else default_patch_sizes(patch_embed, num_stages)
    if patch_strides is not None:
        strides = list(patch_strides)
    elif patch_embed == "non_overlapping":
        strides = list(kernels)  # non-overlapping means kernel == stride
    else:
        strides = default_patch_strides(num_stages)
    overlapping = patch_embed == "overlapping"
    return [PatchGeometry(k, s, k // 2 if overlapping else 0) for k, s in zip(kernels, strides)]


def conv_out(size: int, g: PatchGeometry) -> int:
    return (size + 2 * g.padding - g.kernel) // g.stride + 1


def reductions(geometry: Sequence[PatchGeometry]) -> list[int]:
    """Output stride of every stage: the product of the patch strides so far."""
    out, total = [], 1
    for g in geometry:
        total *= g.stride
        out.append(total)
    return out


def feature_sizes(height: int, width: int, geometry: Sequence[PatchGeometry]) -> list[tuple[int, int]]:
    """(H, W) of every stage's feature map for an input of ``height`` x ``width`` pixels."""
    sizes = []
    for g in geometry:
        height, width = conv_out(height, g), conv_out(width, g)
        sizes.append((height, width))
    return sizes
