"""The `lucid-arch` Hydra app: the summary, its formats, errors, fast start, sweeps and launchers.

The console script itself runs in subprocesses (summary, an error, --cfg job, a sweep's exit
status); the rest calls ``lucid_arch.cli.app.main`` in-process, which is the same code without
the interpreter start (both launchers start their jobs' processes from there).
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import lucid_arch
from lucid_arch.cli.job_names import job_dir_name

from conftest import OFFICIAL_PARAMS, num_params, run_in_terminal, run_main

SCRIPT = Path(sys.executable).parent / "lucid-arch"


def run_script(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    assert SCRIPT.is_file(), f"console script {SCRIPT} is missing: pip install -e . registers it"
    environ = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    return subprocess.run([str(SCRIPT), *args], cwd=cwd, env={**environ, **(env or {})}, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    """Jobs write outputs/ and multirun/ under the working directory: keep them out of the checkout."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)


def only(paths: list[Path]) -> Path:
    assert len(paths) == 1, paths
    return paths[0]


# ------------------------------------------------------------------------------------- summary


def test_summary_through_the_console_script(tmp_path):
    proc = run_script("model=pvt_v2_b2", "model.depths=[3,4,18,3]", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "\x1b[" not in out, "stdout is a pipe: plain text, no colour codes"
    assert "pvt_v2_b2 at 224x224: 45.24 M parameters, 13.795 GFLOPs" in out
    # One row per stage with its feature map, tokens, dims, heads, head dim, sr, kv tokens, depth.
    rows = [line.split() for line in out.splitlines() if re.match(r"^[0-3]\s", line)]
    assert [r[:8] for r in rows] == [
        ["0", "56x56", "3,136", "64", "1", "64", "8", "49"],
        ["1", "28x28", "784", "128", "2", "64", "4", "49"],
        ["2", "14x14", "196", "320", "5", "64", "2", "49"],
        ["3", "7x7", "49", "512", "8", "64", "1", "49"],
    ]
    assert [r[10] for r in rows] == ["3", "4", "18", "3"]  # depths, after linear and mlp ratio
    assert re.search(r"^total\s+45,238,696\s+13\.795$", out, re.M)  # = pvt_v2_b3's parameters
    assert "forward_features: 1x64x56x56, 1x128x28x28, 1x320x14x14, 1x512x7x7" in out
    assert "logits: 1x1000" in out
    chain = next(line for line in out.splitlines() if line.startswith("config: "))
    assert chain.index("_pvt_v2.yaml") < chain.index("pvt_v2_b1.yaml") < chain.index("pvt_v2_b2.yaml")
    assert chain.endswith("override model.depths=[3,4,18,3]")

    record = json.loads(only(list(tmp_path.glob("outputs/*/*/summary.json"))).read_text())
    assert record["status"] == "ok" and record["model"] == "pvt_v2_b2"
    assert record["metrics"] == {"params": 45_238_696, "gflops": 13.7946}
    assert record["overrides"] == ["model=pvt_v2_b2", "model.depths=[3,4,18,3]"]


@pytest.mark.parametrize("name", ["pvt_tiny", "pvt_huge", "pvt_v2_b0", "pvt_v2_b2_li"])  # every variant: test_variants, test_docs
def test_json_summary_of_a_variant(name, capsys):
    code, out, err = run_main([f"model={name}", "format=json"], capsys)
    assert code == 0, err
    summary = json.loads(out)
    assert summary["params"] == OFFICIAL_PARAMS[name]
    assert summary["params"] == sum(s["params"] for s in summary["stages"]) + summary["head_params"]
    assert summary["flops"] >= sum(s["flops"] for s in summary["stages"]) > 0
    assert summary["logits_shape"] == [1, 1000]
    assert len(summary["feature_shapes"]) == len(summary["stages"]) == 4
    assert summary["sources"][-1].endswith(f"{name}.yaml")


def test_summary_at_height_and_width(capsys, monkeypatch, tmp_path):
    """docs/backbones.md's command: pvt_v2_b0's stage maps and GFLOPs at 512x1024."""
    monkeypatch.chdir(tmp_path)
    code, out, err = run_main(["model=pvt_v2_b0", "model.img_size=[512,1024]", "format=text"], capsys)
    assert code == 0, err
    report = lucid_arch.analyze(lucid_arch.load_config("pvt_v2_b0", ["model.img_size=[512,1024]"]))
    assert out.startswith(f"pvt_v2_b0 at 512x1024: 3.67 M parameters, {report.gflops:.3f} GFLOPs")
    assert [line.split()[1] for line in out.splitlines() if re.match(r"^[0-3] ", line)] == ["128x256", "64x128", "32x64", "16x32"]
    assert "forward_features: 1x32x128x256, 1x64x64x128, 1x160x32x64, 1x256x16x32" in out
    record = json.loads(only(list(tmp_path.glob("outputs/*/*/summary.json"))).read_text())
    assert record["summary"]["input_size"] == [512, 1024] and record["summary"]["img_size"] == [512, 1024]


def test_summary_of_a_backbone(capsys):
    code, out, err = run_main(["model=mit_b0", "model.out_indices=[1,2,3]", "format=text"], capsys)
    assert code == 0, err
    assert "features (out_indices [1, 2, 3]): 1x64x28x28, 1x160x14x14, 1x256x7x7" in out
    assert "logits" not in out and not re.search(r"^head ", out, re.M)
    assert re.search(r"^total\s+3,319,392\s", out, re.M)


def test_a_backbone_is_not_benchmarked_as_a_classifier(capsys):
    code, _, err = run_main(["model=mit_b0", "task=benchmark"], capsys)
    assert code == 2 and "model.features_only = true: task=benchmark times classifiers" in err


def test_summary_with_pretrained_weights_elsewhere_reads_no_file(capsys):
    """The summary is meta-only: a config may name weights that live on another machine."""
    code, out, err = run_main(["model=pvt_v2_b0", "model.pretrained=/nonexistent/pvt_v2_b0.pth", "format=json"], capsys)
    assert code == 0, err
    assert json.loads(out)["params"] == OFFICIAL_PARAMS["pvt_v2_b0"]


def test_rich_table_when_forced(capsys):
    code, out, _ = run_main(["model=pvt_v2_b0", "format=rich"], capsys)
    assert code == 0
    assert "\x1b[" in out and "─" in out  # colour codes and rich's rules
    assert "3,666,760" in out and "1.132" in out


def test_auto_format_is_a_rich_table_in_a_terminal(tmp_path):
    """format=auto: rich when stdout is a terminal (here a pseudo-terminal), plain when piped."""
    status, out, err = run_in_terminal([str(SCRIPT), "model=pvt_v2_b0"], tmp_path, "stdout")
    assert status == 0, err
    assert "\x1b[" in out and "─" in out
    assert "3,666,760" in out


def test_task_batch_size_scales_flops(capsys):
    _, out1, _ = run_main(["format=json"], capsys)
    _, out8, _ = run_main(["format=json", "task.batch_size=8"], capsys)
    one, eight = json.loads(out1), json.loads(out8)
    assert eight["flops"] == 8 * one["flops"] and eight["params"] == one["params"]
    assert eight["logits_shape"] == [8, 1000]


# -------------------------------------------------------------------------------------- errors

ERRORS = {
    "wrong type": (["model.img_size=abc"], ["model.img_size", "'abc'", "expected an integer"]),
    "wrong list length": (["model=pvt_v2_b2", "model.depths=[2,2,2]"], ["model.depths", "3 entries", "embed_dims has 4"]),
    "heads not dividing dims": (["model.num_heads=[1,2,6,8]"], ["model.num_heads[2] = 6", "does not divide", "embed_dims[2] = 160"]),
    "unknown key": (["model.depht=[2,2,2,2]"], ["model.depht", "unknown key", "did you mean depths"]),
    "unknown model": (["model=pvt_v2_b9"], ["model=pvt_v2_b9", "no such model", "did you mean pvt_v2_b5"]),
    "bad format": (["format=xml"], ["format = 'xml'", "auto, rich, text, json"]),
    "unknown task": (["task=trian"], ["task=trian", "no such option", "summary"]),
    "unknown launcher": (["-m", "hydra/launcher=jobllib"], ["hydra/launcher=jobllib", "did you mean joblib", "lucid-arch[slurm]"]),
    "unparsable override": (["model.depths=[2,2"], ["cannot parse override", "quote lists"]),
    "every problem at once": (["model.img_size=abc", "model.qkv_bias=maybe"], ["2 problems", "model.img_size", "model.qkv_bias"]),
}


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_invalid_overrides_exit_2_with_one_paragraph(case, capsys):
    argv, needles = ERRORS[case]
    code, out, err = run_main(argv, capsys)
    assert code == 2, (out, err)
    assert err.startswith("lucid-arch: Invalid ") and err.endswith("\n")
    assert "Traceback" not in err and "\n\n" not in err.strip()
    for needle in needles:
        assert needle in err, f"{needle!r} not in {err!r}"


def test_error_through_the_console_script(tmp_path):
    proc = run_script("model=pvt_v2_b2", "model.num_heads=[1,2,6,8]", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "model.num_heads[2] = 6: does not divide embed_dims[2] = 320" in proc.stderr
    # The failed job still leaves its record.
    record = json.loads(only(list(tmp_path.glob("outputs/*/*/summary.json"))).read_text())
    assert record["status"] == "failed" and "num_heads[2]" in record["error"]


def test_full_error_shows_the_traceback(tmp_path):
    proc = run_script("model.img_size=abc", cwd=tmp_path, env={"HYDRA_FULL_ERROR": "1"})
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr


# ----------------------------------------------------------------------------------- fast start

TORCH_FREE = {
    "--help": (["--help"], {}, "model (conf/model/)"),
    "--cfg job": (["--cfg", "job", "model=pvt_v2_b2"], {}, "name: pvt_v2_b2"),
    "--info": (["--info"], {}, "Hydra"),
    "tab completion": (["-sc", "query=bash"], {"COMP_LINE": "lucid-arch model=pvt_v2_b"}, "model=pvt_v2_b2_li"),
}


@pytest.mark.parametrize("case", sorted(TORCH_FREE))
def test_config_only_commands_never_import_torch(case, tmp_path):
    args, env, expected = TORCH_FREE[case]
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", str(SCRIPT), *args],  # the console script, traced
        cwd=tmp_path, env={**os.environ, **env}, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert expected in proc.stdout
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "torch" not in imported, f"{case} imported torch"
    assert "lucid_arch.cli.app" in imported  # the trace really covered the app


def test_help_lists_every_task_the_search_and_the_loggers(capsys):
    from lucid_arch.cli.jobs import TASKS

    code, out, _ = run_main(["--help"], capsys)
    assert code == 0
    tasks = out.split("Tasks (task=NAME")[1].split("\n\n")[0].splitlines()[1:]
    assert [line.split()[0] for line in tasks] == list(TASKS)  # one line each, in the app's order
    assert all(len(line.split(None, 1)[1]) > 30 for line in tasks)
    for said in ("lucid-arch -m hydra/sweeper=optuna task=train", "lucid-arch +experiment=search_shapes",
                 "hydra.sweeper.storage=sqlite|journal|URL", "hydra/launcher=joblib | submitit_slurm",
                 "logger (conf/logger/):         many, mlflow, none, tensorboard",
                 "hydra/sweeper/sampler, pruner: nsgaii, random, tpe; median, successive_halving", "Ctrl-C or SIGTERM"):
        assert said in out, said


def test_cfg_job_through_the_console_script(tmp_path):
    proc = run_script("--cfg", "job", "model=pvt_v2_b2_li", "model.num_classes=10", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "name: pvt_v2_b2_li" in proc.stdout and "num_classes: 10" in proc.stdout and "linear: true" in proc.stdout
    assert "task:\n  name: summary" in proc.stdout
    assert not (tmp_path / "outputs").exists(), "--cfg runs no job"


# --------------------------------------------------------------------------------------- sweeps


def read_sweep(root: Path) -> tuple[Path, list[dict[str, str]]]:
    sweep_dir = only([p.parent for p in root.glob("multirun/*/*/sweep.csv")])
    with (sweep_dir / "sweep.csv").open() as f:
        return sweep_dir, list(csv.DictReader(f))


def test_multirun_through_the_console_script(tmp_path):
    """A sweep over models and a field, one job failing validation: a row, not a lost sweep."""
    proc = run_script("-m", "model=glob([pvt_v2_b0*,pvt_v2_b1*])", "model.num_heads=[1,2,5,8],[1,2,6,8]", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr  # the sweep ran; some jobs failed
    assert "2 job(s) of the sweep failed" in proc.stderr and "Traceback" not in proc.stderr
    sweep_dir, rows = read_sweep(tmp_path)
    assert [(r["job"], r["model"], r["status"]) for r in rows] == [
        ("0", "pvt_v2_b0", "ok"), ("1", "pvt_v2_b0", "failed"), ("2", "pvt_v2_b1", "ok"), ("3", "pvt_v2_b1", "failed"),
    ]
    assert rows[0]["params"] == str(OFFICIAL_PARAMS["pvt_v2_b0"]) and rows[2]["params"] == str(OFFICIAL_PARAMS["pvt_v2_b1"])
    assert "num_heads[2] = 6" in rows[1]["error"] and rows[1]["params"] == ""
    assert rows[1]["overrides"] == "model=pvt_v2_b0 model.num_heads=[1,2,6,8]"
    # Short job directories (number, model, a hash of the overrides), each with its overrides and summary.json.
    jobs = sorted(p.name for p in sweep_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert [j.rsplit("_", 1)[0] for j in jobs] == ["0_pvt_v2_b0", "1_pvt_v2_b0", "2_pvt_v2_b1", "3_pvt_v2_b1"]
    assert jobs[0] == job_dir_name(0, "model.num_heads=[1,2,5,8]__model=pvt_v2_b0", "pvt_v2_b0")  # Hydra sorts the keys
    assert len({j.rsplit("_", 1)[1] for j in jobs}) == 4 and [r["dir"] for r in rows] == jobs
    assert all((sweep_dir / j / "summary.json").is_file() for j in jobs)
    assert yaml.safe_load((sweep_dir / jobs[1] / ".hydra/overrides.yaml").read_text()) == ["model=pvt_v2_b0", "model.num_heads=[1,2,6,8]"]
    md = (sweep_dir / "sweep.md").read_text()
    assert "| 1 | `model=pvt_v2_b0 model.num_heads=[1,2,6,8]` | pvt_v2_b0 | failed |" in md
    assert (sweep_dir / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_depth_sweep_experiment(capsys):
    code, _, err = run_main(["+experiment=depth_sweep"], capsys)  # hydra.mode: MULTIRUN in the file
    assert code == 0, err
    _, rows = read_sweep(Path.cwd())
    assert [int(r["params"]) for r in rows] == [14_009_000, 25_362_856, 45_238_696, 62_556_072]
    assert [r["overrides"] for r in rows][0] == "model.depths=[2,2,2,2] +experiment=depth_sweep"
    md = (only(list(Path.cwd().glob("multirun/*/*/sweep.md")))).read_text()
    assert "every job**: `+experiment=depth_sweep`" in md


def test_sr_sweep_experiment(capsys):
    code, _, err = run_main(["+experiment=sr_sweep"], capsys)
    assert code == 0, err
    _, rows = read_sweep(Path.cwd())
    assert len(rows) == 8 and all(r["status"] == "ok" for r in rows)
    by = {r["overrides"].split(" +")[0]: float(r["gflops"]) for r in rows}
    standard = [by[f"model.sr_ratios={sr} model.linear=False"] for sr in ("[8,4,2,1]", "[4,2,1,1]", "[2,2,1,1]", "[1,1,1,1]")]
    assert standard == sorted(standard) and standard[0] == pytest.approx(8.0535, abs=1e-4)  # b2 itself first
    linear = [v for k, v in by.items() if k.endswith("linear=True")]
    assert linear == [pytest.approx(7.7777, abs=1e-4)] * 4  # linear attention ignores sr_ratios: b2_li


def test_v2_family_experiment_lists_every_v2_variant(capsys):
    code, _, err = run_main(["+experiment=v2_family", "hydra/launcher=basic"], capsys)
    assert code == 0, err
    _, rows = read_sweep(Path.cwd())
    assert {r["model"]: int(r["params"]) for r in rows} == {k: v for k, v in OFFICIAL_PARAMS.items() if k.startswith("pvt_v2")}


def test_an_invalid_sweep_value_is_reported_before_any_job(capsys):
    code, _, err = run_main(["-m", "model=pvt_v2_b0,pvt_v2_bX"], capsys)
    assert code == 2
    assert "model=pvt_v2_bX: no such model" in err
    assert not list(Path.cwd().glob("multirun/*/*/sweep.csv"))


@pytest.mark.parametrize("launcher", ["joblib", "submitit_local"])
def test_two_job_sweep_through_a_launcher(launcher, tmp_path, capsys):
    extra = ["hydra.launcher.n_jobs=2"] if launcher == "joblib" else ["hydra.launcher.timeout_min=5"]
    code, out, err = run_main(["-m", f"hydra/launcher={launcher}", *extra, "model=pvt_v2_b0,pvt_v2_b2_li"], capsys)
    assert code == 0, out[-2000:] + err[-2000:]
    _, rows = read_sweep(tmp_path)
    assert [(r["model"], r["status"], int(r["params"])) for r in rows] == [
        ("pvt_v2_b0", "ok", OFFICIAL_PARAMS["pvt_v2_b0"]),
        ("pvt_v2_b2_li", "ok", OFFICIAL_PARAMS["pvt_v2_b2_li"]),
    ]


# --------------------------------------------------------------------------------- job naming


@pytest.mark.parametrize(
    ("overrides", "model", "expected"),
    [
        ("model=pvt_v2_b1__model.depths=[2,2,2,2]", "pvt_v2_b1", "3_pvt_v2_b1_"),
        ("model.linear=[true,false]__model.name='a b'", "pvt_v2_b0", "3_pvt_v2_b0_"),
        ("model.depths=[2,2,2,2]", "../my models/x", "3_..-my-models-x_"),  # a user's choice, made a file name
        ("", "pvt_v2_b0", "3_pvt_v2_b0"),
        ("model.depths=[2,2,2,2]", "", "3_"),
    ],
)
def test_job_dir_names_are_number_model_and_a_hash_of_the_overrides(overrides, model, expected):
    name = job_dir_name(3, overrides, model)
    assert name.startswith(expected) and len(name) == len(expected) + (6 if overrides else 0)
    assert job_dir_name(3, overrides, model) == name and job_dir_name(4, overrides, model)[1:] == name[1:]  # the same jobs, the same hash
    assert job_dir_name(3, "model.depths=" + "[1,2]" * 100, "pvt_v2_b0") == "3_pvt_v2_b0_" + job_dir_name(0, "model.depths=" + "[1,2]" * 100)[2:]
    assert "/" not in name and " " not in name


def test_a_variant_from_a_user_config_dir(capsys):
    """-cd adds a directory holding model/*.yaml; the chain shows the user's file."""
    examples = Path(__file__).resolve().parent.parent / "examples" / "my_models"
    code, out, err = run_main(["-cd", str(examples), "model=tiny3", "format=json"], capsys)
    assert code == 0, err
    summary = json.loads(out)
    assert summary["name"] == "tiny3" and [s["embed_dim"] for s in summary["stages"]] == [32, 64, 128]
    assert [s["linear"] for s in summary["stages"]] == [True, True, False]
    assert summary["sources"][-1].endswith("my_models/model/tiny3.yaml")
    assert summary["sources"][-2] == "lucid_arch:model/pvt_v2_b0.yaml"


def test_a_user_config_dir_gets_its_files_real_problems(capsys, tmp_path):
    """-cd DIR model=x names the key, the file and the line; not "no such model"."""
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "x.yaml").write_text("defaults: [pvt_v2_b0, _self_]\nname: x\ndeptsh: [1, 1, 1, 1]\n")
    (tmp_path / "model" / "y.yaml").write_text("defaults: [pvt_v2_b9, _self_]\n")
    code, _, err = run_main(["-cd", str(tmp_path), "model=x"], capsys)
    assert code == 2 and "model.deptsh: unknown key" in err and "(did you mean depths?)" in err
    assert "model/x.yaml, line 3)" in err
    code, _, err = run_main(["-cd", str(tmp_path), "model=y"], capsys)
    assert code == 2 and "y.yaml: defaults names 'pvt_v2_b9', but there is no model file of that name" in err
    code, _, err = run_main(["-cd", str(tmp_path / "nope"), "model=x"], capsys)
    assert code == 2 and f"-cd {tmp_path / 'nope'}: no such directory" in err


# ------------------------------------------------------------------------------------ benchmark

TINY_BENCH = ["model=pvt_v2_b0", "model.depths=[1,1,1,1]", "model.img_size=64", "task=benchmark", "task.batch_sizes=[1,2]",
              "task.repeats=2", "task.warmup=0", "task.inference_batch_size=2", "task.agreement_inputs=4",
              "task.train_batch_size=2", "task.device=cpu"]


def test_benchmark_task_writes_timings_and_metrics(capsys):
    code, out, err = run_main([*TINY_BENCH, "format=json"], capsys)
    assert code == 0, err
    data = json.loads(out)
    configs = [(t["config"], t["candidate"]) for t in data["timings"]]
    assert ("forward b1 fp32", "lucid_arch") in configs and ("forward b2 fp32", "lucid_arch") in configs
    assert ("train step b2 fp32", "lucid_arch") in configs
    assert any(c == "inference b2" and "inference path" in n for c, n in configs)
    assert all(t["seconds"]["n"] == 2 and t["seconds"]["median"] > 0 for t in data["timings"])
    assert data["agreement"]["inputs"] == 4
    record = json.loads(only(list(Path.cwd().glob("outputs/*/*/summary.json"))).read_text())
    assert record["status"] == "ok" and record["task"] == "benchmark"
    metrics = record["metrics"]
    built = lucid_arch.create_model("pvt_v2_b0", depths=[1, 1, 1, 1], img_size=64)
    assert list(metrics)[:2] == ["params", "gflops"] and metrics["params"] == num_params(built)
    assert metrics["forward b2 fp32 img/s"] == pytest.approx(2 / _median(data, "forward b2 fp32", "lucid_arch"), rel=0.01)
    fast = next(k for k in metrics if k.startswith("inference b2 inference path"))
    assert metrics[fast] != metrics["inference b2 fp32 img/s"]  # the fast path and its fp32 baseline are separate columns
    assert fast.endswith("img/s") and fast.replace("img/s", "speedup") in metrics
    assert json.loads(only(list(Path.cwd().glob("outputs/*/*/benchmark.json"))).read_text())["timings"] == data["timings"]


def _median(data: dict, config: str, candidate: str) -> float:
    return next(t["seconds"]["median"] for t in data["timings"] if t["config"] == config and t["candidate"] == candidate)


def test_benchmark_task_rejects_bad_settings(capsys):
    code, _, err = run_main([*TINY_BENCH, "task.precisions=[fp16]", "task.batch_sizes=[0]"], capsys)
    assert code == 2
    assert "task.precisions = 'fp16': choose from fp32, bf16" in err
    assert "task.batch_sizes = 0: batch sizes are positive integers" in err


def test_a_failed_sweep_does_not_fail_the_next_run_in_the_same_process(capsys):
    code, _, _ = run_main(["-m", "model.num_heads=[1,2,6,8]"], capsys)
    assert code == 1
    code, _, err = run_main(["format=json"], capsys)
    assert code == 0, err


def test_sweep_report_keeps_jobs_that_crashed_or_were_killed(tmp_path):
    """Jobs are read from disk: a finished one, one killed mid-run, one that never wrote, one corrupt."""
    from lucid_arch.cli.sweep_report import write_report

    def job(name: str, overrides: list[str], summary: str | None) -> None:
        d = tmp_path / name
        (d / ".hydra").mkdir(parents=True)
        (d / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
        if summary is not None:
            (d / "summary.json").write_text(summary)

    job("0_a", ["model=pvt_v2_b0"], json.dumps({"job": 0, "model": "pvt_v2_b0", "status": "ok", "metrics": {"params": 5, "gflops": 1.5}}))
    job("1_b", ["model=pvt_v2_b1"], json.dumps({"job": 1, "model": "pvt_v2_b1", "status": "running"}))
    job("2_c", ["model=pvt_v2_b2"], None)
    job("3_d", ["model=pvt_v2_b3"], "{not json")
    rows = write_report(tmp_path)
    assert [(r["job"], r["status"]) for r in rows] == [(0, "ok"), (1, "interrupted"), (2, "failed"), (3, "failed")]
    assert "stopped before finishing" in rows[1]["error"] and "killed" in rows[1]["error"]
    assert "crashed or was killed" in rows[2]["error"]
    assert "unreadable summary.json" in rows[3]["error"]
    with (tmp_path / "sweep.csv").open() as f:
        table = list(csv.DictReader(f))
    assert [r["params"] for r in table] == ["5", "", "", ""] and table[2]["overrides"] == "model=pvt_v2_b2"
    assert (tmp_path / "sweep.png").stat().st_size > 1000


def test_summary_json_is_standard_json_whatever_the_figures(tmp_path):
    """A NaN or infinite figure (a failed export check, a diverged loss) is written as null, not Python's NaN."""
    import math

    from lucid_arch.cli.jobs import write_json

    write_json(tmp_path / "summary.json", {"metrics": {"loss": math.nan, "ok": 1.5}, "checks": [{"max_abs_diff": math.inf}]})
    text = (tmp_path / "summary.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"metrics": {"loss": None, "ok": 1.5}, "checks": [{"max_abs_diff": None}]}
