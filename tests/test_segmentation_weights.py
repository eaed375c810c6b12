"""Whole segmentation checkpoints: SegFormer (Hugging Face, NVlabs) and Semantic FPN (mmsegmentation).

The fixtures (fixtures/README.md) hold each reference's key layout, a seed for its weights and
its outputs: transformers' SegformerForSemanticSegmentation logits at a square, a non-square
and a size not divisible by 32 (hf_segformer_semantic.pt, with the NVlabs names of the same
tensors), and mmsegmentation's FPN + FPNHead on seeded maps and on the official backbones'
maps (mmseg_fpn.pt). Mini models only: embed_dims 16-32-48-64.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import lucid_arch
from lucid_arch.modeling.heads import FPN, FPNHead
from lucid_arch.weights import (
    CheckpointError,
    HeadLayoutError,
    convert_segmentation,
    convert_segmentation_state_dict,
    convert_state_dict,
    detect_head_layout,
    load_pretrained,
)

from conftest import MMSEG_FPN_HEAD, MMSEG_FPN_NECK, num_params
from fixture_weights import seeded_images, seeded_state_dict

TOL = 1e-5
MMDET_TOL = 2e-5  # as test_layouts: mmdet_mini's maps reach |9|
ENCODER = {"embed_dims": [16, 32, 48, 64], "num_heads": [1, 2, 3, 4], "depths": [1, 2, 1, 1]}
SEGFORMER = {**ENCODER, "mlp_ratios": [4, 4, 4, 4], "num_classes": 10, "decode_head": {"channels": 32}}


def _segformer(**overrides):
    return lucid_arch.create_model("segformer_b0", **{**SEGFORMER, **overrides}).eval()


def _fpn(family: str, hparams: dict, **overrides):
    """fpn_pvt_v2_b0 / fpn_pvt_tiny on a mini fixture's encoder, with mmseg_fpn.pt's widths."""
    hp = {k: v for k, v in hparams.items() if k not in ("img_size", "patch_size")}
    if family == "v1":
        hp["pretrain_img_size"] = 64  # v1_mini's tables are made for 64 px
    base = "fpn_pvt_tiny" if family == "v1" else "fpn_pvt_v2_b0"
    hp.update(num_classes=10, neck={"channels": 24}, decode_head={"channels": 16})
    return lucid_arch.create_model(base, **{**hp, **overrides}).eval()


def _hf_dir(data: dict, root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text(json.dumps(data["config"]))
    save_file(seeded_state_dict(data["layout"], data["seed"]), str(root / "model.safetensors"), metadata={"format": "pt"})
    return root


def _nvlabs(data: dict) -> dict:
    """The Hugging Face fixture's tensors under NVlabs SegFormer's names (the fixture's own name table)."""
    sd = seeded_state_dict(data["layout"], data["seed"])
    out = {k: torch.cat([sd[h] for h in hf]) if len(hf) > 1 else sd[hf[0]] for k, hf in data["nvlabs_names"]}
    return {**out, "decode_head.conv_seg.weight": torch.zeros(150, 32, 1, 1), "decode_head.conv_seg.bias": torch.zeros(150)}


def _logits_close(model, data: dict) -> None:
    with torch.no_grad():
        for name, x in data["inputs"].items():
            torch.testing.assert_close(model(seeded_images(x["shape"], x["seed"])), data["logits"][name], atol=TOL, rtol=0)


def _mmseg_checkpoint(fixture_file, family: str) -> dict:
    """What mmsegmentation saves for the PVT papers' Semantic FPN: the official backbone's names
    under backbone. (without what the official segmentation backbone lacks), neck, decode and auxiliary heads."""
    mm = fixture_file("mmseg_fpn.pt")
    backbone = fixture_file(f"{family}_mini.pt")["state_dict_official"]
    lacks = fixture_file("detection_mini.pt")[family]["dropped_by_official"]
    sd = {"backbone." + k: v for k, v in backbone.items() if k not in lacks}
    sd.update(seeded_state_dict(mm["layout"], mm["seed"]))
    sd["auxiliary_head.conv_seg.weight"] = torch.zeros(10, 8, 1, 1)
    return {"meta": {"iter": 80000}, "state_dict": sd}


def _save(obj, path: Path) -> Path:
    torch.save(obj, path)
    return path


# --- SegFormer ------------------------------------------------------------------------------------


def test_hf_segformer_directory_reproduces_transformers_logits(fixture_file, tmp_path):
    data = fixture_file("hf_segformer_semantic.pt")
    assert data["config"]["architectures"] == ["SegformerForSemanticSegmentation"]
    assert {name: x["shape"] for name, x in data["inputs"].items()} == {
        "x64": [1, 3, 64, 64], "x64x96": [2, 3, 64, 96], "x72x100": [1, 3, 72, 100]}
    root = _hf_dir(data, tmp_path / "segformer")
    model = _segformer(pretrained=str(root))
    _logits_close(model, data)  # square, non-square, and 72x100 (maps 18x25 ... 3x4: every resize path)
    report = load_pretrained(model, root)
    assert (report.layout, report.head_layout, report.loaded) == ("hf_segformer", "hf_segformer_head", len(model.state_dict()))
    assert report.ignored == () and not report.head_reinitialized
    assert "(hf_segformer layout; decode head hf_segformer_head)" in str(report)
    assert data["hf_eps_logits_max_diff"] > TOL  # Hugging Face's own LayerNorm eps would not pass


def test_nvlabs_segformer_checkpoint_gives_the_same_logits(fixture_file, tmp_path):
    data = fixture_file("hf_segformer_semantic.pt")
    nvlabs = _nvlabs(data)
    path = _save({"meta": {"iter": 160000}, "state_dict": nvlabs}, tmp_path / "segformer.b0.pth")
    model = _segformer(pretrained=str(path))
    _logits_close(model, data)
    report = load_pretrained(model, path)
    assert (report.layout, report.head_layout) == ("official_v2", "nvlabs_segformer_head")
    assert report.ignored == ("decode_head.conv_seg.weight", "decode_head.conv_seg.bias")
    assert "conv_seg it inherits from mmsegmentation's decode head is never used" in str(report)
    hf = convert_segmentation_state_dict(seeded_state_dict(data["layout"], data["seed"]))
    ours = convert_segmentation_state_dict(nvlabs)
    assert hf.keys() == ours.keys() and all(torch.equal(hf[k], ours[k]) for k in hf)


def test_another_class_count_reinitialises_only_conv_seg(fixture_file, tmp_path):
    data = fixture_file("hf_segformer_semantic.pt")
    path = _save(_nvlabs(data), tmp_path / "ade.pth")
    torch.manual_seed(3)
    fresh = _segformer(num_classes=7)
    with pytest.raises(CheckpointError, match=r"segments 10 classes, and the model \(segformer_b0\) has 7.*model.num_classes=10"):
        _segformer(num_classes=7, pretrained=str(path))
    torch.manual_seed(3)
    model = _segformer(num_classes=7, pretrained=str(path), new_head=True)
    assert torch.equal(model.decode_head.conv_seg.weight, fresh.decode_head.conv_seg.weight)
    assert model.decode_head.conv_seg.weight.shape == (7, 32, 1, 1)
    converted = convert_segmentation_state_dict(_nvlabs(data))
    own = model.state_dict()
    assert all(torch.equal(own[k], v) for k, v in converted.items() if not k.startswith("decode_head.conv_seg."))
    report = load_pretrained(model, path, new_head=True)
    assert report.head_reinitialized and "segments 10 classes, the model 7" in report.head_reason
    assert report.loaded == len(own) - 2


# --- Semantic FPN -------------------------------------------------------------------------------


def test_fpn_neck_and_head_match_mmsegmentation_on_seeded_maps(fixture_file, tmp_path):
    mm = fixture_file("mmseg_fpn.pt")
    path = _save(_mmseg_checkpoint(fixture_file, "v2"), tmp_path / "fpn.pth")
    model = _fpn("v2", fixture_file("v2_mini.pt")["hparams"], pretrained=str(path))
    assert set(mm["cases"]) == {"x64", "x64x96", "x72x100"}
    with torch.no_grad():
        for case in mm["cases"].values():
            maps = [seeded_images(m["shape"], m["seed"]) for m in case["maps"]]
            outs = model.neck(maps)
            for got, want in zip(outs, case["fpn_outs"], strict=True):
                torch.testing.assert_close(got, want, atol=TOL, rtol=0)
            torch.testing.assert_close(model.decode_head(outs), case["logits"], atol=TOL, rtol=0)


@pytest.mark.parametrize("family", ["v2", "v1"])
def test_mmseg_fpn_checkpoint_with_the_official_backbone(fixture_file, tmp_path, family):
    chain = fixture_file("mmseg_fpn.pt")["chain"][family]  # mmseg's neck + head on the official backbone's maps
    path = _save(_mmseg_checkpoint(fixture_file, family), tmp_path / "fpn.pth")
    model = _fpn(family, fixture_file(f"{family}_mini.pt")["hparams"], pretrained=str(path))
    with torch.no_grad():
        logits = model(seeded_images(chain["input"]["shape"], chain["input"]["seed"]))
    torch.testing.assert_close(logits, chain["logits"], atol=TOL, rtol=0)
    report = load_pretrained(model, path)
    assert (report.layout, report.head_layout) == (f"official_{family}", "mmseg_fpn")
    assert report.ignored == ("auxiliary_head.conv_seg.weight",) and not report.head_reinitialized
    assert "ignored 1 tensors that no part of the model reads (auxiliary_head: 1)" in str(report)
    if family == "v1":  # the official segmentation backbone keeps the class-token row of its last table
        assert report.dropped == ("stages.3.pos_embed: its class-token row dropped",)


def test_mmseg_fpn_over_an_mmdetection_backbone(fixture_file, tmp_path):
    data = fixture_file("mmdet_mini.pt")["mmdet_pvt_v2"]
    mm = fixture_file("mmseg_fpn.pt")
    backbone = [(k, s) for k, s in data["layout"] if k.startswith("backbone.")]
    sd = {**seeded_state_dict(backbone, data["seed"]), **seeded_state_dict(mm["layout"], mm["seed"])}
    assert detect_head_layout(sd) == "mmseg_fpn"
    model = _fpn("v2", data["hparams"], pretrained=str(_save({"state_dict": sd}, tmp_path / "mmseg1.pth")))
    with torch.no_grad():
        maps = model.forward_features(seeded_images(data["input"]["shape"], data["input"]["seed"]))
    for got, want in zip(maps, data["maps"], strict=True):
        torch.testing.assert_close(got, want, atol=MMDET_TOL, rtol=0)
    assert load_pretrained(model, tmp_path / "mmseg1.pth").layout == "mmdet_pvt_v2"


def test_mmseg_parameter_counts_are_conftests(fixture_file):
    counts = fixture_file("mmseg_fpn.pt")["param_counts"]
    assert counts["neck"] == MMSEG_FPN_NECK and counts["head"] == MMSEG_FPN_HEAD
    with torch.device("meta"):
        for channels, n in MMSEG_FPN_NECK.items():
            assert num_params(FPN(channels, 256, 4)) == n
        assert num_params(FPNHead([256] * 4, [4, 8, 16, 32], 128, 150)) == MMSEG_FPN_HEAD


# --- detection and conversion of every layout ---------------------------------------------------


def _meta(layout) -> dict:
    return {k: torch.empty(s, device="meta") for k, s in layout}


def _layouts(fixture_file) -> dict:
    hf = fixture_file("hf_segformer_semantic.pt")
    mm = fixture_file("mmseg_fpn.pt")
    official = {"backbone." + k: v for k, v in fixture_file("v2_mini.pt")["state_dict_official"].items()
                if not k.startswith("head.")}
    return {
        "hf_segformer_head": ("hf_segformer", _meta(hf["layout"])),
        "nvlabs_segformer_head": ("official_v2", _nvlabs(hf)),
        "mmseg_fpn": ("official_v2", {**official, **_meta(mm["layout"])}),
    }


@pytest.mark.parametrize("head", ["hf_segformer_head", "nvlabs_segformer_head", "mmseg_fpn", "all_mlp", "ours_fpn"])
def test_each_layout_converts_to_the_models_keys_and_shapes(fixture_file, head):
    v2 = fixture_file("v2_mini.pt")["hparams"]
    with torch.device("meta"):
        model = _fpn("v2", v2) if "fpn" in head else _segformer()
    if head.startswith(("all_mlp", "ours")):  # ours: timm's encoder names under backbone., our head names
        encoder, sd, head = "timm", model.state_dict(), "mmseg_fpn" if head == "ours_fpn" else head
    else:
        encoder, sd = _layouts(fixture_file)[head]
    conversion = convert_segmentation(sd)
    assert (conversion.encoder.layout.name, conversion.head_layout.name) == (encoder, head)
    converted = conversion.state_dict
    assert {k: tuple(v.shape) for k, v in converted.items()} == {k: tuple(v.shape) for k, v in model.state_dict().items()}
    # the encoder's own conversion gives the encoder alone, in a PyramidVisionTransformer's names
    assert set(convert_state_dict(sd)) == {k.removeprefix("backbone.") for k in converted if k.startswith("backbone.")}


# --- encoder checkpoints into segmentation models, and the reverse ---------------------------------


def test_imagenet_checkpoint_into_an_fpn_model_keeps_the_neck_and_head_init(fixture_file, tmp_path):
    data = fixture_file("v2_mini.pt")
    path = _save({"model": data["state_dict_official"]}, tmp_path / "pvt_v2_b0.pth")  # the official trainer's file
    torch.manual_seed(4)
    fresh = _fpn("v2", data["hparams"])
    cfg = lucid_arch.load_config("fpn_pvt_v2_b0", [
        f"model.{k}={json.dumps(v, separators=(',', ':'))}" for k, v in data["hparams"].items()] + [
        "model.neck.channels=24", "model.decode_head.channels=16", f"model.pretrained={path}", "model.new_head=true"])
    torch.manual_seed(4)
    model = lucid_arch.build_model(cfg)  # model.pretrained, as the command line loads it
    own = model.state_dict()
    encoder = convert_state_dict(data["state_dict_official"])
    assert all(torch.equal(own["backbone." + k], v) for k, v in encoder.items() if not k.startswith("head."))
    assert all(torch.equal(v, fresh.state_dict()[k]) for k, v in own.items() if k.startswith(("neck.", "decode_head.")))
    with pytest.raises(CheckpointError, match=r"holds an encoder only \(no decode head\).*neck and decode head at its random"):
        load_pretrained(model, path)
    report = load_pretrained(model, path, new_head=True)
    assert report.head_reinitialized and report.head_layout == ""
    assert report.head_reason == "the checkpoint holds an encoder only: the model's neck and decode head keep their initialisation"
    assert report.dropped == ("head dropped (the checkpoint's 10-class classifier; a segmentation model's encoder has none)",)
    assert report.loaded == len(encoder) - 2


def test_hf_encoder_into_a_segformer(fixture_file, tmp_path):
    data = fixture_file("hf_segformer_semantic.pt")
    encoder_only = [(k, s) for k, s in data["layout"] if not k.startswith("decode_head.")]  # SegformerModel's file
    sd = seeded_state_dict(encoder_only, data["seed"])
    path = tmp_path / "mit.safetensors"
    save_file(sd, str(path))
    model = _segformer()
    report = load_pretrained(model, path, new_head=True)
    assert report.layout == "hf_segformer" and "decode head keeps its initialisation" in report.head_reason
    own = model.state_dict()
    assert report.loaded == len([k for k in own if k.startswith("backbone.")])
    assert all(torch.equal(own["backbone." + k], v) for k, v in convert_state_dict(sd).items())


@pytest.mark.parametrize("target", ["mit_b0", "pvt_v2_b0_backbone"])
def test_segmentation_checkpoint_into_an_encoder_ignores_neck_and_head(fixture_file, tmp_path, target):
    if target == "mit_b0":
        checkpoint = {"state_dict": _nvlabs(fixture_file("hf_segformer_semantic.pt"))}
        model = lucid_arch.create_model("mit_b0", **ENCODER, mlp_ratios=[4, 4, 4, 4])
        groups = "decode_head: 18"
    else:
        checkpoint = _mmseg_checkpoint(fixture_file, "v2")
        model = lucid_arch.create_model("pvt_v2_b0", **fixture_file("v2_mini.pt")["hparams"], features_only=True)
        groups = "neck: 16, decode_head: 44, auxiliary_head: 1"
    path = _save(checkpoint, tmp_path / "seg.pth")
    report = load_pretrained(model, path)
    assert report.loaded == len(model.state_dict()) and report.head_layout == ""
    assert f"that are not the encoder ({groups})" in str(report)
    whole = convert_segmentation_state_dict(checkpoint)
    assert all(torch.equal(v, whole["backbone." + k]) for k, v in model.state_dict().items())


# --- what is refused ------------------------------------------------------------------------------


def _mmseg1_segformer(fixture_file) -> dict:
    """mmsegmentation 1.x's SegFormer: MixVisionTransformer (backbone.layers.*) + SegformerHead."""
    data = fixture_file("mmdet_mini.pt")["mmdet_pvt_v2"]
    sd = seeded_state_dict([(k, s) for k, s in data["layout"] if k.startswith("backbone.")], data["seed"])
    for i, c in enumerate(ENCODER["embed_dims"]):
        sd[f"decode_head.convs.{i}.conv.weight"] = torch.zeros(32, c, 1, 1)
        sd[f"decode_head.convs.{i}.bn.weight"] = torch.ones(32)
    sd["decode_head.fusion_conv.conv.weight"] = torch.zeros(32, 128, 1, 1)
    sd["decode_head.conv_seg.weight"] = torch.zeros(10, 32, 1, 1)
    return {"state_dict": sd}


def test_mmseg_1x_segformer_head_is_an_error_naming_it(fixture_file, tmp_path):
    checkpoint = _mmseg1_segformer(fixture_file)
    path = _save(checkpoint, tmp_path / "mmseg1_segformer.pth")
    hp = {k: v for k, v in fixture_file("mmdet_mini.pt")["mmdet_pvt_v2"]["hparams"].items() if k != "img_size"}
    model = _segformer(**hp)
    with pytest.raises(CheckpointError) as err:
        load_pretrained(model, path)
    text = str(err.value)
    assert str(path) in text and "\n" not in text
    assert "mmsegmentation 1.x's SegformerHead" in text and "not SegFormer's all-MLP head" in text
    with pytest.raises(HeadLayoutError, match="SegformerHead"):
        convert_segmentation(checkpoint)
    report = load_pretrained(model, path, strict=False)  # its encoder alone
    assert report.layout == "mmdet_pvt_v2" and report.head_reinitialized and "not a layout read here" in report.head_reason
    assert sorted(report.skipped) == sorted(k for k in checkpoint["state_dict"] if k.startswith("decode_head."))
    assert report.loaded == len([k for k in model.state_dict() if k.startswith("backbone.")])


def test_an_unknown_decode_head_is_named(tmp_path):
    sd = {"backbone.patch_embed.proj.weight": torch.zeros(1), "decode_head.psp_modules.0.1.conv.weight": torch.zeros(1)}
    with pytest.raises(CheckpointError, match=r"the neck and decode head \(decode_head.psp_modules.0.1.conv.weight, ...\) "
                                              r"are none of the heads read here") as err:
        load_pretrained(_segformer(), _save(sd, tmp_path / "upernet.pth"))
    assert "\n" not in str(err.value)


def test_a_segformer_checkpoint_into_an_fpn_model_names_both_heads(fixture_file, tmp_path):
    path = _save(_nvlabs(fixture_file("hf_segformer_semantic.pt")), tmp_path / "segformer.pth")
    model = _fpn("v2", {**ENCODER, "mlp_ratios": [4, 4, 4, 4]})
    with pytest.raises(CheckpointError) as err:
        load_pretrained(model, path)
    text = str(err.value)
    assert "\n" not in text and "neck.lateral_convs.0.conv.weight [24, 16, 1, 1] is not in the checkpoint" in text
    assert "its neck and decode head are none and all_mlp (nvlabs_segformer_head layout), the model's fpn and fpn" in text


def test_hf_config_of_another_decoder_width_is_named(fixture_file, tmp_path):
    data = fixture_file("hf_segformer_semantic.pt")
    root = _hf_dir(data, tmp_path / "segformer")
    with pytest.raises(CheckpointError) as err:
        load_pretrained(_segformer(decode_head={"channels": 64}), root)
    text = str(err.value)
    assert "decoder_hidden_size 32 there, decode_head.channels 64 here" in text and "'model.decode_head.channels=32'" in text
    report = load_pretrained(_segformer(num_classes=5), root, new_head=True)  # num_labels 10: a fresh classifier
    assert "segments 10 classes, the model 5" in report.head_reason
    assert load_pretrained(lucid_arch.create_model("mit_b0", **ENCODER, mlp_ratios=[4, 4, 4, 4]), root).head_layout == ""


def test_a_section_given_as_a_dict_changes_only_its_fields():
    with torch.device("meta"):
        model = _segformer(decode_head={"channels": 48})  # the variant's type and dropout stay
    head = model.spec.decode_head
    assert (head.kind, head.channels, head.dropout, head.num_classes) == ("all_mlp", 48, 0.1, 10)
