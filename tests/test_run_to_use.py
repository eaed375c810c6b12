"""From a trained run to a model in use, end to end, as a new user goes: train a tiny SegFormer and a
tiny classifier for one epoch on small folders, predict on held-out images of other sizes, evaluate
with per-class names, export from the run. Each step reads only the run directory: no model=NAME,
no class count, no preprocessing given again.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from conftest import run_main
from test_segmentation_training import COLOURS, TINY_SEG, colour_regions
from test_training import _in_tmp  # noqa: F401 -- the same autouse fixture: each test in its tmp dir, no rank variables

SEG_NAMES = ["background", "red", "green", "blue"]
CLS_NAMES = ["blue", "green", "red"]  # the sorted class folders
TINY_CLS = ["model=pvt_v2_b0", "model.embed_dims=[16,32,48,64]", "model.depths=[1,1,1,1]", "model.num_heads=[1,2,3,4]",
            "model.mlp_ratios=[2,2,2,2]", "model.sr_ratios=[4,2,1,1]"]
FAST = ["task.epochs=1", "task.data.image_size=32", "task.batch_size=8", "task.precision=fp32", "task.threads=1",
        "task.progress=none", "format=text"]
HELD_OUT = [(40, 48), (57, 33), (31, 70)]  # (height, width): none is the training size


def held_out(folder: Path) -> list[Path]:
    """Images the runs never saw, of other sizes and aspect ratios than the training crops."""
    folder.mkdir(parents=True)
    g = torch.Generator().manual_seed(7)
    paths = []
    for i, (h, w) in enumerate(HELD_OUT):
        image = (torch.rand(h, w, 3, generator=g) * 60 + 100).to(torch.uint8)
        image[h // 4 : h // 2, w // 4 : w // 2] = torch.tensor(COLOURS[i % 3], dtype=torch.uint8)
        paths.append(folder / f"held_{i}.png")
        Image.fromarray(image.numpy()).save(paths[-1])
    return paths


def colour_classes(root: Path, per_class: int = 8) -> Path:
    """root/{red,green,blue}/i.png: noisy images of one colour each, sizes varying."""
    g = torch.Generator().manual_seed(1)
    for name, colour in zip(("red", "green", "blue"), COLOURS):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            h, w = 36 + 4 * (i % 3), 40 + 6 * (i % 2)
            image = torch.tensor(colour, dtype=torch.float32) * 0.8 + torch.rand(h, w, 3, generator=g) * 40
            Image.fromarray(image.clamp(0, 255).to(torch.uint8).numpy()).save(root / name / f"{i}.png")
    return root


def onnx_model(run_dir: Path, capsys) -> tuple[list[int], dict]:
    """Export the run to ONNX (checked in onnxruntime by the task itself): its output shape at 1x3x64x64
    and its metadata, read back through onnxruntime as a deployment would. Sizes are fixed: what the run
    carries into the file is the point here, and a dynamic export (test_export.py's) costs 4x as much."""
    import numpy as np
    import onnxruntime as ort

    code, _, err = run_main(["task=export", f"model.pretrained={run_dir}", "model.img_size=64", "task.formats=[onnx]", "task.dynamic=[]",
                             "task.threads=1", "hydra.run.dir=export"], capsys)
    assert code == 0, err
    (path,) = Path("export").glob("*.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (output,) = session.run(None, {session.get_inputs()[0].name: np.zeros((1, 3, 64, 64), np.float32)})
    summary = json.loads(Path("export/summary.json").read_text())
    return list(output.shape), {"onnx": session.get_modelmeta().custom_metadata_map, "summary": summary}


def test_a_segmentation_run_predicts_evaluates_and_exports_as_itself(tmp_path, capsys):
    data = colour_regions(tmp_path / "colours", n_train=16, n_val=8)
    code, _, err = run_main(["task=train", *TINY_SEG, "task.data.dataset=folder", f"task.data.root={data / 'images'}",
                             f"task.data.masks={data / 'masks'}", *FAST, "hydra.run.dir=seg"], capsys)
    assert code == 0, err
    run_dir = Path("seg").resolve()

    # predict: label maps at each input's own size, the run's class names, overlays
    images = held_out(tmp_path / "held")
    code, out, err = run_main(["task=predict", f"model.pretrained={run_dir}", f"task.input={images[0].parent}",
                               "hydra.run.dir=predict"], capsys)
    assert code == 0, err
    for image, (h, w) in zip(images, HELD_OUT):
        mask = Image.open(Path("predict/masks") / f"{image.stem}.png")
        assert (mask.height, mask.width) == (h, w) and mask.mode == "L"
        assert max(mask.getdata()) < len(SEG_NAMES)
        assert Image.open(Path("predict/overlays") / f"{image.stem}.png").size == (w, h)
    predictions = json.loads(Path("predict/predictions.json").read_text())
    assert predictions["classes"] == SEG_NAMES and len(predictions["images"]) == len(HELD_OUT)

    # eval on the labelled validation folder: mmseg's figures and a per-class table with the names
    code, out, err = run_main(["task=eval", f"model.pretrained={run_dir}", "task.data.dataset=folder",
                               f"task.data.root={data / 'images' / 'val'}", f"task.data.masks={data / 'masks' / 'val'}",
                               "format=text", "hydra.run.dir=eval"], capsys)
    assert code == 0, err
    assert all(name in out for name in SEG_NAMES) and "mIoU" in out
    with open("eval/per_class.csv") as f:
        assert [row["class"] for row in csv.DictReader(f)] == SEG_NAMES
    metrics = json.loads(Path("eval/summary.json").read_text())["metrics"]
    assert 0.0 <= metrics["mIoU"] <= 1.0 and 0.0 <= metrics["aAcc"] <= 1.0
    assert Path("eval/confusion.png").stat().st_size > 1000

    # export: the trained 4-class head and the run's preprocessing and names travel in the file
    shape, meta = onnx_model(run_dir, capsys)
    assert shape == [1, len(SEG_NAMES), 16, 16]
    assert json.loads(meta["onnx"]["lucid_arch.classes"]) == SEG_NAMES
    assert json.loads(meta["onnx"]["lucid_arch.preprocessing"])["image_size"] == [32, 32]
    assert meta["summary"]["run"]["classes"] == SEG_NAMES


def test_a_classifier_run_predicts_evaluates_and_exports_as_itself(tmp_path, capsys):
    data = colour_classes(tmp_path / "colours")
    code, _, err = run_main(["task=train", *TINY_CLS, "task.data.dataset=folder", f"task.data.root={data}",
                             "task.data.val_fraction=0.25", *FAST, "hydra.run.dir=cls"], capsys)
    assert code == 0, err
    run_dir = Path("cls").resolve()

    images = held_out(tmp_path / "held")
    code, _, err = run_main(["task=predict", f"model.pretrained={run_dir}", f"task.input={images[0].parent}", "task.top_k=2",
                             "hydra.run.dir=predict"], capsys)
    assert code == 0, err
    with open("predict/predictions.csv") as f:
        rows = list(csv.DictReader(f))
    assert [Path(r["file"]).name for r in rows] == [p.name for p in images]
    assert all(r["top1_name"] in CLS_NAMES and r["top2_name"] in CLS_NAMES and r["top1_name"] != r["top2_name"] for r in rows)
    assert all(float(r["top1_score"]) >= float(r["top2_score"]) for r in rows)

    code, out, err = run_main(["task=eval", f"model.pretrained={run_dir}", "format=text", "hydra.run.dir=eval"], capsys)
    assert code == 0, err
    assert all(name in out for name in CLS_NAMES)
    metrics = json.loads(Path("eval/summary.json").read_text())["metrics"]
    trained = json.loads(Path("cls/summary.json").read_text())["metrics"]
    assert metrics["top1"] == pytest.approx(trained["val_acc"], abs=1e-4)  # the run's own validation split, as it scored it

    shape, meta = onnx_model(run_dir, capsys)
    assert shape == [1, len(CLS_NAMES)]
    assert json.loads(meta["onnx"]["lucid_arch.classes"]) == CLS_NAMES
    assert json.loads(meta["onnx"]["lucid_arch.preprocessing"])["resize"] == "center_crop"
