"""The process group of a multi-process training, and the few collective operations it needs.

Who this process is comes from :mod:`lucid_arch.training.launch_env`: torchrun's RANK / WORLD_SIZE, or the
tasks of a SLURM job step (``srun``, or submitit with ``hydra.launcher.nodes`` /
``tasks_per_node``), which rendezvous over TCP on the step's first node. Without either this is
a single process and every helper is a no-op. The process group is created once per process
and reused by every job of a sweep run under torchrun.
"""

from __future__ import annotations

import atexit
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .launch_env import detect


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
    launch = detect()
    device = pick_device(device_setting, launch.local_rank)
    if launch.world_size > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        backend = "nccl" if device.type == "cuda" else "gloo"
        if launch.init_method:  # SLURM tasks: rank and world size from SLURM, rendezvous on the first node
            dist.init_process_group(backend, init_method=launch.init_method, rank=launch.rank, world_size=launch.world_size)
        else:  # torchrun: everything from its environment
            dist.init_process_group(backend)
        atexit.register(_teardown)
    return Dist(launch.rank, launch.world_size, launch.local_rank, device)


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
