"""State-dict layouts (timm, official v1/v2) and the numerical fixtures of the reference code."""

from __future__ import annotations

import json

import pytest
import torch

import lucid_arch
from lucid_arch.weights import convert_state_dict, detect_layout

from conftest import FIXTURES

LAYOUTS = json.loads((FIXTURES / "key_layouts.json").read_text())
TOL = 1e-5


def _meta_model(name: str):
    with torch.device("meta"):
        return lucid_arch.create_model(name)


def _layout(model) -> list[list]:
    return [[k, list(v.shape)] for k, v in model.state_dict().items()]


@pytest.mark.parametrize("name", sorted(LAYOUTS["timm_pvt_v2"]))
def test_v2_state_dict_is_timms_exactly(name):
    assert _layout(_meta_model(name)) == LAYOUTS["timm_pvt_v2"][name]


def _fake_state_dict(layout: list) -> dict:
    return {k: torch.empty(shape, device="meta") for k, shape in layout}


@pytest.mark.parametrize(
    ("family", "name"),
    [("official_pvt_v2", n) for n in sorted(LAYOUTS["official_pvt_v2"])]
    + [("official_pvt_v1", n) for n in sorted(LAYOUTS["official_pvt_v1"])],
)
def test_official_layouts_convert_and_load_strictly(family, name):
    model = _meta_model(name)
    official = _fake_state_dict(LAYOUTS[family][name])
    assert detect_layout(official) == family.replace("_pvt", "")
    converted = convert_state_dict(official)
    assert {k: list(v.shape) for k, v in converted.items()} == {k: s for k, s in _layout(model)}
    model.load_state_dict(converted, strict=True, assign=True)


def test_timm_state_dict_needs_no_conversion():
    sd = _fake_state_dict(LAYOUTS["timm_pvt_v2"]["pvt_v2_b0"])
    assert detect_layout(sd) == "timm"
    assert convert_state_dict(sd) == sd


def test_trainer_wrappers_are_removed():
    sd = _fake_state_dict(LAYOUTS["official_pvt_v2"]["pvt_v2_b0"])
    wrapped = {"model": {f"module.{k}": v for k, v in sd.items()}, "epoch": 3}
    assert convert_state_dict(wrapped) == convert_state_dict(sd)


def test_unknown_layout_is_a_clear_error():
    with pytest.raises(ValueError, match="cannot tell the checkpoint layout.*source="):
        convert_state_dict({"encoder.layer.0.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match="source='lucid' is not one of"):
        convert_state_dict({}, source="lucid")


def _fixture_model(data: dict):
    base = "pvt_v2_b0" if data["family"] == "pvt_v2" else "pvt_tiny"
    return lucid_arch.create_model(base, **data["hparams"]).eval()


@pytest.mark.parametrize("fixture", ["v2_mini.pt", "v2_mini_linear.pt"])
@pytest.mark.parametrize("source", ["state_dict_official", "state_dict_timm"])
def test_v2_fixture_logits_and_stage_maps(fixture_file, fixture, source):
    data = fixture_file(fixture)
    model = _fixture_model(data)
    model.load_state_dict(convert_state_dict(data[source]), strict=True)
    (name, x), = data["inputs"].items()
    expected = data["outputs"][name]
    with torch.no_grad():
        logits = model(x)
        maps = model.forward_features(x)
    torch.testing.assert_close(logits, expected["logits"], atol=TOL, rtol=0)
    assert len(maps) == len(expected["stage_maps"]) == 4
    for got, want in zip(maps, expected["stage_maps"]):
        torch.testing.assert_close(got, want, atol=TOL, rtol=0)


def test_v1_fixture_logits_including_position_embedding_interpolation(fixture_file):
    data = fixture_file("v1_mini.pt")
    model = _fixture_model(data)
    model.load_state_dict(convert_state_dict(data["state_dict_official"]), strict=True)
    assert set(data["inputs"]) == {"x64", "x96"}  # 96 px exercises the interpolation
    for name, x in data["inputs"].items():
        with torch.no_grad():
            torch.testing.assert_close(model(x), data["outputs"][name]["logits"], atol=TOL, rtol=0)


def test_fixture_weights_survive_a_state_dict_round_trip(fixture_file):
    data = fixture_file("v2_mini.pt")
    model = _fixture_model(data)
    model.load_state_dict(convert_state_dict(data["state_dict_official"]))
    clone = _fixture_model(data)
    clone.load_state_dict(model.state_dict(), strict=True)
    x = data["inputs"]["x64x96"]
    with torch.no_grad():
        assert torch.equal(model(x), clone(x))
