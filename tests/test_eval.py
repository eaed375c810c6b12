"""task=eval: mmsegmentation's figures from hand-made predictions, the per-class table with names,
confusion.png, single-scale and flip/multi-scale figures, classifiers, sweeps, refusals, and the
progress a pipe sees (training's included).

Two tiny runs are trained once for the module (a SegFormer on a colour-regions mask folder, a
PVT classifier on shapes; a few seconds together); each test evaluates them on 32-px images.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from conftest import run_main
from test_segmentation_training import SHAPES_SEG, TINY_SEG, colour_regions
from test_training import TINY, _in_tmp  # noqa: F401 -- the autouse fixture: each test in its tmp dir

COLOUR_NAMES = ["background", "red", "green", "blue"]
SHAPES_NAMES = ["disc", "ring", "square", "square_outline", "triangle", "plus", "ellipse", "star", "crescent", "stripes"]
FAST = ["task.threads=1", "task.progress=none"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """{"seg": a SegFormer run on colour regions (40x48 images, trained at 32), "cls": a classifier run on shapes,
    "colours": the data, "train_out": what the segmentation training printed (format=rich)}."""
    from lucid_arch.cli import app

    root = tmp_path_factory.mktemp("eval")
    colours = colour_regions(root / "colours", n_train=16, n_val=6)
    seg, cls = root / "seg", root / "cls"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(io.StringIO()):
        for argv in (["task=train", *TINY_SEG, "task.data.dataset=folder", f"task.data.root={colours / 'images'}",
                      f"task.data.masks={colours / 'masks'}", "task.data.image_size=32", "task.batch_size=8", "task.epochs=4",
                      "task.optimizer.lr=5e-3", "task.label_smoothing=0", "task.precision=fp32", "format=rich", *FAST,
                      f"hydra.run.dir={seg}"],
                     ["task=train", "model=pvt_v2_b0", *TINY, "task.data.image_size=32", "task.data.num_train=64",
                      "task.data.num_val=30", "task.batch_size=16", "task.epochs=1", "task.precision=fp32", "format=json", *FAST,
                      f"hydra.run.dir={cls}"]):
            try:
                app.main(argv)
            except SystemExit as exit:
                assert not exit.code, printed.getvalue()[-2000:]
    return {"seg": seg, "cls": cls, "colours": colours, "train_out": printed.getvalue()}


def summary(job: str | Path) -> dict:
    return json.loads((Path(job) / "summary.json").read_text())


def metrics_jsonl(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


# ------------------------------------------------------------------------------------ figures


def test_mmseg_figures_from_hand_made_predictions():
    from lucid_arch.evaluation import per_class, segmentation_metrics
    from lucid_arch.training.seg_metrics import confusion_matrix

    # Two "images" of class ids; 255 is ignored whatever is predicted there.
    labels = [torch.tensor([[0, 0, 0, 1], [1, 1, 255, 2]]), torch.tensor([[2, 2, 0, 0]])]
    preds = [torch.tensor([[0, 0, 1, 1], [1, 0, 3, 2]]), torch.tensor([[2, 3, 0, 0]])]
    cm = sum(confusion_matrix(p, y, 4) for p, y in zip(preds, labels))
    assert cm.tolist() == [[4, 1, 0, 0], [1, 2, 0, 0], [0, 0, 2, 1], [0, 0, 0, 0]]
    # By hand: 11 labelled pixels, 8 right. IoU: 0: 4/(5+5-4), 1: 2/(3+3-2), 2: 2/(3+2-2), 3: 0/(0+1-0) (predicted, never
    # labelled: all false positive, counted). Acc: 4/5, 2/3, 2/3, undefined for 3 (never labelled: left out of mAcc).
    iou = [4 / 6, 2 / 4, 2 / 3, 0.0]
    acc = [4 / 5, 2 / 3, 2 / 3]
    figures = segmentation_metrics(cm)
    assert figures == pytest.approx({"aAcc": 8 / 11, "mIoU": sum(iou) / 4, "mAcc": sum(acc) / 3})
    assert segmentation_metrics(cm, " (flip)").keys() == {"aAcc (flip)", "mIoU (flip)", "mAcc (flip)"}
    rows = per_class(["a", "b", "c", "d"], cm, segmentation=True)
    assert rows.scores["IoU"] == pytest.approx(iou) and rows.scores["Acc"][:3] == pytest.approx(acc) and rows.scores["Acc"][3] is None
    assert rows.counts == {"labelled pixels": [5, 3, 3, 0], "predicted pixels": [5, 3, 2, 1]}
    # A class neither labelled nor predicted has no IoU either, and drops out of mIoU (mmseg's nanmean).
    cm5 = torch.zeros(5, 5, dtype=torch.int64)
    cm5[:4, :4] = cm
    assert segmentation_metrics(cm5)["mIoU"] == pytest.approx(sum(iou) / 4)
    assert per_class(list("abcde"), cm5, segmentation=True).to_dict()["e"] == {
        "IoU": None, "Acc": None, "labelled pixels": 0, "predicted pixels": 0}


def test_classifier_figures_top1_top5_and_balanced_accuracy():
    from lucid_arch.evaluation import classification_metrics, per_class
    from lucid_arch.training.seg_metrics import confusion_matrix

    labels = torch.tensor([0, 0, 0, 0, 1, 2, 2, 5])
    preds = torch.tensor([0, 0, 0, 1, 1, 0, 2, 4])
    cm = confusion_matrix(preds, labels, 6)
    figures = classification_metrics(cm, top5_correct=7)
    # top-1 5/8; per-class accuracy 3/4, 1, 1/2, 0 over the four classes with images (mAcc), top-5 7/8.
    assert figures == pytest.approx({"top1": 5 / 8, "top5": 7 / 8, "mAcc": (3 / 4 + 1 + 1 / 2 + 0) / 4})
    assert "top5" not in classification_metrics(cm, None)
    rows = per_class(list("abcdef"), cm, segmentation=False)
    assert list(rows.scores) == ["Acc"] and rows.counts["labelled images"] == [4, 1, 2, 0, 0, 1]


def test_class_table_and_csv_name_every_class_and_leave_undefined_figures_blank(tmp_path):
    from lucid_arch.report.class_table import ClassFigures, class_table, write_class_csv
    from lucid_arch.report.tables import to_text

    figures = ClassFigures(["road", "sky, clouds"], {"IoU": [0.98765, None]}, {"pixels": [1234567, 0]})
    text = to_text(class_table(figures, "per class results:"))
    assert text.splitlines()[0] == "per class results:"
    assert "road" in text and "98.77" in text and "1,234,567" in text and "sky, clouds" in text and "nan" in text
    write_class_csv(figures, tmp_path / "per_class.csv")
    rows = list(csv.reader((tmp_path / "per_class.csv").open()))
    assert rows == [["id", "class", "IoU", "pixels"], ["0", "road", "0.987650", "1234567"], ["1", "sky, clouds", "", "0"]]
    assert not list(tmp_path.glob("*.tmp"))
    with pytest.raises(ValueError, match="column 'IoU' has 1 values for 2 classes"):
        ClassFigures(["a", "b"], {"IoU": [0.5]})


@pytest.mark.parametrize("classes", [2, 11, 150])
def test_the_confusion_png_is_readable_from_2_to_150_classes(tmp_path, classes):
    from PIL import Image

    from lucid_arch.report.confusion_plot import ALL_NAMES, confusion_figure, shown_ticks, write_confusion_png

    g = torch.Generator().manual_seed(classes)
    counts = (torch.rand(classes, classes, generator=g) * 10).long() + torch.eye(classes, dtype=torch.long) * 100
    counts[1] = 0  # a class never labelled: a grey row, not a row of zeros
    names = [f"class number {k} with a long name" for k in range(classes)]
    path = write_confusion_png(counts.tolist(), names, tmp_path / "confusion.png", "test")
    with Image.open(path) as image:
        assert image.format == "PNG" and 500 <= min(image.size) and max(image.size) <= 3000
    ax = confusion_figure(counts.tolist(), names, "test").axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert len(labels) == len(shown_ticks(classes)) == (classes if classes <= ALL_NAMES else len(labels))
    if classes > ALL_NAMES:  # thinned evenly, each name numbered so the gaps can be counted
        assert len(labels) <= 50 and labels[1].startswith(f"{shown_ticks(classes)[1]} class number")
    else:
        assert labels[0] == "class number 0 wi…"  # cut to 18 characters
    shown = ax.images[0].get_array()
    assert shown.mask[1].all() and not shown.mask[0].any()  # row 1 is "no data", drawn grey
    assert shown[0].sum() == pytest.approx(1.0)  # rows normalised
    assert not list(tmp_path.glob("*.tmp"))


def test_the_eval_data_defaults_to_the_runs_own_and_a_given_folder_replaces_all_of_it():
    from lucid_arch.config.eval_schema import EvalDataConfig, resolve_data

    run = {"dataset": "folder", "root": "/data/images", "masks": "/data/masks", "num_classes": None, "image_size": 48,
           "seed": 3, "val_fraction": 0.2, "mean": [0.5, 0.5, 0.5], "std": [0.2, 0.2, 0.2]}
    fallback = {"image_size": [224, 224]}
    data, own = resolve_data(EvalDataConfig(), run, fallback)
    assert own and (data.root, data.masks, data.image_size, data.seed, data.val_fraction) == ("/data/images", "/data/masks", 48, 3, 0.2)
    # A test folder: its images never paired with the training masks; the reading settings stay the run's.
    data, own = resolve_data(EvalDataConfig(root="/test/images"), run, fallback)
    assert not own and (data.dataset, data.root, data.masks, data.image_size, data.seed) == ("folder", "/test/images", None, 48, 3)
    data, own = resolve_data(EvalDataConfig(image_size=[32, 40], mean=[0.1, 0.2, 0.3]), run, fallback)
    assert own and data.image_size == [32, 40] and data.mean == [0.1, 0.2, 0.3] and data.std == [0.2, 0.2, 0.2]
    data, own = resolve_data(EvalDataConfig(), None, fallback)  # weights not from a run
    assert not own and data.dataset == "shapes" and data.image_size == [224, 224]


# --------------------------------------------------------------------------- segmentation runs


def _by_hand(run: Path, colours: Path) -> torch.Tensor:
    """The run's validation confusion matrix by mmseg's protocol, written out with plain torch: each image's
    shorter side resized to 32 (bilinear, antialiased), normalised, logits resized to the image's own size."""
    import numpy as np
    from PIL import Image

    from lucid_arch import create_model
    from lucid_arch.training.seg_metrics import confusion_matrix

    model = create_model(str(run)).eval()
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1) * 255
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1) * 255
    cm = torch.zeros(4, 4, dtype=torch.int64)
    for image_file in sorted((colours / "images" / "val").iterdir()):
        pixels = torch.from_numpy(np.array(Image.open(image_file).convert("RGB"))).permute(2, 0, 1)[None].float()
        label = torch.from_numpy(np.array(Image.open(colours / "masks" / "val" / image_file.name)))
        h, w = label.shape
        small = F.interpolate(pixels, size=(32, round(w * 32 / h)), mode="bilinear", align_corners=False, antialias=True).clamp(0, 255)
        with torch.no_grad():
            logits = model((small - mean) / std)
        cm += confusion_matrix(F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False).argmax(1)[0], label, 4)
    return cm


def test_a_segformer_run_is_scored_at_each_images_own_size_with_a_named_per_class_table(runs, capsys):
    code, out, err = run_main(["task=eval", f"model.pretrained={runs['seg']}", *FAST, "format=text", "hydra.run.dir=ev"], capsys)
    assert code == 0, err
    confusion = json.loads(Path("ev/confusion.json").read_text())
    assert confusion["classes"] == COLOUR_NAMES and confusion["unit"] == "pixels" and confusion["augmentation"] is None
    counts = torch.tensor(confusion["counts"])
    assert int(counts.sum()) == 6 * 40 * 48  # every pixel of the 6 validation images at their own 40x48, none cropped
    assert torch.equal(counts, _by_hand(runs["seg"], runs["colours"]))
    record = summary("ev")
    assert record["status"] == "ok" and record["run"]["dir"] == str(runs["seg"])
    assert list(record["metrics"]) == ["params", "gflops", "aAcc", "mIoU", "mAcc", "images", "eval img/s", "eval s"]
    from lucid_arch.evaluation import segmentation_metrics

    assert record["metrics"]["mIoU"] == pytest.approx(segmentation_metrics(counts)["mIoU"], abs=1e-4)
    info = record["eval"]
    assert info["split"] == "val" and info["images"] == 6 and info["classes"] == COLOUR_NAMES and info["mode"] == "whole"
    assert info["preprocessing"]["image_size"] == [32, 32] and list(info["per_class"]) == COLOUR_NAMES
    # stdout: mmseg's two tables, the classes by name.
    table = out[out.index("per class results:"):out.index("Summary:")]
    assert [line.split()[1] for line in table.splitlines()[3:7]] == COLOUR_NAMES
    assert "single-scale" in out and "aAcc (%)" in out and "mIoU (%)" in out and "mAcc (%)" in out
    assert f"{100 * record['metrics']['mIoU']:.2f}" in out.split("Summary:")[1]
    with open("ev/per_class.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["class"] for r in rows] == COLOUR_NAMES and sum(int(r["labelled pixels"]) for r in rows) == 6 * 40 * 48
    assert float(rows[0]["IoU"]) == pytest.approx(record["eval"]["per_class"]["background"]["IoU"], abs=1e-6)
    from PIL import Image

    with Image.open("ev/confusion.png") as png:
        assert png.format == "PNG" and 400 < png.size[0] < 1500
    # The same images named as a test folder (no train/val split of its own): all of it is scored, the same figures.
    val = runs["colours"]
    code, _, err = run_main(["task=eval", f"model.pretrained={runs['seg']}", f"task.data.root={val / 'images' / 'val'}",
                             f"task.data.masks={val / 'masks' / 'val'}", "task.data.num_classes=4", *FAST, "hydra.run.dir=folder"], capsys)
    assert code == 0, err
    assert summary("folder")["eval"]["split"] == "all" and json.loads(Path("folder/confusion.json").read_text())["counts"] == counts.tolist()
    assert summary("folder")["eval"]["classes"] == COLOUR_NAMES  # masks without classes.txt: the run's names


def test_flip_and_multi_scale_figures_sit_beside_the_single_scale_ones(runs, capsys):
    from lucid_arch import create_model
    from lucid_arch.runs import read_run
    from lucid_arch.inference.segment import segment_probs
    from lucid_arch.evaluation.data import NativeSizePairs
    from lucid_arch.data import MaskFolder
    from lucid_arch.training.seg_metrics import confusion_matrix

    code, out, err = run_main(["task=eval", f"model.pretrained={runs['seg']}", "task.flip=true", *FAST, "format=text",
                               "hydra.run.dir=flip"], capsys)
    assert code == 0, err
    confusion = json.loads(Path("flip/confusion.json").read_text())
    assert confusion["augmentation"] == "flip"
    # The flip figures: each image and its mirror, probabilities averaged -- recomputed here image by image.
    model, prep = create_model(str(runs["seg"])).eval(), read_run(runs["seg"]).preprocessing
    colours = runs["colours"]
    pairs = NativeSizePairs(MaskFolder.splits(colours / "images", colours / "masks", 32, 0.1, 0)[1])
    by_hand = torch.zeros(4, 4, dtype=torch.int64)
    for image, label in (pairs[i] for i in range(len(pairs))):
        mirrored = segment_probs(model, image.flip(-1), prep).flip(-1)
        by_hand += confusion_matrix(((segment_probs(model, image, prep) + mirrored) / 2).argmax(0), label, 4)
    assert confusion["counts_augmented"] == by_hand.tolist()
    metrics = summary("flip")["metrics"]
    assert {"aAcc", "mIoU", "mAcc", "aAcc (flip)", "mIoU (flip)", "mAcc (flip)"} <= metrics.keys()
    lines = out.split("Summary:")[1].splitlines()
    assert next(line for line in lines if line.startswith("single-scale")).split()[2] == f"{100 * metrics['mIoU']:.2f}"
    assert next(line for line in lines if line.startswith("flip")).split()[2] == f"{100 * metrics['mIoU (flip)']:.2f}"
    assert "IoU flip (%)" in out and "IoU flip" in Path("flip/per_class.csv").read_text().splitlines()[0]

    code, out, err = run_main(["task=eval", f"model.pretrained={runs['seg']}", "task.flip=true", "task.scales=[0.75,1.0,1.5]",
                               "task.mode=slide", "task.crop=24", "task.stride=16", *FAST, "format=text", "hydra.run.dir=msflip"], capsys)
    assert code == 0, err
    record = summary("msflip")
    assert record["eval"]["augmentation"] == "ms+flip" and record["eval"]["mode"] == "slide" and record["eval"]["crop"] == [24, 24]
    assert "mIoU (ms+flip)" in record["metrics"] and "ms+flip" in out
    assert sum(map(sum, json.loads(Path("msflip/confusion.json").read_text())["counts_augmented"])) == 6 * 40 * 48


def test_training_prints_the_last_validation_iou_per_class_and_eval_reproduces_it(runs, capsys):
    # The module's run printed in rich: the class names with their IoU, once, after the epochs.
    printed = runs["train_out"]
    assert printed.count("validation IoU per class") == 1 and all(name in printed for name in COLOUR_NAMES)
    last = metrics_jsonl(runs["seg"])[-1]
    assert f"{100 * last['val_iou'][3]:.2f}" in printed.split("validation IoU per class")[1]
    # Shapes at their training size (32 px, nothing to resize): eval's figures are validation's exactly. Piped,
    # the training shows a line every log_seconds (here every step) though log_every is far away.
    code, out, err = run_main([*SHAPES_SEG, "task.epochs=1", "task.log_every=1000", "task.log_seconds=0.000001", "format=text",
                               "hydra.run.dir=shapes"], capsys)
    assert code == 0, err
    assert [line.split("  ")[0] for line in err.splitlines() if " step " in line] == [f"epoch 1/1 step {k}/4" for k in (1, 2, 3, 4)]
    table = out[out.index("validation IoU per class"):]
    assert [line.split()[1] for line in table.splitlines()[3:14]] == ["background", *SHAPES_NAMES]
    val = metrics_jsonl(Path("shapes"))[-1]
    code, _, err = run_main(["task=eval", "model.pretrained=shapes", *FAST, "hydra.run.dir=ev"], capsys)
    assert code == 0, err
    metrics = summary("ev")["metrics"]
    assert metrics["mIoU"] == pytest.approx(val["val_miou"], abs=1e-4) and metrics["aAcc"] == pytest.approx(val["val_pixel_acc"], abs=1e-4)
    assert [v["IoU"] for v in summary("ev")["eval"]["per_class"].values()] == pytest.approx(val["val_iou"], abs=1e-6)


def test_training_log_lines_come_every_log_every_steps_or_log_seconds_whichever_first(capsys):
    from lucid_arch.training.progress import Progress

    now = [0.0]
    progress = Progress("log", epochs=1, steps_per_epoch=20, log_every=5, log_seconds=10.0, clock=lambda: now[0])
    shown = []
    for step in range(1, 21):
        now[0] += 4.0 if step <= 10 else 1.0  # slow steps, then fast ones
        if progress.due(step):
            progress.step(0, step, 1.0, 0.5, 1e-3, 10.0)
            shown.append(step)
    assert shown == [3, 5, 8, 10, 15, 20]  # by time (12 s > 10 s after the last line), by step, by time, ...
    assert capsys.readouterr().err.count("epoch 1/1 step") == 6
    quiet = Progress("log", epochs=1, steps_per_epoch=20, log_every=5, log_seconds=0.0, clock=lambda: now[0])
    assert [s for s in range(1, 21) if quiet.due(s)] == [5, 10, 15, 20]  # 0: by steps only


# ----------------------------------------------------------------------------- classifier, sweep


def test_a_classifier_run_reports_top1_top5_and_per_class_accuracy_with_names(runs, capsys):
    code, out, err = run_main(["task=eval", f"model.pretrained={runs['cls']}", *FAST, "format=text", "hydra.run.dir=cls"], capsys)
    assert code == 0, err
    record = summary("cls")
    val = metrics_jsonl(runs["cls"])[-1]
    assert record["metrics"]["top1"] == pytest.approx(val["val_acc"], abs=1e-4)  # the validation images, cropped alike
    assert 0 <= record["metrics"]["top1"] <= record["metrics"]["top5"] <= 1 and record["eval"]["images"] == 30
    assert list(record["eval"]["per_class"]) == SHAPES_NAMES and record["eval"]["kind"] == "classification"
    assert "top-1 (%)" in out and "top-5 (%)" in out and all(name in out for name in SHAPES_NAMES)
    assert json.loads(Path("cls/confusion.json").read_text())["unit"] == "images" and Path("cls/confusion.png").stat().st_size > 10_000


def test_an_eval_sweep_tabulates_every_jobs_figures(runs, capsys):
    code, out, err = run_main(["-m", "task=eval", f"model.pretrained={runs['seg']}", "task.scales=null,[0.75,1.25]", *FAST,
                               "hydra.sweep.dir=sweep"], capsys)
    assert code == 0, err
    header = next(line for line in Path("sweep/sweep.md").read_text().splitlines() if line.startswith("| job"))
    columns = [c.strip() for c in header.strip("|").split("|")]
    assert columns[4:] == ["params", "gflops", "aAcc", "mIoU", "mAcc", "images", "eval img/s", "eval s", "aAcc (ms)", "mIoU (ms)",
                           "mAcc (ms)", "error"]
    with open("sweep/sweep.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["status"] for r in rows] == ["ok", "ok"] and rows[0]["mIoU (ms)"] == "" and float(rows[1]["mIoU (ms)"]) >= 0
    assert rows[0]["mIoU"] == rows[1]["mIoU"]  # the single-scale figures do not depend on the augmentation asked for
    jobs = [line for line in out.splitlines() if line.startswith("job ")]  # one line per job
    assert len(jobs) == 2 and "mIoU" in jobs[0] and "; ms: mIoU" in jobs[1]


# -------------------------------------------------------------------------------------- refusals


def test_eval_refuses_a_model_without_weights_and_data_of_other_classes(runs, capsys, tmp_path):
    code, _, err = run_main(["task=eval", *FAST, "hydra.run.dir=none"], capsys)
    assert code == 2 and "model.pretrained is not set, and task=eval scores a trained model" in err and "Traceback" not in err

    code, _, err = run_main(["task=eval", f"model.pretrained={runs['seg']}", "task.data.dataset=shapes", *FAST, "hydra.run.dir=shapes"], capsys)
    assert code == 2 and "Traceback" not in err
    assert "predicts 4 classes (background, red, green, blue), but shapes (seed 0) (split: val) has 11 classes (background, disc" in err

    masks = tmp_path / "masks"
    masks.mkdir()
    for png in (runs["colours"] / "masks" / "val").iterdir():
        (masks / png.name).write_bytes(png.read_bytes())
    (masks / "classes.txt").write_text("background\nred\ngreen\nteal\n")  # four classes, one of another name
    code, _, err = run_main(["task=eval", f"model.pretrained={runs['seg']}", f"task.data.root={runs['colours'] / 'images' / 'val'}",
                             f"task.data.masks={masks}", *FAST, "hydra.run.dir=teal"], capsys)
    assert code == 2 and "Traceback" not in err
    assert "predicts 4 classes (background, red, green, blue)" in err and "has 4 classes (background, red, green, teal)" in err

    code, _, err = run_main(["task=eval", f"model.pretrained={runs['cls']}", "task.flip=true", "task.crop=16", *FAST, "hydra.run.dir=c"], capsys)
    assert code == 2 and "task.crop = 16: sets slide mode's windows; add task.mode=slide" in err
    code, _, err = run_main(["task=eval", f"model.pretrained={runs['cls']}", "task.flip=true", *FAST, "hydra.run.dir=c"], capsys)
    assert code == 2 and "task.flip is segmentation's test-time setting, and pvt_v2_b0 is a classifier" in err


def test_piped_progress_is_a_line_every_log_seconds_and_one_at_the_end(runs, capsys):
    code, _, err = run_main(["task=eval", f"model.pretrained={runs['seg']}", "task.threads=1", "task.progress=auto",
                             "task.log_seconds=0", "hydra.run.dir=ev"], capsys)
    assert code == 0, err
    lines = [line for line in err.splitlines() if line.startswith("eval val: ")]
    assert [line.split()[2] for line in lines] == [f"{k}/6" for k in range(1, 7)]
    assert "in all" in lines[-1] and "mIoU" in lines[-1]
    code, _, err = run_main(["task=eval", f"model.pretrained={runs['seg']}", "task.threads=1", "task.progress=auto",
                             "hydra.run.dir=ev2"], capsys)
    assert code == 0 and [line.split()[2] for line in err.splitlines() if line.startswith("eval val: ")] == ["6/6"]  # 10 s: the end only


def test_every_eval_setting_is_documented():
    from doc_pages import section

    from lucid_arch.config.eval_schema import field_help

    settings = section("eval.md", "## Settings")
    keys = [key for key in field_help() if key != "name"]
    assert "data.root" in keys and "flip" in keys and not any(k in keys for k in ("data.augment", "data.hflip"))
    assert [key for key in keys if f"`{key}`" not in settings] == []


def test_an_unreadable_image_is_named_skipped_and_counted(runs, capsys, tmp_path):
    images, masks = tmp_path / "images", tmp_path / "masks"
    for folder, source in ((images, runs["colours"] / "images" / "val"), (masks, runs["colours"] / "masks" / "val")):
        folder.mkdir()
        for png in source.iterdir():
            (folder / png.name).write_bytes(png.read_bytes())
    (masks / "classes.txt").write_text("\n".join(COLOUR_NAMES) + "\n")
    (images / "2.png").write_bytes(b"not a png")
    code, _, err = run_main(["task=eval", f"model.pretrained={runs['seg']}", f"task.data.root={images}", f"task.data.masks={masks}",
                             *FAST, "hydra.run.dir=ev"], capsys)
    assert code == 0, err
    assert err.count(f"lucid-arch: skipping unreadable image {images / '2.png'}") == 1
    info = summary("ev")["eval"]
    assert (info["images"], info["unreadable"], info["split"]) == (5, 1, "all")
    assert sum(map(sum, json.loads(Path("ev/confusion.json").read_text())["counts"])) == 5 * 40 * 48
