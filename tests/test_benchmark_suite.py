"""The benchmark suite and scripts, end to end with tiny settings and our own model as the reference."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from lucid_arch.perf.benchmark_suite import OURS, SpeedSettings, build_ours, run_build_suite, run_speed_suite

ROOT = Path(__file__).resolve().parent.parent
TINY = ("model.depths=[1,1,1,1]", "model.img_size=64", "model.num_classes=10")


def test_speed_suite_compares_with_a_reference_sharing_its_weights():
    settings = SpeedSettings(
        model="pvt_v2_b0", overrides=TINY, batch_sizes=(2,), precisions=("bf16",), warmup=0, repeats=1,
        train_batch_size=2, inference_batch_size=2, agreement_inputs=4, memory=False,
    )  # fmt: skip
    result = run_speed_suite(settings, {"copy": lambda: build_ours("pvt_v2_b0", TINY)})
    rows = {(t.config, t.candidate): t for t in result.timings}
    fast = next(c for _, c in rows if c.startswith(f"{OURS} inference path"))
    assert set(rows) == {
        ("forward b2 bf16", OURS), ("forward b2 bf16", "copy"),
        ("inference b2", fast), ("inference b2", f"{OURS} fp32"), ("inference b2", "copy fp32"),
        ("train step b2 bf16", OURS), ("train step b2 bf16", "copy"),
    }  # fmt: skip
    assert rows[("forward b2 bf16", OURS)].max_abs_diff == 0.0  # same weights, same code
    assert rows[("forward b2 bf16", OURS)].speedup_vs == "copy"
    assert rows[("inference b2", f"{OURS} fp32")].speedup_vs == "copy fp32"
    assert result.agreement["inputs"] == 4 and result.agreement["top1_agreement"] >= 0.75
    json.dumps(result.to_dict())  # JSON-able as it is


def test_a_reference_of_another_architecture_is_left_out_with_a_note():
    settings = SpeedSettings(model="pvt_v2_b0", overrides=TINY, batch_sizes=(1,), warmup=0, repeats=1, memory=False)
    other = ("model.depths=[1,1,2,1]", "model.img_size=64", "model.num_classes=10")
    result = run_speed_suite(settings, {"other": lambda: build_ours("pvt_v2_b0", other)})
    assert [t.candidate for t in result.timings] == [OURS]
    assert result.notes and result.notes[0].startswith("reference other left out: weights do not fit")


def test_build_suite_times_alternately_against_a_reference():
    timings = run_build_suite("pvt_v2_b0", TINY, {"again": lambda: build_ours("pvt_v2_b0", TINY)}, warmup=0, repeats=2)
    assert [t.candidate for t in timings] == [f"{OURS} compose+build+init", "again create_model"]
    assert timings[0].speedup_vs == "again create_model" and timings[0].speedup > 0


def _script(name: str, *args: str, tmp_path: Path) -> dict:
    out = tmp_path / f"{name}.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / name), *args, "--no-timm", "--json", str(out)],
        check=False, capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "median ms" in proc.stdout
    return json.loads(out.read_text())


def test_speed_script_runs_end_to_end(tmp_path):
    overrides = [a for o in TINY for a in ("--override", o)]
    data = _script("speed.py", "--model", "pvt_v2_b0", *overrides, "--batch-sizes", "1", "--warmup", "0", "--repeats", "1",
                   "--inference-batch", "1", "--agreement-inputs", "2", tmp_path=tmp_path)  # fmt: skip
    assert data["settings"]["overrides"] == list(TINY)
    assert [t["config"] for t in data["timings"]] == ["forward b1 fp32", "inference b1", "inference b1"]
    assert data["timings"][0]["seconds"]["n"] == 1 and data["agreement"]["inputs"] == 2


def test_build_and_analyze_script_runs_end_to_end(tmp_path):
    overrides = [a for o in TINY for a in ("--override", o)]
    data = _script("build_and_analyze.py", "--model", "pvt_v2_b0", "--analyze", "pvt_v2_b0", *overrides, "--repeats", "1", tmp_path=tmp_path)
    assert data["build"][0]["candidate"] == f"{OURS} compose+build+init"
    assert data["analyze"]["params"] > 0 and data["analyze"]["first_call_s"]["n"] == 1
