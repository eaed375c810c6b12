"""Where a search's study lives (hydra.sweeper.storage), and the study as Optuna's own tools see it.

A journal file in the sweep directory (Optuna's JournalFileBackend, for nodes sharing a
filesystem); a real PostgreSQL server (``.ci/postgres.sh up``) holding one study that trials on
both nodes of the SLURM cluster (``.ci/slurm-cluster.sh up``) write to, stopped with SIGTERM and
resumed against it; storages that cannot serve, each one paragraph; the Optuna CLI counting what
the app says it counts; and optuna-dashboard's server, started here, serving the study with its
objectives named and the app's reason for each rejected candidate.

The PostgreSQL tests skip without LUCID_ARCH_TEST_POSTGRES_URL (a failure in CI, like the SLURM
tests). Searches run the summary task (closed-form costs, no weights) or tiny trainings.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import optuna
import pytest

from conftest import run_main
from test_search import SCRIPT, SEARCH, TINY_TRAIN, table

from lucid_arch.cli.sweep_ledger import LEDGER
from lucid_arch.config import ConfigError
from lucid_arch.search import storage

BIN = Path(sys.executable).parent
SUMMARY_SEARCH = [*SEARCH, "model.depths=choice([1,1,1,1],[2,2,2,2],[1,1,2,1])", "search.objectives=[params,gflops]"]


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)


def environ() -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}, "OMP_NUM_THREADS": "1"}


def outcomes(study: optuna.Study) -> list[tuple[str, str]]:
    return [(t.state.name, t.user_attrs.get("lucid_outcome", "")) for t in study.trials]


# --- a journal file -----------------------------------------------------------------------------


def test_a_journal_study_lives_in_the_sweep_directory_and_continues(capsys):
    code, _, err = run_main([*SUMMARY_SEARCH, "hydra.sweeper.storage=journal", "hydra.sweeper.n_trials=2", "hydra.sweep.dir=j"], capsys)
    assert code == 0, err
    journal = Path("j/study.journal").absolute()
    assert journal.is_file() and not Path("j/study.db").exists()
    assert json.loads(Path("j", LEDGER).read_text())["search"]["storage"] == f"journal:{journal}"
    assert f"study 'search' in {journal} (journal)" in err
    code, _, err = run_main([*SUMMARY_SEARCH, "hydra.sweeper.storage=journal", "hydra.sweeper.n_trials=3", "hydra.sweep.dir=j"], capsys)
    assert code == 0 and "2 of 3 trials already ran" in err, err
    study = optuna.load_study(study_name="search", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(journal))))
    assert study.metric_names == ["params", "gflops"]  # Optuna's tools name the objectives
    assert sum(o == ("COMPLETE", "complete") for o in outcomes(study)) == 3
    assert all(Path(t.user_attrs["lucid_dir"]).is_dir() for t in study.trials if t.state.name == "COMPLETE")
    # Optuna's CLI counts every trial of the study (repeats too): the number the app's last line gives.
    said = int(err.rsplit("Optuna counts all ", 1)[1].split()[0])
    listed = subprocess.run([str(BIN / "optuna"), "trials", "--study-name", "search", "--storage", str(journal),
                             "--storage-class", "JournalFileBackend", "-f", "json"], capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert len(json.loads(listed.stdout)) == said == len(study.trials)
    assert f"Optuna counts {said} trials in the study 'search'" in Path("j/pareto.md").read_text()


# --- storages that cannot serve -----------------------------------------------------------------


@pytest.mark.parametrize(("setting", "said"), [
    ("mongo", "hydra.sweeper.storage = 'mongo' is not a storage; give sqlite (the default"),
    ("postgresql://lucid:secret@127.0.0.1:1/nowhere", "the search's study at postgresql://lucid:***@127.0.0.1:1/nowhere "
                                                      "cannot be opened (OperationalError"),
])
def test_a_storage_that_cannot_serve_is_one_paragraph(setting, said, capsys):
    code, _, err = run_main([*SUMMARY_SEARCH, f"hydra.sweeper.storage={setting}", "hydra.sweep.dir=x"], capsys)
    assert code == 2 and said in err and err.count("\n") == 1 and "Traceback" not in err, err
    assert "secret" not in err  # a password in the URL is never printed
    assert not list(Path("x").glob("*/summary.json"))


def test_a_journal_that_is_not_one_is_named_before_anything_runs(capsys):
    Path("j").mkdir()
    os.mkfifo("j/study.journal")  # Optuna would wait on it for ever
    code, _, err = run_main([*SUMMARY_SEARCH, "hydra.sweeper.storage=journal", "hydra.sweep.dir=j"], capsys)
    assert code == 2 and f"the search's study {Path('j/study.journal').absolute()} " in err and err.count("\n") == 1, err
    os.remove("j/study.journal")
    Path("j/study.journal").write_bytes(b"SQLite format 3\x00" + bytes(100))
    code, _, err = run_main([*SUMMARY_SEARCH, "hydra.sweeper.storage=journal", "hydra.sweep.dir=j"], capsys)
    assert code == 2 and "is an SQLite database, not Optuna's journal (hydra.sweeper.storage=sqlite reads it)" in err, err


def test_a_search_continues_only_in_its_own_study(capsys):
    assert run_main([*SUMMARY_SEARCH, "hydra.sweeper.n_trials=1", "hydra.sweep.dir=s"], capsys)[0] == 0
    code, _, err = run_main([*SUMMARY_SEARCH, "hydra.sweeper.storage=journal", "hydra.sweeper.n_trials=2", "hydra.sweep.dir=s"], capsys)
    assert code == 2 and "hydra.sweep.dir = 's' holds a search whose study is in sqlite:///" in err, err
    assert "Give the same hydra.sweeper.storage to continue it" in err and not Path("s/study.journal").exists()


def test_a_bare_database_url_takes_the_installed_driver_or_names_the_extra(monkeypatch):
    import importlib.util

    assert storage.with_driver("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"  # psycopg 3 (the test extra)
    assert storage.with_driver("postgresql+psycopg2://u@h/db") == "postgresql+psycopg2://u@h/db"  # named: as given
    assert storage.with_driver("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db"
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(ConfigError, match=r"needs a postgresql driver .* pip install 'lucid-arch\[postgres\]'"):
        storage.with_driver("postgresql://u:pw@h/db")


# --- PostgreSQL, and both nodes of the SLURM cluster -----------------------------------------------


def test_a_search_keeps_its_study_on_a_postgresql_server(postgres_url, capsys):
    name = f"search-{uuid.uuid4().hex[:8]}"
    try:
        code, _, err = run_main([*SUMMARY_SEARCH, f"hydra.sweeper.storage={postgres_url}", f"hydra.sweeper.study_name={name}",
                                 "hydra.sweeper.n_trials=2", "hydra.sweep.dir=pg"], capsys)
        assert code == 0, err
        study = optuna.load_study(study_name=name, storage=postgres_url)
        assert study.metric_names == ["params", "gflops"]
        assert sum(o == ("COMPLETE", "complete") for o in outcomes(study)) == 2
        assert not Path("pg/study.db").exists()
    finally:
        optuna.delete_study(study_name=name, storage=postgres_url)


def _node_cpus(partition: str) -> int:
    """A node's CPU count: a job asking for all of them leaves the node to itself, so a batch of two spreads over both."""
    out = subprocess.run(["sinfo", "-h", "-N", "-p", partition, "-o", "%c"], capture_output=True, text=True, timeout=30, check=True)
    return max(int(c) for c in out.stdout.split())


def test_one_postgresql_study_for_trials_on_both_slurm_nodes_stopped_and_resumed(tmp_path, postgres_url, slurm_partition,
                                                                                  slurm_job_name):
    """Two training trials as SLURM jobs, one per node, each entering its pruning curve into the same PostgreSQL
    study; SIGTERM while both train: one line, both interrupted, their jobs cancelled; the same command then
    finishes the search against the study on the server, and exits 0."""
    name = f"search-{uuid.uuid4().hex[:8]}"
    args = [str(SCRIPT), *SEARCH, *TINY_TRAIN, "task.epochs=2", "model.depths=choice([1,1,1,1],[1,1,2,1],[1,2,1,1],[2,1,1,1])",
            "search.objectives=[val_acc,params]", "hydra.sweeper.n_trials=2", "hydra.sweeper.n_jobs=2",
            f"hydra.sweeper.storage={postgres_url}", f"hydra.sweeper.study_name={name}",
            "+hydra.sweeper.pruner={_target_: optuna.pruners.ThresholdPruner, lower: 0.0}",  # never prunes; every job reports
            "hydra/launcher=submitit_slurm", f"hydra.launcher.partition={slurm_partition}", f"hydra.launcher.name={slurm_job_name}",
            f"hydra.launcher.cpus_per_task={_node_cpus(slurm_partition)}", "hydra.launcher.gpus_per_node=null",
            "hydra.launcher.mem_gb=null", "hydra.launcher.timeout_min=10", "hydra.sweep.dir=s"]
    sweep_dir = tmp_path / "s"
    try:
        first = subprocess.Popen(args, cwd=tmp_path, env=environ(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and first.poll() is None:
            records = []
            for path in sweep_dir.glob("*/summary.json"):
                try:
                    records.append(json.loads(path.read_text()))
                except ValueError:  # being rewritten
                    pass
            if sum(r.get("status") == "running" for r in records) == 2:
                first.send_signal(signal.SIGTERM)
                break
            time.sleep(0.05)
        _, err = first.communicate(timeout=120)
        assert first.returncode == 128 + signal.SIGTERM, err[-3000:]
        said = [line for line in err.splitlines() if line.startswith("lucid-arch: search stopped")]
        assert said == ["lucid-arch: search stopped by SIGTERM: 2 trial(s) in flight marked interrupted, 0 of 2 trials done; "
                        "the same command continues it (the rows so far: s/sweep.md)."] and "Traceback" not in err
        assert err.rstrip().endswith(said[0])  # the last line: nothing after the stop
        study = optuna.load_study(study_name=name, storage=postgres_url)
        assert outcomes(study) == [("FAIL", "interrupted")] * 2
        deadline = time.monotonic() + 60  # the stop cancelled the jobs it was waiting for
        while subprocess.run(["squeue", "-h", "--name", slurm_job_name], capture_output=True, text=True).stdout.strip():
            assert time.monotonic() < deadline, "the stopped search's SLURM jobs still run"
            time.sleep(0.1)

        again = subprocess.run(args, cwd=tmp_path, env=environ(), capture_output=True, text=True, timeout=300)
        assert again.returncode == 0, again.stderr[-3000:]
        study = optuna.load_study(study_name=name, storage=postgres_url)
        assert outcomes(study)[:2] == [("FAIL", "interrupted")] * 2
        assert sorted(outcomes(study)[2:]) == [("COMPLETE", "complete")] * 2
        curves = optuna.load_study(study_name=f"{name}.val_acc", storage=postgres_url)
        done = [t for t in curves.trials if t.state.name == "COMPLETE"]
        assert sorted(t.user_attrs["trial"] for t in done) == [2, 3] and curves.metric_names == ["val_acc"]
        assert sorted(t.user_attrs["node"] for t in done) == ["n1", "n2"]  # one study, written from both nodes
        assert all(t.state.name != "RUNNING" for t in curves.trials)
        rows = table(sweep_dir / "sweep.csv")
        assert [r["status"] for r in rows] == ["interrupted", "interrupted", "ok", "ok"]
        assert all(json.loads((sweep_dir / r["dir"] / "summary.json").read_text()).get("slurm_job") for r in rows[2:])
    finally:
        for study_name in (name, f"{name}.val_acc"):
            try:
                optuna.delete_study(study_name=study_name, storage=postgres_url)
            except KeyError:
                pass


# --- optuna-dashboard ----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def test_the_study_opens_in_optuna_dashboard_with_named_objectives_and_the_apps_reasons(capsys, tmp_path):
    """Three of four candidates are refused before running (two invalid, one over budget): the dashboard's
    server, started on this machine, serves the study with its objectives named and each refusal's reason."""
    code, _, err = run_main([*SEARCH, "model.depths=choice([1,1,1,1],[2,2,2,2])", "model.num_heads=choice([1,2,5,8],[3,3,3,3])",
                             "search.objectives=[params,gflops]", "search.max_gflops=0.8", "hydra.sweeper.n_trials=1",
                             "hydra.sweeper.max_rejected=12", "hydra.sweep.dir=d"], capsys)
    assert code == 0, err
    port = _free_port()
    server = subprocess.Popen([str(BIN / "optuna-dashboard"), f"sqlite:///{tmp_path / 'd' / 'study.db'}", "--host", "127.0.0.1",
                               "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline, studies = time.monotonic() + 60, None
        while studies is None:
            assert server.poll() is None and time.monotonic() < deadline, server.stderr.read() if server.poll() is not None else "no answer"
            try:
                studies = _get(f"http://127.0.0.1:{port}/api/studies")["study_summaries"]
            except OSError:  # not listening yet
                time.sleep(0.2)
        (study,) = [s for s in studies if s["study_name"] == "search"]
        assert study["directions"] == ["minimize", "minimize"]
        detail = _get(f"http://127.0.0.1:{port}/api/studies/{study['study_id']}")
        assert detail["objective_names"] == ["params", "gflops"]
        attrs = {t["number"]: {a["key"]: a["value"] for a in t["user_attrs"]} for t in detail["trials"]}
        states = {t["number"]: t["state"] for t in detail["trials"]}
        rejected = {n: a for n, a in attrs.items() if a.get("lucid_outcome") == "rejected"}
        said = {states[n]: a["lucid_reason"] for n, a in rejected.items()}  # an invalid candidate fails, one over budget is pruned
        assert said["Pruned"] == "1.132 GFLOPs at 224x224 px is over search.max_gflops = 0.8."
        assert said["Fail"].startswith("model.num_heads[0] = 3: does not divide embed_dims[0] = 32")
        (ran,) = [a for a in attrs.values() if a.get("lucid_outcome") == "complete"]
        assert Path(ran["lucid_dir"]).parent == tmp_path / "d"
    finally:
        server.terminate()
        server.wait(timeout=30)
