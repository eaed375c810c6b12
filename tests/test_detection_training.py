"""Detection data and training: the shapes' boxes and instance masks, COCO-format folders (and
hostile instances files), box augmentation, COCO's metrics, and task=train for RetinaNet and
Mask R-CNN with resume and DDP.

Detectors here are tiny (four 1-block stages of 16..64 channels, FPN and heads of 32) on 64-px
images, a few dozen of them, so each run takes seconds.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from lucid_arch.data import ShapesDataset, build_datasets, random_resized_crop_flip_pair
from lucid_arch.data.augment import crop_draws
from lucid_arch.data.box_augment import random_resized_crop_flip_boxes
from lucid_arch.data.coco import MAX_ANNOTATION_BYTES, AnnotationError, CocoDetection, ImageRecord, read_instances
from lucid_arch.data.shapes import CLASSES
from lucid_arch.evaluation.detection import coco_evaluate

from conftest import run_main

TINY_RETINANET = ["model=retinanet_pvt_v2_b0", "model.embed_dims=[16,32,48,64]", "model.depths=[1,1,1,1]",
                  "model.num_heads=[1,1,2,2]", "model.mlp_ratios=[2,2,2,2]", "model.neck.channels=32",
                  "model.detector.head_channels=32"]
TINY_MASK_RCNN = ["model=mask_rcnn_pvt_v2_b0", "model.embed_dims=[16,32,48,64]", "model.depths=[1,1,1,1]",
                  "model.num_heads=[1,1,2,2]", "model.mlp_ratios=[2,2,2,2]", "model.neck.channels=32",
                  "model.roi.fc_channels=64", "model.roi.mask_channels=32", "model.roi.batch_size_per_image=64",
                  "model.rpn.pre_nms_top_n_train=200", "model.rpn.post_nms_top_n_train=100",
                  "model.rpn.pre_nms_top_n_test=100", "model.rpn.post_nms_top_n_test=50"]
RUN = ["task=train", "task.data.image_size=64", "task.data.num_train=32", "task.data.num_val=16", "task.batch_size=8",
       "task.epochs=1", "task.progress=log", "task.log_every=2", "task.threads=1"]
GOLDEN_DIGEST = "ccf0379fbb1b085b1fed37003d27c35fb621f89642957526d2234c2f7f79df75"  # tests/test_data.py's: the images
GOLDEN_BOXES = "14f76274e5882a2a4967a5aeb4be25dc26b2281b5c112e2d60a3a04ce66d04ca"


def digest(t: torch.Tensor) -> str:
    return hashlib.sha256(t.contiguous().numpy().tobytes()).hexdigest()


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


def rle_counts(mask: torch.Tensor) -> list[int]:
    """COCO's uncompressed RLE of an H x W mask: run lengths in column-major order, starting with zeros."""
    flat = mask.t().flatten().tolist()
    counts, current, run = [], 0, 0
    for value in flat:
        if value != current:
            counts.append(run)
            current, run = value, 0
        run += 1
    counts.append(run)
    return counts


def write_coco(root: Path, num: int = 12, size: int = 64, seed: int = 0, category_ids=(3, 7, 11), crowd: bool = False,
               name: str = "instances.json", scale: int = 1, names=("zeta", "alpha", "mid")) -> Path:
    """A COCO-format folder from the shapes (``scale`` x larger images): three of their classes under gapped ids."""
    shapes = ShapesDataset(num, size, seed, detection=True)
    images_dir = root / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for i in range(num):
        picture = Image.fromarray(shapes.images[i].permute(1, 2, 0).numpy())
        if scale != 1:
            picture = picture.resize((size * scale, size * scale), Image.Resampling.NEAREST)
        file = f"s{seed}_{i:03d}.png"
        picture.save(images_dir / file)
        images.append({"id": 100 + i, "file_name": file, "width": size * scale, "height": size * scale})
        x0, y0, x1, y1 = (float(v) * scale for v in shapes.boxes[i])
        mask = (shapes.masks[i] != 0).to(torch.uint8)
        if scale != 1:
            mask = mask.repeat_interleave(scale, 0).repeat_interleave(scale, 1)
        annotations.append({"id": len(annotations) + 1, "image_id": 100 + i, "category_id": category_ids[int(shapes.labels[i]) % 3],
                            "bbox": [x0, y0, x1 - x0, y1 - y0], "area": float(mask.sum()), "iscrowd": 0,
                            "segmentation": {"size": [size * scale, size * scale], "counts": rle_counts(mask)}})
    if crowd:
        annotations.append({"id": len(annotations) + 1, "image_id": 100, "category_id": category_ids[0], "bbox": [0, 0, 5, 5],
                            "area": 25.0, "iscrowd": 1})
    categories = [{"id": c, "name": n} for c, n in zip(category_ids, names)]
    path = root / name
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories[::-1]}))
    return path


# --- the shapes' boxes ------------------------------------------------------------------------


def test_shapes_boxes_leave_the_images_as_they_were_and_box_each_shape():
    ds = ShapesDataset(20, image_size=16, seed=0, detection=True)
    assert digest(ds.images) == GOLDEN_DIGEST  # the classification set's bytes
    assert digest(ds.boxes) == GOLDEN_BOXES and ds.boxes.dtype == torch.float32
    assert ds.classes == list(CLASSES) and "boxes" in repr(ds)
    segmentation = ShapesDataset(20, image_size=16, seed=0, masks=True)
    for i in range(20):
        image, target = ds[i]
        assert torch.equal(image, ds.images[i])
        assert target["labels"].tolist() == [int(ds.labels[i])] and target["image_id"] == i
        instance = target["masks"][0].bool()
        assert torch.equal(instance, segmentation.masks[i] != 0)  # the shape, its hidden pixels included
        rows, cols = instance.nonzero(as_tuple=True)
        assert target["boxes"].tolist() == [[cols.min().item(), rows.min().item(), cols.max().item() + 1, rows.max().item() + 1]]
        assert target["area"].item() == instance.sum().item()
        truth = ds.ground_truth(i)
        assert truth.boxes == target["boxes"].tolist() and truth.iscrowd == [0] and (truth.height, truth.width) == (16, 16)


def test_shapes_boxes_follow_the_scene_into_a_wide_image():
    square, wide = ShapesDataset(6, 32, seed=4, detection=True), ShapesDataset(6, (32, 48), seed=4, detection=True)
    assert torch.equal(wide.boxes, square.boxes + torch.tensor([8.0, 0.0, 8.0, 0.0]))
    with pytest.raises(ValueError, match="choose one"):
        ShapesDataset(4, 32, masks=True, detection=True)


# --- augmentation -----------------------------------------------------------------------------


def test_box_augmentation_crops_images_as_classifiers_do_and_moves_boxes_with_them():
    ds = ShapesDataset(16, 48, seed=3, detection=True)
    images = ds.images
    targets = [ds[i][1] for i in range(16)]
    plain = [{k: v for k, v in t.items() if k != "masks"} for t in targets]
    out, moved = random_resized_crop_flip_boxes(images, plain, torch.Generator().manual_seed(5))
    reference, _ = random_resized_crop_flip_pair(images, None, torch.Generator().manual_seed(5))
    assert torch.equal(out, reference)  # the very crops and flips a classifier gets
    _, with_masks = random_resized_crop_flip_boxes(images, targets, torch.Generator().manual_seed(5))
    for before, box_only, masked in zip(targets, moved, with_masks):
        assert len(box_only["boxes"]) == len(box_only["labels"]) <= 1
        if len(masked["boxes"]):  # the tight box of the cropped mask lies inside the clipped box
            rows, cols = masked["masks"][0].nonzero(as_tuple=True)
            assert masked["boxes"][0].tolist() == [cols.min().item(), rows.min().item(), cols.max().item() + 1, rows.max().item() + 1]
            clipped = box_only["boxes"][0]
            assert (masked["boxes"][0][:2] >= clipped[:2] - 1).all() and (masked["boxes"][0][2:] <= clipped[2:] + 1).all()
    # No crop: a flipped image's box is mirrored (x0' = W - x1), the others' stay as they were.
    _, flips = crop_draws(8, 48, 48, torch.Generator().manual_seed(2), (1.0, 1.0), (1.0, 1.0), True)
    assert flips.any() and not flips.all()
    whole, kept = random_resized_crop_flip_boxes(images[:8], plain[:8], torch.Generator().manual_seed(2), scale=(1.0, 1.0),
                                                 ratio=(1.0, 1.0), hflip=True)
    for k in range(8):
        x0, y0, x1, y1 = plain[k]["boxes"][0].tolist()
        assert kept[k]["boxes"][0].tolist() == ([48 - x1, y0, 48 - x0, y1] if flips[k] else [x0, y0, x1, y1])
        assert torch.allclose(whole[k], (images[k].flip(-1) if flips[k] else images[k]).float() / 255, atol=1e-6)


# --- COCO-format folders ----------------------------------------------------------------------


def test_a_coco_folder_maps_categories_to_contiguous_ids_and_letterboxes_its_images(tmp_path):
    path = write_coco(tmp_path / "coco", num=12, size=32, scale=2, crowd=True)
    instances = read_instances(path)
    assert instances.classes == ["zeta", "alpha", "mid"] and instances.category_ids == [3, 7, 11]  # sorted by id
    data = {"root": str(tmp_path / "coco/images"), "annotations": str(path)}
    cfg = type("Data", (), dict(dataset="coco", image_size=[48, 80], seed=0, val_fraction=0.25, mean=[0.5, 0.5, 0.5],
                                 val_annotations=None, val_root=None, num_workers=0, **data))
    train, val, classes = build_datasets(cfg, detection="masks")
    assert classes == ["zeta", "alpha", "mid"] and len(train) + len(val) == 12 and len(val) == 3
    image, target = train[0]
    assert image.shape == (3, 48, 80) and image[:, :, 48:].eq(128).all()  # 64x64 fitted into 48x80: 48x48, the rest the mean colour
    record = train.ground_truth(0)
    assert target["scale"] == pytest.approx(0.75) and target["size"] == (64, 64)
    assert torch.allclose(target["boxes"], torch.tensor(record.boxes[:1]) * 0.75)  # the crowd box is left out of training
    assert target["labels"].tolist() == record.labels[:1] and target["masks"].shape == (1, 48, 80)
    assert target["masks"][0, :, 48:].eq(0).all() and target["masks"].sum() > 0
    crowded = next(r for r in train.records + val.records if r.id == 100)
    assert crowded.iscrowd == [0, 1]  # scoring keeps the crowd
    again = build_datasets(cfg, detection="boxes")[1]
    assert [r.id for r in again.records] == [r.id for r in val.records]  # the held-out share is drawn from the seed
    assert "masks" not in again[0][1]


def test_a_fixed_validation_file_must_share_the_categories(tmp_path):
    train = write_coco(tmp_path / "coco", num=6, seed=0, name="train.json")
    val = write_coco(tmp_path / "coco", num=4, seed=1, name="val.json")
    root = tmp_path / "coco/images"
    train_set, val_set = CocoDetection.splits(root, train, 64, val_annotations=val)
    assert len(train_set) == 6 and len(val_set) == 4 and val_set.records[0].file_name.startswith("s1_")
    other = write_coco(tmp_path / "coco", num=4, seed=1, name="other.json", category_ids=(3, 7, 12))
    with pytest.raises(AnnotationError, match="name different categories") as info:
        CocoDetection.splits(root, train, 64, val_annotations=other)
    assert info.value.key == "task.data.val_annotations"


HOSTILE = [
    ("[1, 2, 3]", "the top level is a list"),
    ('{"images": [], "annotations": []}', "'categories' is missing"),
    ("not json at all", "not valid JSON"),
    ('{"images": [{"id": 1, "file_name": "../../etc/passwd", "width": 4, "height": 4}], "annotations": [], '
     '"categories": [{"id": 1, "name": "a"}]}', "must be a path relative to the image folder"),
    ('{"images": [{"id": 1, "file_name": "a.png", "width": 4, "height": 4}], "annotations": [{"image_id": 1, '
     '"category_id": 1, "bbox": [0, 0, NaN, 2]}], "categories": [{"id": 1, "name": "a"}]}', "is not [x, y, width, height]"),
    ('{"images": [{"id": 1, "file_name": "a.png", "width": 4, "height": 4}], "annotations": [{"image_id": 9, '
     '"category_id": 1, "bbox": [0, 0, 2, 2]}], "categories": [{"id": 1, "name": "a"}]}', "image_id 9 names no image"),
    ('{"images": [{"id": 1, "file_name": "a.png", "width": 4, "height": 4}], "annotations": [], '
     '"categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "a"}]}', "repeats 'a'"),
    ('{"images": [{"id": 1, "file_name": "a.png", "width": 100000, "height": 100000}], "annotations": [], '
     '"categories": [{"id": 1, "name": "a"}]}', "height and width must be positive integers"),
    ("[" * 100000 + "]" * 100000, "nested too deeply"),
]


@pytest.mark.parametrize("text, needle", HOSTILE)
def test_a_bad_instances_file_is_one_paragraph_naming_the_file(tmp_path, text, needle):
    path = tmp_path / "instances.json"
    path.write_text(text)
    with pytest.raises(AnnotationError) as info:
        read_instances(path)
    message = str(info.value)
    assert str(path) in message and needle in message and "\n" not in message and info.value.key == "task.data.annotations"


def test_an_oversized_instances_file_is_not_read(tmp_path, monkeypatch):
    import lucid_arch.data.coco as coco

    assert MAX_ANNOTATION_BYTES >= 2 << 30  # COCO's own 450 MB file and Objects365's pass
    monkeypatch.setattr(coco, "MAX_ANNOTATION_BYTES", 64)
    path = write_coco(tmp_path / "coco", num=2)
    with pytest.raises(AnnotationError, match="over the limit of 64 B"):
        read_instances(path)
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    with pytest.raises(AnnotationError, match="not a regular file"):  # refused, never waited on
        read_instances(fifo)


def test_an_image_of_another_size_than_its_annotation_is_skipped_and_named(tmp_path, capfd):
    path = write_coco(tmp_path / "coco", num=3)
    Image.new("RGB", (50, 64)).save(tmp_path / "coco/images/s0_001.png")
    ds = CocoDetection.splits(tmp_path / "coco/images", path, 64, val_fraction=0.34)[0]
    items = [ds[i] for i in range(len(ds))]
    assert sum(item is None for item in items) == 1
    err = capfd.readouterr().err
    assert "s0_001.png" in err and "50x64 pixels but the annotations say 64x64" in err


def test_a_training_box_outside_its_image_is_dropped_not_fed_to_the_model(tmp_path):
    path = write_coco(tmp_path / "coco", num=4)
    data = json.loads(path.read_text())
    data["annotations"].append({"id": 99, "image_id": 100, "category_id": 3, "bbox": [70.0, 10.0, 8.0, 8.0], "iscrowd": 0})
    path.write_text(json.dumps(data))
    train = CocoDetection.splits(tmp_path / "coco/images", path, 64, val_fraction=0.25)[0]
    item = next(train[i][1] for i in range(len(train)) if train.records[i].id == 100)
    assert len(train.ground_truth([r.id for r in train.records].index(100)).boxes) == 2  # scored as the file says
    assert len(item["boxes"]) == len(item["labels"]) == 1 and (item["boxes"][:, 2:] > item["boxes"][:, :2]).all()


# --- COCO's metrics ---------------------------------------------------------------------------


def test_coco_metrics_of_perfect_shifted_and_missing_detections():
    records = [ImageRecord(i, "", 100, 100, [[10.0 + i, 20.0, 60.0 + i, 70.0]], [i % 2], [0], [2500.0], [None]) for i in range(4)]
    classes = ["a", "b"]

    def found(boxes, scores, labels):
        return {"boxes": torch.tensor(boxes, dtype=torch.float32).view(-1, 4), "scores": torch.tensor(scores),
                "labels": torch.tensor(labels, dtype=torch.int64)}

    perfect = coco_evaluate(records, [found(r.boxes, [0.9], r.labels) for r in records], classes)
    assert perfect["AP"] == pytest.approx(1.0) and perfect["AP50"] == pytest.approx(1.0) and perfect["per_class"] == [1.0, 1.0]
    assert perfect["APs"] is None and perfect["APm"] == pytest.approx(1.0) and perfect["APl"] is None  # 2500 px: medium
    # Shifted by 10 of 50 px: IoU 40/60 x ... = 0.67, a hit at 0.50..0.65 only: 4 of 10 thresholds.
    shifted = coco_evaluate(records, [found([[b + 10 if k % 2 == 0 else b for k, b in enumerate(r.boxes[0])]], [0.9], r.labels)
                                      for r in records], classes)
    assert shifted["AP"] == pytest.approx(0.4) and shifted["AP50"] == pytest.approx(1.0) and shifted["AP75"] == pytest.approx(0.0)
    wrong_class = coco_evaluate(records, [found(r.boxes, [0.9], [1 - r.labels[0]]) for r in records], classes)
    assert wrong_class["AP"] == pytest.approx(0.0)
    nothing = coco_evaluate(records, [found([], [], []) for _ in records], classes)
    assert nothing["AP"] == 0.0
    # A detection on a crowd region is neither a hit nor a false positive.
    crowded = [ImageRecord(0, "", 100, 100, [[10.0, 20.0, 60.0, 70.0], [70.0, 70.0, 99.0, 99.0]], [0, 0], [0, 1], [2500.0, 841.0],
                           [None, None])]
    on_crowd = coco_evaluate(crowded, [found([[10.0, 20.0, 60.0, 70.0], [70.0, 70.0, 99.0, 99.0]], [0.5, 0.9], [0, 0])], classes)
    assert on_crowd["AP"] == pytest.approx(1.0) and on_crowd["per_class"] == [pytest.approx(1.0), None]


# --- task=train -------------------------------------------------------------------------------


def test_a_retinanet_trains_on_the_shapes_and_reports_coco_figures(capsys):
    code, out, err = run_main([*RUN, *TINY_RETINANET, "format=text", "hydra.run.dir=run"], capsys)
    assert code == 0, err
    record = history(Path("run"))[0]
    assert {"train_classification", "train_bbox_regression", "val_box_ap", "val_box_ap50", "val_box_ap75", "val_box_aps",
            "val_box_apm", "val_box_apl", "val_box_ap_class"} <= set(record)
    assert record["val_images"] == 16 and len(record["val_box_ap_class"]) == 10 and 0.0 <= record["val_box_ap"] <= 1.0
    summary = json.loads(Path("run/summary.json").read_text())
    assert {"val_box_ap", "best_val_box_ap", "val_box_ap50"} <= set(summary["metrics"]) and summary["train"]["classes"] == list(CLASSES)
    info = json.loads(Path("run/inference.json").read_text())
    assert info["task"] == "detection" and info["preprocessing"]["resize"] == "letterbox" and info["classes"] == list(CLASSES)
    assert "val box AP" in out and "validation AP per class" in out and "square_outline" in out
    assert "val box AP" in err and "acc" not in err.split("val box AP")[0].split("\n")[-1]  # no accuracy for a detector
    assert summary["train"]["precision"] == "fp32"  # auto on a CPU: bf16's conv gradients over 1x1 maps can be NaN


def test_a_detector_resumes_from_a_mid_epoch_checkpoint_exactly(capsys):
    common = [*RUN, *TINY_RETINANET, "task.epochs=2", "task.checkpoint_every=3", "task.keep_checkpoints=10"]
    assert run_main([*common, "hydra.run.dir=full"], capsys)[0] == 0
    code, _, err = run_main([*common, "task.resume=full/checkpoints/step_00000003", "hydra.run.dir=resumed"], capsys)
    assert code == 0, err
    assert "resuming from full/checkpoints/step_00000003 at step 3 of 8" in err
    strip = lambda r: {k: v for k, v in r.items() if k not in ("images_per_second", "epoch_seconds")}  # noqa: E731
    assert [strip(r) for r in history(Path("full"))] == [strip(r) for r in history(Path("resumed"))]
    wa, wb = weights(Path("full/model.safetensors")), weights(Path("resumed/model.safetensors"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_a_mask_rcnn_trains_on_a_coco_folder(tmp_path, capsys):
    path = write_coco(tmp_path / "coco", num=16)
    code, out, err = run_main([*RUN, *TINY_MASK_RCNN, "task.data.dataset=coco", f"task.data.root={tmp_path / 'coco/images'}",
                               f"task.data.annotations={path}", "task.data.val_fraction=0.25", "format=json",
                               "hydra.run.dir=run"], capsys)
    assert code == 0, err
    record = history(Path("run"))[0]
    assert {"train_loss_mask", "train_loss_objectness", "val_mask_ap", "val_mask_ap50", "val_mask_ap_class"} <= set(record)
    assert record["val_images"] == 4
    summary = json.loads(Path("run/summary.json").read_text())
    assert summary["train"]["classes"] == ["zeta", "alpha", "mid"] and "val_mask_ap" in summary["metrics"]


@pytest.mark.parametrize("override, key, needle", [
    (["task.data.dataset=folder", "task.data.root=."], "task.data.dataset", "a detector learns from boxes"),
    (["task.data.dataset=coco", "task.data.root=."], "task.data.annotations", "needs the instances JSON"),
    (["task.data.annotations=x.json"], "task.data.annotations", "add task.data.dataset=coco"),
])
def test_data_a_detector_cannot_learn_from_is_a_usage_error(override, key, needle, capsys):
    code, _, err = run_main([*RUN, *TINY_RETINANET, *override, "hydra.run.dir=run"], capsys)
    assert code == 2 and key in err and needle in err and "Traceback" not in err


def test_ddp_on_two_cpu_processes_matches_one_process(tmp_path, capsys):
    args = [*RUN, *TINY_RETINANET, "task.data.augment=false", "task.progress=none", "task.device=cpu"]
    code, _, err = run_main([*args, "hydra.run.dir=single"], capsys)
    assert code == 0, err
    env = {**{k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}, "OMP_NUM_THREADS": "1", "TMPDIR": str(tmp_path)}
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                          "-m", "lucid_arch.cli.app", *args, "hydra.run.dir=ddp"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=240, env=env)
    assert ddp.returncode == 0, ddp.stderr
    a, b = history(tmp_path / "single")[0], history(tmp_path / "ddp")[0]
    assert json.loads((tmp_path / "ddp/summary.json").read_text())["train"]["processes"] == 2
    assert b["train_loss"] == pytest.approx(a["train_loss"], abs=1e-3)
    assert b["val_images"] == 16 and b["val_box_ap"] == pytest.approx(a["val_box_ap"], abs=0.02)  # every image scored once
    wa, wb = weights(tmp_path / "single/model.safetensors"), weights(tmp_path / "ddp/model.safetensors")
    assert max((wa[k] - wb[k]).abs().max().item() for k in wa) < 1e-3
