"""Architecture search (hydra/sweeper=optuna): the space, candidates rejected before compute, the
front, pruning, parallel trials, a search resumed after a kill, and the message without the extra.

Searches run the summary task (no weights: the analysis on the meta device) or trainings of a
tiny model on 64 images at 32 px, so that the whole file stays within seconds per search.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser

from lucid_arch.cli.sweep_ledger import LEDGER
from lucid_arch.config import ConfigError
from lucid_arch.search import front_report
from lucid_arch.search.objectives import Objectives, objectives_of
from lucid_arch.search.pareto import dominated_by, dominates, front
from lucid_arch.search.space import CHOICE, FLOAT, INT, parse_space

from conftest import run_main

SCRIPT = Path(sys.executable).parent / "lucid-arch"
ROOT = Path(__file__).resolve().parents[1]
TINY_TRAIN = ["task=train", "model.embed_dims=[16,32,48,64]", "model.num_heads=[1,2,3,4]", "model.mlp_ratios=[2,2,2,2]",
              "model.sr_ratios=[4,2,1,1]", "task.data.image_size=32", "task.data.num_train=64", "task.data.num_val=32",
              "task.batch_size=32", "task.precision=fp32", "task.progress=none", "task.threads=1"]
SEARCH = ["-m", "hydra/sweeper=optuna", "hydra.sweeper.sampler.seed=0"]


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)


def table(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def study_of(sweep_dir: Path, name: str = "search") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{sweep_dir.absolute() / 'study.db'}")


# --- the search space ---------------------------------------------------------------------------


def test_the_search_space_reads_hydras_sweep_syntax_lists_included():
    parser = OverridesParser.create()
    params = {
        "model.depths": "choice([2,2,2,2],[3,4,6,3])",  # lists are choices like any other value
        "model.sr_ratios": "[8,4,2,1],[4,2,1,1]",  # the simple form
        "model.mlp_ratios": "range(2, 9, 2)",  # 2, 4, 6, 8
        "model.drop_path_rate": "interval(0.0, 0.3)",
        "task.optimizer.lr": "tag(log, interval(1e-5, 1e-2))",
        "task.epochs": "tag(int, interval(2, 6))",
        "task.label_smoothing": "interval(0, 1)",  # Hydra reads an interval's ends as floats
        "task.seed": "range(0.5, 2.0, 0.5)",  # a float grid: its exact values
        "model.qkv_bias": "false",  # a plain value: fixed for every trial
        "model": "glob(pvt_v2_*,exclude=pvt_v2_b2)",
    }
    space = parse_space(params, ["model.sr_ratios=choice([2,2,2,2])", "task=train"], parser,
                        options=lambda group: ["pvt_v2_b0", "pvt_v2_b1", "pvt_v2_b2", "pvt_tiny"])
    dims = {d.key: d for d in space.dims}
    assert dims["model.depths"].kind == CHOICE and dims["model.depths"].choices == ("[2,2,2,2]", "[3,4,6,3]")
    assert dims["model.sr_ratios"].choices == ("[2,2,2,2]",)  # the command line wins over params
    assert (dims["model.mlp_ratios"].kind, dims["model.mlp_ratios"].low, dims["model.mlp_ratios"].high, dims["model.mlp_ratios"].step) == (INT, 2, 8, 2)
    assert (dims["model.drop_path_rate"].kind, dims["model.drop_path_rate"].log) == (FLOAT, False)
    assert (dims["task.optimizer.lr"].kind, dims["task.optimizer.lr"].low, dims["task.optimizer.lr"].log) == (FLOAT, 1e-5, True)
    assert (dims["task.epochs"].kind, dims["task.epochs"].low, dims["task.epochs"].high, dims["task.epochs"].step) == (INT, 2, 6, None)
    assert (dims["task.label_smoothing"].kind, dims["task.label_smoothing"].high) == (FLOAT, 1.0)
    assert dims["task.seed"].choices == ("0.5", "1.0", "1.5")
    assert dims["model"].choices == ("pvt_v2_b0", "pvt_v2_b1")
    assert space.fixed == ("model.qkv_bias=false", "task=train")
    dist = space.distributions()
    assert isinstance(dist["model.depths"], optuna.distributions.CategoricalDistribution)
    assert isinstance(dist["model.mlp_ratios"], optuna.distributions.IntDistribution) and dist["model.mlp_ratios"].step == 2
    assert dist["task.optimizer.lr"].log
    values = {"model.depths": "[3,4,6,3]", "model.sr_ratios": "[2,2,2,2]", "model.mlp_ratios": 6, "model.drop_path_rate": 0.25,
              "task.optimizer.lr": 1e-3, "task.epochs": 4, "task.label_smoothing": 0.1, "task.seed": "1.5", "model": "pvt_v2_b1"}
    assert space.overrides(values) == [
        "model.qkv_bias=false", "task=train", "model.depths=[3,4,6,3]", "model.mlp_ratios=6", "model.drop_path_rate=0.25",
        "task.optimizer.lr=0.001", "task.epochs=4", "task.label_smoothing=0.1", "task.seed=1.5", "model=pvt_v2_b1",
        "model.sr_ratios=[2,2,2,2]"]  # the command line's keys last


@pytest.mark.parametrize(("params", "said"), [
    ({"model.drop_path_rate": "interval(0.3, 0.1)"}, "hydra.sweeper.params.model.drop_path_rate"),
    ({"task.optimizer.lr": "tag(log, interval(0, 1))"}, "a log-scale interval needs a positive lower end"),
    ({"model": "glob(nothing_*)"}, "the pattern matches no model option"),
    ({"model.depths": "[2,2,2,2]"}, "the search space is empty"),
])
def test_a_bad_search_space_is_one_sentence_naming_the_key(params, said):
    with pytest.raises(ConfigError) as caught:
        parse_space(params, [], OverridesParser.create(), options=lambda group: ["pvt_v2_b0"])
    assert said in f"{caught.value.problems[0].key}: {caught.value}" and len(caught.value.problems) == 1


def test_objectives_take_hydras_direction_or_their_natural_one():
    assert objectives_of(["val_acc", "gflops", "latency_ms"], None).directions == ("maximize", "minimize", "minimize")
    assert objectives_of(["train img/s"], "minimize").directions == ("minimize",)
    with pytest.raises(ConfigError, match=r"give maximize or minimize for each of the 2 search.objectives"):
        objectives_of(["val_acc", "gflops"], ["maximize"])
    with pytest.raises(ConfigError, match=r"my_metric has no natural direction; set hydra.sweeper.direction=\[maximize, minimize\]"):
        objectives_of(["val_acc", "my_metric"], None)
    with pytest.raises(ValueError, match="the job reported no finite gflops"):
        objectives_of(["val_acc", "gflops"], None).values({"val_acc": 0.5, "gflops": float("nan")})


# --- the front ----------------------------------------------------------------------------------


def test_the_front_is_the_non_dominated_set_in_each_objectives_direction():
    directions = ("maximize", "minimize")  # accuracy up, GFLOPs down
    points = [(0.70, 0.087), (0.72, 0.080), (0.65, 0.040), (0.60, 0.050), (0.72, 0.080), (0.80, 0.300), (0.50, 0.300)]
    assert front(points, directions) == [1, 2, 4, 5]  # equal points (1 and 4) both stay
    assert dominates(points[1], points[0], directions) and not dominates(points[1], points[4], directions)
    assert dominated_by(points, directions, 3) == [2] and dominated_by(points, directions, 6) == [0, 1, 2, 3, 4, 5]
    assert front(points, ("minimize", "minimize")) == [2, 3, 6]  # the same points, both minimised
    assert front([], directions) == []


def _row(trial: int, status: str, **metrics) -> dict:
    return {"trial": trial, "job": trial, "status": status, "metrics": metrics, "overrides": f"+experiment=x model.depths=[{trial}]",
            "dir": f"{trial}_x", "baseline": trial == 0, "curve": []}


def test_the_report_says_which_trials_beat_the_baseline(tmp_path):
    objectives = Objectives(("val_acc", "gflops"), ("maximize", "minimize"))
    rows = [_row(0, "ok", val_acc=0.70, gflops=0.087), _row(1, "ok", val_acc=0.74, gflops=0.06), _row(2, "ok", val_acc=0.60, gflops=0.03),
            _row(3, "pruned", val_acc=0.2, gflops=0.05), _row(4, "rejected", gflops=0.4), _row(5, "failed")]
    front_report.place(rows, objectives)
    assert [r["place"] for r in rows] == ["dominated", "front", "front", "pruned", "rejected", "failed"]
    lines = front_report.trade_offs(rows, objectives, ("+experiment=x",))
    assert "Best val_acc: trial 1 (0.74), val_acc 0.74, gflops 0.06." in lines
    assert "1 trial(s) of the front beat the baseline (trial 0: val_acc 0.7, gflops 0.087) on every objective:" in lines
    assert "- trial 1: val_acc 0.74 (+4.0 points), gflops 0.06 (-31%) (`model.depths=[1]`)" in lines
    front_report.write_csv(rows, objectives, tmp_path / "pareto.csv")
    assert [(r["trial"], r["front"], r["dominated_by"]) for r in table(tmp_path / "pareto.csv")] == [("1", "yes", ""), ("2", "yes", ""), ("0", "no", "1")]
    # A baseline no trial beats is said so plainly.
    rows = [_row(0, "ok", val_acc=0.70, gflops=0.087), _row(1, "ok", val_acc=0.60, gflops=0.03)]
    front_report.place(rows, objectives)
    assert front_report.trade_offs(rows, objectives)[-1] == ("No trial of the front beats the baseline (trial 0: val_acc 0.7, "
                                                            "gflops 0.087) on every objective; the baseline is on the front.")


def test_the_report_takes_the_best_from_the_front_and_never_calls_a_tie_a_win():
    """Trial 2 has trial 3's accuracy at more GFLOPs: dominated, so never "best". Trial 4 ties the baseline's
    accuracy at fewer GFLOPs: it dominates the baseline but does not beat it on every objective."""
    objectives = Objectives(("val_acc", "gflops"), ("maximize", "minimize"))
    rows = [_row(0, "ok", val_acc=0.12, gflops=0.087), _row(1, "ok", val_acc=0.10, gflops=0.02), _row(2, "ok", val_acc=0.13, gflops=0.08),
            _row(3, "ok", val_acc=0.13, gflops=0.07), _row(4, "ok", val_acc=0.12, gflops=0.04), _row(5, "interrupted")]
    front_report.place(rows, objectives)
    assert [r["place"] for r in rows] == ["dominated", "front", "dominated", "front", "front", "interrupted"]
    lines = front_report.trade_offs(rows, objectives, ("+experiment=x",))
    assert lines == [
        "Best val_acc: trial 3 (0.13), val_acc 0.13, gflops 0.07.",
        "Best gflops: trial 1 (0.02), val_acc 0.1, gflops 0.02.",
        "1 trial(s) of the front beat the baseline (trial 0: val_acc 0.12, gflops 0.087) on every objective:",
        "- trial 3: val_acc 0.13 (+1.0 points), gflops 0.07 (-20%) (`model.depths=[3]`)",
        "1 more trial(s) of the front match the baseline on some objective and beat it on the others (they dominate it; "
        "a tie is not a win):",
        "- trial 4: val_acc 0.12 (same), gflops 0.04 (-54%) (`model.depths=[4]`)",
    ]
    assert front_report.tally(rows).startswith("6 trials ran or were launched: 3 on the front, 2 dominated, 0 pruned, 0 failed, "
                                               "1 interrupted by a stop (not counted toward n_trials); 0 candidates rejected")
    # Only a tie-and-win: said so, never "beat on every objective"; front trials equal on one objective are named together.
    rows = [_row(0, "ok", val_acc=0.12, gflops=0.087), _row(4, "ok", val_acc=0.12, gflops=0.04), _row(6, "ok", val_acc=0.12, gflops=0.04)]
    front_report.place(rows, objectives)
    lines = front_report.trade_offs(rows, objectives)
    assert lines[0] == "Best val_acc: trials 4 and 6, equal at 0.12: trial 4: val_acc 0.12, gflops 0.04; trial 6: val_acc 0.12, gflops 0.04."
    assert lines[2] == "No trial of the front beats the baseline (trial 0: val_acc 0.12, gflops 0.087) on every objective."
    assert lines[3].startswith("2 trial(s) of the front match the baseline on some objective")
    # A change too small for the rounding is never a signed zero.
    small = front_report._versus(_row(1, "ok", val_acc=0.1304, gflops=0.0870001), _row(0, "ok", val_acc=0.13, gflops=0.087), objectives)
    assert small == "val_acc 0.1304 (+0.04 points), gflops 0.087 (+0.00011%)"


# --- searches -----------------------------------------------------------------------------------


def test_an_invalid_or_over_budget_candidate_is_rejected_before_anything_is_built(capsys, monkeypatch):
    """Four candidates: two fail the schema (3 heads do not divide b0's widths), one is over the GFLOPs
    budget (closed-form analysis), one runs. Only that one reaches a task; the others are rows saying why."""
    from lucid_arch.cli import summary

    ran, real = [], summary.run
    monkeypatch.setattr(summary, "run", lambda cfg, model_cfg, job: ran.append((model_cfg.depths, model_cfg.num_heads)) or real(cfg, model_cfg, job))
    code, _, err = run_main([*SEARCH, "model.depths=choice([1,1,1,1],[2,2,2,2])", "model.num_heads=choice([1,2,5,8],[3,3,3,3])",
                             "search.objectives=[params,gflops]", "search.max_gflops=0.8", "hydra.sweeper.n_trials=3",
                             "hydra.sweeper.max_rejected=12", "hydra.sweep.dir=s"], capsys)
    assert code == 0, err
    assert ran == [([1, 1, 1, 1], [1, 2, 5, 8])]  # the one valid candidate within budget, and nothing else
    rows = table(Path("s/sweep.csv"))
    assert sorted(r["status"] for r in rows) == ["ok", "rejected", "rejected", "rejected"]
    over = next(r for r in rows if "[2,2,2,2]" in r["overrides"] and "[1,2,5,8]" in r["overrides"])
    assert over["error"] == "1.132 GFLOPs at 224x224 px is over search.max_gflops = 0.8." and over["gflops"] == "1.1321"
    invalid = [r for r in rows if "[3,3,3,3]" in r["overrides"]]
    assert all(r["error"].startswith("model.num_heads[0] = 3: does not divide embed_dims[0] = 32") and not r["dir"] for r in invalid)
    assert len([p for p in Path("s").iterdir() if p.is_dir()]) == 1  # a job directory for the job that ran only
    study = study_of(Path("s"))
    rejected = [t for t in study.trials if t.user_attrs["lucid_outcome"] == "rejected"]
    assert sorted(t.state.name for t in rejected) == ["FAIL", "FAIL", "PRUNED"]  # invalid: failed; over budget: pruned
    assert all(t.user_attrs["lucid_reason"] for t in rejected)
    assert "stopped after 12 proposals in a row were rejected or repeated earlier trials" in err  # 1 of 3 trials could run
    assert "4 candidates, 1 on the Pareto front, 0 dominated, 0 pruned, 3 rejected" in Path("s/sweep.md").read_text()


def test_the_baseline_runs_first_and_sweeps_never_share_a_directory(capsys):
    code, _, err = run_main([*SEARCH, "model.depths=choice([1,1,1,1],[2,2,2,2])", "search.objectives=[params]",
                             "search.baseline=true", "hydra.sweeper.n_trials=1", "hydra.sweep.dir=b"], capsys)
    assert code == 0, err
    [row] = table(Path("b/sweep.csv"))
    assert (row["trial"], row["overrides"], row["params"]) == ("0", "search.objectives=[params] search.baseline=true model.depths=[2,2,2,2]",
                                                              "3666760")  # pvt_v2_b0 itself
    assert "| 0 (baseline) |" in Path("b/sweep.md").read_text()
    # Another search, a grid sweep, or a search in a grid sweep's directory: each refused, naming the directory.
    code, _, err = run_main([*SEARCH, "model.depths=choice([1,1,1,1],[3,3,3,3])", "search.objectives=[params]", "hydra.sweep.dir=b"], capsys)
    assert code == 2 and "hydra.sweep.dir = 'b' holds another search" in err and err.count("\n") == 1
    code, _, err = run_main(["-m", "model.depths=[1,1,1,1],[2,2,2,2]", "hydra.sweep.dir=b"], capsys)
    assert code == 2 and "hydra.sweep.dir = 'b' holds the search of" in err
    assert run_main(["-m", "model.depths=[1,1,1,1]", "hydra.sweep.dir=grid"], capsys)[0] == 0
    code, _, err = run_main([*SEARCH, "model.depths=choice([1,1,1,1],[2,2,2,2])", "hydra.sweep.dir=grid"], capsys)
    assert code == 2 and "hydra.sweep.dir = 'grid' holds the 1 jobs of a grid sweep" in err
    # A baseline outside the space is refused before any trial.
    code, _, err = run_main([*SEARCH, "model.depths=choice([1,1,1,1],[3,3,3,3])", "search.objectives=[params]",
                             "search.baseline=true", "hydra.sweep.dir=c"], capsys)
    assert code == 2 and "search.baseline = true, but the base config's model.depths = [2, 2, 2, 2] is not in its search space" in err
    assert not list(Path("c").glob("*/summary.json"))


def test_missing_extra_is_one_sentence_naming_the_pip_command(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna raises ImportError
    code, out, err = run_main(["-m", "hydra/sweeper=optuna", "model.depths=choice([1,1,1,1],[2,2,2,2])"], capsys)
    assert code == 2
    assert err == "lucid-arch: hydra/sweeper=optuna needs Optuna, which is not installed: pip install 'lucid-arch[search]'.\n"


def test_the_plugin_module_imports_neither_optuna_nor_torch():
    probe = "import sys, hydra_plugins.lucid_arch_sweeps; print(sorted({'optuna', 'torch', 'submitit'} & set(sys.modules)))"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout == "[]\n"


def test_a_training_trial_is_pruned_per_epoch_and_says_so(capsys):
    """ThresholdPruner(lower=1.01) stops every trial after its first epoch: each ends early, with a row saying why."""
    code, _, err = run_main([*SEARCH, *TINY_TRAIN, "task.epochs=3", "model.depths=choice([1,1,1,1],[1,1,2,1])",
                             "hydra.sweeper.n_trials=2", "hydra.sweeper.n_jobs=1",
                             "+hydra.sweeper.pruner={_target_: optuna.pruners.ThresholdPruner, lower: 1.01}", "hydra.sweep.dir=p"], capsys)
    assert code == 0, err
    rows = table(Path("p/sweep.csv"))
    assert [r["status"] for r in rows] == ["pruned", "pruned"]
    assert all(r["error"].startswith("pruned after epoch 1 by the ThresholdPruner: val_acc") for r in rows)
    assert all(len((Path("p") / r["dir"] / "metrics.jsonl").read_text().splitlines()) == 1 for r in rows)  # 1 epoch of 3
    assert all(json.loads((Path("p") / r["dir"] / "summary.json").read_text())["train"]["epochs"] == 1 for r in rows)
    assert [t.state.name for t in study_of(Path("p")).trials if t.user_attrs["lucid_outcome"] != "repeat"] == ["PRUNED", "PRUNED"]
    assert [t.state.name for t in study_of(Path("p"), "search.val_acc").trials] == ["PRUNED", "PRUNED"]


def test_a_training_that_ran_every_epoch_is_complete_whatever_the_pruner_says(capsys):
    """After the last epoch there is nothing left to stop: the trial is complete and on the front, not pruned."""
    code, _, err = run_main([*SEARCH, *TINY_TRAIN, "task.epochs=1", "model.depths=choice([1,1,1,1])", "hydra.sweeper.n_trials=1",
                             "hydra.sweeper.n_jobs=1", "+hydra.sweeper.pruner={_target_: optuna.pruners.ThresholdPruner, lower: 1.01}",
                             "hydra.sweep.dir=q"], capsys)
    assert code == 0, err
    assert [r["status"] for r in table(Path("q/sweep.csv"))] == ["ok"]
    assert [t.state.name for t in study_of(Path("q")).trials] == ["COMPLETE"]
    assert [t.state.name for t in study_of(Path("q"), "search.val_acc").trials] == ["COMPLETE"]  # its curve, for later trials


def test_trials_run_in_parallel_under_joblib_with_measured_latency(capsys):
    code, _, err = run_main([*SEARCH, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "model.img_size=64",
                             "model.depths=choice([1,1,1,1],[2,2,2,2])", "search.objectives=[latency_ms,params]",
                             "search.latency.repeats=3", "search.latency.warmup=1", "hydra.sweeper.n_trials=2",
                             "hydra.sweeper.n_jobs=2", "hydra.sweep.dir=j"], capsys)
    assert code == 0, err
    summaries = [json.loads(p.read_text()) for p in sorted(Path("j").glob("*/summary.json"))]
    assert len(summaries) == 2 and os.getpid() not in {s["pid"] for s in summaries}  # joblib's workers ran them
    assert all(s["metrics"]["latency_ms"] > 0 for s in summaries)
    told = [t.values for t in study_of(Path("j")).trials if t.user_attrs["lucid_outcome"] == "complete"]
    assert sorted(v[1] for v in told) == sorted(s["metrics"]["params"] for s in summaries)
    assert sorted(v[0] for v in told) == sorted(s["metrics"]["latency_ms"] for s in summaries)
    assert {r["place"] for r in table(Path("j/sweep.csv"))} <= {"front", "dominated"}
    assert (Path("j/pareto.md").read_text().count("| ") > 0) and (Path("j/sweep.png").read_bytes()[:4] == b"\x89PNG")


@pytest.mark.parametrize("job_finished", [False, True])
def test_a_killed_search_continues_where_it_stopped(tmp_path, job_finished, capsys):
    """Kill the search (SIGKILL) while its second trial trains, run the same command again: the
    trial it left running is marked failed and not counted, and the search runs to n_trials. A
    trial whose job finished anyway (a cluster job outliving the search) is told its result instead.

    Only the kill needs the console script's own process: the same command runs again in-process."""
    args = [str(SCRIPT), *SEARCH, *TINY_TRAIN, "task.epochs=1", "model.depths=choice([1,1,1,1],[1,1,2,1],[1,2,1,1],[2,1,1,1])",
            "search.objectives=[val_acc,params]", "hydra.sweeper.n_trials=2", "hydra.sweeper.n_jobs=1", "hydra.sweep.dir=k"]
    env = {**{k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline, killed = time.monotonic() + 120, False
    while time.monotonic() < deadline and proc.poll() is None:
        found = list((tmp_path / "k").glob("1_*/summary.json"))
        try:
            killed = bool(found) and json.loads(found[0].read_text()).get("status") == "running"
        except ValueError:
            killed = False
        if killed:
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.02)
    proc.communicate(timeout=60)  # reaped: the ledger's pid is no longer a live search
    assert killed, "the search ended before its second trial started"
    ran = lambda trials: [t for t in trials if t.user_attrs.get("lucid_outcome") != "repeat"]  # noqa: E731
    assert [t.state.name for t in ran(study_of(tmp_path / "k").trials)] == ["COMPLETE", "RUNNING"]

    if job_finished:  # as job 0 did: its metrics, the status a finished job writes
        (first,) = (tmp_path / "k").glob("0_*/summary.json")
        (second,) = (tmp_path / "k").glob("1_*/summary.json")
        second.write_text(json.dumps({**json.loads(second.read_text()), "status": "ok",
                                      "metrics": json.loads(first.read_text())["metrics"]}))
        code, _, err = run_main(args[1:], capsys)
        assert code == 0 and "were running when the search stopped" not in err, err[-2000:]
        trials = ran(study_of(tmp_path / "k").trials)
        assert [(t.state.name, t.user_attrs["lucid_outcome"]) for t in trials] == [("COMPLETE", "complete")] * 2
        assert trials[1].values == trials[0].values  # what its summary.json says
        return
    code, _, err = run_main(args[1:], capsys)
    assert code == 0, err[-2000:]  # every counted trial completed; the interrupted one was replaced
    assert "1 trial(s) were running when the search stopped: marked interrupted and not counted" in err
    trials = ran(study_of(tmp_path / "k").trials)
    assert [(t.state.name, t.user_attrs["lucid_outcome"]) for t in trials] == [
        ("COMPLETE", "complete"), ("FAIL", "interrupted"), ("COMPLETE", "complete")]
    rows = table(tmp_path / "k" / "sweep.csv")
    assert [(r["job"], r["trial"], r["status"]) for r in rows] == [(str(n), str(t.number), s) for n, t, s in
                                                                  zip(range(3), trials, ["ok", "interrupted", "ok"])]
    assert "the search was stopped while this trial ran" in rows[1]["error"]
    assert json.loads((tmp_path / "k" / LEDGER).read_text())["runs"] == 2


def test_a_search_on_slurm_runs_its_batch_as_cluster_jobs(tmp_path, slurm_partition, slurm_job_name):
    """Two trials of one batch as two SLURM jobs; the study and the report as on one machine."""
    local = [f"hydra.launcher.partition={slurm_partition}", "hydra.launcher.gpus_per_node=null", "hydra.launcher.mem_gb=null",
             "hydra.launcher.cpus_per_task=1", "hydra.launcher.timeout_min=10", f"hydra.launcher.name={slurm_job_name}"]
    env = {**{k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([str(SCRIPT), *SEARCH, "hydra/launcher=submitit_slurm", *local, "model.depths=choice([1,1,1,1],[2,2,2,2])",
                           "search.objectives=[params,gflops]", "hydra.sweeper.n_trials=2", "hydra.sweeper.n_jobs=2",
                           "hydra.sweep.dir=slurm"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summaries = [json.loads(p.read_text()) for p in sorted((tmp_path / "slurm").glob("*/summary.json"))]
    assert len(summaries) == 2 and all(s.get("slurm_job") for s in summaries)
    assert sorted(s["metrics"]["params"] for s in summaries) == [2_205_128, 3_666_760]
    assert [t.state.name for t in study_of(tmp_path / "slurm").trials if t.user_attrs["lucid_outcome"] != "repeat"] == ["COMPLETE"] * 2
    places = {r["overrides"].split()[-1]: r["place"] for r in table(tmp_path / "slurm" / "sweep.csv")}
    assert places == {"model.depths=[1,1,1,1]": "front", "model.depths=[2,2,2,2]": "dominated"}  # fewer of both wins


def test_the_search_example_is_what_its_experiment_left():
    """examples/search_shapes: the committed run matches its experiment, its front is recomputed
    from its jobs' own summaries, and its README states the trials, the front and the verdict."""
    import yaml

    from lucid_arch.cli.sweep_report import collect

    example = ROOT / "examples/search_shapes"
    run = example / "run"
    experiment = yaml.safe_load((ROOT / "conf/experiment/search_shapes.yaml").read_text())
    ledger = json.loads((run / LEDGER).read_text())
    space = {k: v.replace("],[", "], [") for k, v in experiment["hydra"]["sweeper"]["params"].items()}  # as describe() spaces it
    assert ledger["search"]["identity"]["space"] == space
    rows = collect(run)
    assert sum(r["status"] in ("ok", "pruned", "failed") for r in rows) == experiment["hydra"]["sweeper"]["n_trials"]
    objectives = front_report.objectives_of_ledger(ledger["search"])
    front_report.place(rows, objectives)
    committed = {int(r["trial"]) for r in table(run / "pareto.csv") if r["front"] == "yes"}
    assert committed == {r["trial"] for r in rows if r["place"] == "front"} and committed
    base = next(r for r in rows if r.get("baseline"))
    assert base["trial"] == 0 and base["metrics"]["params"] == 3_412_330  # pvt_v2_b0 at 64 px, 10 classes
    text = (example / "README.md").read_text()
    assert f"{experiment['hydra']['sweeper']['n_trials']} trials" in text
    for r in rows:
        if r["place"] == "front":
            assert f"{r['metrics']['val_acc']:.1%}" in text and f"{r['metrics']['gflops']:.4f}" in text, r["trial"]
    verdict = front_report.trade_offs(rows, objectives)[2]  # after the best of each objective: the baseline's line
    assert verdict in (run / "pareto.md").read_text()
    beaten = verdict.split(" trial(s) of the front beat the baseline")[0]
    assert (f"**{beaten} of the front beat pvt_v2_b0**" if beaten.isdigit() else "**No model of the front beats pvt_v2_b0**") in text
    assert (run / "sweep.png").read_bytes()[:4] == b"\x89PNG"
