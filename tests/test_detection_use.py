"""A trained detector in use: task=predict (detections.json, drawn pictures), the Predictor API,
task=eval (COCO's figures, per_class.csv, detections.json in COCO's result format) and
task=export (RetinaNet whole with its post-processing; Mask R-CNN refused in one paragraph).

One tiny RetinaNet is trained once for the module on a small COCO-format folder (three classes
under gapped category ids); its detection threshold is lowered to 0 where a test needs boxes
from a model that has seen a few dozen images. It has three levels (P3-P5, no extra convolutions):
the same post-processing over several levels, in half the export time of five.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lucid_arch.cli import app

from conftest import run_main
from test_detection_training import TINY_MASK_RCNN, TINY_RETINANET, write_coco

DETECTOR = [*TINY_RETINANET, "model.neck.num_outs=3", "model.anchors.strides=[8,16,32]"]
ALL_BOXES = ["model.detector.score_threshold=0.0"]  # the model keeps every candidate (up to 100), however unsure


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A run directory: a tiny RetinaNet trained for two epochs on a 20-image COCO folder."""
    root = tmp_path_factory.mktemp("detector")
    annotations = write_coco(root / "coco", num=20)
    run = root / "run"
    try:
        app.main(["task=train", *DETECTOR, "task.data.dataset=coco", f"task.data.root={root / 'coco/images'}",
                  f"task.data.annotations={annotations}", "task.data.val_fraction=0.2", "task.data.image_size=64",
                  "task.batch_size=8", "task.epochs=2", "task.progress=none", "task.threads=1", "format=json",
                  f"hydra.run.dir={run}"])
    except SystemExit as exc:
        assert not exc.code, f"training the fixture's detector failed ({exc.code})"
    assert (run / "model.safetensors").is_file()
    return run


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)


def images_of(trained: Path, out: Path) -> list[Path]:
    """Three of the run's images: as they are, upscaled 2x (nearest), and 64 x 96 with a strip on the right."""
    out.mkdir(parents=True, exist_ok=True)
    source = sorted((trained.parent / "coco/images").glob("*.png"))[0]
    image = Image.open(source).convert("RGB")
    image.save(out / "plain.png")
    image.resize((128, 128), Image.Resampling.NEAREST).save(out / "double.png")
    wide = Image.new("RGB", (96, 64), (124, 116, 104))
    wide.paste(image, (0, 0))
    wide.save(out / "wide.png")
    return [out / "plain.png", out / "double.png", out / "wide.png"]


# --- predict ----------------------------------------------------------------------------------


def test_predict_writes_detections_with_class_names_and_drawn_pictures(trained, capsys):
    images_of(trained, Path("photos"))
    args = ["task=predict", f"model.pretrained={trained}", *ALL_BOXES, "task.input=photos", "task.score_threshold=0.0",
            "task.output=out"]
    code, out, err = run_main(args, capsys)
    assert code == 0, err
    listing = json.loads(Path("out/detections.json").read_text())
    assert listing["kind"] == "detection" and listing["classes"] == ["zeta", "alpha", "mid"] and listing["complete"]
    entries = {e["input"]: e for e in listing["images"]}
    assert set(entries) == {"plain.png", "double.png", "wide.png"}
    assert entries["double.png"]["size"] == [128, 128] and entries["wide.png"]["size"] == [64, 96]
    for entry in entries.values():
        assert 0 < len(entry["detections"]) <= 100
        scores = [d["score"] for d in entry["detections"]]
        assert scores == sorted(scores, reverse=True)
        for d in entry["detections"]:
            x0, y0, x1, y1 = d["box"]
            assert d["name"] == listing["classes"][d["id"]] and 0 <= x0 <= x1 <= entry["size"][1] and 0 <= y0 <= y1 <= entry["size"][0]
        with Image.open(Path("out") / entry["drawn"]) as picture:
            assert picture.size == (entry["size"][1], entry["size"][0])  # drawn on the image at its own size
    assert "detections" in out and any(name in out for name in ("zeta", "alpha", "mid"))
    # A rerun finds everything done; another threshold would mix two settings' outputs, and is refused.
    code, out, err = run_main(args, capsys)
    assert code == 0 and "every output was already there" in out
    code, _, err = run_main([*args[:-2], "task.score_threshold=0.5", "task.output=out"], capsys)
    assert code == 2 and "score_threshold" in err and "task.output" in err


def test_predict_keeps_only_detections_above_the_threshold(trained, capsys):
    images_of(trained, Path("photos"))
    code, _, err = run_main(["task=predict", f"model.pretrained={trained}", *ALL_BOXES, "task.input=photos/plain.png",
                             "task.score_threshold=0.02", "task.overlay=false", "task.output=out"], capsys)
    assert code == 0, err
    entry = json.loads(Path("out/detections.json").read_text())["images"][0]
    assert all(d["score"] >= 0.02 for d in entry["detections"]) and "drawn" not in entry and not Path("out/drawn").exists()


@pytest.mark.parametrize("setting", ["task.top_k=3", "task.flip=true", "task.mode=slide"])
def test_predict_settings_of_other_models_are_refused_for_a_detector(trained, setting, capsys):
    code, _, err = run_main(["task=predict", f"model.pretrained={trained}", "task.input=.", setting], capsys)
    key = setting.split("=")[0]
    assert code == 2 and key in err and "is a detector" in err


def test_the_predictor_maps_boxes_back_to_each_images_own_pixels(trained):
    from lucid_arch.inference import Predictor

    paths = images_of(trained, Path("photos"))
    predictor = Predictor.from_run(trained, score_threshold=0.0)
    predictor.model.score_thresh = 0.0  # torchvision's RetinaNet: keep every candidate of a barely trained model
    plain, double = predictor([paths[0], paths[1]])
    assert plain.size == (64, 64) and double.size == (128, 128) and "DetectionResult" not in repr(predictor)
    assert len(plain.boxes) > 5 and len(double.boxes) > 5
    # The same pixels at twice the size are letterboxed down to the same input: the same boxes, doubled.
    # (Compared by matching: a barely trained model's near-tied scores may order and suppress the tail differently.)
    for box, score, label in zip(plain.boxes[:5], plain.scores[:5], plain.labels[:5]):
        close = ((double.boxes - box * 2).abs().amax(1) < 0.1) & ((double.scores - score).abs() < 1e-3) & (double.labels == label)
        assert close.any(), (box, score, label)
    assert plain.detections()[0]["name"] in ("zeta", "alpha", "mid")


# --- eval -------------------------------------------------------------------------------------


def test_eval_reports_coco_figures_per_class_and_a_results_file(trained, capsys):
    code, out, err = run_main(["task=eval", f"model.pretrained={trained}", *ALL_BOXES, "format=text", "hydra.run.dir=ev"], capsys)
    assert code == 0, err
    summary = json.loads(Path("ev/summary.json").read_text())
    metrics = summary["metrics"]
    assert {"box_AP", "box_AP50", "box_AP75", "box_APs", "box_APm", "box_APl", "images"} <= set(metrics)
    assert metrics["images"] == 4 and 0.0 <= metrics["box_AP"] <= metrics["box_AP50"] <= 1.0  # the run's held-out images
    assert summary["eval"]["kind"] == "detection" and summary["eval"]["split"] == "val"
    rows = Path("ev/per_class.csv").read_text().splitlines()
    assert rows[0] == "id,class,box AP,objects,detections" and [r.split(",")[1] for r in rows[1:]] == ["zeta", "alpha", "mid"]
    assert sum(int(r.split(",")[3]) for r in rows[1:]) == 4  # one object per image
    results = json.loads(Path("ev/detections.json").read_text())
    assert results and {"image_id", "category_id", "category_name", "bbox", "score"} <= set(results[0])
    assert {r["category_id"] for r in results} <= {3, 7, 11} and {r["image_id"] for r in results} <= set(range(100, 120))
    assert "per class results" in out and "Summary (COCO, %)" in out and "pycocotools" in out


def test_eval_on_a_whole_coco_file_and_on_data_of_other_classes(trained, tmp_path, capsys):
    test_set = write_coco(tmp_path / "test", num=6, seed=5)  # the same categories, other images: a test set
    code, _, err = run_main(["task=eval", f"model.pretrained={trained}", f"task.data.root={tmp_path / 'test/images'}",
                             f"task.data.annotations={test_set}", "format=json", "hydra.run.dir=ev"], capsys)
    assert code == 0, err
    summary = json.loads(Path("ev/summary.json").read_text())
    assert summary["eval"]["split"] == "all" and summary["metrics"]["images"] == 6  # one file alone is scored whole
    assert summary["eval"]["data"]["dataset"] == "coco"  # given annotations, the data is COCO-format
    other = write_coco(tmp_path / "other", num=4, names=("cat", "dog", "bird"))
    code, _, err = run_main(["task=eval", f"model.pretrained={trained}", f"task.data.root={tmp_path / 'other/images'}",
                             f"task.data.annotations={other}", "hydra.run.dir=ev2"], capsys)
    assert code == 2 and str(other) in err and "zeta" in err and "cat" in err  # both class lists, and the file


@pytest.mark.parametrize("setting", ["task.flip=true", "task.scales=[0.5,1.0]", "task.mode=slide"])
def test_eval_refuses_segmentations_test_settings_for_a_detector(trained, setting, capsys):
    code, _, err = run_main(["task=eval", f"model.pretrained={trained}", setting], capsys)
    assert code == 2 and setting.split("=")[0] in err and "detector" in err


# --- export -----------------------------------------------------------------------------------


def test_a_retinanet_exports_whole_with_its_post_processing(trained, capsys):
    code, _, err = run_main(["task=export", f"model.pretrained={trained}", *ALL_BOXES, "format=json", "hydra.run.dir=ex"], capsys)
    assert code == 0, err
    record = json.loads(Path("ex/summary.json").read_text())["export"]
    assert record["outputs"] == ["boxes", "scores", "labels"] and record["input"]["batch"] == 1 and record["input"]["height"] == 64
    assert {c["runtime"] for c in record["checks"]} == {"onnxruntime", "torch"} and all(c["ok"] for c in record["checks"])
    assert record["metadata"]["lucid_arch.task"] == "detection"
    assert record["metadata"]["lucid_arch.classes"] == ["zeta", "alpha", "mid"]
    assert record["metadata"]["lucid_arch.preprocessing"]["resize"] == "letterbox"
    import onnxruntime as ort

    session = ort.InferenceSession(str(Path("ex") / record["files"]["onnx"]), providers=["CPUExecutionProvider"])
    boxes, scores, labels = session.run(None, {"image": np.zeros((1, 3, 64, 64), dtype=np.float32)})
    assert boxes.shape[1] == 4 and len(boxes) == len(scores) == len(labels) <= 100 and labels.dtype == np.int64


def test_a_mask_rcnn_export_is_refused_in_one_paragraph(capsys):
    code, _, err = run_main(["task=export", *TINY_MASK_RCNN, "hydra.run.dir=ex"], capsys)
    assert code == 2 and "model.detector.type" in err and "paste each detected mask" in err and "Traceback" not in err
    assert not list(Path("ex").glob("*.onnx"))


# --- drawing ----------------------------------------------------------------------------------


def test_detections_are_drawn_in_their_class_colour_with_a_label():
    from lucid_arch.report.detections_draw import detection_colours, draw_detections

    colours = detection_colours(3)
    assert colours[0].tolist() == [128, 0, 0]  # class 0 is an object: the palette's colour 1, not black
    image = np.full((60, 80, 3), 255, dtype=np.uint8)
    mask = np.zeros((1, 60, 80), dtype=bool)
    mask[0, 30:50, 40:60] = True
    picture = np.array(draw_detections(image, [{"id": 2, "name": "mid", "score": 0.9, "box": [40.0, 30.0, 60.0, 50.0]}],
                                       colours, mask, 0.5))
    assert picture[30, 45].tolist() == colours[2].tolist()  # the box's top edge
    assert picture[40, 50].tolist() == [round(255 * 0.5 + c * 0.5) for c in colours[2].tolist()]  # the mask, blended
    assert (picture[15:29, 40:60] != 255).any()  # the label's tag above the box
