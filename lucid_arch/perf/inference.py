"""A fast inference path: autograd off, bf16 autocast, optional channels_last and torch.compile.

Why these and not others: profiling pvt_v2_b2 on CPU puts ~60% of the forward in the linear
layers' GEMMs, ~20% in convolutions and ~10% in GELU; the GEMMs already run near the fp32 peak,
so the big win is doing them in bf16. Where the CPU has AVX512-BF16 (or AMX), oneDNN's bf16
GEMMs are ~4x faster than fp32 and autocast alone gives ~2.8x over timm's fp32 eager at batch 8;
``torch.compile`` (Inductor, with weights frozen and prepacked) fuses the elementwise work and
brings that to ~3.2x, at the price of ~25 s of compilation on 2 cores. Without bf16 hardware,
bf16 is emulated and slower than fp32, so ``precision="auto"`` picks fp32 there.

Autocast keeps LayerNorm, softmax and the reductions in fp32. Logits move by up to ~0.006,
which flips the top-1 of 1-3% of random inputs on a random-initialised pvt_v2_b2 (its top two
logits are a median 0.02 apart). ``recheck_margin`` recomputes those near-ties in fp32.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

Precision = Literal["auto", "fp32", "bf16"]


def bf16_is_fast(device: torch.device | str = "cpu") -> bool:
    """Whether the device runs bf16 matrix products natively (else they are emulated, and slow)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


class InferenceModel(nn.Module):
    """Wraps a model for inference: no autograd, autocast to ``dtype``, inputs in ``memory_format``.

    Outputs are returned in float32 whatever the compute precision. With ``recheck_margin``,
    logit rows whose top-1 lead over the runner-up is below it are computed again in fp32 by
    the eager model, so a low-precision rounding never decides a near-tie: the top-1 equals
    fp32's wherever bf16 moves the two leading logits by less than the margin in all.
    ``rows`` and ``rechecked`` count how often that happened.
    """

    def __init__(
        self,
        model: nn.Module,
        dtype: torch.dtype | None,
        memory_format: torch.memory_format,
        device_type: str,
        eager: nn.Module | None = None,
        recheck_margin: float = 0.0,
    ):
        super().__init__()
        self.model = model
        self.eager = [eager if eager is not None else model]  # a list: not registered twice as a submodule
        self.dtype = dtype
        self.memory_format = memory_format
        self.device_type = device_type
        self.recheck_margin = recheck_margin if dtype is not None else 0.0
        self.rows = 0
        self.rechecked = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous(memory_format=self.memory_format)
        with torch.inference_mode():
            with torch.autocast(self.device_type, dtype=self.dtype or torch.bfloat16, enabled=self.dtype is not None):
                out = self.model(x).float()
            if self.recheck_margin > 0 and out.ndim == 2 and out.shape[-1] > 1:
                top2 = out.topk(2, dim=-1).values
                unsure = (top2[:, 0] - top2[:, 1]) < self.recheck_margin
                self.rows += out.shape[0]
                self.rechecked += int(unsure.sum())
                if unsure.any():
                    out[unsure] = self.eager[0](x[unsure]).float()
        return out

    def extra_repr(self) -> str:
        return f"dtype={self.dtype}, memory_format={self.memory_format}, recheck_margin={self.recheck_margin}"


def prepare_for_inference(
    model: nn.Module,
    precision: Precision = "auto",
    channels_last: bool = False,
    compile: bool | str = False,
    recheck_margin: float = 0.0,
) -> InferenceModel:
    """``model`` (left on its device, switched to eval mode) wrapped for fast inference.

    - ``precision``: ``"bf16"`` runs matrix products and convolutions in bf16 under autocast,
      ``"fp32"`` leaves them, ``"auto"`` picks bf16 where the device has it natively.
    - ``channels_last``: feeds images NHWC to the first convolution (helps on CUDA; neutral on
      CPU, where the later stages are token sequences already laid out channels-last).
    - ``compile``: ``True`` compiles with Inductor (weights frozen, the CPU's best option) or
      names another ``torch.compile`` backend.
    - ``recheck_margin``: in bf16, classify near-ties in fp32 (see :class:`InferenceModel`).
      pvt_v2_b2's bf16 logits move by up to ~0.006, so 0.005 keeps every top-1 of a
      random-initialised model, whose leads are a median 0.02 (~15% of rows rechecked); a
      trained model's leads are far larger and almost nothing is rechecked.
    """
    model.eval().requires_grad_(False)
    device = next(model.parameters()).device
    if precision == "auto":
        precision = "bf16" if bf16_is_fast(device) else "fp32"
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"precision={precision!r}: expected 'auto', 'fp32' or 'bf16'.")
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    if channels_last:
        model.to(memory_format=torch.channels_last)
    inner: nn.Module = model
    if compile:
        backend = "inductor" if compile is True else compile
        options = {"freezing": True} if backend == "inductor" else None
        inner = torch.compile(model, backend=backend, options=options)  # type: ignore[assignment]
    dtype = torch.bfloat16 if precision == "bf16" else None
    return InferenceModel(inner, dtype, memory_format, device.type, eager=model, recheck_margin=recheck_margin)
