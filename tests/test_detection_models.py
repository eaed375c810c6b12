"""Detectors as configs (issue 32): RetinaNet and Mask R-CNN on every PVT backbone, on torchvision's parts.

Counts are mmdetection 2.x's, exactly for the neck and heads (10,249,972 and 9,537,268 for
RetinaNet at 80 classes on [64,128,320,512] and [32,64,160,256] channels; 20,167,408 and
20,036,336 for Mask R-CNN), and whole models round to the PVT papers' #Param columns. Forward
passes use tiny models (embed_dims 16-64, FPN 32 channels, 64 px images). The checkpoint of the
official PVT detection repository (mmdetection 2.x key layout) is made here: the official
backbone names of the mini classification fixture under ``backbone.``, and our own random neck
and heads renamed by the inverse of lucid_arch/weights/detection_layouts.py's tables (below).
"""

from __future__ import annotations

import copy
import functools
import re
import subprocess
import sys

import pytest
import torch

import lucid_arch
from lucid_arch.config import ConfigError
from lucid_arch.perf.analysis import analyze
from lucid_arch.weights import CheckpointError, load_pretrained
from lucid_arch.weights.convert_detection import convert_detection

from conftest import num_params, run_main

ENCODERS = ["pvt_v2_b0", "pvt_v2_b1", "pvt_v2_b2", "pvt_v2_b2_li", "pvt_v2_b3", "pvt_v2_b4", "pvt_v2_b5",
            "pvt_tiny", "pvt_small", "pvt_medium", "pvt_large"]
DETECTORS = [f"{kind}_{encoder}" for kind in ("retinanet", "mask_rcnn") for encoder in ENCODERS]

# Neck + heads at 80 classes, counted on mmdetection 2.x's modules (FPN, RetinaHead; FPN, RPNHead,
# Shared2FCBBoxHead, FCNMaskHead), by the encoder's channels.
MMDET_RETINANET = {(64, 128, 320, 512): 10_249_972, (32, 64, 160, 256): 9_537_268}
MMDET_MASK_RCNN = {(64, 128, 320, 512): 20_167_408, (32, 64, 160, 256): 20_036_336}
# The papers' #Param (M): PVT v2 Table 3 (RetinaNet, Mask R-CNN 1x), PVT v1 Tables 3 and 4. Neither
# paper lists b0 in these tables; b1's RetinaNet is 23,745,972 parameters in the released code: 23.7, the
# paper rounds it up to 23.8 (docs/detection.md).
PAPER = {
    "retinanet_pvt_v2_b1": 23.8, "retinanet_pvt_v2_b2": 35.1, "retinanet_pvt_v2_b3": 55.0, "retinanet_pvt_v2_b4": 72.3,
    "retinanet_pvt_v2_b5": 91.7, "retinanet_pvt_v2_b2_li": 32.3, "retinanet_pvt_tiny": 23.0, "retinanet_pvt_small": 34.2,
    "retinanet_pvt_medium": 53.9, "retinanet_pvt_large": 71.1,
    "mask_rcnn_pvt_v2_b1": 33.7, "mask_rcnn_pvt_v2_b2": 45.0, "mask_rcnn_pvt_v2_b3": 64.9, "mask_rcnn_pvt_v2_b4": 82.2,
    "mask_rcnn_pvt_v2_b5": 101.6, "mask_rcnn_pvt_v2_b2_li": 42.2, "mask_rcnn_pvt_tiny": 32.9, "mask_rcnn_pvt_small": 44.1,
    "mask_rcnn_pvt_medium": 63.9, "mask_rcnn_pvt_large": 81.0,
}
PAPER_ROUNDS_UP = {"retinanet_pvt_v2_b1": 23_745_972}

MINI = {"embed_dims": [16, 32, 48, 64], "num_heads": [1, 2, 3, 4], "mlp_ratios": [8, 8, 4, 4], "depths": [1, 2, 1, 1],
        "sr_ratios": [8, 4, 2, 1], "qkv_bias": True}
TINY_NECK = {"channels": 32}
TINY = {
    "retinanet": {"detector": {"head_channels": 32}},
    "mask_rcnn": {"roi": {"fc_channels": 64, "mask_channels": 32},
                  "rpn": {"pre_nms_top_n_test": 200, "post_nms_top_n_test": 100}},
}


@functools.lru_cache(maxsize=None)
def _variant(name: str) -> dict:
    """A variant's composed config as a plain dict (composing costs half a second; tests build dozens)."""
    from lucid_arch.config.checks import to_plain_dict

    return to_plain_dict(lucid_arch.load_config(name))


@functools.lru_cache(maxsize=None)
def _backbone_params(encoder: str) -> int:
    """The encoder built alone as a features_only backbone (on meta): RetinaNet and Mask R-CNN share it."""
    with torch.device("meta"):
        return num_params(lucid_arch.create_model(encoder, features_only=True))


def tiny_config(kind: str, family: str = "v2", **overrides) -> dict:
    """A RetinaNet or Mask R-CNN on the mini fixtures' encoder: 64 px, 3 classes, FPN of 32 channels;
    a section given as a dict changes only the fields it names."""
    cfg = copy.deepcopy(_variant(f"{kind}_{'pvt_v2_b0' if family == 'v2' else 'pvt_tiny'}"))
    changes = {**MINI, "img_size": 64, "num_classes": 3, "neck": TINY_NECK, **TINY[kind], **({"pretrain_img_size": 64}
                                                                                            if family == "v1" else {})}
    for changed in (changes, overrides):
        for key, value in changed.items():
            cfg[key] = {**cfg[key], **value} if isinstance(value, dict) else value
    return cfg


def tiny(kind: str, family: str = "v2", **overrides):
    return lucid_arch.build_model(tiny_config(kind, family, **overrides))


def _images(seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(3, 64, 64, generator=g), torch.randn(3, 48, 80, generator=g)]


def _targets(images: list[torch.Tensor], masks: bool) -> list[dict[str, torch.Tensor]]:
    boxes = [torch.tensor([[4.0, 6.0, 30.0, 40.0]]), torch.tensor([[10.0, 5.0, 60.0, 40.0], [0.0, 0.0, 20.0, 22.0]])]
    labels = [torch.tensor([2]), torch.tensor([0, 1])]
    out = []
    for image, b, lab in zip(images, boxes, labels):
        t = {"boxes": b, "labels": lab}
        if masks:
            m = torch.zeros(len(b), *image.shape[1:], dtype=torch.uint8)
            for i, (x1, y1, x2, y2) in enumerate(b.int().tolist()):
                m[i, y1:y2, x1:x2] = 1
            t["masks"] = m
        out.append(t)
    return out


# --- the shipped YAMLs: compose, validate, build on meta, count ------------------------------------


def test_every_detector_variant_is_listed():
    assert lucid_arch.list_models("retinanet_*") == sorted(d for d in DETECTORS if d.startswith("retinanet"))
    assert lucid_arch.list_models("mask_rcnn_*") == sorted(d for d in DETECTORS if d.startswith("mask_rcnn"))


@pytest.mark.parametrize("name", DETECTORS)
def test_detector_counts_mmdetections_neck_and_heads_and_the_papers_total(name):
    kind, encoder = ("retinanet", name.removeprefix("retinanet_")) if name.startswith("retinanet") else \
        ("mask_rcnn", name.removeprefix("mask_rcnn_"))
    cfg = lucid_arch.load_config(name)  # composed once: built here and analysed below
    with torch.device("meta"):
        model = lucid_arch.build_model(cfg)
    assert model.spec.detection.kind == kind and model.spec.task == "detection" and model.num_classes == 80
    channels = tuple(s.dim for s in model.spec.stages)
    heads = num_params(model) - num_params(model.backbone)
    assert heads == (MMDET_RETINANET if kind == "retinanet" else MMDET_MASK_RCNN)[channels]
    assert num_params(model.backbone) == _backbone_params(encoder)  # the official detection backbone
    total = num_params(model)
    if name in PAPER:
        assert PAPER_ROUNDS_UP.get(name, total) == total
        assert round(total / 1e6, 1) == PAPER[name] or name in PAPER_ROUNDS_UP
    assert analyze(cfg).params == total  # the analysis counts what the builder builds


def test_detector_vocabulary_is_the_schemas():
    from lucid_arch.config.schema import DETECTOR_CHOICES
    from lucid_arch.modeling.detection import KINDS

    assert set(KINDS) == set(DETECTOR_CHOICES) - {"none"}


def test_parts_are_torchvisions():
    from torchvision.models.detection.retinanet import RetinaNet, RetinaNetHead
    from torchvision.models.detection.roi_heads import RoIHeads
    from torchvision.models.detection.rpn import RegionProposalNetwork
    from torchvision.ops import MultiScaleRoIAlign

    retina, mask = tiny("retinanet"), tiny("mask_rcnn")
    assert isinstance(retina, RetinaNet) and isinstance(retina.head, RetinaNetHead)
    assert isinstance(mask.rpn, RegionProposalNetwork) and isinstance(mask.roi_heads, RoIHeads)
    assert isinstance(mask.roi_heads.box_roi_pool, MultiScaleRoIAlign)
    from lucid_arch.modeling.detection import DetectionModel

    assert isinstance(retina, DetectionModel) and isinstance(mask, DetectionModel)


# --- forward: losses in train mode, detections in eval mode -----------------------------------------


@pytest.mark.parametrize("kind", ["retinanet", "mask_rcnn"])
def test_tiny_detector_trains_and_detects(kind):
    torch.manual_seed(0)
    model = tiny(kind, detector={"score_threshold": 0.0, "detections_per_image": 10})
    images = _images()
    losses = model.train()(images, _targets(images, kind == "mask_rcnn"))
    want = {"classification", "bbox_regression"} if kind == "retinanet" else \
        {"loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg", "loss_mask"}
    assert set(losses) == want and all(torch.isfinite(v) and v.ndim == 0 for v in losses.values())
    sum(losses.values()).backward()
    assert model.neck.lateral_convs[0].conv.weight.grad.abs().sum() > 0
    assert model.backbone.patch_embed.proj.weight.grad.abs().sum() > 0
    with torch.no_grad():
        found = model.eval()(images)
    assert len(found) == 2
    for image, det in zip(images, found):
        k = det["boxes"].shape[0]
        assert k == 10 and det["scores"].shape == (k,) and det["labels"].dtype == torch.int64
        assert int(det["labels"].min()) >= 0 and int(det["labels"].max()) <= 2  # the app's ids, 0..num_classes-1
        assert bool((det["scores"][:-1] >= det["scores"][1:]).all())
        h, w = image.shape[1:]
        assert float(det["boxes"][:, 2].max()) <= w and float(det["boxes"][:, 3].max()) <= h  # the input's pixels
        if kind == "mask_rcnn":
            assert det["masks"].shape == (k, 1, h, w) and 0 <= float(det["masks"].min()) and float(det["masks"].max()) <= 1


def test_mask_rcnn_shifts_labels_past_the_background():
    """The app's class 0 is torchvision's 1: the loss sees it as a foreground class, detections come back as 0."""
    model = tiny("mask_rcnn", detector={"score_threshold": 0.0}).train()
    seen = []
    model.roi_heads.register_forward_pre_hook(lambda m, args: seen.extend(t["labels"].tolist() for t in args[3]))
    images = _images()
    model(images, _targets(images, masks=True))
    assert seen == [[3], [1, 2]]


def test_bad_targets_are_one_sentence_each():
    model = tiny("retinanet").train()
    images = _images()
    t = _targets(images, masks=False)
    with pytest.raises(ValueError, match=r"targets\[1\]: labels must be class ids 0..2, got 0..3"):
        model(images, [t[0], {**t[1], "labels": torch.tensor([0, 3])}])
    with pytest.raises(ValueError, match=r"targets\[0\]: box \[4.0, 6.0, 4.0, 40.0\] has no area"):
        model(images, [{**t[0], "boxes": torch.tensor([[4.0, 6.0, 4.0, 40.0]])}, t[1]])
    with pytest.raises(ValueError, match="in training mode: it needs targets"):
        model(images)
    with pytest.raises(TypeError, match="float images, normalised"):
        model.eval()([torch.zeros(3, 64, 64, dtype=torch.uint8)])


def test_no_resize_and_no_normalisation_unless_configured():
    model = tiny("retinanet").eval()
    batch, _ = model.transform([torch.full((3, 50, 70), 7.0)])
    assert batch.image_sizes == [(50, 70)] and batch.tensors.shape[-2:] == (64, 96)  # padded to 32, values kept
    assert float(batch.tensors[0, 0, 0, 0]) == 7.0 and float(batch.tensors[0, 0, 60, 90]) == 0.0
    resizing = tiny("retinanet", detector={"min_size": 100, "max_size": 200, "score_threshold": 0.0}).eval()
    batch, _ = resizing.transform([torch.zeros(3, 50, 70)])
    assert batch.image_sizes == [(100, 140)]
    with torch.no_grad():
        boxes = resizing.eval()([torch.randn(3, 50, 70)])[0]["boxes"]
    assert len(boxes) == 100  # clipped to the resized 100x140, then mapped back to the input's 50x70
    assert float(boxes[:, 2].max()) == pytest.approx(70) and float(boxes[:, 3].max()) == pytest.approx(50)


# --- what the config decides where torchvision and mmdetection differ --------------------------------


def test_anchors_are_mmdetections_exact_and_at_the_configured_strides():
    model = tiny("retinanet").eval()
    gen = model.anchor_generator
    base = gen.cell_anchors[0]  # level 0: stride 8, sizes 32 * 2^(j/3), ratios 0.5, 1, 2 (ratio-major, as mmdetection)
    w, h = 32 * 2**0.5, 32 / 2**0.5  # ratio 0.5 (height/width) at size 32
    torch.testing.assert_close(base[0], torch.tensor([-w / 2, -h / 2, w / 2, h / 2]))
    torch.testing.assert_close(base[4], torch.tensor([-16 * 2 ** (1 / 3)] * 2 + [16 * 2 ** (1 / 3)] * 2))
    assert tiny("retinanet", anchors={"rounded": True}).anchor_generator.cell_anchors[0][0].tolist() == [-23.0, -11.0, 23.0, 11.0]
    with torch.no_grad():  # 96x160: P6 is 2x3, its anchors 64 px apart (torchvision's inference: 96 // 2 = 48, 160 // 3 = 53)
        batch, _ = model.transform([torch.zeros(3, 96, 160)])
        levels = model.forward_features(batch.tensors)
        anchors = model.anchor_generator(batch, levels)[0]
    assert [tuple(f.shape[-2:]) for f in levels][3] == (2, 3)
    p6 = anchors.split([f.shape[-2] * f.shape[-1] * 9 for f in levels])[3]
    centres = ((p6[:, :2] + p6[:, 2:]) / 2).round()
    assert sorted(set(centres[:, 0].tolist())) == [0.0, 64.0, 128.0] and sorted(set(centres[:, 1].tolist())) == [0.0, 64.0]


def test_roi_align_levels_and_alignment_are_mmdetections():
    from torchvision.ops import roi_align

    pool = tiny("mask_rcnn").roi_heads.box_roi_pool
    boxes = torch.tensor([[0, 0, 111.0, 111.0], [0, 0, 112.0, 112.0], [0, 0, 224.0, 224.0], [0, 0, 10.0, 10.0], [0, 0, 900, 900.0]])
    assert pool.levels(boxes).tolist() == [0, 1, 2, 0, 3]  # floor(log2(sqrt(area) / 56)), clamped
    assert pool.aligned and pool.sampling_ratio == 0 and pool.strides == (4, 8, 16, 32)
    maps = {str(i): torch.randn(1, 4, 32 // 2**i, 32 // 2**i) for i in range(4)}
    box = torch.tensor([[2.0, 3.0, 20.0, 25.0]])
    got = pool(maps, [box], [(128, 128)])
    want = roi_align(maps["0"], [box], 7, spatial_scale=0.25, sampling_ratio=0, aligned=True)
    torch.testing.assert_close(got, want)
    assert not tiny("mask_rcnn", roi={"aligned": False}).roi_heads.box_roi_pool.aligned


def test_background_outputs_switch_gives_torchvisions_predictor_sizes():
    mm, tv = tiny("mask_rcnn"), tiny("mask_rcnn", roi={"background_outputs": True})
    assert mm.roi_heads.box_predictor.bbox_pred.out_features == 3 * 4
    assert tv.roi_heads.box_predictor.bbox_pred.out_features == 4 * 4
    assert mm.roi_heads.mask_predictor.mask_fcn_logits.out_channels == 3
    assert tv.roi_heads.mask_predictor.mask_fcn_logits.out_channels == 4
    assert num_params(tv) - num_params(mm) == 4 * (64 + 1) + (32 + 1)
    deltas = mm.roi_heads.box_predictor(torch.randn(5, 64))[1]
    assert deltas.shape == (5, 16) and bool((deltas[:, :4] == 0).all())  # the background's, for torchvision's decoder


def test_neck_extra_levels_by_the_config():
    ret = tiny("retinanet")
    assert [c.conv.stride for c in ret.neck.fpn_convs[3:]] == [(2, 2), (2, 2)]
    assert ret.neck.fpn_convs[3].conv.in_channels == 64  # P6 from C5 ('on_input'), as the PVT configs build it
    out = tiny("retinanet", neck={"extra_convs": "on_output"}).neck
    assert out.fpn_convs[3].conv.in_channels == 32  # torchvision's: from P5
    with torch.no_grad():
        levels = ret.forward_features(torch.randn(1, 3, 64, 96))
        relu = tiny("retinanet", neck={"relu_before_extra_convs": True})
        relu.load_state_dict(ret.state_dict())
        relu_levels = relu.forward_features(torch.randn(1, 3, 64, 96))
    assert [tuple(x.shape[-2:]) for x in levels] == [(8, 12), (4, 6), (2, 3), (1, 2), (1, 1)]
    assert len(relu_levels) == 5
    mask = tiny("mask_rcnn")
    assert len(mask.neck.fpn_convs) == 4  # P6 is a max-pool
    with torch.no_grad():
        levels = mask.forward_features(torch.randn(1, 3, 64, 64))
    torch.testing.assert_close(levels[4], levels[3][:, :, ::2, ::2])


def test_analysis_flops_are_what_flop_counter_counts_for_the_neck_and_dense_heads():
    from torch.utils.flop_counter import FlopCounterMode

    for kind in ("retinanet", "mask_rcnn"):
        model = tiny(kind).eval()
        report = analyze(tiny_config(kind), img_size=[64, 96])
        with torch.no_grad():
            maps = model.backbone(torch.randn(1, 3, 64, 96))
            with FlopCounterMode(display=False) as neck:
                levels = model.neck(maps)
            with FlopCounterMode(display=False) as head:
                model.head(levels) if kind == "retinanet" else model.rpn.head(levels)
        parts = {p.name: p for p in report.parts}
        assert parts["neck"].flops == neck.get_total_flops()
        assert parts["head" if kind == "retinanet" else "rpn"].flops == head.get_total_flops()
        assert parts["head" if kind == "retinanet" else "rpn"].anchors == tuple(
            x.shape[-2] * x.shape[-1] * (9 if kind == "retinanet" else 3) for x in levels)


def test_summary_shows_neck_and_head_rows_with_anchors(capsys):
    code, out, _ = run_main(["model=retinanet_pvt_v2_b0", "format=text"], capsys)
    assert code == 0
    assert re.search(r"^neck \(fpn\)\s.*\s3,074,048\s", out, re.M) and re.search(r"^head \(retinanet\)\s.*\s6,463,220\s", out, re.M)
    assert "head (retinanet) anchors: 9 per location: 150,300 + 37,800 + 9,450 + 2,457 + 693 = 200,700" in out
    code, out, _ = run_main(["model=mask_rcnn_pvt_v2_b0", "format=text"], capsys)
    assert code == 0 and "box head (mask_rcnn)" in out and "14,306,705" in out and "rpn (mask_rcnn) anchors: 3 per location" in out


# --- the config's checks: one problem per bad value, naming its key -----------------------------------


@pytest.mark.parametrize(
    "override, key, words",
    [
        (["model.detector.type=retina"], "model.detector.type", "did you mean retinanet"),
        (["model.detector.fg_iou=1.5"], "model.detector.fg_iou", "must lie in (0, 1]"),
        (["model.rpn.bg_iou=0.8"], "model.rpn.bg_iou", "above rpn.fg_iou = 0.7"),
        (["model.anchors.strides=[8,16,32,64]"], "model.anchors.strides", "set anchors.strides=[8,16,32,64,128]"),
        (["model.anchors.ratios=[0.5,-1.0]"], "model.anchors.ratios[1]", "must lie in (0, 1024]"),
        (["model.anchors.ratios=[]"], "model.anchors.ratios", "at least one height-to-width ratio"),
        (["model.neck.type=none"], "model.neck.type", "set neck.type=fpn"),
        (["model.neck.start_level=4"], "model.neck.start_level", "the encoder has 4 maps"),
        (["model.neck.num_outs=2"], "model.neck.num_outs", "fewer levels than the 3 encoder maps it reads"),
        (["model.decode_head.type=fpn"], "model.detector.type", "a model has one head"),
        (["model.num_classes=0"], "model.num_classes", "a detector tells at least 1 class"),
        (["model.detector.head_convs=40"], "model.detector.head_convs", "must lie in [0, 16]"),
        (["model.detector.min_size=2000"], "model.detector.min_size", "above detector.max_size = 1333"),
        (["model.roi.sampling_ratio=-1"], "model.roi.sampling_ratio", "must lie in [0, 64]"),
        (["model.anchors.base_scale=1000"], "model.anchors.base_scale", "keep anchors within 65,536 px"),
        (["model.patch_strides=[4,2,3,2]"], "model.neck.start_level", "doubles its stride from level to level"),
    ],
)
def test_a_bad_section_value_is_one_problem_naming_its_key(override, key, words):
    with pytest.raises(ConfigError) as err:
        lucid_arch.load_config("retinanet_pvt_v2_b0", override)
    assert [p.key for p in err.value.problems] == [key]
    assert words in err.value.problems[0].message


def test_every_bad_value_is_reported_at_once():
    with pytest.raises(ConfigError) as err:
        lucid_arch.load_config("mask_rcnn_pvt_v2_b0", ["model.rpn.fg_iou=2", "model.roi.positive_fraction=0",
                                                       "model.anchors.strides=[4,8]", "model.detector.nms_iou=0"])
    assert sorted(p.key for p in err.value.problems) == ["model.anchors.strides", "model.detector.nms_iou",
                                                          "model.roi.positive_fraction", "model.rpn.fg_iou"]


def test_app_usage_error_exits_2(capsys):
    code, _, err = run_main(["model=retinanet_pvt_v2_b0", "model.anchors.strides=[8,16]"], capsys)
    assert code == 2 and "model.anchors.strides" in err


# --- checkpoints: the official PVT detection repository's (mmdetection 2.x layout), and ours ----------

# The inverse of detection_layouts.py's mmdetection tables: our names -> mmdetection 2.x's.
TO_MMDET = [
    (r"neck\.(.+)", r"neck.\1"),
    (r"head\.classification_head\.conv\.(\d+)\.0\.(\w+)", r"bbox_head.cls_convs.\1.conv.\2"),
    (r"head\.regression_head\.conv\.(\d+)\.0\.(\w+)", r"bbox_head.reg_convs.\1.conv.\2"),
    (r"head\.classification_head\.cls_logits\.(\w+)", r"bbox_head.retina_cls.\1"),
    (r"head\.regression_head\.bbox_reg\.(\w+)", r"bbox_head.retina_reg.\1"),
    (r"rpn\.head\.conv\.0\.0\.(\w+)", r"rpn_head.rpn_conv.\1"),
    (r"rpn\.head\.cls_logits\.(\w+)", r"rpn_head.rpn_cls.\1"),
    (r"rpn\.head\.bbox_pred\.(\w+)", r"rpn_head.rpn_reg.\1"),
    (r"roi_heads\.box_head\.fc6\.(\w+)", r"roi_head.bbox_head.shared_fcs.0.\1"),
    (r"roi_heads\.box_head\.fc7\.(\w+)", r"roi_head.bbox_head.shared_fcs.1.\1"),
    (r"roi_heads\.box_predictor\.cls_score\.(\w+)", r"roi_head.bbox_head.fc_cls.\1"),
    (r"roi_heads\.box_predictor\.bbox_pred\.(\w+)", r"roi_head.bbox_head.fc_reg.\1"),
    (r"roi_heads\.mask_head\.(\d+)\.0\.(\w+)", r"roi_head.mask_head.convs.\1.conv.\2"),
    (r"roi_heads\.mask_predictor\.conv5_mask\.(\w+)", r"roi_head.mask_head.upsample.\1"),
    (r"roi_heads\.mask_predictor\.mask_fcn_logits\.(\w+)", r"roi_head.mask_head.conv_logits.\1"),
]


def mmdet_checkpoint(model, fixture_file, family: str) -> dict:
    """What the official PVT detection repository saves for ``model``: the official backbone names (the
    mini fixture's, less what its detection backbone lacks) under backbone., the rest in mmdetection 2.x's names
    (the box classifier's background last)."""
    backbone = fixture_file(f"{family}_mini.pt")["state_dict_official"]
    lacks = fixture_file("detection_mini.pt")[family]["dropped_by_official"]
    sd = {"backbone." + k: v.clone() for k, v in backbone.items() if k not in lacks}
    for key, value in model.state_dict().items():
        if key.startswith("backbone."):
            continue
        pattern, template = next((p, t) for p, t in TO_MMDET if re.fullmatch(p, key))
        if key.startswith("roi_heads.box_predictor.cls_score."):
            value = torch.cat([value[1:], value[:1]])  # torchvision's background first -> mmdetection's last
        sd[re.sub(pattern, template, key)] = value.clone()
    return {"meta": {"epoch": 12, "CLASSES": ["a", "b", "c"]}, "state_dict": sd}


def _with_official_backbone(model, fixture_file, family: str, tmp_path):
    """``model`` with the mini fixture's official classification weights in its backbone (its heads as initialised)."""
    path = tmp_path / f"{family}_imagenet.pth"
    torch.save(fixture_file(f"{family}_mini.pt")["state_dict_official"], path)
    report = load_pretrained(model, path, new_head=True)
    assert report.head_reinitialized and "holds no" in report.head_reason
    return model


@pytest.mark.parametrize("kind, family", [("retinanet", "v2"), ("mask_rcnn", "v1")])
def test_official_detection_checkpoint_converts_and_reproduces_the_model(kind, family, fixture_file, tmp_path):
    torch.manual_seed(1)
    source = _with_official_backbone(tiny(kind, family, detector={"score_threshold": 0.0}), fixture_file, family, tmp_path)
    checkpoint = mmdet_checkpoint(source, fixture_file, family)
    conversion = convert_detection(checkpoint)
    assert conversion.encoder.layout.name == f"official_{family}"
    assert conversion.head_layout.name == f"mmdet_{kind}" and conversion.ignored == ()
    path = tmp_path / f"{kind}_pvt_mini_fpn_1x_coco.pth"
    torch.save(checkpoint, path)
    torch.manual_seed(2)  # another initialisation: everything must come from the file
    model = tiny(kind, family, detector={"score_threshold": 0.0}, pretrained=str(path)).eval()
    report = load_pretrained(model, path)
    assert report.head_layout == f"mmdet_{kind}" and not report.head_reinitialized and not report.skipped
    assert report.loaded == len(model.state_dict())
    if kind == "mask_rcnn":
        assert any("background last" in n for n in report.notes)
        assert torch.equal(model.roi_heads.box_predictor.cls_score.weight[0],
                           checkpoint["state_dict"]["roi_head.bbox_head.fc_cls.weight"][-1])
    images = _images(3)
    with torch.no_grad():
        want, got = source.eval()(images), model(images)
    for w, g in zip(want, got, strict=True):
        assert w["boxes"].shape[0] > 0 and set(w) == set(g)
        for k in w:
            torch.testing.assert_close(g[k], w[k], atol=1e-5, rtol=0)


def test_our_own_detector_checkpoint_round_trips(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(3)
    source = tiny("mask_rcnn")
    save_file(source.state_dict(), str(tmp_path / "model.safetensors"))
    model = tiny("mask_rcnn", pretrained=str(tmp_path / "model.safetensors"))
    report = load_pretrained(model, tmp_path / "model.safetensors")
    assert (report.layout, report.head_layout) == ("timm", "mask_rcnn") and report.loaded == len(source.state_dict())
    for k, v in source.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k


def test_an_imagenet_checkpoint_needs_new_head_and_then_loads_the_backbone(fixture_file, tmp_path):
    path = tmp_path / "imagenet.pth"
    torch.save(fixture_file("v2_mini.pt")["state_dict_official"], path)
    with pytest.raises(CheckpointError, match="holds no detector heads .* model.new_head=true"):
        tiny("retinanet", pretrained=str(path))
    model = tiny("retinanet", pretrained=str(path), new_head=True)
    ref = lucid_arch.create_model("pvt_v2_b0", **MINI, num_classes=10, pretrained=str(path))
    torch.testing.assert_close(model.backbone.stages[1].blocks[0].attn.q.weight, ref.stages[1].blocks[0].attn.q.weight)


def test_another_class_count_keeps_only_the_class_outputs_fresh(fixture_file, tmp_path):
    torch.manual_seed(4)
    source = _with_official_backbone(tiny("mask_rcnn"), fixture_file, "v2", tmp_path)
    path = tmp_path / "coco3.pth"
    torch.save(mmdet_checkpoint(source, fixture_file, "v2"), path)
    with pytest.raises(CheckpointError, match="detects 3 classes, and the model .* has 5"):
        tiny("mask_rcnn", num_classes=5, pretrained=str(path))
    model = tiny("mask_rcnn", num_classes=5, pretrained=str(path), new_head=True)
    report = load_pretrained(model, path, new_head=True)
    assert "the checkpoint detects 3 classes, the model 5" in report.head_reason
    torch.testing.assert_close(model.roi_heads.box_head.fc6.weight, source.roi_heads.box_head.fc6.weight)
    assert model.roi_heads.box_predictor.cls_score.out_features == 6


def test_background_outputs_are_made_from_an_mmdetection_checkpoint(fixture_file, tmp_path):
    torch.manual_seed(5)
    source = _with_official_backbone(tiny("mask_rcnn"), fixture_file, "v2", tmp_path)
    path = tmp_path / "mm.pth"
    torch.save(mmdet_checkpoint(source, fixture_file, "v2"), path)
    model = tiny("mask_rcnn", roi={"background_outputs": True}, pretrained=str(path))
    theirs, mine = source.roi_heads.box_predictor.bbox_pred.weight, model.roi_heads.box_predictor.bbox_pred.weight
    assert bool((mine[:4] == 0).all()) and torch.equal(mine[4:], theirs)
    assert "zero background outputs added" in str(load_pretrained(model, path))


def test_a_retinanet_checkpoint_into_a_mask_rcnn_names_the_detector(fixture_file, tmp_path):
    source = _with_official_backbone(tiny("retinanet"), fixture_file, "v2", tmp_path)
    path = tmp_path / "retina.pth"
    torch.save(mmdet_checkpoint(source, fixture_file, "v2"), path)
    with pytest.raises(CheckpointError, match="its detector is retinanet \\(mmdet_retinanet layout\\), the model's mask_rcnn"):
        tiny("mask_rcnn", pretrained=str(path))


# --- torchvision is needed by detection alone ----------------------------------------------------------


def test_without_torchvision_only_detection_asks_for_the_extra(tmp_path):
    script = """
import sys
sys.modules["torchvision"] = None  # as if it were not installed
import importlib.util
real = importlib.util.find_spec
importlib.util.find_spec = lambda name, *a: None if name.split(".")[0] == "torchvision" else real(name, *a)
import lucid_arch
print(sum(p.numel() for p in lucid_arch.create_model("pvt_v2_b0", depths=[1, 1, 1, 1]).parameters()) > 0)
print(lucid_arch.analyze(lucid_arch.load_config("fpn_pvt_v2_b0")).params)
lucid_arch.validate_model(lucid_arch.load_config("retinanet_pvt_v2_b0"))
try:
    lucid_arch.create_model("retinanet_pvt_v2_b0")
except ImportError as err:
    print(type(err).__name__, err)
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[:2] == ["True", "7545334"]
    assert lines[2] == ("MissingExtra detection models (RetinaNet, Mask R-CNN) need torchvision, which is not installed "
                        "here: pip install 'lucid-arch[detection]'.")
