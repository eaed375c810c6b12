"""Who this process is among the processes of one run: its rank, the world size, the rendezvous.

Two launchers start the processes of a multi-process training, and each says so in the
environment:

- ``torchrun`` sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT;
- ``srun`` (by hand, or through submitit's SLURM executor with ``hydra.launcher.nodes=N
  hydra.launcher.tasks_per_node=G``) starts one process per task and sets SLURM_PROCID,
  SLURM_STEP_NUM_TASKS, SLURM_LOCALID and SLURM_STEP_NODELIST. The rendezvous is the step's
  first node, on a port derived from the job id, so every task computes the same one.

A SLURM batch script itself (no srun) also carries SLURM_PROCID=0 and SLURM_NTASKS, so only a
job *step* (SLURM_STEP_NUM_TASKS) counts as a multi-process launch. Without either launcher this
is one process. Plain ``os.environ`` reads: the CLI imports this module, and it imports no torch.
"""

from __future__ import annotations

import os
import re
import zlib
from dataclasses import dataclass
from typing import Mapping, Optional


@dataclass(frozen=True)
class Launch:
    rank: int
    world_size: int
    local_rank: int
    source: str  # "torchrun", "slurm" or "single"
    init_method: Optional[str] = None  # tcp://HOST:PORT under SLURM; None: torchrun's env://

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def detect(environ: Optional[Mapping[str, str]] = None) -> Launch:
    env = os.environ if environ is None else environ
    if "WORLD_SIZE" in env or "RANK" in env:
        return Launch(int(env.get("RANK", "0")), int(env.get("WORLD_SIZE", "1")), int(env.get("LOCAL_RANK", "0")), "torchrun")
    tasks = int(env.get("SLURM_STEP_NUM_TASKS", "1") or "1")
    if tasks > 1 and "SLURM_PROCID" in env:
        host = first_host(env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST") or "localhost")
        port = env.get("MASTER_PORT") or str(rendezvous_port(env))
        return Launch(int(env["SLURM_PROCID"]), tasks, int(env.get("SLURM_LOCALID", "0")), "slurm",
                      f"tcp://{env.get('MASTER_ADDR', host)}:{port}")
    return Launch(0, 1, 0, "single")


def rank() -> int:
    """This process's rank (0 when it is the only one)."""
    return detect().rank


def requeued(environ: Optional[Mapping[str, str]] = None) -> bool:
    """A SLURM job running again after a requeue (preemption, a signal before its time limit, scontrol requeue)."""
    env = os.environ if environ is None else environ
    return int(env.get("SLURM_RESTART_COUNT", "0") or "0") > 0


def slurm_job_id(environ: Optional[Mapping[str, str]] = None) -> Optional[str]:
    """The SLURM job this process runs in, as scancel and squeue name it ("123", or "120_3" for an array task)."""
    env = os.environ if environ is None else environ
    if env.get("SLURM_ARRAY_JOB_ID") and env.get("SLURM_ARRAY_TASK_ID"):
        return f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
    return env.get("SLURM_JOB_ID")


def slurm_cpus_per_task(environ: Optional[Mapping[str, str]] = None) -> Optional[int]:
    """CPUs SLURM allocated to this task, when running in a SLURM job (else None).

    torch's default is a thread per core of the machine, which is right for one process alone;
    SLURM gives a task only its share (SLURM_CPUS_PER_TASK, or the node's CPUs over the tasks on
    it), and ranks sharing cores with more threads than they were given run many times slower
    (measured: 2 ranks with 1 CPU each trained 12x slower at torch's default of 2 threads).
    """
    env = os.environ if environ is None else environ
    if env.get("SLURM_CPUS_PER_TASK", "").isdigit():
        return max(1, int(env["SLURM_CPUS_PER_TASK"]))
    cpus, tasks = env.get("SLURM_CPUS_ON_NODE", ""), env.get("SLURM_TASKS_PER_NODE", "")
    if cpus.isdigit():
        match = re.match(r"(\d+)", tasks)  # "2(x3)" or "2,1": the first node's count
        return max(1, int(cpus) // (int(match.group(1)) if match else 1))
    return None


def rendezvous_port(env: Mapping[str, str]) -> int:
    """A port in [20000, 40000) every task of the step derives alike; a requeued run gets another."""
    key = "/".join(env.get(k, "") for k in ("SLURM_JOB_ID", "SLURM_STEP_ID", "SLURM_RESTART_COUNT"))
    return 20000 + zlib.crc32(key.encode()) % 20000


_GROUP = re.compile(r"^([^,\[]*)(?:\[([^\]]*)\])?")


def first_host(nodelist: str) -> str:
    """The first host of a SLURM node list: ``gpu[003-010,12],cpu1`` -> ``gpu003``."""
    match = _GROUP.match(nodelist.strip())
    prefix, ranges = (match.group(1), match.group(2)) if match else (nodelist, None)
    if not ranges:
        return prefix
    return prefix + ranges.split(",")[0].split("-")[0]
