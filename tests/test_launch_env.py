"""Who a process is in a multi-process run (torchrun or SLURM), and SLURM job states read from scontrol."""

from __future__ import annotations

import pytest

from lucid_arch.training.launch_env import Launch, detect, first_host, requeued, slurm_job_id

SRUN_TASK_1 = {"SLURM_JOB_ID": "41", "SLURM_STEP_ID": "0", "SLURM_PROCID": "1", "SLURM_LOCALID": "0", "SLURM_NTASKS": "2",
               "SLURM_STEP_NUM_TASKS": "2", "SLURM_STEP_NODELIST": "n[1-2]", "SLURM_JOB_NODELIST": "n[1-2]"}


def test_torchrun_slurm_step_batch_script_and_single_process():
    assert detect({"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "1"}) == Launch(3, 8, 1, "torchrun")
    task = detect(SRUN_TASK_1)
    assert (task.rank, task.world_size, task.local_rank, task.source) == (1, 2, 0, "slurm")
    assert task.init_method == detect({**SRUN_TASK_1, "SLURM_PROCID": "0"}).init_method  # every task meets at one place
    assert task.init_method.startswith("tcp://n1:") and 20000 <= int(task.init_method.rsplit(":", 1)[1]) < 40000
    assert detect({**SRUN_TASK_1, "SLURM_RESTART_COUNT": "1"}).init_method != task.init_method  # a requeued run: a fresh port
    # A batch script (no srun step) carries SLURM_PROCID=0 and SLURM_NTASKS=2 too: still one process.
    batch = {k: v for k, v in SRUN_TASK_1.items() if not k.startswith("SLURM_STEP")} | {"SLURM_PROCID": "0"}
    assert detect(batch) == Launch(0, 1, 0, "single") == detect({})


@pytest.mark.parametrize("nodes, first", [("n[1-2]", "n1"), ("gpu[003-010,12],cpu1", "gpu003"), ("a,b", "a"), ("node7", "node7")])
def test_first_host_of_a_slurm_node_list(nodes, first):
    assert first_host(nodes) == first


def test_slurm_job_ids_and_requeues():
    assert slurm_job_id({"SLURM_JOB_ID": "44", "SLURM_ARRAY_JOB_ID": "40", "SLURM_ARRAY_TASK_ID": "3"}) == "40_3"
    assert slurm_job_id({"SLURM_JOB_ID": "44"}) == "44" and slurm_job_id({}) is None
    assert requeued({"SLURM_RESTART_COUNT": "2"}) and not requeued({"SLURM_RESTART_COUNT": "0"}) and not requeued({})


def test_scontrol_lines_give_each_array_task_its_state():
    from lucid_arch.cli.slurm_states import parse_scontrol

    text = ("JobId=12 ArrayJobId=12 ArrayTaskId=2-3%2 JobName=x JobState=PENDING Reason=JobArrayTaskLimit ExitCode=0:0\n"
            "JobId=13 ArrayJobId=12 ArrayTaskId=0 JobName=x JobState=CANCELLED Reason=None ExitCode=0:15\n"
            "JobId=14 ArrayJobId=12 ArrayTaskId=1 JobName=x JobState=FAILED Reason=NonZeroExitCode ExitCode=137:0\n"
            "JobId=20 JobName=y JobState=OUT_OF_MEMORY Reason=OutOfMemory ExitCode=0:125\n")
    states = parse_scontrol(text)
    assert {k: v["State"] for k, v in states.items()} == {"12_2": "PENDING", "12_3": "PENDING", "12_0": "CANCELLED",
                                                          "12_1": "FAILED", "20": "OUT_OF_MEMORY"}
    assert states["12_1"]["ExitCode"] == "137:0" and states["20"]["Reason"] == "OutOfMemory"


def test_a_slurm_task_gets_the_cpus_slurm_gave_it():
    from lucid_arch.training.launch_env import slurm_cpus_per_task

    assert slurm_cpus_per_task({}) is None  # not in SLURM: torch's default
    assert slurm_cpus_per_task({"SLURM_CPUS_PER_TASK": "8", "SLURM_CPUS_ON_NODE": "64"}) == 8
    assert slurm_cpus_per_task({"SLURM_CPUS_ON_NODE": "8", "SLURM_TASKS_PER_NODE": "2(x3)"}) == 4
    assert slurm_cpus_per_task({"SLURM_CPUS_ON_NODE": "1", "SLURM_TASKS_PER_NODE": "1(x2)"}) == 1
    assert slurm_cpus_per_task({"SLURM_CPUS_ON_NODE": "3", "SLURM_TASKS_PER_NODE": "4"}) == 1
