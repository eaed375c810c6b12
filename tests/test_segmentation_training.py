"""task=train with a segmentation model: per-pixel loss and metrics, learning, resume, DDP, SLURM, sweeps.

Runs use a tiny SegFormer (four 1-block stages, a 32- or 64-channel head) on 32-px images, so
each trains in seconds. The built-in shapes masks, the mask folders' reading and the paired
augmentation are tested in test_data.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from conftest import run_main
from test_training import _in_tmp  # noqa: F401 -- the same autouse fixture: each test in its tmp dir, no rank variables

TINY_SEG = ["model=segformer_b0", "model.embed_dims=[16,32,48,64]", "model.depths=[1,1,1,1]", "model.num_heads=[1,2,3,4]",
            "model.mlp_ratios=[2,2,2,2]", "model.sr_ratios=[4,2,1,1]", "model.decode_head.channels=32"]
SHAPES_SEG = ["task=train", *TINY_SEG, "task.data.image_size=32", "task.data.num_train=64", "task.data.num_val=32",
              "task.batch_size=16", "task.progress=log", "task.precision=fp32", "task.threads=1"]
SCRIPT = Path(sys.executable).parent / "lucid-arch"
COLOURS = [(200, 40, 40), (40, 190, 60), (50, 70, 210)]
# For the DDP comparisons: the head's linear biases feed a BatchNorm, so their true gradient is 0
# and AdamW turns the rounding noise in it into full steps; at 10x the rate those steps alone
# part two exact runs by ~3e-3. At one rate the comparison sees the machinery, not that noise.
ONE_RATE = ["task.optimizer.decode_head_lr_mult=1"]


def history(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path))


def timeless(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in ("images_per_second", "epoch_seconds")} for r in records]


def colour_regions(root: Path, n_train: int = 48, n_val: int = 16, seed: int = 0) -> Path:
    """root/images/{train,val}/i.png: three rectangles, red, green and blue, on grey noise (40x48 px);
    root/masks/...: their class ids 1-3, 0 around them, classes.txt naming them."""
    from PIL import Image

    g = torch.Generator().manual_seed(seed)
    for split, count in (("train", n_train), ("val", n_val)):
        for d in ("images", "masks"):
            (root / d / split).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            image = (torch.rand(40, 48, 3, generator=g) * 60 + 100).to(torch.uint8)
            mask = torch.zeros(40, 48, dtype=torch.uint8)
            for c, colour in enumerate(COLOURS):
                y0, x0 = (torch.rand(2, generator=g) * torch.tensor([28, 36])).long().tolist()
                h, w = torch.randint(8, 16, (2,), generator=g).tolist()
                image[y0 : y0 + h, x0 : x0 + w] = torch.tensor(colour, dtype=torch.uint8)
                mask[y0 : y0 + h, x0 : x0 + w] = c + 1
            Image.fromarray(image.numpy()).save(root / "images" / split / f"{i}.png")
            Image.fromarray(mask.numpy()).save(root / "masks" / split / f"{i}.png")
    (root / "masks" / "classes.txt").write_text("background\nred\ngreen\nblue\n")
    return root


# ------------------------------------------------------------------------------------ metrics


def test_pixel_accuracy_and_miou_from_hand_made_confusion_matrices():
    from lucid_arch.training.seg_metrics import class_iou, confusion_matrix, mean_iou, pixel_accuracy

    label = torch.tensor([[0, 0, 1, 1], [2, 2, 255, 1]])
    pred = torch.tensor([[0, 1, 1, 1], [2, 0, 3, 1]])  # the ignored pixel's prediction (3) counts nowhere
    cm = confusion_matrix(pred, label, 4)
    assert cm.tolist() == [[1, 1, 0, 0], [0, 3, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]]
    assert pixel_accuracy(cm) == pytest.approx(5 / 7)
    ious = class_iou(cm)
    assert ious[:3] == pytest.approx([1 / 3, 3 / 4, 1 / 2]) and ious[3] is None  # class 3: neither labelled nor predicted
    assert mean_iou(cm) == pytest.approx((1 / 3 + 3 / 4 + 1 / 2) / 3)
    # A class predicted but never labelled is all false positives: IoU 0, and it counts.
    cm2 = confusion_matrix(torch.tensor([3, 1]), torch.tensor([0, 1]), 4)
    assert class_iou(cm2) == [0.0, 1.0, None, 0.0] and mean_iou(cm2) == pytest.approx(1 / 3)
    # Every pixel ignored: nothing to score.
    empty = confusion_matrix(torch.tensor([1, 2]), torch.tensor([255, 255]), 3)
    assert empty.sum() == 0 and pixel_accuracy(empty) == 0.0 and mean_iou(empty) == 0.0
    with pytest.raises(ValueError, match="outside 0..3"):
        confusion_matrix(torch.tensor([0]), torch.tensor([7]), 4)


def test_segmentation_loss_upsamples_ignores_255_and_a_blank_batch_gives_zero():
    import torch.nn.functional as F

    from lucid_arch.training.objectives import Segmentation

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 5, 4, 4, generator=g, requires_grad=True)
    y = torch.randint(0, 5, (2, 16, 16), generator=g)
    y[0, :3] = 255
    objective = Segmentation(5, label_smoothing=0.0)
    loss, sums = objective.train_step(logits, y, 1.0)
    up = F.interpolate(logits, size=(16, 16), mode="bilinear", align_corners=False)
    keep = y != 255
    per_pixel = F.cross_entropy(up, y.clamp(max=4), reduction="none")[keep]
    assert loss.item() == pytest.approx(per_pixel.sum().item() / y.numel(), rel=1e-6)  # over all pixels: the same divisor on every rank
    labelled = int(keep.sum())
    assert sums[2].item() == labelled and sums[3].item() == 2
    assert objective.running(sums.tolist())[0] == pytest.approx(per_pixel.mean().item(), rel=1e-6)  # reported per labelled pixel
    # Label smoothing, as configured, smooths the labelled pixels only.
    smoothed = Segmentation(5, label_smoothing=0.1).train_step(logits, y, 1.0)[0]
    expected = F.cross_entropy(up.permute(0, 2, 3, 1)[keep], y[keep], label_smoothing=0.1, reduction="sum") / y.numel()
    assert smoothed.item() == pytest.approx(expected.item(), rel=1e-6)
    counts = objective.eval_counts(logits.detach(), y)
    record = objective.eval_record(counts)
    assert counts[2:].sum().item() == labelled and 0 <= record["val_miou"] <= 1 and len(record["val_iou"]) == 5
    # The weight-0 batch a rank joins DDP with when all its images were unreadable: loss 0, finite gradients.
    blank = objective.blank_target((16, 16))
    zero, _ = objective.train_step(logits, blank.long().expand(2, -1, -1), 0.0)
    zero.backward()
    assert zero.item() == 0.0 and torch.isfinite(logits.grad).all()
    # Validation maps that are all ignore: nothing to score, an error on the masks (not a 0% mIoU).
    from lucid_arch.data import MaskError

    with pytest.raises(MaskError, match="Every pixel of the 2 validation label maps is 255") as info:
        objective.eval_record(objective.eval_counts(logits.detach(), torch.full_like(y, 255)))
    assert info.value.key == "task.data.masks"


def test_the_decode_head_can_learn_faster_than_the_encoder():
    import dataclasses

    from lucid_arch import build_model, load_config
    from lucid_arch.config.train_schema import OptimizerConfig
    from lucid_arch.training.optim import make_optimizer, set_lr

    model = build_model(load_config("segformer_b0", ["model.depths=[1,1,1,1]", "model.num_classes=3", "model.img_size=32"]))
    names = {id(p): n for n, p in model.named_parameters()}
    optimizer = make_optimizer(model, dataclasses.replace(OptimizerConfig(), decode_head_lr_mult=10.0))
    set_lr(optimizer, 1e-3)
    for group in optimizer.param_groups:
        dense = {names[id(p)].startswith("decode_head.") for p in group["params"]}
        assert len(dense) == 1 and group["lr"] == pytest.approx(1e-2 if dense == {True} else 1e-3)
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(names)
    assert {g["weight_decay"] for g in optimizer.param_groups} == {0.0, 0.05}  # the decay exclusions stay
    assert len(make_optimizer(model, dataclasses.replace(OptimizerConfig(), decode_head_lr_mult=1.0)).param_groups) == 2
    classifier = build_model(load_config("pvt_v2_b0", ["model.depths=[1,1,1,1]", "model.num_classes=3", "model.img_size=32"]))
    plain = make_optimizer(classifier, OptimizerConfig())  # the default multiplier: a classifier's groups are as they were
    assert OptimizerConfig().decode_head_lr_mult == 10.0 and len(plain.param_groups) == 2 and "lr_mult" not in plain.param_groups[0]


# ----------------------------------------------------------------------------------- learning


def test_a_tiny_segformer_learns_coloured_regions_from_a_mask_folder(tmp_path, capsys):
    # Colour says the class here, so what is checked is the pipeline: pairs read and resized alike,
    # cropped and flipped alike, the loss on upsampled logits, mIoU on unseen images (~10 s).
    root = colour_regions(tmp_path / "colours")
    code, out, err = run_main(["task=train", *TINY_SEG, "model.decode_head.channels=64", "task.data.dataset=folder",
                               f"task.data.root={root / 'images'}", f"task.data.masks={root / 'masks'}", "task.data.image_size=32",
                               "task.batch_size=8", "task.epochs=12", "task.optimizer.lr=5e-3", "task.label_smoothing=0",
                               "task.eval_every=6", "task.precision=fp32", "task.progress=log", "task.log_every=6", "task.threads=1",
                               "format=text", "hydra.run.dir=run"], capsys)
    assert code == 0, err
    records = history(Path("run"))
    assert len(records) == 12 and records[-1]["train_loss"] < records[0]["train_loss"] - 0.5
    final = records[-1]
    background = 0.78  # share of background pixels: predicting it everywhere scores mIoU 0.78 / 4 = 0.2
    assert final["val_miou"] > 0.45 and final["val_pixel_acc"] > background + 0.05, final
    assert len(final["val_iou"]) == 4 and min(final["val_iou"]) > 0.2  # every colour found
    assert {"train_pixel_acc", "val_pixel_acc", "val_miou"} <= final.keys() and "val_acc" not in final
    summary = json.loads(Path("run/summary.json").read_text())
    assert list(summary["metrics"]) == ["params", "gflops", "val_miou", "best_val_miou", "val_pixel_acc", "train img/s", "train min"]
    assert summary["metrics"]["val_miou"] == pytest.approx(final["val_miou"], abs=1e-4)
    assert summary["train"]["classes"] == ["background", "red", "green", "blue"]
    assert yaml.safe_load(Path("run/config.yaml").read_text())["model"]["num_classes"] == 4
    assert "val mIoU" in out and "train pixel acc" in out and "pixel acc" in err and "mIoU" in err


def test_the_shapes_masks_train_and_a_bad_mask_stops_a_folder_run(tmp_path, capsys):
    code, out, err = run_main([*SHAPES_SEG, "task.epochs=1", "format=json", "hydra.run.dir=shapes"], capsys)
    assert code == 0, err
    summary = json.loads(Path("shapes/summary.json").read_text())
    assert summary["train"]["classes"][0] == "background" and len(summary["train"]["classes"]) == 11
    assert 0 <= json.loads(out)["metrics"]["val_miou"] <= 1 and len(history(Path("shapes"))[0]["val_iou"]) == 11

    root = colour_regions(tmp_path / "colours", n_train=4, n_val=2)
    (root / "masks" / "classes.txt").write_text("background\nred\ngreen\n")  # three names; the masks use id 3 too
    code, _, err = run_main([*SHAPES_SEG, "task.epochs=1", "task.batch_size=2", "task.data.dataset=folder",
                             f"task.data.root={root / 'images'}", f"task.data.masks={root / 'masks'}", "hydra.run.dir=bad"], capsys)
    assert code == 2 and "Traceback" not in err
    assert f"Mask {root / 'masks' / 'train'}" in err and "holds class id(s) 3, but there are 3 classes" in err

    from PIL import Image

    (root / "masks" / "classes.txt").write_text("background\nred\ngreen\nblue\n")
    for mask in (root / "masks" / "train").iterdir():  # every training mask at half size: no usable pair
        Image.new("L", (24, 20)).save(mask)
    code, _, err = run_main([*SHAPES_SEG, "task.epochs=1", "task.batch_size=2", "task.data.dataset=folder",
                             f"task.data.root={root / 'images'}", f"task.data.masks={root / 'masks'}", "hydra.run.dir=small"], capsys)
    assert code == 2 and "Traceback" not in err and err.count("lucid-arch: skipping") == 4
    assert f"Every one of the 4 image and label-map pairs of the training split of {root / 'images'} was unusable" in err


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["task.data.dataset=folder", "task.data.root=."],
         "task.data.masks is not set, and a segmentation model learns from per-pixel labels"),
        (["model=pvt_v2_b0", "task.data.dataset=folder", "task.data.root=.", "task.data.masks=."],
         "task.data.masks = '.' gives label maps, but the model is a classifier (no decode head)"),
        (["model=mit_b0"], "model.features_only = true: task=train trains a classifier or a segmentation model, and a backbone alone has no head"),
        (["task.data.masks=."], "task.data.masks = '.': label maps are read with dataset=folder"),
        (["task.data.num_classes=3"], "task.data.num_classes = 3: numbers the classes of task.data.masks's label maps"),
    ],
)
def test_segmentation_settings_that_do_not_fit_are_one_paragraph_errors(overrides, message, capsys):
    code, _, err = run_main([*SHAPES_SEG, "task.epochs=1", *overrides, "hydra.run.dir=bad"], capsys)
    assert code == 2 and message in err, err
    assert "Traceback" not in err


# ------------------------------------------------------------------------------------- resume


def test_resume_from_a_mid_epoch_checkpoint_matches_an_uninterrupted_run(capsys):
    common = [*SHAPES_SEG, "task.epochs=2", "task.checkpoint_every=3", "task.keep_checkpoints=10"]  # 4 steps an epoch
    assert run_main([*common, "hydra.run.dir=full"], capsys)[0] == 0
    code, _, err = run_main([*common, "task.resume=full/checkpoints/step_00000003", "hydra.run.dir=resumed"], capsys)
    assert code == 0, err
    assert "resuming from full/checkpoints/step_00000003 at step 3 of 8" in err
    assert timeless(history(Path("full"))) == timeless(history(Path("resumed")))
    wa, wb = weights(Path("full/model.safetensors")), weights(Path("resumed/model.safetensors"))
    assert any("running_mean" in k for k in wa)  # the head's BatchNorm statistics are part of the state
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


# ---------------------------------------------------------------------------------------- DDP


def _cross_rank_norm_worker(rank: int, store: str, out: str) -> None:
    import torch.distributed as dist

    from lucid_arch.training.cross_rank_norm import cross_rank_batch_norms

    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    try:
        torch.manual_seed(0)
        norm = torch.nn.BatchNorm2d(3)
        assert cross_rank_batch_norms(norm) == 1
        x = _norm_batch()[rank * 3 : rank * 3 + 3].clone().requires_grad_(True)
        y = norm(x)
        (y * _norm_weights()[rank * 3 : rank * 3 + 3]).sum().backward()
        torch.save({"y": y.detach(), "grad": x.grad, "mean": norm.running_mean, "var": norm.running_var,
                    "wgrad": norm.weight.grad}, f"{out}.{rank}")
    finally:
        dist.destroy_process_group()


def _norm_batch() -> torch.Tensor:
    """Six maps whose channels sit far from zero against their spread (as after a ReLU with a large bias)."""
    g = torch.Generator().manual_seed(1)
    return torch.randn(6, 3, 5, 4, generator=g) * torch.tensor([1.0, 0.1, 3.0]).view(1, 3, 1, 1) + torch.tensor(
        [0.0, 100.0, -50.0]).view(1, 3, 1, 1)


def _norm_weights() -> torch.Tensor:
    return torch.randn(6, 3, 5, 4, generator=torch.Generator().manual_seed(2))


def test_cross_rank_batch_norm_on_two_processes_is_one_batch_norm_over_both_halves(tmp_path):
    """Outputs, gradients and running statistics are BatchNorm's over the whole batch (computed in
    float64 here), even for a channel whose mean is 1,000 standard deviations from zero: there a
    one-pass variance (mean of squares minus squared mean) in float32 is mostly rounding, and
    the outputs come out several percent wrong."""
    import torch.multiprocessing as mp

    mp.spawn(_cross_rank_norm_worker, args=(str(tmp_path / "store"), str(tmp_path / "out")), nprocs=2)
    halves = [torch.load(tmp_path / f"out.{rank}") for rank in (0, 1)]
    two = {"y": torch.cat([h["y"] for h in halves]), "grad": torch.cat([h["grad"] for h in halves]),
           "wgrad": halves[0]["wgrad"] + halves[1]["wgrad"], "mean": halves[0]["mean"], "var": halves[0]["var"]}
    assert torch.equal(halves[0]["mean"], halves[1]["mean"]) and torch.equal(halves[0]["var"], halves[1]["var"])
    torch.manual_seed(0)
    norm = torch.nn.BatchNorm2d(3).double()
    x = _norm_batch().double().requires_grad_(True)
    y = norm(x)
    (y * _norm_weights().double()).sum().backward()
    exact = {"y": y.detach(), "grad": x.grad, "wgrad": norm.weight.grad, "mean": norm.running_mean, "var": norm.running_var}
    for key in two:
        error = (two[key].double() - exact[key]).abs().max().item()
        assert error <= 1e-4 * exact[key].abs().max().item(), (key, error)


def test_ddp_on_two_cpu_processes_matches_one_process(tmp_path, capsys):
    # No augmentation, drop-path or head dropout: the ranks' half batches average to the one batch,
    # and the head's BatchNorm normalises by the statistics of both halves (cross_rank_norm.py; with
    # each rank's own, the weights end ~0.07 apart in L2 after these 4 steps, as far as from a run at half the batch).
    args = [*SHAPES_SEG, "task.epochs=1", "task.data.augment=false", "model.decode_head.dropout=0", "task.progress=none",
            "task.device=cpu", "task.threads=null", *ONE_RATE]
    code, _, err = run_main([*args, "hydra.run.dir=single"], capsys)
    assert code == 0, err
    (tmp_path / "scratch").mkdir()
    env = {**{k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}, "OMP_NUM_THREADS": "1", "TMPDIR": str(tmp_path / "scratch")}
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                          "-m", "lucid_arch.cli.app", *args, "hydra.run.dir=ddp"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=240, env=env)
    assert ddp.returncode == 0, ddp.stderr
    summary = json.loads((tmp_path / "ddp/summary.json").read_text())
    assert summary["train"]["processes"] == 2 and "val_miou" in summary["metrics"]
    a, b = history(tmp_path / "single")[0], history(tmp_path / "ddp")[0]
    assert b["train_loss"] == pytest.approx(a["train_loss"], abs=1e-5)
    assert b["val_pixel_acc"] == pytest.approx(a["val_pixel_acc"], abs=2e-3) and b["val_miou"] == pytest.approx(a["val_miou"], abs=2e-3)
    wa, wb = weights(tmp_path / "single/model.safetensors"), weights(tmp_path / "ddp/model.safetensors")
    assert wa.keys() == wb.keys() and any("running_var" in k for k in wa)
    assert max((wa[k].double() - wb[k].double()).abs().max().item() for k in wa) < 1e-3
    distance = sum(((wa[k].double() - wb[k].double()) ** 2).sum().item() for k in wa if "num_batches" not in k) ** 0.5
    assert distance < 0.01
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp", "scratch", "single"]  # rank 1 wrote nothing


# ------------------------------------------------------------------------------------- sweeps


def test_a_segmentation_sweep_tabulates_and_plots_miou(capsys):
    from lucid_arch.cli.sweep_report import collect
    from lucid_arch.report.sweep_plot import figure

    code, out, err = run_main(["-m", *SHAPES_SEG, "task.epochs=2", "task.progress=none", "model.decode_head.channels=16,32",
                               "hydra.sweep.dir=sweep"], capsys)
    assert code == 0, err
    table = Path("sweep/sweep.md").read_text()
    header = next(line for line in table.splitlines() if line.startswith("| job"))
    assert [c.strip() for c in header.strip("|").split("|")] == ["job", "overrides", "model", "status", "params", "gflops", "val_miou",
                                                                 "best_val_miou", "val_pixel_acc", "train img/s", "train min", "error"]
    rows = collect(Path("sweep"))
    assert [r["status"] for r in rows] == ["ok", "ok"] and all(len(r["curve"]) == 2 for r in rows)
    assert [m for _, m in rows[0]["curve"]] == [r["val_miou"] for r in history(next(Path("sweep").glob("0_*")))]
    assert Path("sweep/sweep.png").stat().st_size > 10_000
    score, curves = figure(rows, "sweep").axes[:2]
    assert score.get_ylabel() == "validation mIoU (%)" and curves.get_ylabel() == "validation mIoU (%)"
    assert score.get_title() == "validation mIoU vs GFLOPs"
    assert out.count("val mIoU") == 2


# -------------------------------------------------------------------------------------- SLURM


def test_a_segmentation_model_on_two_slurm_nodes_matches_one_process(tmp_path, slurm_partition, slurm_job_name, capsys):
    """One tiny SegFormer trained by a 2-node x 1-task SLURM job (DDP over the nodes), against the same run in one process
    (in-process, while the job runs)."""
    args = [*SHAPES_SEG, "task.epochs=1", "task.data.augment=false", "model.decode_head.dropout=0", "task.progress=none",
            "task.device=cpu", "task.threads=1", *ONE_RATE]
    env = {**{k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}, "OMP_NUM_THREADS": "1"}
    slurm = ["-m", "hydra/launcher=submitit_slurm", f"hydra.launcher.partition={slurm_partition}", f"hydra.launcher.name={slurm_job_name}",
             "hydra.launcher.timeout_min=10", "hydra.launcher.nodes=2", "hydra.launcher.tasks_per_node=1", "hydra.launcher.cpus_per_task=1",
             "hydra.sweep.dir=sweep"]
    cluster = subprocess.Popen([str(SCRIPT), *slurm, *args], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    code, _, err = run_main([*args, "hydra.run.dir=single"], capsys)
    log = cluster.communicate(timeout=300)[0]
    assert code == 0, err
    assert cluster.returncode == 0, log[-3000:]
    (job,) = [p.parent for p in (tmp_path / "sweep").glob("0_*/summary.json")]
    record = json.loads((job / "summary.json").read_text())
    assert record["status"] == "ok" and record["train"]["world_size"] == 2 and record["train"]["launcher"] == "slurm"
    assert list(record["metrics"])[2:5] == ["val_miou", "best_val_miou", "val_pixel_acc"]
    a, b = history(tmp_path / "single")[0], history(job)[0]
    assert b["train_loss"] == pytest.approx(a["train_loss"], abs=1e-5) and b["val_miou"] == pytest.approx(a["val_miou"], abs=2e-3)
    wa, wb = weights(tmp_path / "single/model.safetensors"), weights(job / "model.safetensors")
    assert max((wa[k].double() - wb[k].double()).abs().max().item() for k in wa) < 1e-3
    assert "val_miou" in (tmp_path / "sweep/sweep.md").read_text()
