"""Whole architectures as configs: the neck and decode-head sections, their checks, modules, costs and reports."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lucid_arch
from lucid_arch.config import ConfigError, validate_model
from lucid_arch.config.checks import to_plain_dict
from lucid_arch.config.schema import DECODE_HEAD_CHOICES, NECK_CHOICES, DecodeHeadConfig, NeckConfig
from lucid_arch.modeling.registry import DECODE_HEADS, NECKS
from lucid_arch.modeling.segmentation import SegmentationModel
from lucid_arch.perf.analysis import analyze

from conftest import run_main
from test_properties import pvt_configs

MINI = {"embed_dims": [16, 32, 48, 64], "num_heads": [1, 2, 3, 4], "depths": [1, 1, 1, 1]}


def mit_b0(**overrides) -> dict:
    cfg = to_plain_dict(lucid_arch.load_config("mit_b0"))
    cfg.update({"features_only": False, "num_classes": 5, **overrides})
    return cfg


def problems(cfg: dict) -> dict[str, str]:
    with pytest.raises(ConfigError) as err:
        validate_model(cfg)
    return {p.key: p.message for p in err.value.problems}


# --- the schema --------------------------------------------------------------------------------


def test_registry_offers_exactly_the_schemas_vocabulary():
    assert set(NECKS) | {"none"} == set(NECK_CHOICES)
    assert set(DECODE_HEADS) | {"none"} == set(DECODE_HEAD_CHOICES)


def test_a_section_reports_every_problem_at_once_by_key():
    found = problems(mit_b0(decode_head={"type": "all_mlpp", "chanels": 3, "dropout": 1.5, "in_index": [0, "a"]},
                            neck={"channels": 0, "num_outs": 99}))
    assert set(found) == {"model.decode_head.type", "model.decode_head.chanels", "model.decode_head.dropout",
                          "model.decode_head.in_index[1]", "model.neck.channels", "model.neck.num_outs"}
    assert "did you mean all_mlp" in found["model.decode_head.type"]
    assert "not a field of DecodeHeadConfig (did you mean channels?)" in found["model.decode_head.chanels"]
    assert "[1, 8]" in found["model.neck.num_outs"] and "[1, 16,384]" in found["model.neck.channels"]


@pytest.mark.parametrize(
    ("overrides", "key", "words"),
    [
        ({"neck": {"type": "fpn"}}, "model.neck.type", "a neck only feeds a decode head"),
        ({"decode_head": {"type": "all_mlp"}, "num_classes": 0}, "model.num_classes", "at least 1 class per pixel"),
        ({"decode_head": {"type": "fpn", "in_index": [0, 4]}}, "model.decode_head.in_index[1]", "there are 4 maps"),
        ({"decode_head": {"type": "fpn", "in_index": [1, 0]}}, "model.decode_head.in_index", "in increasing stride"),
        ({"decode_head": {"type": "all_mlp", "in_index": []}}, "model.decode_head.in_index", "at least one map"),
        ({"neck": {"type": "fpn", "num_outs": 3}, "decode_head": {"type": "fpn"}}, "model.neck.num_outs", "fewer levels"),
        ({"decode_head": {"type": "fpn"}, "patch_strides": [4, 3, 2, 2]}, "model.decode_head.type", "times a power of 2"),
        ({"decode_head": {"type": "all_mlp"}, "pretrain_img_size": 224}, "model.pretrain_img_size", "pos_embed=false"),
        ({"decode_head": "fpn"}, "model.decode_head", "expected a mapping"),
    ],
)
def test_rules_between_the_sections_and_the_encoder(overrides, key, words):
    found = problems(mit_b0(**overrides))
    assert key in found and words in found[key], found


def test_sections_compose_from_every_override_form():
    by_field = lucid_arch.load_config("pvt_v2_b0", ["model.decode_head.type=all_mlp", "model.num_classes=3"])
    by_dict = lucid_arch.load_config("pvt_v2_b0", ["model.decode_head={type:all_mlp}", "model.num_classes=3"])
    assert by_field.model.decode_head == by_dict.model.decode_head
    assert validate_model(by_field).decode_head == DecodeHeadConfig(type="all_mlp")
    assert validate_model(lucid_arch.load_config("pvt_v2_b0")).neck == NeckConfig()  # type none: a classifier
    with pytest.raises(ConfigError, match=r"model.decode_head.chanels: unknown key, not a field of DecodeHeadConfig \(did you mean channels\?\)"):
        lucid_arch.load_config("segformer_b0", ["model.decode_head.chanels=64"])


def test_python_keyword_arguments_merge_into_a_section():
    model = lucid_arch.create_model("segformer_b0", decode_head={"channels": 64}, num_classes=5, **MINI)
    assert model.decode_head.fuse.conv.out_channels == 64 and model.decode_head.conv_seg.out_channels == 5
    assert model.spec.decode_head.dropout == 0.1  # the YAML's other fields stay
    assert "decode_head=all_mlp(channels=64))" in repr(model).split("\nSegmentationModel")[0]


# --- the modules ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["segformer_b0", "fpn_pvt_v2_b0", "fpn_pvt_tiny"])
@pytest.mark.parametrize("size", [(64, 64), (72, 100)])
def test_logits_come_out_at_a_quarter_of_any_input(name, size):
    model = lucid_arch.create_model(name, num_classes=7, **MINI, **({"img_size": 64, "pretrain_img_size": 64} if "tiny" in name else {}))
    assert isinstance(model, SegmentationModel)
    with torch.no_grad():
        logits = model.eval()(torch.randn(2, 3, *size))
    h, w = model.backbone.forward_features(torch.randn(1, 3, *size))[0].shape[2:]
    assert logits.shape == (2, 7, h, w) and (h, w) == (-(-size[0] // 4), -(-size[1] // 4))


def test_state_dict_is_mmsegs_encoder_decoder_layout():
    keys = lucid_arch.create_model("fpn_pvt_v2_b0", **MINI).state_dict().keys()
    assert {k.split(".")[0] for k in keys} == {"backbone", "neck", "decode_head"}
    assert {"neck.lateral_convs.0.conv.weight", "neck.fpn_convs.3.conv.bias", "decode_head.scale_heads.3.4.conv.weight",
            "decode_head.scale_heads.0.0.bn.running_var", "decode_head.conv_seg.weight", "backbone.patch_embed.proj.weight"} <= set(keys)
    keys = lucid_arch.create_model("segformer_b0", **MINI).state_dict().keys()
    assert {"decode_head.linear_c.3.proj.weight", "decode_head.fuse.conv.weight", "decode_head.fuse.bn.weight",
            "decode_head.conv_seg.bias"} <= set(keys) and "decode_head.fuse.conv.bias" not in keys  # no bias before a norm


def test_the_same_seed_gives_the_same_weights_and_init_follows_the_references():
    torch.manual_seed(3)
    a = lucid_arch.create_model("fpn_pvt_v2_b0", **MINI).state_dict()
    torch.manual_seed(3)
    b = lucid_arch.create_model("fpn_pvt_v2_b0", **MINI).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert a["decode_head.conv_seg.bias"].abs().max() == 0 and 0.005 < a["decode_head.conv_seg.weight"].std() < 0.02
    assert torch.equal(a["decode_head.scale_heads.0.0.bn.weight"], torch.ones(128))
    assert a["neck.lateral_convs.0.conv.bias"].abs().max() == 0


def test_features_only_builds_the_encoder_alone():
    backbone = lucid_arch.create_model("segformer_b0", features_only=True, out_indices=(1, 3))
    assert type(backbone).__name__ == "PyramidVisionTransformer" and backbone.feature_info.channels() == [64, 256]
    with torch.no_grad():
        assert [m.shape[1] for m in backbone(torch.randn(1, 3, 64, 64))] == [64, 256]
    assert analyze(lucid_arch.load_config("segformer_b0", ["model.features_only=true"])).parts == ()


# --- what it costs ---------------------------------------------------------------------------------


@st.composite
def dense_configs(draw):
    cfg = draw(pvt_configs(max_img=96))
    cfg.update(features_only=False, num_classes=draw(st.integers(1, 4)), out_indices=None)
    n = len(cfg["embed_dims"])
    custom_strides = "patch_strides" in cfg or (cfg.get("patch_embed") == "non_overlapping" and "patch_sizes" in cfg)
    kind = "all_mlp" if custom_strides else draw(st.sampled_from(["all_mlp", "fpn"]))  # fpn needs power-of-2 strides
    cfg["decode_head"] = {"type": kind, "channels": draw(st.sampled_from([4, 8])), "align_corners": draw(st.booleans())}
    if draw(st.booleans()):
        cfg["neck"] = {"type": "fpn", "channels": draw(st.sampled_from([4, 8])), "num_outs": n + draw(st.integers(0, 1))}
    return cfg


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cfg=dense_configs())
def test_closed_form_costs_equal_the_flop_counter_on_random_segmentation_models(cfg):
    from torch.utils.flop_counter import FlopCounterMode

    report = analyze(cfg, batch_size=2)
    with torch.device("meta"):
        model = lucid_arch.build_model(cfg).eval()
        x = torch.empty(2, cfg["in_channels"], *report.input_size)
    with FlopCounterMode(display=False) as counter:
        logits = model(x)
    assert report.params == sum(p.numel() for p in model.parameters())
    assert report.flops == counter.get_total_flops()
    assert report.logits_shape == tuple(logits.shape)
    assert [p.params for p in report.parts] == [sum(q.numel() for q in m.parameters()) for m in (model.neck, model.decode_head) if m is not None]


def test_published_gflops_at_512():
    """SegFormer-B0 8.4 and the PVT-v2-B0 / PVT-Tiny Semantic FPN 25.0 / 33.2 GFLOPs, counted as multiply-adds."""
    macs = {name: analyze(lucid_arch.load_config(name)).gflops / 2 for name in ("segformer_b0", "fpn_pvt_v2_b0", "fpn_pvt_tiny")}
    assert macs == pytest.approx({"segformer_b0": 8.4, "fpn_pvt_v2_b0": 25.0, "fpn_pvt_tiny": 33.2}, abs=0.05)


# --- reports ---------------------------------------------------------------------------------------


def test_the_summary_shows_the_neck_and_head_rows(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_main(["model=fpn_pvt_v2_b0", "format=text"], capsys)
    assert code == 0, err
    rows = {line.split("  ")[0]: line.split() for line in out.splitlines()}
    assert rows["neck (fpn)"][-3:] == ["256", "2,492,416", "26.189"] and rows["neck (fpn)"][2] == "128x128"
    assert rows["decode head (fpn)"][-3:] == ["150", "1,643,158", "16.182"]
    assert "neck outputs: 1x256x128x128, 1x256x64x64, 1x256x32x32, 1x256x16x16" in out and "logits: 1x150x128x128" in out
    code, out, _ = run_main(["model=segformer_b0", "format=json"], capsys)
    summary = json.loads(out)
    assert [(p["label"], p["params"]) for p in summary["parts"]] == [("decode head (all_mlp)", 433_302)]
    assert summary["logits_shape"] == [1, 150, 128, 128] and summary["params"] == 3_752_694


def test_the_diff_shows_head_changes_and_their_cost(capsys):
    from lucid_arch.diff.cli import main

    code = main(["segformer_b0", "segformer_b0", "--new", "model.decode_head.channels=128", "--new", "model.decode_head.type=fpn",
                 "--format", "json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 1 and report["architectural_change"]
    changed = {f["key"]: (f["old"], f["new"], f["new_source"]) for f in report["fields"]}
    assert changed == {"model.decode_head.type": ("all_mlp", "fpn", "override model.decode_head.type=fpn"),
                       "model.decode_head.channels": (256, 128, "override model.decode_head.channels=128")}
    costs = {row["label"]: row for row in report["costs"]}
    assert costs["decode head (all_mlp)"]["old_params"] == 433_302 and costs["decode head (all_mlp)"]["new_params"] is None
    assert costs["decode head (fpn)"]["old_params"] is None and costs["decode head (fpn)"]["new_params"] > 0
    stages = sum(costs[f"stage {i}"]["new_params"] for i in range(4))
    assert stages + costs["decode head (fpn)"]["new_params"] == costs["total"]["new_params"]
    assert main(["segformer_b0", "segformer_b0", "--new", "model.decode_head.dropout=0.2"]) == 1  # training-time, still architecture
    capsys.readouterr()
