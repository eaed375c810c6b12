"""task=train: optimizer groups and schedule, learning on the shapes dataset, checkpoints,
resume equivalence (after a real SIGKILL), image folders with bad files, sweeps and DDP.

Runs use a tiny PVT (four 1-block stages) on small 32-px shapes sets, so each trains in a
second or two; one 2-epoch run with mid-epoch checkpoints (``trained``) serves every test that
resumes, fine-tunes or compares against an uninterrupted run.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from lucid_arch import build_model, load_config
from lucid_arch.training.optim import lr_at, param_groups

from conftest import run_in_terminal, run_main

SCRIPT = Path(sys.executable).parent / "lucid-arch"

TINY = ["model.embed_dims=[16,32,48,64]", "model.depths=[1,1,1,1]", "model.num_heads=[1,2,3,4]",
        "model.mlp_ratios=[2,2,2,2]", "model.sr_ratios=[4,2,1,1]"]
SMALL_RUN = ["task=train", "model=pvt_v2_b0", *TINY, "task.data.image_size=32", "task.data.num_train=256",
             "task.data.num_val=64", "task.batch_size=32", "task.progress=log", "task.precision=fp32"]


def run_app(argv: list[str]) -> tuple[int, str, str]:
    """``lucid-arch ARGV`` in-process where no capsys is at hand (a module fixture): (exit status, stdout, stderr)."""
    import contextlib
    import io

    from lucid_arch.cli import app

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            app.main(argv)
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


def history(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path))


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)


# ------------------------------------------------------------------------ optimizer and schedule


def test_weight_decay_skips_norms_biases_position_embeddings_and_cls_token():
    model = build_model(load_config("pvt_tiny", ["model.depths=[1,1,1,1]"]))
    decay, no_decay = param_groups(model, 0.05)
    names = {id(p): n for n, p in model.named_parameters()}
    skipped = {names[id(p)] for p in no_decay["params"]}
    decayed = {names[id(p)] for p in decay["params"]}
    assert no_decay["weight_decay"] == 0.0 and decay["weight_decay"] == 0.05
    assert {"cls_token", "stages.0.pos_embed", "stages.3.pos_embed", "patch_embed.norm.weight", "head.bias"} <= skipped
    assert {n for n in skipped if n.endswith((".bias", "norm.weight", "norm1.weight"))}
    assert {"head.weight", "patch_embed.proj.weight", "stages.0.blocks.0.attn.q.weight"} <= decayed
    assert all(p.ndim >= 2 for p in decay["params"])
    assert len(decayed) + len(skipped) == len(list(model.parameters()))


def test_warmup_then_cosine():
    lrs = [lr_at(s, 100, 10, 1e-3, 1e-6, 1e-5) for s in range(100)]
    assert lrs[0] == pytest.approx(1e-6)
    assert lrs[10] == pytest.approx(1e-3)
    assert all(a < b for a, b in zip(lrs[:10], lrs[1:11]))  # rising warm-up
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))  # falling cosine
    assert lrs[-1] == pytest.approx(1e-5)
    assert lrs[55] == pytest.approx(1e-5 + 0.5 * (1e-3 - 1e-5) * (1 + math.cos(math.pi * 45 / 89)))
    assert lr_at(0, 10, 0, 1e-3, 1e-6, 1e-5) == pytest.approx(1e-3)  # no warm-up


# ------------------------------------------------------------------------------------ learning


def test_the_recipe_learns_the_shapes_it_is_shown(capsys, tmp_path):
    # 80 shapes images as a folder whose val/ holds the same images as train/: the model must learn
    # them through the training pipeline (augmentation off) and name them through the validation
    # one, so the optimizer, the schedule and the image-label pairing of both pipelines are checked
    # in ~75 steps of the tiny model (about 10 s on two cores). How far the recipe generalises is
    # shown by examples/train_shapes (pvt_v2_b0: 70% on unseen shapes in 10 epochs); training for
    # that here would cost minutes on a CPU without bf16.
    from PIL import Image

    from lucid_arch.data.shapes import CLASSES, render_shapes

    images, labels = render_shapes(80, 32, seed=3)
    for split in ("train", "val"):
        for i, (image, label) in enumerate(zip(images, labels)):
            folder = tmp_path / "shapes" / split / CLASSES[label]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image.permute(1, 2, 0).numpy()).save(folder / f"{i}.png")
    code, out, err = run_main(["task=train", "model=pvt_v2_b0", *TINY, "task.data.dataset=folder", f"task.data.root={tmp_path / 'shapes'}",
                               "task.data.image_size=32", "task.data.augment=false", "task.epochs=12", "task.batch_size=16",
                               "task.optimizer.lr=2e-3", "task.label_smoothing=0", "task.eval_every=4", "task.precision=fp32",
                               "task.progress=log", "task.log_every=10", "format=json", "hydra.run.dir=run"], capsys)
    assert code == 0, err
    records = history(Path("run"))
    assert len(records) == 12
    assert records[-1]["train_loss"] < records[0]["train_loss"] - 1.0
    assert records[-1]["val_acc"] >= 0.8, records[-1]  # chance is 0.10 on the 10 classes
    summary = json.loads(Path("run/summary.json").read_text())
    assert summary["status"] == "ok"
    assert summary["metrics"]["val_acc"] == pytest.approx(records[-1]["val_acc"], abs=1e-4)
    assert summary["train"]["classes"] == sorted(CLASSES)
    assert json.loads(out)["metrics"]["val_acc"] == summary["metrics"]["val_acc"]
    assert "epoch 12/12" in err and "img/s" in err


def test_outputs_weights_config_and_checkpoints(capsys):
    code, out, err = run_main([*SMALL_RUN, "task.data.num_train=64", "task.epochs=3", "task.keep_checkpoints=2", "format=text",
                               "hydra.run.dir=run"], capsys)
    assert code == 0, err
    run = Path("run")
    steps = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert steps == ["step_00000004", "step_00000006"]  # 2 steps an epoch; the oldest pruned
    for d in steps:
        assert {p.name for p in (run / "checkpoints" / d).iterdir()} == {"model.safetensors", "config.yaml", "trainer_state.pt"}
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["model"]["num_classes"] == 10 and saved["model"]["img_size"] == 32  # as trained, not the variant's 1000/224
    assert saved["task"]["epochs"] == 3
    final = weights(run / "model.safetensors")
    assert torch.equal(final["head.weight"], weights(run / "checkpoints/step_00000006/model.safetensors")["head.weight"])
    rebuilt = build_model({**saved["model"]})
    rebuilt.load_state_dict(final)  # the saved config rebuilds the trained model
    assert "val acc" in out and "epoch" in out and str(run.resolve() / "model.safetensors") in out


def test_trains_at_height_and_width(capsys):
    code, out, err = run_main([*SMALL_RUN, "task.data.image_size=[32,48]", "task.data.num_train=64", "task.epochs=1",
                               "format=text", "hydra.run.dir=wide"], capsys)
    assert code == 0, err
    saved = yaml.safe_load(Path("wide/config.yaml").read_text())
    assert saved["model"]["img_size"] == [32, 48] and saved["task"]["data"]["image_size"] == [32, 48]
    summary = json.loads(Path("wide/summary.json").read_text())
    trained = load_config("pvt_v2_b0", [o for o in TINY] + ["model.num_classes=10", "model.img_size=[32,48]"])
    from lucid_arch import analyze

    assert summary["metrics"]["gflops"] == round(analyze(trained).gflops, 4) and "at 32x48 px" in out


# -------------------------------------------------------------------------------------- resume

RESUMABLE = [*SMALL_RUN, "task.epochs=2", "task.checkpoint_every=5", "task.keep_checkpoints=50"]  # checkpoints at steps 5, 8, 10, 15, 16


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, str]:
    """An uninterrupted 2-epoch run (in-process) and its stderr; task.resume=auto, which in a fresh directory starts from scratch."""
    run_dir = tmp_path_factory.mktemp("trained") / "full"
    with pytest.MonkeyPatch.context() as mp:  # as _in_tmp does for each test
        mp.chdir(run_dir.parent)
        for var in ("HYDRA_FULL_ERROR", "RANK", "WORLD_SIZE", "LOCAL_RANK"):
            mp.delenv(var, raising=False)
        code, _, err = run_app([*RESUMABLE, "task.resume=auto", f"hydra.run.dir={run_dir}"])
    assert code == 0, err
    return run_dir, err


def test_resume_from_a_mid_epoch_checkpoint_matches_an_uninterrupted_run(trained, capsys):
    full, _ = trained
    code, _, err = run_main([*RESUMABLE, f"task.resume={full}/checkpoints/step_00000005", "hydra.run.dir=resumed"], capsys)
    assert code == 0, err
    assert f"resuming from {full}/checkpoints/step_00000005 at step 5 of 16" in err
    a, b = history(full), history(Path("resumed"))
    strip = lambda r: {k: v for k, v in r.items() if k not in ("images_per_second", "epoch_seconds")}  # noqa: E731
    assert [strip(r) for r in a] == [strip(r) for r in b]
    wa, wb = weights(full / "model.safetensors"), weights(Path("resumed/model.safetensors"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_a_killed_run_resumes_to_the_same_final_metrics(tmp_path):
    """The console script killed by SIGKILL after its first checkpoint, run again: the uninterrupted run's end.

    All three runs are processes of their own: bit-for-bit equality holds between runs in like
    processes, and a pytest worker's torch may carry state other test files set (onnxruntime's, say).
    """
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(SCRIPT), *RESUMABLE, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)

    full = run("hydra.run.dir=full")
    assert full.returncode == 0, full.stderr
    proc = subprocess.Popen([str(SCRIPT), *RESUMABLE, "hydra.run.dir=killed"], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list((tmp_path / "killed").glob("checkpoints/step_*")) and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (tmp_path / "killed/model.safetensors").exists()  # it really stopped before the end
    summary = json.loads((tmp_path / "killed/summary.json").read_text())
    assert summary["status"] == "running"  # what a sweep report shows as a stopped job

    resumed = run("task.resume=auto", "hydra.run.dir=killed")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from" in resumed.stderr
    a, b = history(tmp_path / "full"), history(tmp_path / "killed")
    assert [(r["epoch"], r["train_loss"], r["val_loss"], r["val_acc"]) for r in a] == \
           [(r["epoch"], r["train_loss"], r["val_loss"], r["val_acc"]) for r in b]
    wa, wb = weights(tmp_path / "full/model.safetensors"), weights(tmp_path / "killed/model.safetensors")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert json.loads((tmp_path / "killed/summary.json").read_text())["status"] == "ok"


def test_resume_refuses_a_different_recipe(trained, capsys):
    full, _ = trained
    code, _, err = run_main([*RESUMABLE, "task.optimizer.lr=0.01", f"task.resume={full}", "hydra.run.dir=second"], capsys)
    assert code == 2
    assert "task.optimizer.lr (0.0005 -> 0.01)" in err and f"{full}/checkpoints/step_00000016" in err
    code, _, err = run_main([*SMALL_RUN, "task.resume=nowhere", "hydra.run.dir=third"], capsys)
    assert code == 2 and "task.resume = 'nowhere': no such file or directory" in err


def test_resume_of_a_checkpoint_from_before_a_setting_existed(trained, capsys):
    """A checkpoint written before model.neck, model.decode_head, model.pretrain_img_size and
    task.optimizer.decode_head_lr_mult existed was trained as their defaults say: it resumes, unless
    the run now sets one of them otherwise."""
    import shutil

    full, _ = trained
    checkpoint = Path("old/checkpoints/step_00000016")  # the run's last, copied: edited below
    shutil.copytree(full / "checkpoints" / checkpoint.name, checkpoint)
    saved = yaml.safe_load((checkpoint / "config.yaml").read_text())
    for key in ("neck", "decode_head", "pretrain_img_size"):
        del saved["model"][key]
    del saved["task"]["optimizer"]["decode_head_lr_mult"]
    (checkpoint / "config.yaml").write_text(yaml.safe_dump(saved, sort_keys=False))
    code, _, err = run_main([*SMALL_RUN, "task.epochs=1", "task.optimizer.decode_head_lr_mult=1", f"task.resume={checkpoint}",
                             "hydra.run.dir=changed"], capsys)
    assert code == 2 and "task.optimizer.decode_head_lr_mult (10.0 -> 1.0)" in err and "task.epochs" in err
    code, _, err = run_main([*SMALL_RUN, "task.epochs=2", f"task.resume={checkpoint}", "hydra.run.dir=resumed"], capsys)
    assert code == 0, err
    assert f"resuming from {checkpoint}" in err


def test_resume_auto_in_a_fresh_directory_starts_from_scratch(trained):
    full, err = trained  # trained with task.resume=auto
    assert "resuming" not in err and [r["epoch"] for r in history(full)] == [1, 2]


# ------------------------------------------------------------------------------ bad configs


@pytest.mark.parametrize(
    "override, message",
    [
        ("task.batch_size=0", "task.batch_size = 0: must be at least 1."),
        ("task.data.dataset=imagenet", "task.data.dataset = 'imagenet': choose one of shapes, folder, coco."),
        ("task.data.dataset=folder", "task.data.root = None: dataset=folder needs the image folder"),
        ("task.precision=fp16", "task.precision = 'fp16': choose one of auto, fp32, bf16."),
        ("task.schedule.warmup_epochs=5", "task.schedule.warmup_epochs = 5.0: is longer than the run's 1 epochs."),
        ("task.batch_size=1000", "task.batch_size = 1000 is larger than the 256 training images"),
        ("task.data.root=/nonexistent task.data.dataset=folder", "/nonexistent"),
        ("model.pretrained=/nonexistent/w.safetensors", "/nonexistent/w.safetensors"),
        ("task.data.image_size=[32]", "task.data.image_size = [32]: give one side or [height, width]"),
        ("model.features_only=true", "model.features_only = true: task=train trains a classifier"),
        ("task.data.image_size=0", "task.data.image_size = 0: give one side or [height, width]"),
    ],
)
def test_bad_training_settings_are_one_paragraph_errors(override, message, capsys):
    code, _, err = run_main([*SMALL_RUN, "task.epochs=1", *override.split(), "hydra.run.dir=bad"], capsys)
    assert code == 2 and message in err, err
    assert "Traceback" not in err


# ------------------------------------------------------------------------------ image folders


def test_trains_on_an_image_folder_skipping_a_corrupt_image(tmp_path, capsys):
    from PIL import Image

    g = torch.Generator().manual_seed(0)
    for split, count in (("train", 9), ("val", 3)):
        for c, name in enumerate(["cats", "dogs", "owls"]):
            (tmp_path / "images" / split / name).mkdir(parents=True)
            for i in range(count):
                pixels = (torch.rand(40, 48, 3, generator=g) * 80 + 60 * c).clamp(0, 255).to(torch.uint8).numpy()
                Image.fromarray(pixels).save(tmp_path / "images" / split / name / f"{i}.png")
    bad = tmp_path / "images" / "train" / "dogs" / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    folder = ["task=train", "model=pvt_v2_b0", *TINY, "task.data.dataset=folder", f"task.data.root={tmp_path / 'images'}",
              "task.data.image_size=32", "task.progress=log", "format=json"]
    code, out, err = run_main([*folder, "task.batch_size=8", "task.epochs=1", "hydra.run.dir=run"], capsys)
    assert code == 0, err
    assert str(bad) in err  # reported by path, and the run went on
    summary = json.loads(Path("run/summary.json").read_text())
    assert summary["train"]["classes"] == ["cats", "dogs", "owls"]
    assert yaml.safe_load(Path("run/config.yaml").read_text())["model"]["num_classes"] == 3
    # One image per batch: the corrupt image's batch is empty, and its step is skipped.
    code, _, err = run_main([*folder, "task.batch_size=1", "task.epochs=1", "hydra.run.dir=run1"], capsys)
    assert code == 0, err
    assert str(bad) in err
    assert history(Path("run1"))[0]["step"] == 28  # 27 readable images + the skipped one


# ------------------------------------------------------------------------ pretrained, sweeps


def test_finetune_from_a_training_run_reinitialises_the_head(trained, tmp_path, capsys):
    pre, _ = trained
    images = tmp_path / "two"
    from PIL import Image

    for name in ("a", "b"):
        (images / name).mkdir(parents=True)
        for i in range(8):
            Image.new("RGB", (32, 32), (40 * i, 200 if name == "a" else 20, 90)).save(images / name / f"{i}.png")
    code, _, err = run_main([*SMALL_RUN, "task.epochs=1", "task.data.dataset=folder", f"task.data.root={images}", "task.batch_size=4",
                             "task.optimizer.lr=1e-12", "task.schedule.warmup_lr=1e-12", "task.schedule.min_lr=1e-12",
                             f"model.pretrained={pre}", "hydra.run.dir=tuned"], capsys)
    assert code == 0, err
    before, after = weights(pre / "model.safetensors"), weights(Path("tuned/model.safetensors"))
    assert after["head.weight"].shape == (2, 64) and before["head.weight"].shape == (10, 64)
    assert torch.allclose(after["patch_embed.proj.weight"], before["patch_embed.proj.weight"], atol=1e-6)


def test_a_training_sweep_tabulates_accuracy_params_flops_and_throughput(capsys):
    code, out, err = run_main(["-m", *SMALL_RUN, "task.data.num_train=64", "task.epochs=1", "model.depths=[1,1,1,1],[1,1,2,1]",
                               "hydra.sweep.dir=sweep"], capsys)
    assert code == 0, err
    table = Path("sweep/sweep.md").read_text()
    for column in ("val_acc", "params", "gflops", "train img/s"):
        assert column in table
    rows = [r for r in Path("sweep/sweep.csv").read_text().splitlines()[1:]]
    assert len(rows) == 2 and all(",ok," in r for r in rows)
    assert out.count("val acc") == 2  # one line per job


# ----------------------------------------------------------------------------------------- DDP


def test_ddp_on_two_cpu_processes_matches_one_process_and_only_rank_0_writes(tmp_path, capsys, monkeypatch):
    # No augmentation or drop-path: the two ranks' half batches average to the one-process batch.
    args = [*SMALL_RUN, "task.data.num_train=64", "task.epochs=1", "task.data.augment=false", "task.progress=none", "task.device=cpu"]
    monkeypatch.chdir(tmp_path)
    code, _, err = run_main([*args, "hydra.run.dir=single"], capsys)
    assert code == 0, err
    env = {"OMP_NUM_THREADS": "1", "TMPDIR": str(tmp_path / "scratch")}
    (tmp_path / "scratch").mkdir()
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                          "-m", "lucid_arch.cli.app", *args, "hydra.run.dir=ddp"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=240, env={**{k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}, **env})
    assert ddp.returncode == 0, ddp.stderr
    summary = json.loads((tmp_path / "ddp/summary.json").read_text())
    assert summary["train"]["processes"] == 2
    a, b = history(tmp_path / "single"), history(tmp_path / "ddp")
    assert b[0]["val_acc"] == pytest.approx(a[0]["val_acc"], abs=2 / 64)
    assert b[0]["train_loss"] == pytest.approx(a[0]["train_loss"], abs=1e-3)
    wa, wb = weights(tmp_path / "single/model.safetensors"), weights(tmp_path / "ddp/model.safetensors")
    assert max((wa[k] - wb[k]).abs().max().item() for k in wa) < 1e-3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp", "scratch", "single"]  # rank 1 left nothing behind
    assert not list((tmp_path / "scratch").glob("lucid-arch-rank*"))  # its scratch Hydra dir is removed


# ------------------------------------------------------------------------------------ progress


def test_a_terminal_gets_a_live_progress_bar(tmp_path):
    args = [a for a in SMALL_RUN if a != "task.progress=log"]
    status, err, out = run_in_terminal([str(SCRIPT), *args, "task.data.num_train=64", "task.epochs=2", "format=json", "hydra.run.dir=run"],
                                       tmp_path, "stderr")
    assert status == 0, err
    assert "━" in err and "epoch 1/2" in err and "img/s" in err  # the bar, on stderr
    assert "epoch 2/2: train loss" in err  # each epoch's line stays after its bar
    assert json.loads(out)["metrics"]["val_acc"] >= 0  # stdout stays clean JSON


# ------------------------------------------------------------------ one writer, damaged checkpoints


def test_a_second_writer_of_a_run_directory_gets_a_clear_error(capsys):
    from lucid_arch.training.run_lock import run_lock

    with run_lock(Path("run")):  # another training holds it
        code, _, err = run_main([*SMALL_RUN, "task.epochs=1", "hydra.run.dir=run"], capsys)
    assert code == 2 and "Traceback" not in err
    assert "run is being written by another training (pid" in err and "hydra.run.dir" in err
    assert not (Path("run") / "checkpoints").exists()
    with run_lock(Path("run")):  # the refused run left no lock behind (a finished one releases its own: see below)
        pass


def test_resume_skips_a_damaged_checkpoint_and_refuses_a_named_one(capsys):
    import argparse
    import shutil

    from lucid_arch.training.checkpoint import read_checkpoint
    from lucid_arch.weights.files import CheckpointError

    common = [*SMALL_RUN, "task.epochs=2", "task.keep_checkpoints=5", "task.data.num_train=64"]  # 2 steps an epoch
    assert run_main([*common, "hydra.run.dir=full"], capsys)[0] == 0
    final = ("model.safetensors", "summary.json", "metrics.jsonl")  # the run's own, not its checkpoints'
    shutil.copytree("full", "auto", ignore=lambda where, names: [n for n in names if where == "full" and n in final])
    newest = Path("auto/checkpoints/step_00000004/trainer_state.pt")
    newest.write_bytes(newest.read_bytes()[:300])  # truncated, as by a full disk

    code, _, err = run_main([*common, "task.resume=auto", "hydra.run.dir=auto"], capsys)
    assert code == 0, err
    assert f"{newest} is damaged (" in err and "auto/checkpoints/step_00000002 at step 2 of 4" in err  # absolute paths
    wa, wb = weights(Path("full/model.safetensors")), weights(Path("auto/model.safetensors"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)

    for damage, needle in (("code", "need code to unpickle"), ("empty", "checkpoint file")):
        if damage == "code":
            torch.save({"step": 2, "payload": argparse.Namespace(code=True)}, newest)
        else:
            newest.write_bytes(b"")
        code, _, err = run_main([*common, f"task.resume={newest.parent}", "hydra.run.dir=named"], capsys)
        assert code == 2 and "Traceback" not in err and str(newest) in err, err
        assert needle in err and err.count("\n") == 1
        with pytest.raises(CheckpointError, match="damaged"):  # the same from Python
            read_checkpoint(newest.parent)
    Path("auto/checkpoints/step_00000002/model.safetensors").write_bytes(b"\0" * 10)
    code, _, err = run_main([*common, "task.resume=auto", "hydra.run.dir=auto"], capsys)
    assert code == 2 and "/auto is damaged (2; the newest, " in err and "task.resume=auto: every checkpoint of " in err


def test_a_folder_of_unreadable_images_is_an_error_not_chance_accuracy(tmp_path, capsys):
    for name in ("cats", "dogs"):
        (tmp_path / "bad" / name).mkdir(parents=True)
        for i in range(4):
            (tmp_path / "bad" / name / f"{i}.jpg").write_bytes(b"<html>not found</html>")
    code, _, err = run_main(["task=train", "model=pvt_v2_b0", *TINY, "task.data.dataset=folder", f"task.data.root={tmp_path / 'bad'}",
                             "task.data.image_size=32", "task.batch_size=2", "task.epochs=1", "hydra.run.dir=run"], capsys)
    assert code == 2 and "Traceback" not in err
    assert f"Every one of the 6 images of the training split of {tmp_path / 'bad'} was unreadable" in err
    assert json.loads(Path("run/summary.json").read_text())["status"] == "failed"
