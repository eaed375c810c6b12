"""Refuse to allocate a model the device cannot hold, before allocating it.

A config is data, and data can ask for anything: ``embed_dims: [16384, ...]`` is a valid
vision transformer of a few hundred billion parameters. Building it would make the machine
swap or the kernel kill the process minutes later. The builder creates every model on the
``meta`` device first, so its exact weight size is known for free; this module compares that
with the memory the target device has and raises a :class:`ConfigError` naming the fields.

``LUCID_ARCH_MEMORY_LIMIT`` overrides the limit: a size (``256G``, ``512M``, bytes) for a
machine whose free memory this check cannot see, or ``off`` to skip the check.
"""

from __future__ import annotations

import os
import re
from typing import Optional

import torch
from torch import nn

from ..config.checks import ConfigError, Problem
from ..config.schema import ModelConfig

ENV = "LUCID_ARCH_MEMORY_LIMIT"
_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
SIZE_FIELDS = ("embed_dims", "depths", "mlp_ratios", "num_classes")  # what makes a model big


def weight_bytes(model: nn.Module) -> int:
    """Bytes the parameters and buffers take once materialised (works on meta models)."""
    tensors = [*model.parameters(), *model.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


def _parse_size(text: str) -> Optional[int]:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*", text.upper())
    return int(float(match.group(1)) * _UNITS[match.group(2)]) if match else None


def available_bytes(device: torch.device) -> Optional[int]:
    """Memory free on ``device`` now, or None when it cannot be told."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    if device.type != "cpu":
        return None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _limit(device: torch.device) -> tuple[Optional[int], str]:
    setting = os.environ.get(ENV, "").strip()
    if setting.lower() in ("off", "none", "0"):
        return None, ""
    if setting:
        size = _parse_size(setting)
        if size is None:
            raise ConfigError([Problem(ENV, f"{ENV}={setting!r}: give a size such as 64G or 512M, or 'off'.")])
        return size, f"{ENV}={setting}"
    return available_bytes(device), f"the memory available on {device}"


def check_fits(model: nn.Module, device: torch.device, config: ModelConfig) -> None:
    """Raise a ConfigError when ``model``'s weights exceed what ``device`` has (see module doc)."""
    limit, what = _limit(device)
    need = weight_bytes(model)
    if limit is None or need <= limit:
        return
    fields = ", ".join(f"model.{k} = {getattr(config, k)}" for k in SIZE_FIELDS)
    params = sum(p.numel() for p in model.parameters())
    raise ConfigError(
        [
            Problem(
                "model",
                f"{fields}: the weights alone need {need / 2**30:,.1f} GiB ({params / 1e9:,.2f} G parameters), more than "
                f"{what} ({limit / 2**30:,.1f} GiB); make the model smaller, or set {ENV}=off (or a size, e.g. "
                f"{ENV}=512G) to build it anyway.",
            )
        ],
        config.name,
    )
