"""Ctrl-C (SIGINT) and SIGTERM: one line, never a traceback; the job, sweep or search left consistent.

Each test starts the console script on a tiny training, waits until a job is training, sends
the signal and checks what the app said (one line, status 128 + the signal) and left behind:
the job's summary.json, the sweep's rows, the study and the ledger; a stopped search run again
finishes and exits 0, its interrupted trial a row that says so.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import optuna

from conftest import run_main
from test_search import SCRIPT, SEARCH, TINY_TRAIN, table

from lucid_arch.cli.sweep_ledger import LEDGER


def environ() -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}, "OMP_NUM_THREADS": "1"}


def as_from_a_terminal() -> None:
    """The child's SIGINT as a shell's foreground command has it.

    A suite started in the background (``cmd &``, nohup, some CI runners) passes SIGINT on as
    ignored, and a Python started with it ignored keeps ignoring it, as nohup means: Ctrl-C could
    not be tested at all. The app's own handling is what is under test, so it starts as a user's does.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def stop_when_training(args: list[str], cwd: Path, pattern: str, sig: signal.Signals) -> tuple[int, str]:
    """Run the app, send ``sig`` once a job matching ``pattern`` (a glob of its summary.json) is training; (status, stderr)."""
    proc = subprocess.Popen([str(SCRIPT), *args], cwd=cwd, env=environ(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=as_from_a_terminal)
    deadline, sent = time.monotonic() + 120, False
    while time.monotonic() < deadline and proc.poll() is None and not sent:
        for path in cwd.glob(pattern):
            try:
                record = json.loads(path.read_text())
            except ValueError:  # being replaced
                continue
            if record.get("status") == "running" and (path.parent / "metrics.jsonl").is_file():  # an epoch is behind it
                proc.send_signal(sig)
                sent = True
        time.sleep(0.02)
    _, err = proc.communicate(timeout=120)
    assert sent, f"nothing was training to stop: {err[-2000:]}"
    return proc.returncode, err


def last_line(err: str) -> str:
    return err.rstrip().splitlines()[-1]


def test_ctrl_c_in_a_training_is_one_line_and_a_record_saying_interrupted(tmp_path):
    code, err = stop_when_training([*TINY_TRAIN, "model.depths=[1,1,1,1]", "task.epochs=200", "hydra.run.dir=run"], tmp_path,
                                   "run/summary.json", signal.SIGINT)
    record = json.loads((tmp_path / "run/summary.json").read_text())
    assert code == 130 and "Traceback" not in err, err[-3000:]
    assert last_line(err) == f"lucid-arch: stopped by SIGINT; the job's record says so: {tmp_path / 'run/summary.json'} (status interrupted)."
    assert (record["status"], record["error"]) == ("interrupted", "stopped by SIGINT before the job finished")
    from lucid_arch.runs.status import run_status

    assert run_status(tmp_path / "run", record, finished=False) == (
        "interrupted", "interrupted: stopped by SIGINT before the job finished; its weights are the newest checkpoint's")


def test_sigterm_on_a_sweep_writes_its_report_and_says_so_in_one_line(tmp_path):
    args = ["-m", *TINY_TRAIN, "task.epochs=200", "model.depths=[1,1,1,1],[1,1,2,1]", "hydra.sweep.dir=g"]
    code, err = stop_when_training(args, tmp_path, "g/0_*/summary.json", signal.SIGTERM)
    assert code == 143 and "Traceback" not in err, err[-3000:]
    assert last_line(err) == ("lucid-arch: sweep stopped by SIGTERM: 0 of 2 jobs had finished, the other 2 are interrupted or "
                              "missing rows; the same command runs the sweep again in its directory (the rows so far: g/sweep.md).")
    rows = table(tmp_path / "g/sweep.csv")
    assert [(r["status"], r["error"]) for r in rows] == [
        ("interrupted", "stopped by SIGTERM before the job finished"), ("missing", "the sweep was stopped by SIGTERM before this job started")]
    assert (tmp_path / "g/sweep.png").is_file()


def test_a_stopped_search_settles_its_trials_and_the_same_command_finishes_it(tmp_path, capsys, monkeypatch):
    """Ctrl-C while the second trial trains: one line; the trial is FAIL/interrupted in the study, its row and its
    ledger entry say so, and its curve in the pruning study is closed. Run again (in-process: only the stop needs
    the console script's own process): the search completes its 2 counted trials and exits 0, the interrupted
    trial a row that says "interrupted"."""
    args = [*SEARCH, *TINY_TRAIN, "task.epochs=4", "model.depths=choice([1,1,1,1],[1,1,2,1],[1,2,1,1],[2,1,1,1])",
            "search.objectives=[val_acc,params]", "hydra.sweeper.n_trials=2", "hydra.sweeper.n_jobs=1", "hydra.sweep.dir=k",
            "+hydra.sweeper.pruner={_target_: optuna.pruners.ThresholdPruner, lower: 0.0}"]  # never prunes; each job reports
    code, err = stop_when_training(args, tmp_path, "k/1_*/summary.json", signal.SIGINT)
    assert code == 130 and "Traceback" not in err, err[-3000:]
    assert last_line(err) == ("lucid-arch: search stopped by SIGINT: 1 trial(s) in flight marked interrupted, 1 of 2 trials done; "
                              "the same command continues it (the rows so far: k/sweep.md).")
    storage = f"sqlite:///{tmp_path / 'k/study.db'}"
    study = optuna.load_study(study_name="search", storage=storage)
    assert [(t.state.name, t.user_attrs["lucid_outcome"]) for t in study.trials] == [("COMPLETE", "complete"), ("FAIL", "interrupted")]
    assert study.trials[1].user_attrs["lucid_reason"].startswith("the search was stopped by SIGINT while this trial ran")
    assert [t.state.name for t in optuna.load_study(study_name="search.val_acc", storage=storage).trials] == ["COMPLETE", "FAIL"]
    ledger = json.loads((tmp_path / "k" / LEDGER).read_text())
    assert [bool(j.get("interrupted")) for j in ledger["jobs"]] == [False, True]
    assert [r["status"] for r in table(tmp_path / "k/sweep.csv")] == ["ok", "interrupted"]  # the report, written at the stop

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    code, out, err = run_main(args, capsys)
    assert code == 0, err[-3000:]
    study = optuna.load_study(study_name="search", storage=storage)
    ran = [(t.state.name, t.user_attrs["lucid_outcome"]) for t in study.trials if t.user_attrs["lucid_outcome"] != "repeat"]
    assert ran == [("COMPLETE", "complete"), ("FAIL", "interrupted"), ("COMPLETE", "complete")]
    rows = table(tmp_path / "k/sweep.csv")
    assert [r["status"] for r in rows] == ["ok", "interrupted", "ok"]
    assert "search of 3 candidates: 0 rejected before running, 3 jobs ran (0 failed or missing, 1 interrupted by a stop, " \
           "not counted)" in out
    pareto = (tmp_path / "k/pareto.md").read_text()
    assert "1 interrupted by a stop (not counted toward n_trials)" in pareto
    assert f"Optuna counts {len(study.trials)} trials in the study 'search'" in pareto
