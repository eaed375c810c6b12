"""AdamW with timm's weight-decay exclusions, and the warm-up + cosine learning-rate curve.

Decaying a LayerNorm's scale, a bias, a position embedding or the class token pulls it
towards zero for no regularising benefit, so those get weight_decay 0: every parameter with
fewer than two dimensions, plus what the model lists in ``no_weight_decay()``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    skip = set(model.no_weight_decay()) if hasattr(model, "no_weight_decay") else set()
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 or name in skip else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


DENSE_PARTS = ("neck.", "decode_head.")  # a segmentation model's parts after the encoder


def make_optimizer(model: nn.Module, opt: Any) -> torch.optim.AdamW:
    """AdamW over :func:`param_groups`; a segmentation model's neck and decode head get their own
    groups, whose ``lr_mult`` (``opt.decode_head_lr_mult``) :func:`set_lr` applies (a detector's do not)."""
    groups = param_groups(model, opt.weight_decay)
    mult = float(getattr(opt, "decode_head_lr_mult", 1.0))
    dense = {id(p) for name, p in model.named_parameters() if name.startswith(DENSE_PARTS)}
    if getattr(getattr(model, "spec", None), "detection", None) is not None:
        dense = set()  # a detector learns at one rate throughout, as mmdetection's recipes (the PVT ones included) train it
    if dense and mult != 1.0:  # a classifier keeps its two groups
        groups = [{**g, "params": [p for p in g["params"] if (id(p) in dense) == is_dense], "lr_mult": mult if is_dense else 1.0}
                  for is_dense in (False, True) for g in groups]
        groups = [g for g in groups if g["params"]]
    return torch.optim.AdamW(groups, lr=opt.lr, betas=tuple(opt.betas), eps=opt.eps)


def lr_at(step: int, total_steps: int, warmup_steps: int, peak: float, warmup_lr: float, min_lr: float) -> float:
    """Learning rate of optimizer step ``step`` (0-based): linear warm-up, then cosine to ``min_lr``.

    A pure function of the step, so a resumed run needs no scheduler state.
    """
    if step < warmup_steps:
        return warmup_lr + (peak - warmup_lr) * step / warmup_steps
    span = max(1, total_steps - warmup_steps - 1)
    progress = min(1.0, (step - warmup_steps) / span)
    return min_lr + 0.5 * (peak - min_lr) * (1.0 + math.cos(math.pi * progress))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_mult", 1.0)
