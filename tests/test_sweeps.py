"""Sweeps never lose a result and never mix: the ledger, the sweep directory, and jobs killed under
the joblib and submitit_local launchers (SLURM's own are in test_slurm.py)."""

from __future__ import annotations

import csv
import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from lucid_arch.cli.sweep_ledger import LEDGER, claim_new_dir, open_ledger, record_launcher_errors
from lucid_arch.cli.sweep_report import write_report

from conftest import run_main

ROOT = Path(__file__).resolve().parents[1]
TINY_TRAIN = ["task=train", "model.embed_dims=[16,32,48,64]", "model.depths=[1,1,1,1]", "model.num_heads=[1,2,3,4]",
              "model.mlp_ratios=[2,2,2,2]", "model.sr_ratios=[4,2,1,1]", "task.data.image_size=32", "task.data.num_train=64",
              "task.data.num_val=32", "task.batch_size=32", "task.precision=fp32", "task.progress=none"]


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)


def table(sweep_dir: Path) -> list[dict[str, str]]:
    with (sweep_dir / "sweep.csv").open() as f:
        return list(csv.DictReader(f))


def test_each_sweep_claims_its_own_directory():
    assert [claim_new_dir("multirun/d/12-00-00") for _ in range(3)] == ["multirun/d/12-00-00", "multirun/d/12-00-00-2",
                                                                      "multirun/d/12-00-00-3"]
    assert "${lucid_new_dir:multirun/${now:" in (ROOT / "conf/hydra/default.yaml").read_text()  # the default sweep dir


def test_two_sweeps_from_the_same_second_do_not_mix(capsys):
    # Both name the same directory, as two sweeps started in one second do: the second gets "-2".
    for model in ("pvt_v2_b0", "pvt_v2_b1"):
        code, _, err = run_main(["-m", f"model={model}", "hydra.sweep.dir=${lucid_new_dir:same_second}"], capsys)
        assert code == 0, err
    assert [r["model"] for r in table(Path("same_second"))] == ["pvt_v2_b0"]
    assert [r["model"] for r in table(Path("same_second-2"))] == ["pvt_v2_b1"]


def test_a_sweep_directory_holding_another_sweeps_jobs_is_refused(capsys):
    assert run_main(["-m", "model=pvt_v2_b0", "hydra.sweep.dir=fixed"], capsys)[0] == 0
    code, _, err = run_main(["-m", "model=pvt_v2_b1,pvt_v2_b2", "hydra.sweep.dir=fixed"], capsys)
    assert code == 2 and "Traceback" not in err and err.count("\n") == 1
    assert "hydra.sweep.dir = 'fixed' holds the 1 jobs of another sweep" in err and "remove fixed first" in err
    assert [r["model"] for r in table(Path("fixed"))] == ["pvt_v2_b0"]  # untouched
    # The same sweep again (to resume it, say) continues in its directory: still its own one row.
    code, _, err = run_main(["-m", "model=pvt_v2_b0", "hydra.sweep.dir=fixed"], capsys)
    assert code == 0, err
    assert [r["model"] for r in table(Path("fixed"))] == ["pvt_v2_b0"]
    assert json.loads(Path("fixed", LEDGER).read_text())["runs"] == 2
    # Jobs of a sweep that kept no ledger (an older version's) are another sweep's too.
    Path("fixed", LEDGER).unlink()
    code, _, err = run_main(["-m", "model=pvt_v2_b0", "hydra.sweep.dir=fixed"], capsys)
    assert code == 2 and "holds 1 jobs of an earlier sweep" in err


def test_every_launched_job_is_a_row_even_one_that_never_started(tmp_path):
    ledger = open_ledger(tmp_path, [["model=pvt_v2_b0"], ["model=pvt_v2_b1"], ["model=pvt_v2_b2"]])
    for num, status in ((0, "ok"), (1, "running")):
        job = tmp_path / f"{num}_model=pvt_v2_b{num}"
        (job / ".hydra").mkdir(parents=True)
        (job / ".hydra/overrides.yaml").write_text(f"- model=pvt_v2_b{num}\n")
        (job / "summary.json").write_text(json.dumps({"job": num, "model": f"pvt_v2_b{num}", "status": status,
                                                      "metrics": {"params": 1, "gflops": 1.0} if status == "ok" else {}}))
    record_launcher_errors(tmp_path, ledger, {1: "SLURM job 7_1 ended without a result: CANCELLED", 2: "the JoblibLauncher lost the batch"})
    rows = write_report(tmp_path)
    assert [(r["job"], r["status"]) for r in rows] == [(0, "ok"), (1, "interrupted"), (2, "missing")]
    assert rows[1]["error"].startswith("the job stopped before finishing (interrupted: its process")
    assert rows[1]["error"].endswith("; SLURM job 7_1 ended without a result: CANCELLED")
    assert rows[2]["error"] == "the JoblibLauncher lost the batch" and rows[2]["model"] == "pvt_v2_b2"
    assert "3 jobs, 0 failed, 1 interrupted, 1 missing" in (tmp_path / "sweep.md").read_text()


def test_a_job_that_died_before_its_first_record_is_a_failed_row_with_the_launchers_reason(tmp_path):
    """SLURM may signal a job before the app wrote its summary (a time limit already near): it ran, so it failed."""
    from submitit.core.utils import FailedJobError

    from lucid_arch.cli.launchers import _outcome

    class Task:  # a submitit job whose signal handler raised before the app's job began
        state, _process = "FAILED", None

        def result(self):
            raise FailedJobError("Job (task=0) failed during processing with trace:\n----------------------\n"
                                 "submitit.core.utils.UncompletedJobError: Job not requeued because: timed-out too many times.\n")

    job = type("Job", (), {"wait": lambda self: None, "task": lambda self, i: Task(), "job_id": "9"})()
    said = str(_outcome(job, ["model=pvt_v2_b0"])._return_value)
    assert said.startswith("SLURM's time limit came and the job had no requeue left: raise hydra.launcher.timeout_min"), said
    from types import SimpleNamespace

    from lucid_arch.cli.launchers import _death_notice

    no_result = SimpleNamespace(stderr=lambda: "UncompletedJobError: Job not requeued because: timed-out too many times.\n",
                                watcher=SimpleNamespace(get_info=lambda job_id, mode: {}))
    assert _death_notice(SimpleNamespace(job_id="9"), no_result, "FAILED").startswith("SLURM's time limit came")
    ledger = open_ledger(tmp_path, [["model=pvt_v2_b0"], ["model=pvt_v2_b1"]])
    record_launcher_errors(tmp_path, ledger, {0: said}, died=True)
    record_launcher_errors(tmp_path, ledger, {1: "the sweep was stopped by SIGTERM before this job started"})
    rows = write_report(tmp_path)
    assert [(r["status"], r["error"]) for r in rows] == [("failed", said), ("missing", "the sweep was stopped by SIGTERM before this job started")]


def test_joblib_workers_started_in_another_directory_are_replaced(tmp_path, monkeypatch):
    """loky keeps its workers, each in the directory it started in, and Hydra resolves hydra.sweep.dir there:
    a second sweep in one process from elsewhere would write its jobs into the first one's directory."""
    from joblib.externals.loky import reusable_executor

    from lucid_arch.cli import joblib_launcher

    stopped = []
    monkeypatch.setattr(reusable_executor, "_executor", type("Executor", (), {"shutdown": lambda self, wait: stopped.append(wait)})())
    monkeypatch.setattr(joblib_launcher, "_workers_cwd", None)
    for where, expected in (("a", []), ("a", []), ("b", [True])):
        (tmp_path / where).mkdir(exist_ok=True)
        monkeypatch.chdir(tmp_path / where)
        joblib_launcher._workers_here()
        assert stopped == expected, where


@pytest.mark.parametrize("launcher", ["joblib", "submitit_local"])
def test_a_killed_job_is_an_interrupted_row_and_the_report_survives(launcher, tmp_path, capsys, monkeypatch):
    """Job 1 trains for long and is killed (SIGKILL) mid-run; job 0 is short.

    Both launchers run each job in a process of its own, so the sweep itself runs in-process
    (no interpreter to start for it) while a thread kills job 1's process, never this one."""
    extra = ["hydra.launcher.n_jobs=2"] if launcher == "joblib" else ["hydra.launcher.timeout_min=5"]
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the jobs' processes inherit it
    summary, stop, killed = tmp_path / "sweep", threading.Event(), []

    def kill_job_1() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not stop.is_set():
            found = list(summary.glob("1_*/summary.json"))
            try:
                record = json.loads(found[0].read_text()) if found else {}
            except ValueError:
                record = {}
            if record.get("status") == "running":
                if record["pid"] != os.getpid():
                    os.kill(record["pid"], signal.SIGKILL)
                killed.append(record["pid"])
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_job_1, daemon=True)
    killer.start()
    try:
        code, out, err = run_main(["-m", f"hydra/launcher={launcher}", *extra, *TINY_TRAIN, "task.epochs=1,500", "hydra.sweep.dir=sweep"],
                                  capsys)
    finally:
        stop.set()
        killer.join(timeout=30)
    assert killed and killed[0] != os.getpid(), f"job 1 was not killed in a process of its own: {killed}"
    assert code == 1, out[-2000:] + err[-2000:]
    rows = {int(r["job"]): r for r in table(summary)}
    assert sorted(rows) == [0, 1] and rows[1]["status"] == "interrupted"
    if launcher == "joblib":  # loky ends every worker of a broken pool: job 0 may be lost with it
        assert "the JoblibLauncher lost the batch: TerminatedWorkerError" in rows[1]["error"] and "SIGKILL" in rows[1]["error"]
    else:  # submitit jobs are separate processes: job 0 finishes
        assert rows[0]["status"] == "ok"
        assert "local job" in rows[1]["error"] and "ended without a result: its process was killed or crashed" in rows[1]["error"]
    assert (summary / "sweep.md").is_file() and (summary / "sweep.png").is_file()
    assert "job(s) of the sweep failed" in err


def test_a_job_slurm_ended_says_why_and_what_to_change():
    """The failed row's text for each way SLURM ends a job: its state, its reason, and the fix."""
    from types import SimpleNamespace

    from lucid_arch.cli.jobs import job_error
    from lucid_arch.cli.launchers import _death_notice

    def notice(state: str, info: dict) -> str:
        task = SimpleNamespace(stderr=lambda: "epoch 3/90 step 1/4\n", watcher=SimpleNamespace(get_info=lambda job_id, mode: info))
        return _death_notice(SimpleNamespace(job_id="41_2"), task, state)

    late = notice("TIMEOUT", {"Reason": "TimeLimit", "ExitCode": "0:15"})
    assert late.startswith("SLURM job 41_2 ended without a result: TIMEOUT (reason TimeLimit, exitcode 0:15); it ran past its time limit")
    assert "hydra.launcher.timeout_min" in late and late.endswith("its log ends: epoch 3/90 step 1/4")
    assert "hydra.launcher.mem_gb" in notice("OUT_OF_MEMORY", {"Reason": "OutOfMemory"})
    assert notice("CANCELLED by 0", {}) == "SLURM job 41_2 ended without a result: CANCELLED by 0; its log ends: epoch 3/90 step 1/4"

    class UncompletedJobError(RuntimeError):  # submitit's, by name: the app does not import submitit to run a job
        pass

    row = job_error(UncompletedJobError("Job not requeued because: timed-out too many times."))
    assert row.startswith("SLURM's time limit came and the job had no requeue left: raise hydra.launcher.timeout_min")
    assert row.endswith("(submitit: Job not requeued because: timed-out too many times.)")
    assert job_error(ValueError("bad")) == "ValueError: bad"
