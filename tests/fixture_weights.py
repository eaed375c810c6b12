"""Weights and inputs regenerated from a seed, identical on every machine and torch version.

Fixtures for other codebases' layouts (Hugging Face, ...) store the key layout and the
reference outputs, not the tensors: a test rebuilds the tensors from the seed, writes them in
that layout, loads them and compares. Values come from an integer hash (splitmix64 in numpy's
wrapping uint64 arithmetic), so no random-number generator's version enters them. The scripts
that made the fixtures import this module too (see fixtures/README.md).
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np
import torch

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def hashed_uniform(seed: int, n: int) -> np.ndarray:
    """n float64 values in [-1, 1), a pure function of (seed, index)."""
    with np.errstate(over="ignore"):
        x = np.arange(n, dtype=np.uint64) * _GOLDEN + np.uint64(seed) * np.uint64(0xD1B54A32D192ED03)
        x ^= x >> np.uint64(30)
        x *= np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(27)
        x *= np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
    return (x >> np.uint64(11)).astype(np.float64) / float(1 << 52) - 1.0


def seeded_tensor(key: str, shape: Sequence[int], seed: int) -> torch.Tensor:
    """A plausible value for parameter ``key``: LayerNorm scales near 1, small biases, fan-in-scaled weights."""
    n = math.prod(shape)
    u = hashed_uniform(seed, n).reshape(tuple(shape))
    if key.endswith("num_batches_tracked"):
        return torch.zeros(tuple(shape), dtype=torch.int64)
    if key.endswith("running_var"):
        values = 0.5 + np.abs(u)
    elif key.endswith(".weight") and len(shape) == 1:
        values = 1.0 + 0.2 * u
    elif key.endswith(".bias") or key.endswith("running_mean"):
        values = 0.1 * u
    elif key.endswith(".weight"):
        values = u * math.sqrt(3.0 / math.prod(shape[1:]))
    else:  # position tables, class tokens
        values = 0.5 * u
    return torch.from_numpy(values.astype(np.float32))


def seeded_state_dict(layout: Iterable[tuple[str, Sequence[int]]], seed: int) -> dict[str, torch.Tensor]:
    """Every key of ``layout`` ([(key, shape), ...]) filled from (seed, its position)."""
    return {key: seeded_tensor(key, shape, seed * 100_003 + i) for i, (key, shape) in enumerate(layout)}


def seeded_images(shape: Sequence[int], seed: int) -> torch.Tensor:
    """Inputs in [-1.5, 1.5): roughly normalised pixels."""
    return torch.from_numpy((1.5 * hashed_uniform(seed, math.prod(shape))).astype(np.float32).reshape(tuple(shape)))
