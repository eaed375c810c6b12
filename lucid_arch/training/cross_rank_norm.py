"""BatchNorm over the whole batch of a multi-process training, on any device.

A decode head's BatchNorm (SegFormer's fuse layer, the FPN head's convolutions) normalises
with the statistics of the batch it sees. Under DDP each rank sees only its share, so without
help N processes train another model than one process with the same global batch. torch's
SyncBatchNorm fixes that on GPUs only (its kernels have no CPU version); this one sums each
channel's count and sum, then its squares about the global mean, over the ranks with a
differentiable all-reduce (torch.distributed.nn's is deprecated), so the CPU (gloo) and GPU
runs alike normalise with the global batch's statistics and back-propagate through them --
the same gradients as one process, up to rounding. A single process, or evaluation, uses the
plain BatchNorm it replaces.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn


class _SumOverRanks(torch.autograd.Function):
    """The sum of a tensor over the ranks; its gradient, the sum of the ranks' gradients (every
    rank's loss depends on every rank's input through the shared statistics)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # noqa: ANN001 -- autograd's context
        out = x.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


def all_reduce(x: torch.Tensor) -> torch.Tensor:
    return _SumOverRanks.apply(x)


class CrossRankBatchNorm2d(nn.BatchNorm2d):
    """nn.BatchNorm2d whose training statistics are those of every rank's batch together (same
    parameters, buffers and state-dict keys)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        channels = x.shape[1]
        xf = x.float()
        # Two all-reduces: the mean first, then the squares about it. One pass of sum and sum of
        # squares would save a collective but lose the variance to cancellation in float32 when a
        # channel's mean is large against its spread (post-ReLU maps).
        local = torch.cat([xf.sum((0, 2, 3)), xf.new_full((1,), x.numel() / channels)])
        total = all_reduce(local)  # backward: the gradients of every rank's statistics, summed
        count = total[-1]
        mean = total[:channels] / count
        centred = xf - mean.view(1, -1, 1, 1)
        var = all_reduce((centred * centred).sum((0, 2, 3))) / count
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), momentum)
                unbiased = var.detach() * (count / (count - 1).clamp_min(1.0))
                self.running_var.lerp_(unbiased.to(self.running_var.dtype), momentum)
        out = centred * torch.rsqrt(var + self.eps).view(1, -1, 1, 1)
        if self.affine:
            out = out * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
        return out.to(x.dtype)


def cross_rank_batch_norms(model: nn.Module) -> int:
    """Turn every nn.BatchNorm2d of ``model`` into a CrossRankBatchNorm2d, in place (the parameters
    and buffers are kept, not copied); returns how many."""
    count = 0
    for module in model.modules():
        if type(module) is nn.BatchNorm2d:
            module.__class__ = CrossRankBatchNorm2d
            count += 1
    return count
