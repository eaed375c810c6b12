"""A training run directory is a model: it rebuilds itself, loads its last or best weights, knows its
classes and preprocessing, says whether it is still running or was killed, and never gives a
random head to a model that asked for another class count.

One tiny SegFormer run (2 epochs on the built-in shapes' masks, 32 px, ~3 s, in-process) serves the module.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import lucid_arch
from conftest import run_main
from lucid_arch.runs import Preprocessing, RunError, find_run, read_run
from lucid_arch.weights import CheckpointError
from test_segmentation_training import TINY_SEG
from test_training import run_app

TINY_ARCH = dict(embed_dims=[16, 32, 48, 64], depths=[1, 1, 1, 1], num_heads=[1, 2, 3, 4], mlp_ratios=[2, 2, 2, 2],
                 sr_ratios=[4, 2, 1, 1], decode_head={"channels": 32})
SHAPES = ["background", "disc", "ring", "square", "square_outline", "triangle", "plus", "ellipse", "star", "crescent", "stripes"]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("runs") / "seg"
    code, _, err = run_app(["task=train", *TINY_SEG, "task.data.image_size=32", "task.data.num_train=64", "task.data.num_val=32",
                            "task.batch_size=16", "task.epochs=2", "task.precision=fp32", "task.threads=1", "task.progress=none",
                            "task.data.mean=[0.5,0.4,0.3]", f"hydra.run.dir={root}", "format=json"])
    assert code == 0, err[-3000:]
    return root


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def _x() -> torch.Tensor:
    return torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def test_a_run_records_what_using_it_needs(run):
    info = json.loads((run / "inference.json").read_text())
    assert info["task"] == "segmentation" and info["classes"] == SHAPES and info["ignore_index"] == 255
    assert info["preprocessing"] == {"image_size": [32, 32], "mean": [0.5, 0.4, 0.3], "std": [0.229, 0.224, 0.225],
                                     "resize": "keep_ratio", "color_order": "RGB", "value_range": [0, 255], "layout": "NCHW"}
    found = read_run(run)
    assert (found.kind, found.classes, found.status, found.model["name"]) == ("segmentation", tuple(SHAPES), "finished", "segformer_b0")
    assert found.preprocessing == Preprocessing((32, 32), mean=(0.5, 0.4, 0.3), resize="keep_ratio")
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    best = max(history, key=lambda r: r["val_miou"])
    from safetensors import safe_open

    with safe_open(str(run / "model_best.safetensors"), "pt") as f:
        assert f.metadata()["epoch"] == str(best["epoch"])
    assert found.weights("best") == run / "model_best.safetensors" and found.weights() == run / "model.safetensors"
    assert "segformer_b0 (segmentation, 11 classes: background, disc" in found.describe() and "finished" in found.describe()


def test_create_model_rebuilds_the_run_with_its_last_or_best_weights(run):
    model = lucid_arch.create_model(run).eval()
    assert type(model).__name__ == "SegmentationModel" and model.spec.decode_head.num_classes == 11
    saved = load_file(str(run / "model.safetensors"))
    assert all(torch.equal(v, saved[k]) for k, v in model.state_dict().items())
    best = lucid_arch.create_model(str(run), checkpoint="best")
    saved = load_file(str(run / "model_best.safetensors"))
    assert all(torch.equal(v, saved[k]) for k, v in best.state_dict().items())
    # the run's own config.yaml and one of its checkpoint directories name the same model
    assert lucid_arch.create_model(run / "config.yaml").spec == model.spec
    step = sorted((run / "checkpoints").iterdir())[-1]
    from_step = lucid_arch.create_model(step)
    saved = load_file(str(step / "model.safetensors"))
    assert all(torch.equal(v, saved[k]) for k, v in from_step.state_dict().items())
    # overrides go on top of the run's config: the same weights at another input size
    wider = lucid_arch.create_model(run, img_size=48, drop_path_rate=0.0).eval()
    with torch.no_grad():
        assert wider(torch.zeros(1, 3, 48, 48)).shape == (1, 11, 12, 12)
        torch.testing.assert_close(wider(_x()), model(_x()))


def test_a_model_asked_for_by_name_must_fit_the_run_head_and_all(run):
    with pytest.raises(CheckpointError) as err:
        lucid_arch.create_model("segformer_b0", pretrained=str(run), **TINY_ARCH)  # 150 classes asked, 11 trained
    text = str(err.value)
    assert "segments 11 classes, and the model (segformer_b0) has 150" in text and "random initialisation" in text
    assert "create_model(RUN)" in text and "model.num_classes=11" in text and "model.new_head=true" in text
    assert "reset_head=True" in text
    fresh = lucid_arch.create_model("segformer_b0", pretrained=str(run), reset_head=True, **TINY_ARCH)
    assert fresh.decode_head.conv_seg.weight.shape[0] == 150
    same = lucid_arch.create_model("segformer_b0", pretrained=str(run), num_classes=11, **TINY_ARCH)
    saved = load_file(str(run / "model.safetensors"))
    assert all(torch.equal(v, saved[k]) for k, v in same.state_dict().items())
    with pytest.raises(CheckpointError, match="training run's: without model=NAME, model.pretrained=RUN rebuilds"):
        lucid_arch.create_model("segformer_b0", pretrained=str(run), num_classes=11)  # another architecture


def test_the_app_builds_the_run_and_refuses_a_random_head(run, capsys):
    code, out, err = run_main([f"model.pretrained={run}", "format=json", "hydra.run.dir=summary"], capsys)
    assert code == 0, err
    assert f"run {run}: segformer_b0 (segmentation, 11 classes" in err and "weights model.safetensors" in err
    summary = json.loads(Path("summary/summary.json").read_text())
    assert summary["model"] == "segformer_b0" and summary["run"]["dir"] == str(run) and summary["run"]["classes"] == SHAPES
    assert summary["run"]["weights"] == str(run / "model.safetensors") and summary["run"]["status"] == "finished"
    code, _, err = run_main([f"model.pretrained={run}", "model.checkpoint=best", "format=json", "hydra.run.dir=best"], capsys)
    assert code == 0 and json.loads(Path("best/summary.json").read_text())["run"]["weights"] == str(run / "model_best.safetensors")
    # stdout holds the report alone: the load report and the run line go to stderr
    code, out, err = run_main([f"model.pretrained={run}", "model.img_size=64", "task=export", "task.formats=[pt2]", "task.dynamic=[]",
                               "task.verify=false", "format=json", "hydra.run.dir=json"], capsys)
    assert code == 0 and "loaded 112 tensors" in err and json.loads(out)["export"]["files"]
    # model=NAME asks for that model: its 150-class head would stay random, so the export refuses
    tiny = [o for o in TINY_SEG if o != "model=segformer_b0"]
    code, _, err = run_main(["task=export", "model=segformer_b0", *tiny, f"model.pretrained={run}", "task.formats=[pt2]",
                             "task.verify=false", "hydra.run.dir=export"], capsys)
    assert code == 2 and "segments 11 classes, and the model (segformer_b0) has 150" in err and "model.new_head=true" in err
    assert not list(Path("export").glob("*.pt2"))
    code, _, err = run_main(["task=benchmark", "model=segformer_b0", *tiny, f"model.pretrained={run}", "hydra.run.dir=bench"], capsys)
    assert code == 2 and "has 150: loading it would leave the model's decode head at its random initialisation" in err


def test_a_run_still_training_and_a_killed_one_are_told_apart(run, tmp_path, caplog):
    from lucid_arch.training.run_lock import run_lock

    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    (copy / "model.safetensors").unlink()  # not finished yet: only its checkpoints hold weights
    (copy / "config.yaml").unlink()
    summary = json.loads((copy / "summary.json").read_text())
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (copy / "summary.json").write_text(json.dumps({**summary, "status": "running", "pid": int(dead.stdout), "metrics": {}}))
    newest = sorted((copy / "checkpoints").iterdir())[-1]
    with run_lock(copy):
        live = read_run(copy)
        assert live.status == "running" and f"pid {os.getpid()}" in live.status_note
        assert live.weights() == newest / "model.safetensors"
    killed = read_run(copy)
    assert killed.status == "interrupted" and "ended before the job finished" in killed.status_note
    with caplog.at_level(logging.WARNING):
        model = lucid_arch.create_model(copy)
    assert "interrupted" in caplog.text and "checkpoints/step_" in caplog.text
    saved = load_file(str(newest / "model.safetensors"))
    assert all(torch.equal(v, saved[k]) for k, v in model.state_dict().items())


def test_bad_runs_are_one_paragraph_each(run, tmp_path):
    assert find_run(tmp_path) is None and find_run(tmp_path / "absent") is None
    with pytest.raises(lucid_arch.ConfigError, match="a directory, but not a training run"):
        lucid_arch.create_model(tmp_path)
    old = tmp_path / "old"
    shutil.copytree(run, old)
    (old / "model_best.safetensors").unlink()
    (old / "inference.json").unlink()  # a run from before inference.json: read from config.yaml and summary.json
    found = read_run(old)
    assert found.classes == tuple(SHAPES) and found.preprocessing.mean == (0.5, 0.4, 0.3)
    with pytest.raises(lucid_arch.ConfigError, match="model.checkpoint=best: run .* has no model_best.safetensors"):
        lucid_arch.create_model(old, checkpoint="best")
    (old / "inference.json").write_bytes(b" " * (16 << 20) + b"{}")
    with pytest.raises(RunError, match="over 16 MiB"):
        read_run(old)
    (old / "inference.json").write_text(json.dumps({"task": "segmentation", "classes": ["a", "b"]}))
    with pytest.raises(RunError, match="2 class names but the model has 11 classes"):
        read_run(old)
    (old / "inference.json").unlink()
    os.mkfifo(old / "inference.json")  # refused by name, never waited on
    with pytest.raises(RunError, match="inference.json is a FIFO"):
        read_run(old)
    (old / "inference.json").unlink()
    summary = (old / "summary.json").read_bytes()
    (old / "summary.json").unlink()
    os.mkfifo(old / "summary.json")
    with pytest.raises(RunError, match="summary.json is a FIFO"):
        read_run(old)
    (old / "summary.json").unlink()
    (old / "summary.json").write_bytes(summary)
    (old / ".lock").unlink(missing_ok=True)
    os.mkfifo(old / ".lock")  # a planted FIFO lock: read without blocking, and no one holds it
    assert read_run(old).status == "finished"
    (old / "config.yaml").write_text("- just\n- a list\n")
    with pytest.raises(RunError, match="config.yaml: not a mapping"):
        read_run(old)
