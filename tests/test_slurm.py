"""Sweeps on a real SLURM cluster: the commands of docs/sweeps.md, one model on two nodes, jobs that die or requeue.

They need a SLURM cluster with two nodes (``.ci/slurm-cluster.sh up`` starts one on this
machine; CI does). Without one they skip, saying why; with LUCID_ARCH_REQUIRE_SLURM=1 (set by
.ci/run) that is a failure. Each test runs its sweeps concurrently, to spend the scheduler's
and the jobs' start-up latencies once; models are tiny (four 1-block stages, 32 px).
"""

from __future__ import annotations

import csv
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from doc_pages import section

SCRIPT = Path(sys.executable).parent / "lucid-arch"
ROOT = Path(__file__).resolve().parents[1]

TINY = ["model.embed_dims=[16,32,48,64]", "model.depths=[1,1,1,1]", "model.num_heads=[1,2,3,4]", "model.mlp_ratios=[2,2,2,2]",
        "model.sr_ratios=[4,2,1,1]", "task.data.image_size=32", "task.data.num_train=128", "task.data.num_val=32",
        "task.batch_size=32", "task.precision=fp32", "task.device=cpu", "task.progress=log", "task.log_every=1", "task.epochs=1"]
TINY_BENCH = ["model.depths=[1,1,1,1]", "model.img_size=64", "task.batch_sizes=[1]", "task.repeats=2", "task.warmup=0",
              "task.inference_batch_size=2", "task.agreement_inputs=2", "task.train_batch_size=0", "task.device=cpu"]


def environ(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    return {**env, "OMP_NUM_THREADS": "1", **extra}


class Run:
    """A console-script run in the background, its output in files."""

    def __init__(self, args: list[str], cwd: Path, name: str, env: dict[str, str]):
        self.out, self.err = cwd / f"{name}.out", cwd / f"{name}.err"
        self.started = time.monotonic()
        with self.out.open("w") as out, self.err.open("w") as err:
            self.proc = subprocess.Popen([str(SCRIPT), *args], cwd=cwd, env=env, stdout=out, stderr=err)

    def wait(self, timeout: float = 240) -> tuple[int, str, float]:
        code = self.proc.wait(timeout=timeout)
        return code, self.out.read_text() + self.err.read_text(), time.monotonic() - self.started


def rows(sweep_dir: Path) -> list[dict[str, str]]:
    with (sweep_dir / "sweep.csv").open() as f:
        return list(csv.DictReader(f))


def job_record(sweep_dir: Path, num: int) -> dict | None:
    found = [p for p in sweep_dir.glob(f"{num}_*/summary.json")]
    try:
        return json.loads(found[0].read_text()) if found else None
    except (OSError, ValueError):
        return None


def weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path))


def only(paths: list[Path]) -> Path:
    assert len(paths) == 1, paths
    return paths[0]


# --------------------------------------------------------------------- the docs' commands


def documented_commands() -> tuple[str, list[list[str]]]:
    """docs/sweeps.md's "On a SLURM cluster" shell block: its preset-copying line, and each lucid-arch command's arguments."""
    block = section("sweeps.md", "## On a SLURM cluster").split("```bash\n", 1)[1].split("```", 1)[0].replace("\\\n", " ")
    lines = [line for line in block.splitlines() if line.strip()]
    copy = next(line for line in lines if line.startswith("mkdir -p ~/.lucid"))
    return copy, [shlex.split(line, comments=True)[1:] for line in lines if line.startswith("lucid-arch ")]


def adapt(args: list[str], extra: list[str]) -> list[str]:
    """A documented command for the local cluster: its values, overridden key by key by ``extra``."""
    keyed = {a.split("=", 1)[0]: a for a in args if "=" in a}
    keyed.update({a.split("=", 1)[0]: a for a in extra})
    return [a for a in args if "=" not in a] + list(keyed.values())


def test_the_documented_slurm_commands_on_the_local_cluster(tmp_path, slurm_partition, slurm_job_name):
    """Summary, benchmark and training sweeps, and one model trained over 2 nodes against the same in 1 process."""
    copy, commands = documented_commands()
    assert len(commands) == 4 and all(c[:2] == ["-m", "hydra/launcher=slurm"] for c in commands)
    (tmp_path / "scratch").mkdir()
    env = environ(HOME=str(tmp_path), TMPDIR=str(tmp_path / "scratch"))
    subprocess.run(["bash", "-c", copy], cwd=ROOT, env=env, check=True)  # the user's copy of the preset
    mine = tmp_path / ".lucid/hydra/launcher/mycluster.yaml"
    assert mine.read_text() == (ROOT / "conf/hydra/launcher/slurm.yaml").read_text()

    local = [f"hydra.launcher.partition={slurm_partition}", "hydra.launcher.gpus_per_node=null", "hydra.launcher.mem_gb=null",
             "hydra.launcher.cpus_per_task=1", "hydra.launcher.timeout_min=10", f"hydra.launcher.name={slurm_job_name}"]
    summary, bench, train, ddp = commands
    SAME = ["model=pvt_v2_b0", "task.data.augment=false", "task.batch_size=32", "task.checkpoint_every=0"]  # no drop-path either
    runs = {
        # The user's copy, through hydra.searchpath, as the docs say.
        "summary": adapt(summary, [*local, f"hydra.searchpath=[file://{tmp_path}/.lucid]", "hydra/launcher=mycluster",
                                   "hydra.sweep.dir=summary"]),
        # One model each (the docs sweep two), to spare the test machine's two cores.
        "bench": adapt(bench, [*local, *TINY_BENCH, "model=pvt_v2_b0", "hydra.sweep.dir=bench"]),
        # The training sweep's job is the 2-node run's reference: one process, the same global batch.
        "train": adapt(train, [*local, *TINY, *SAME, "hydra.sweep.dir=train"]),
        "ddp": adapt(ddp, [*local, *TINY, *SAME, "hydra.launcher.tasks_per_node=1", "hydra.sweep.dir=ddp"]),
    }
    started = {name: Run(args, tmp_path, name, env) for name, args in runs.items()}
    results = {name: run.wait() for name, run in started.items()}
    for name, (code, log, seconds) in results.items():
        print(f"{name}: {seconds:.1f} s")
        assert code == 0, f"{name}: {log[-3000:]}"

    assert [(r["model"], r["status"]) for r in rows(tmp_path / "summary")] == [("pvt_v2_b0", "ok"), ("pvt_v2_b1", "ok")]
    assert [int(r["params"]) for r in rows(tmp_path / "summary")] == [3_666_760, 14_009_000]
    bench_rows = rows(tmp_path / "bench")
    assert [r["status"] for r in bench_rows] == ["ok"] and float(bench_rows[0]["forward b1 fp32 img/s"]) > 0
    train_rows = rows(tmp_path / "train")
    assert [(r["model"], r["status"]) for r in train_rows] == [("pvt_v2_b0", "ok")] and 0 <= float(train_rows[0]["val_acc"]) <= 1
    ledger = json.loads((tmp_path / "train/.lucid-sweep.json").read_text())
    assert [j["num"] for j in ledger["jobs"]] == [0] and ledger["launcher_errors"] == {}

    # One model on 2 nodes x 1 task: one DDP run of world size 2, written by rank 0 alone.
    job = only([p.parent for p in (tmp_path / "ddp").glob("0_*/summary.json")])
    record = json.loads((job / "summary.json").read_text())
    assert record["status"] == "ok" and record["train"]["world_size"] == 2 and record["train"]["launcher"] == "slurm"
    submitit_logs = "".join(p.read_text() for p in (tmp_path / "ddp/.submitit").glob("*/*_log.out"))
    assert "global_rank=0(2)" in submitit_logs and "global_rank=1(2)" in submitit_logs  # two tasks ran the job
    assert [p.name for p in (tmp_path / "ddp").iterdir() if p.is_dir() and not p.name.startswith(".")] == [job.name]
    single = only([p.parent for p in (tmp_path / "train").glob("0_*/summary.json")])
    assert json.loads((single / "summary.json").read_text())["train"]["world_size"] == 1
    a, b = [json.loads(line) for line in (single / "metrics.jsonl").read_text().splitlines()], \
        [json.loads(line) for line in (job / "metrics.jsonl").read_text().splitlines()]
    assert b[0]["train_loss"] == pytest.approx(a[0]["train_loss"], abs=1e-3)
    assert b[0]["val_acc"] == pytest.approx(a[0]["val_acc"], abs=2 / 32)
    wa, wb = weights(single / "model.safetensors"), weights(job / "model.safetensors")
    assert max((wa[k] - wb[k]).abs().max().item() for k in wa) < 1e-3
    assert not list((tmp_path / "scratch").glob("lucid-arch-rank*"))  # rank 1's scratch Hydra dir is gone


# --------------------------------------------------------------- jobs that die, jobs that requeue


def test_killed_cancelled_requeued_and_signalled_jobs(tmp_path, slurm_partition, slurm_job_name):
    """One sweep of 4 trainings: 0 is requeued (scontrol requeue), 1 gets the signal SLURM sends before a
    time limit (submitit requeues it through Hydra's checkpoint hook), 2 is killed, 3 cancelled.

    0 and 1 resume from their last checkpoints and end bitwise equal to an uninterrupted run; 2
    and 3 are interrupted rows with SLURM's reason; the report is written and the app exits 1.
    """
    env = environ()
    LONGER = ["task.data.num_train=256", "task.checkpoint_every=2", "task.keep_checkpoints=50"]  # 4 epochs: 32 steps
    args = ["-m", "hydra/launcher=submitit_slurm", f"hydra.launcher.partition={slurm_partition}", f"hydra.launcher.name={slurm_job_name}",
            "hydra.launcher.timeout_min=10", "hydra.launcher.max_num_timeout=2", "task=train", *TINY[:-2],
            *LONGER, "task.epochs=4,400", "task.log_every=1,2", "hydra.sweep.dir=sweep"]
    sweep = Run(args, tmp_path, "sweep", env)
    sweep_dir = tmp_path / "sweep"
    deadline = time.monotonic() + 180
    while not (sweep_dir / ".lucid-sweep.json").is_file() and time.monotonic() < deadline:
        time.sleep(0.1)
    jobs = {j["num"]: " ".join(j["overrides"]) for j in json.loads((sweep_dir / ".lucid-sweep.json").read_text())["jobs"]}
    short, long = sorted(n for n, o in jobs.items() if "task.epochs=4 " in o + " "), sorted(n for n, o in jobs.items() if "=400" in o)
    role = {short[0]: "requeue", short[1]: "signal", long[0]: "kill", long[1]: "cancel"}
    acted: set[int] = set()
    while len(acted) < 4 and time.monotonic() < deadline and sweep.proc.poll() is None:
        for num in set(role) - acted:
            record = job_record(sweep_dir, num)
            if not record or record["status"] != "running" or "slurm_job" not in record:
                continue
            if num in short and not list(sweep_dir.glob(f"{num}_*/checkpoints/step_*")):
                continue  # interrupt after the first checkpoint
            if num in short:
                os.kill(record["pid"], signal.SIGSTOP)  # hold it there: a fast machine would finish before SLURM acts
            if role[num] == "requeue":  # SLURM then sends SIGCONT and SIGTERM, and SIGKILL after KillWait ...
                subprocess.run(["scontrol", "requeue", record["slurm_job"]], check=True, capture_output=True)
                os.kill(record["pid"], signal.SIGKILL)  # ... here at once: on a fast machine the job would finish first
            elif role[num] == "signal":  # what SLURM sends signal_delay_s before the time limit
                subprocess.run(["scancel", "--signal=USR2", record["slurm_job"]], check=True, capture_output=True)
                os.kill(record["pid"], signal.SIGCONT)
            elif role[num] == "kill":
                os.kill(record["pid"], signal.SIGKILL)
            else:
                subprocess.run(["scancel", record["slurm_job"]], check=True, capture_output=True)
            acted.add(num)
        time.sleep(0.02)
    assert acted == set(role), f"jobs acted on: {acted} of {role}; {sweep.err.read_text()[-2000:]}"
    # Started now, while the requeued jobs wait to start again, not among the sweep's jobs starting up.
    reference = Run([*TINY[:-2], *LONGER, "task=train", "model=pvt_v2_b0", "task.epochs=4", "hydra.run.dir=reference"], tmp_path, "reference", env)
    code, log, seconds = sweep.wait()
    print(f"4-job sweep with 2 requeues: {seconds:.1f} s")
    assert code == 1, log[-3000:]
    assert "2 job(s) of the sweep failed" in log and "Traceback" not in log
    assert reference.wait()[0] == 0

    table = {int(r["job"]): r for r in rows(sweep_dir)}
    assert {role[n]: table[n]["status"] for n in role} == {"requeue": "ok", "signal": "ok", "kill": "interrupted", "cancel": "interrupted"}
    assert re.search(rf"SLURM job \d+_{long[0]} ended without a result: FAILED \(reason NonZeroExitCode, exitcode 137", table[long[0]]["error"])
    assert re.search(rf"SLURM job \d+_{long[1]} ended without a result: CANCELLED", table[long[1]]["error"])
    assert (sweep_dir / "sweep.md").is_file() and (sweep_dir / "sweep.png").is_file()

    def fields(run: Path) -> list[tuple]:
        return [(r["epoch"], r["step"], r["train_loss"], r["train_acc"], r["val_loss"], r["val_acc"])
                for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())]

    expected, final = fields(tmp_path / "reference"), weights(tmp_path / "reference/model.safetensors")
    job_logs = {n: "".join(p.read_text() for p in sweep_dir.glob(f".submitit/*_{n}/*_log.err")) for n in short}
    for num in short:
        job = only([p.parent for p in sweep_dir.glob(f"{num}_*/summary.json")])
        assert "SLURM requeued this job" in job_logs[num], job_logs[num][-2000:]
        resumed_at = re.search(r"resuming from \S+ at step (\d+) of 32", job_logs[num])
        assert resumed_at and 2 <= int(resumed_at.group(1)) < 32, job_logs[num][-2000:]  # interrupted mid-run
        assert fields(job) == expected
        resumed = weights(job / "model.safetensors")
        assert all(torch.equal(resumed[k], final[k]) for k in final), f"job {num}'s weights differ"


def test_a_job_out_of_time_and_requeues_is_a_failed_row_saying_so(tmp_path, slurm_partition, slurm_job_name):
    """SLURM signals a job signal_delay_s before its time limit (here at once: the limit is 1 minute,
    the delay 2 minutes); with no requeue left, submitit ends it, and its row says which settings to raise."""
    args = ["-m", "hydra/launcher=submitit_slurm", f"hydra.launcher.partition={slurm_partition}", f"hydra.launcher.name={slurm_job_name}",
            "hydra.launcher.timeout_min=1", "hydra.launcher.signal_delay_s=120", "hydra.launcher.max_num_timeout=0",
            "task=train", *TINY[:-1], "task.epochs=100000", "task.checkpoint_every=0", "hydra.sweep.dir=sweep"]
    code, log, seconds = Run(args, tmp_path, "sweep", environ()).wait()
    print(f"1-job sweep out of time: {seconds:.1f} s")
    assert code == 1 and "1 job(s) of the sweep failed" in log and "Traceback" not in log, log[-3000:]
    (row,) = rows(tmp_path / "sweep")
    assert row["status"] == "failed"
    assert row["error"].startswith("SLURM's time limit came and the job had no requeue left: raise hydra.launcher.timeout_min"), row
    assert (tmp_path / "sweep/sweep.md").is_file()
