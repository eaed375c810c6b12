"""Who this process is in a ``torchrun`` launch, and the few collective operations training needs.

torchrun (single node or multi-node) sets RANK, WORLD_SIZE and LOCAL_RANK; without them this
is a single process and every helper is a no-op. The process group is created once per
process and reused by every job of a sweep run under torchrun.
"""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Dist:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that prints progress and writes files."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def launched_rank() -> int:
    """This process's rank as torchrun set it (0 when not launched by torchrun)."""
    return int(os.environ.get("RANK", "0"))


def pick_device(setting: str, local_rank: int = 0) -> torch.device:
    if setting == "auto":
        setting = "cuda" if torch.cuda.is_available() else "cpu"
    if setting.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"task.device = {setting!r}, but this torch build sees no CUDA device; use task.device=cpu or auto.")
        if setting == "cuda":
            setting = f"cuda:{local_rank}"
    return torch.device(setting)


def setup(device_setting: str) -> Dist:
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = launched_rank()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_setting, local_rank)
    if world_size > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        atexit.register(_teardown)
    return Dist(rank, world_size, local_rank, device)


def _teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(values: list[float], env: Dist) -> list[float]:
    """Sum per-rank counters (correct predictions, images, losses) over all ranks."""
    if not env.enabled:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=env.device)
    dist.all_reduce(t)
    return t.tolist()


def barrier(env: Dist) -> None:
    if env.enabled:
        dist.barrier()
