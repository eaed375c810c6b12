"""Checkpoint layouts people have: Hugging Face hub directories, mmdetection backbones, SegFormer's MiT.

The Hugging Face fixtures hold a tiny model's config.json, its on-disk key layout (as
transformers 5's save_pretrained writes it, the hub's names), a seed for the weights and the
reference outputs of transformers' own model, with the LayerNorm eps set back to the official
code's (fixtures/README.md). Each test writes the directory, loads it with ``pretrained=DIR``
and compares within 1e-5.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import lucid_arch
from lucid_arch.weights import CheckpointError, convert, convert_state_dict, detect_layout, load_pretrained

from conftest import FIXTURES
from fixture_weights import seeded_images, seeded_state_dict

TOL = 1e-5
MMDET_TOL = 2e-5  # mmdet_mini.pt's maps are 4x larger than the others' (fixtures/README.md)
MINI = {"embed_dims": [16, 32, 48, 64], "num_heads": [1, 2, 3, 4], "depths": [1, 2, 1, 1]}


def _hf_dir(data: dict, root: Path, weights: str = "model.safetensors") -> Path:
    """A Hugging Face model directory: the fixture's config.json and its seeded weights."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text(json.dumps(data["config"]))
    sd = seeded_state_dict(data["layout"], data["seed"])
    if weights.endswith(".safetensors"):
        save_file(sd, str(root / weights), metadata={"format": "pt"})
    else:
        torch.save(sd, root / weights)
    return root


def _input(data: dict) -> torch.Tensor:
    return seeded_images(data["input"]["shape"], data["input"]["seed"])


def _close(got, want, tol: float = TOL) -> None:
    got, want = (got, want) if isinstance(got, list) else ([got], [want])
    assert len(got) == len(want)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, atol=tol, rtol=0)


# --- Hugging Face -----------------------------------------------------------------------------------


@pytest.mark.parametrize("weights", ["model.safetensors", "pytorch_model.bin"])
def test_hf_pvt_v2_classifier_directory(fixture_file, tmp_path, weights):
    data = fixture_file("hf_pvt_v2.pt")
    root = _hf_dir(data, tmp_path / "pvt_v2", weights)
    model = lucid_arch.create_model("pvt_v2_b0", **MINI, num_classes=10, pretrained=str(root)).eval()
    with torch.no_grad():
        _close(model(_input(data)), data["outputs"]["logits"])
    report = load_pretrained(model, root)
    assert report.layout == "hf_pvt_v2" and report.loaded == len(model.state_dict())
    assert "eps 1e-6" in str(report) and "keeps the official eps" in str(report)
    assert data["hf_eps_logits_max_diff"] > TOL  # Hugging Face's own eps would not pass this test


def test_hf_pvt_v2_backbone_with_linear_attention(fixture_file, tmp_path):
    data = fixture_file("hf_pvt_v2_backbone_linear.pt")
    assert data["config"]["architectures"] == ["PvtV2Backbone"] and data["config"]["out_indices"] == [1, 2, 3]
    root = _hf_dir(data, tmp_path / "backbone")
    model = lucid_arch.create_model("pvt_v2_b0", **MINI, linear=True, features_only=True, out_indices=[1, 2, 3], pretrained=str(root))
    with torch.no_grad():
        _close(model.eval()(_input(data)), data["outputs"]["maps"])


def test_hf_pvt_v1_classifier_directory(fixture_file, tmp_path):
    data = fixture_file("hf_pvt.pt")
    root = _hf_dir(data, tmp_path / "pvt")
    model = lucid_arch.create_model("pvt_tiny", **MINI, img_size=64, num_classes=10, pretrained=str(root)).eval()
    with torch.no_grad():
        _close(model(_input(data)), data["outputs"]["logits"])
    assert load_pretrained(model, root).layout == "hf_pvt"


def test_hf_segformer_encoder_with_its_decode_head_ignored(fixture_file, tmp_path):
    data = fixture_file("hf_segformer.pt")
    root = _hf_dir(data, tmp_path / "segformer")
    model = lucid_arch.create_model("mit_b0", **MINI, pretrained=str(root)).eval()
    with torch.no_grad():
        _close(model(_input(data)), data["outputs"]["maps"])
    report = load_pretrained(model, root)
    decode_head = [k for k, _ in data["layout"] if k.startswith("decode_head.")]
    assert report.layout == "hf_segformer" and sorted(report.ignored) == sorted(decode_head)
    assert f"ignored {len(decode_head)} tensors that are not the encoder (decode_head: {len(decode_head)})" in str(report)
    assert "eps 1e-5 on the block and stage norms" in str(report)


def test_hf_directory_of_another_architecture_names_both(fixture_file, tmp_path):
    data = fixture_file("hf_pvt_v2.pt")
    root = _hf_dir(data, tmp_path / "pvt_v2")
    model = lucid_arch.create_model("pvt_v2_b0", **{**MINI, "num_heads": [1, 2, 2, 4]}, num_classes=10)
    with pytest.raises(CheckpointError) as err:
        load_pretrained(model, root)  # every tensor has the same shape: only config.json tells
    text = str(err.value)
    assert str(root) in text and "\n" not in text
    assert "num_attention_heads [1,2,3,4] there, num_heads [1,2,2,4] here" in text
    assert "'model.num_heads=[1,2,3,4]'" in text


def test_hf_sharded_directory(fixture_file, tmp_path):
    data = fixture_file("hf_pvt.pt")
    root = tmp_path / "sharded"
    root.mkdir()
    (root / "config.json").write_text(json.dumps(data["config"]))
    sd = seeded_state_dict(data["layout"], data["seed"])
    keys = sorted(sd)
    shards = {"model-00001-of-00002.safetensors": keys[: len(keys) // 2], "model-00002-of-00002.safetensors": keys[len(keys) // 2 :]}
    for name, part in shards.items():
        save_file({k: sd[k] for k in part}, str(root / name))
    index = {"weight_map": {k: name for name, part in shards.items() for k in part}}
    (root / "model.safetensors.index.json").write_text(json.dumps(index))
    model = lucid_arch.create_model("pvt_tiny", **MINI, img_size=64, num_classes=10, pretrained=str(root)).eval()
    with torch.no_grad():
        _close(model(_input(data)), data["outputs"]["logits"])
    (root / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"shard files model-00002-of-00002.safetensors are missing"):
        load_pretrained(model, root)


def test_key_and_value_linears_become_one_kv(fixture_file):
    data = fixture_file("hf_pvt_v2.pt")
    sd = seeded_state_dict(data["layout"], data["seed"])
    ours = convert_state_dict(sd)
    prefix = "pvt_v2.encoder.layers.1.blocks.1.attention."
    kv = ours["stages.1.blocks.1.attn.kv.weight"]
    assert torch.equal(kv, torch.cat([sd[prefix + "key.weight"], sd[prefix + "value.weight"]]))
    assert torch.equal(ours["patch_embed.proj.weight"], sd["pvt_v2.encoder.layers.0.patch_embedding.proj.weight"])


# --- mmdetection / mmsegmentation ------------------------------------------------------------------


@pytest.mark.parametrize(("layout", "base"), [("mmdet_pvt", "pvt_tiny"), ("mmdet_pvt_v2", "pvt_v2_b0")])
def test_mmdet_backbone_from_a_detector_checkpoint(fixture_file, tmp_path, layout, base):
    data = fixture_file("mmdet_mini.pt")[layout]
    sd = seeded_state_dict(data["layout"], data["seed"])
    path = tmp_path / "detector.pth"
    segmenter_head = {"decode_head.conv_seg.weight": torch.zeros(19, 32, 1, 1)}  # as mmsegmentation's SegFormer has
    torch.save({"meta": {"epoch": 12}, "state_dict": {**sd, **segmenter_head}}, path)  # mmdet's checkpoint dict
    hp = {k: v for k, v in data["hparams"].items()}
    model = lucid_arch.create_model(base, **hp, features_only=True, pretrained=str(path)).eval()
    with torch.no_grad():  # maps reach |9| here and the reference's fused in-projection rounds otherwise:
        _close(model(_input(data)), data["maps"], tol=MMDET_TOL)  # 1.04e-5 at 2 threads, 9.7e-6 at 1
    report = load_pretrained(model, path)
    assert report.layout == layout and report.ignored == ("neck.lateral_convs.0.conv.weight", "decode_head.conv_seg.weight")
    assert "mmdetection's PVT sets LayerNorm eps 1e-6" in str(report)
    assert detect_layout({k.removeprefix("backbone."): v for k, v in sd.items()}) == layout  # a bare backbone too


# --- SegFormer's MiT encoders: NVlabs' ImageNet checkpoints have the official PVT-v2 names --------------

MIT_LAYOUTS = json.loads((FIXTURES / "mit_layouts.json").read_text())


@pytest.mark.parametrize("name", sorted(MIT_LAYOUTS))
@pytest.mark.parametrize("with_head", [False, True])
def test_nvlabs_mit_checkpoints_load_into_the_mit_yamls(name, with_head):
    layout = [(k, tuple(s)) for k, s in MIT_LAYOUTS[name]]
    if with_head:  # ImageNet classification training adds a head
        layout += [("head.weight", (1000, layout[-1][1][0])), ("head.bias", (1000,))]
    sd = {k: torch.empty(s, device="meta") for k, s in layout}
    conversion = convert(sd)
    assert conversion.layout.name == "official_v2" and conversion.ignored == ()
    with torch.device("meta"):
        model = lucid_arch.create_model(name)
    ours = {k: v for k, v in conversion.state_dict.items() if not k.startswith("head.")}
    assert {k: tuple(v.shape) for k, v in ours.items()} == {k: tuple(v.shape) for k, v in model.state_dict().items()}
    model.load_state_dict(ours, strict=True, assign=True)


def test_every_layout_has_a_fixture_here():
    from lucid_arch.weights.head_layouts import HEAD_LAYOUTS
    from lucid_arch.weights.layouts import LAYOUTS

    tested = {"timm", "official_v1", "official_v2", "hf_pvt_v2", "hf_pvt", "hf_segformer", "mmdet_pvt", "mmdet_pvt_v2"}
    assert set(LAYOUTS) == tested
    # necks and decode heads: tests/test_segmentation_weights.py (hf_segformer_semantic.pt, mmseg_fpn.pt)
    heads = {"hf_segformer_head", "nvlabs_segformer_head", "all_mlp", "mmseg_fpn", "mmseg_segformer_head"}
    assert set(HEAD_LAYOUTS) == heads
