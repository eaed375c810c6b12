"""What a layer may do with a feature map's size, so that torch.export can trace it as a symbol.

Eager PyTorch hands the model plain ``int`` sizes; ``torch.export`` with dynamic height and
width hands it ``torch.SymInt`` symbols. A Python ``if`` on a symbol makes the exporter pick
one branch for every size (and fail, or silently specialise), so the size-dependent shortcuts
of the eager code (a position table used as is at its own size, the too-small-input check)
are taken only when the sizes are concrete: :func:`concrete` asks which kind of size it
holds, which is known while tracing (torch.export's default, non-strict tracing: under
dynamo, as torch.compile and strict export trace, sizes read as ints and the eager shortcuts
are kept) and never becomes a guard. Eager numerics and speed are untouched.

``nn.AdaptiveAvgPool2d`` is exported by torch.onnx as a fixed-kernel ``AveragePool`` worked
out from the sample's size, wrong at any other size (pvt_v2_b2_li's keys drift by ~1e-3).
:func:`adaptive_avg_pool2d` computes the same windows as two small averaging matrices built
from the symbolic size (``Range``, compare, ``MatMul`` in ONNX), right at every size.
"""

from __future__ import annotations

import torch


def concrete(*sizes: object) -> bool:
    """Whether every size is a plain int (eager), not a symbol being traced (torch.export)."""
    return all(isinstance(s, int) for s in sizes)


def contiguous_if_traced(x: torch.Tensor) -> torch.Tensor:
    """``x`` as it is in eager mode; contiguous while traced with symbolic sizes.

    The model's maps are channels-last views of token sequences (no copy, see ``tokens_to_map``).
    Traced, their symbolic strides give later reshapes and resizes guards torch.export cannot
    prove, on PVT v1's maps above all (``1 % (C * (W // 4)) != 0``); a contiguous map has none.
    """
    return x if concrete(*x.shape[2:]) else x.contiguous()


def _window_matrix(n: int, out: int, like: torch.Tensor) -> torch.Tensor:
    """(out, n): row i averages positions floor(i*n/out) .. ceil((i+1)*n/out) - 1, adaptive pooling's windows."""
    i = torch.arange(out, device=like.device)
    start = torch.div(i * n, out, rounding_mode="floor")
    end = torch.div((i + 1) * n + out - 1, out, rounding_mode="floor")
    j = torch.arange(n, device=like.device)
    inside = (j >= start[:, None]) & (j < end[:, None])
    return inside.to(like.dtype) / (end - start).to(like.dtype)[:, None]


def adaptive_avg_pool2d(x: torch.Tensor, out: int) -> torch.Tensor:
    """``F.adaptive_avg_pool2d(x, out)`` for (B, C, H, W) ``x`` of any, possibly symbolic, H and W (to ~1e-7)."""
    rows = _window_matrix(x.shape[2], out, x)
    cols = _window_matrix(x.shape[3], out, x)
    return torch.matmul(torch.matmul(rows, x), cols.transpose(0, 1))
