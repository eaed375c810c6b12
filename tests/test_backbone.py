"""Backbones for dense prediction: timm's features_only interface and the official detection backbones.

References: timm 1.0.31's ``features_only=True`` pvt_v2 on v2_mini's weights
(``timm_features_mini.pt``), and the official ``detection/pvt.py`` / ``detection/pvt_v2.py``
on v1_mini's / v2_mini's classification checkpoints (``detection_mini.pt``); see
fixtures/README.md for how each was made.
"""

from __future__ import annotations

import pytest
import torch

import lucid_arch
from lucid_arch.weights import CheckpointError, load_pretrained

from conftest import num_params
from fixture_weights import seeded_images

TOL = 1e-5


def _mini(data: dict, base: str, **overrides):
    hp = {k: v for k, v in data["hparams"].items() if k not in ("patch_size",)}
    return lucid_arch.create_model(base, **{**hp, **overrides}).eval()


def _close(got, want) -> None:
    assert len(got) == len(want)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, atol=TOL, rtol=0)


# --- timm's interface, on shared weights ---------------------------------------------------------


def test_features_only_matches_timm_maps_and_feature_info(fixture_file, tmp_path):
    data, timm_ref = fixture_file("v2_mini.pt"), fixture_file("timm_features_mini.pt")
    path = tmp_path / "timm.pth"
    torch.save(data["state_dict_timm"], path)
    model = _mini(data, "pvt_v2_b0", features_only=True, out_indices=(1, 2, 3), pretrained=str(path))
    case = timm_ref["cases"]["[1, 2, 3]"]
    with torch.no_grad():
        maps = model(data["inputs"][timm_ref["input"]])
    _close(maps, case["maps"])
    info = model.feature_info
    assert (info.channels(), info.reduction(), info.module_name()) == (case["channels"], case["reduction"], case["module_name"])
    assert (info.channels(0), len(info), info.out_indices) == (case["channels_0"], case["len"], (1, 2, 3))
    assert info.get_dicts(keys=["num_chs"]) == [{"num_chs": c} for c in case["channels"]]
    assert num_params(model) == case["params"]
    report = load_pretrained(model, path)
    assert "a features_only backbone has no head; the checkpoint's 10-class head is dropped" in report.head_reason


def test_later_stages_are_not_built(fixture_file):
    data, timm_ref = fixture_file("v2_mini.pt"), fixture_file("timm_features_mini.pt")
    case = timm_ref["cases"]["[0, 1]"]
    model = _mini(data, "pvt_v2_b0", features_only=True, out_indices=[0, 1])
    assert len(model.stages) == 2 and num_params(model) == case["params"]
    assert (model.feature_info.channels(), model.feature_info.reduction(), len(model.feature_info)) == (
        case["channels"], case["reduction"], case["len"])
    with torch.no_grad():
        maps = model(torch.randn(2, 3, 64, 96))
    assert [tuple(m.shape) for m in maps] == [tuple(s) for s in case["maps"]]


def test_out_indices_from_the_end_and_the_config_path():
    cfg = lucid_arch.load_config("pvt_v2_b0", ["model.features_only=true", "model.out_indices=[-2,-1]", "model.depths=[1,1,1,1]"])
    model = lucid_arch.build_model(cfg).eval()
    assert model.feature_info.out_indices == (2, 3) and model.feature_info.reduction() == [16, 32]
    with torch.no_grad():
        maps = model(torch.randn(1, 3, 96, 160))
    assert [tuple(m.shape) for m in maps] == [(1, 160, 6, 10), (1, 256, 3, 5)]
    with pytest.raises(ValueError, match="features_only backbone: it has no head"):
        model.forward_head(maps[-1])
    classifier = lucid_arch.create_model("pvt_v2_b0", depths=[1, 1, 1, 1])
    assert classifier.feature_info.out_indices == (0, 1, 2, 3) and classifier.feature_info.channels() == [32, 64, 160, 256]


def test_analysis_and_summary_describe_the_backbone():
    report = lucid_arch.analyze(lucid_arch.load_config("pvt_v2_b2", ["model.features_only=true", "model.out_indices=[0,1]"]))
    full = lucid_arch.analyze(lucid_arch.load_config("pvt_v2_b2"))
    assert len(report.stages) == 2 and report.head_params == 0 and report.logits_shape is None
    assert report.params == full.stages[0].params + full.stages[1].params
    assert report.out_indices == (0, 1)


# --- the official detection backbones --------------------------------------------------------------


def _v1_backbone(fixture_file, tmp_path, **overrides):
    """v1_mini as a backbone, loaded from its classification checkpoint; with the official detection references."""
    data = fixture_file("v1_mini.pt")
    path = tmp_path / "pvt_tiny.pth"
    torch.save(data["state_dict_official"], path)
    model = _mini(data, "pvt_tiny", features_only=True, **overrides)
    return model, load_pretrained(model, path), fixture_file("detection_mini.pt")["v1"]


def _same_maps(model, case: dict) -> None:
    with torch.no_grad():
        _close(model(seeded_images(case["shape"], case["seed"])), case["maps"])


def test_v1_backbone_equals_the_official_detection_code(fixture_file, tmp_path):
    model, report, ref = _v1_backbone(fixture_file, tmp_path)
    # what the official code's load_checkpoint(strict=False) skips, said in the report
    assert sorted(ref["dropped_by_official"]) == ["cls_token", "head.bias", "head.weight", "norm.bias", "norm.weight"]
    assert report.head_reinitialized and "has no head" in report.head_reason
    assert report.dropped == ("cls_token dropped (a backbone has no class token)",
                              "stages.3.norm dropped (the final LayerNorm only the classifier reads)",
                              "stages.3.pos_embed: its class-token row dropped")
    assert report.resampled == ()
    assert "cls_token" not in model.state_dict() and model.stages[3].pos_embed.shape == (1, 4, 64)
    for name in ("x64", "x96", "x64x96"):  # 96 and 64x96: the position tables are resized on the fly, as there
        _same_maps(model, ref["outputs"][name])


def test_v1_backbone_built_at_another_size_computes_what_the_official_one_computes_there(fixture_file, tmp_path):
    model, report, ref = _v1_backbone(fixture_file, tmp_path, img_size=96)
    assert model.stages[0].pos_embed.shape == (1, 24 * 24, 16) and "stages.0.pos_embed 16x16 -> 24x24" in report.resampled
    _same_maps(model, ref["outputs"]["x96"])


def test_v1_backbone_built_at_height_and_width(fixture_file, tmp_path):
    model, report, ref = _v1_backbone(fixture_file, tmp_path, img_size=[64, 96])
    assert report.resampled[0] == "stages.0.pos_embed 16x16 -> 16x24"
    _same_maps(model, ref["outputs"]["x64x96"])  # the official code resized the 16x16 table on the fly


def test_v1_resizes_where_the_official_code_skips_it(fixture_file, tmp_path):
    """At 32x128 stage 1 has 8x32 = 16x16 patches: the official code then uses the 16x16 table as is."""
    model, _, ref = _v1_backbone(fixture_file, tmp_path)
    _same_maps(model, ref["outputs"]["x32x128"])  # the table resized to 8x32
    assert ref["outputs"]["x32x128"]["official_max_diff"] > 0.1  # what skipping the resize changes


@pytest.mark.parametrize("fixture", ["v2_mini.pt", "v2_mini_linear.pt"])
def test_v2_backbone_equals_the_official_detection_code(fixture_file, fixture, tmp_path):
    data = fixture_file(fixture)
    path = tmp_path / "pvt_v2.pth"
    torch.save({"model": data["state_dict_official"]}, path)
    model = _mini(data, "pvt_v2_b0", features_only=True, pretrained=str(path))
    (name, x), = data["inputs"].items()
    with torch.no_grad():  # detection/pvt_v2.py's maps are its classification code's stage maps (2.7e-6 apart)
        _close(model(x), data["outputs"][name]["stage_maps"])
    if fixture == "v2_mini.pt":
        ref = fixture_file("detection_mini.pt")["v2"]
        assert ref["dropped_by_official"] == ["head.bias", "head.weight"]
        _same_maps(model, ref["outputs"]["x48x80"])


def test_a_backbone_checkpoint_into_a_classifier_says_what_to_build(fixture_file, tmp_path):
    data = fixture_file("v1_mini.pt")
    backbone = _mini(data, "pvt_tiny", features_only=True)
    path = tmp_path / "backbone.pth"
    torch.save(backbone.state_dict(), path)
    with pytest.raises(CheckpointError, match=r"backbone checkpoint.*model.features_only=true"):
        load_pretrained(_mini(data, "pvt_tiny"), path)
    again = _mini(data, "pvt_tiny", features_only=True)
    assert load_pretrained(again, path).loaded == len(backbone.state_dict())
