"""task=export and lucid_arch.export_model: every family exports with dynamic sizes and is checked, not hoped.

Each shipped family passes at least once, on small configs (two stages of 16 and 32 channels,
one block each) so a dynamic-shape trace takes seconds: v2 with pretrained weights (both files),
v1 at a non-square size (its position tables resized inside the exported graph), _li at maps
that are not multiples of 7 (its adaptive pool), MiT as a features_only backbone through the
app (one output per stage). The failure paths (a check over atol, a missing extra, bad settings)
use fixed-size exports, which trace in about a second.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import lucid_arch
from lucid_arch.config.export_schema import ExportConfig, field_help
from lucid_arch.export import ExportSettingError, InputShapes, VerificationError, export_model, smallest_side
from lucid_arch.export import verify as checks_module
from lucid_arch.export.verify import Check, check_shapes, failure
from lucid_arch.extras import MissingExtra
from lucid_arch.modeling.builder import resolve_config, resolve_spec
from lucid_arch.modeling.layers.shapes import adaptive_avg_pool2d

from conftest import run_main

ROOT = Path(__file__).parents[1]
# Two stages trace in half of four's time (symbolic sizes nest deeper stage by stage) and keep what each test needs:
# stage 0's sr_ratio 8 (v2's smallest side 61), v1's tables, _li's pool, a stage change, two feature maps.
TWO_STAGES = {"embed_dims": [16, 32], "depths": [1, 1], "num_heads": [1, 2], "mlp_ratios": [8, 8]}
V2 = {**TWO_STAGES, "sr_ratios": [8, 4]}
TINY_ARGS = ["model.embed_dims=[16,32]", "model.depths=[1,1]", "model.num_heads=[1,2]", "model.mlp_ratios=[8,8]",
             "model.sr_ratios=[8,4]", "model.img_size=64"]


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the app writes outputs/ and multirun/ under the working directory
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)


def only(paths: list[Path]) -> Path:
    assert len(paths) == 1, paths
    return paths[0]


def run_onnx(path: Path, x: torch.Tensor) -> list[torch.Tensor]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return [torch.from_numpy(o) for o in session.run(None, {"image": x.numpy()})]


# ------------------------------------------------------------------------------ every family


def test_v2_exports_its_pretrained_weights_with_dynamic_batch_height_and_width(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(7)
    trained = lucid_arch.create_model("pvt_v2_b0", img_size=64, **V2)
    weights = tmp_path / "trained.safetensors"
    save_file(trained.state_dict(), str(weights))
    config = resolve_config("pvt_v2_b0", {**V2, "img_size": 64, "pretrained": str(weights)})
    result = export_model(config, tmp_path / "out")

    assert {k: p.name for k, p in result.files.items()} == {"pt2": "pvt_v2_b0.pt2", "onnx": "pvt_v2_b0.onnx"}
    assert result.shapes.ranges == {"batch": (1, None), "height": (61, 4096), "width": (61, 4096)}
    shapes = sorted({c.shape for c in result.checks})
    assert [(c.runtime, c.shape) for c in result.checks[:2]] == [("onnxruntime", (2, 3, 64, 64)), ("torch", (2, 3, 64, 64))]
    assert len(shapes) == 3 and any(h != w for _, _, h, w in shapes) and {b for b, *_ in shapes} == {1, 2, 3}
    assert all(c.ok and c.max_abs_diff <= 1e-4 for c in result.checks) and len(result.checks) == 6

    # The checks compared both files with the model built from the checkpoint; this compares the ONNX file with the
    # trained model itself, at a size none of the checks used (the .pt2 equals eager exactly: max |diff| 0 above).
    x = torch.randn(4, 3, 77, 100)
    with torch.no_grad():
        want = trained.eval()(x)
        other = lucid_arch.create_model("pvt_v2_b0", img_size=64, **V2).eval()(x)
    (onnx_out,) = run_onnx(result.files["onnx"], x)
    assert (onnx_out - want).abs().max() <= 1e-4 and (other - want).abs().max() > 1e-2  # these weights, not any
    assert max(c.max_abs_diff for c in result.checks if c.runtime == "torch") <= 1e-5
    import onnx

    dims = [d.dim_param or d.dim_value for d in onnx.load(str(result.files["onnx"])).graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 3, "height", "width"]  # dynamic in ONNX, named as in task.dynamic


def test_v1_position_tables_are_resized_inside_the_exported_graph(tmp_path):
    """pvt_tiny's stages 0-1 at 96 px: tables of 24x24 and 12x12; the checks run 72x120 (18x30 maps) and 64x64."""
    model = lucid_arch.create_model("pvt_tiny", img_size=96, sr_ratios=[8, 1], **TWO_STAGES)  # the class token's stage: sr 1
    result = export_model(model, tmp_path, formats=["onnx"])
    assert [tuple(s.pos_embed_grid) for s in model.stages] == [(24, 24), (12, 12)]
    assert result.shapes.ranges["height"][0] == 64  # v1: stage 0 (stride 4) must keep 2 x sr_ratio 8 = 16 px
    assert [c.shape for c in result.checks] == [(2, 3, 96, 96), (1, 3, 72, 120), (3, 3, 64, 64)]
    assert all(c.ok for c in result.checks), result.checks
    assert model.training  # export_model put it back in the mode it found it in


def test_linear_attention_pools_maps_that_are_not_multiples_of_7(tmp_path):
    import onnx

    model = lucid_arch.create_model("pvt_v2_b2_li", img_size=64, sr_ratios=[8, 4], **TWO_STAGES)
    result = export_model(model, tmp_path, formats=["onnx"])
    assert result.shapes.ranges["height"][0] == 9  # linear stages need only 2 px maps: stage 1 (stride 8) at 9 px
    assert [c.shape for c in result.checks] == [(2, 3, 64, 64), (1, 3, 48, 80), (3, 3, 33, 33)]  # stage-0 maps 12x20, 9x9
    assert all(c.ok for c in result.checks), result.checks
    ops = {n.op_type for n in onnx.load(str(result.files["onnx"])).graph.node}
    assert "AveragePool" not in ops and "Attention" in ops  # no kernel fixed at the traced size


def test_a_features_only_backbone_exports_through_the_app(capsys):
    argv = ["task=export", "model=mit_b0", "model.features_only=true", *TINY_ARGS]
    code, out, err = run_main(argv, capsys)
    assert code == 0, err
    job_dir = only([p.parent for p in Path.cwd().glob("outputs/*/*/summary.json")])
    record = json.loads((job_dir / "summary.json").read_text())
    assert record["status"] == "ok" and record["task"] == "export"
    export = record["export"]
    assert export["files"] == {"pt2": "mit_b0.pt2", "onnx": "mit_b0.onnx"}
    assert all((job_dir / name).is_file() for name in export["files"].values())
    assert export["outputs"] == ["stage0", "stage1"] and export["opset"] == 23
    assert export["input"]["height"] == {"min": 61, "max": 4096} and export["input"]["batch"] == {"min": 1, "max": None}
    assert len(export["checks"]) == 6 and all(c["ok"] for c in export["checks"])
    metrics = record["metrics"]
    assert set(metrics) == {"params", "gflops", "onnxruntime max|diff|", "torch max|diff|", "export s"}
    assert 0 <= metrics["onnxruntime max|diff|"] <= 1e-4
    assert "torch.export at 2x3x64x64" in err and "max |diff|" in err  # progress on stderr
    assert re.search(r"onnxruntime\s+mit_b0\.onnx\s+1x3x61x80\s+\S+\s+ok", out)  # the table: the non-square check


def test_segmentation_models_export_their_logits_with_dynamic_sizes(capsys, tmp_path):
    """SegFormer (a MiT encoder and the all-MLP head) through the app, and Semantic FPN on a PVT v1 encoder
    whose tables stay at their pretraining size: logits (B, K, H/4, W/4) at every checked size."""
    argv = ["task=export", "model=segformer_b0", "model.embed_dims=[16,32]", "model.depths=[1,1]", "model.num_heads=[1,2]",
            "model.mlp_ratios=[4,4]", "model.sr_ratios=[2,1]", "model.img_size=64", "model.num_classes=5",
            "model.decode_head.channels=8"]
    code, out, err = run_main(argv, capsys)
    assert code == 0, err
    export = json.loads(only(list(Path.cwd().glob("outputs/*/*/summary.json"))).read_text())["export"]
    assert export["outputs"] == ["logits"] and len(export["checks"]) == 6 and all(c["ok"] for c in export["checks"])

    model = lucid_arch.create_model("fpn_pvt_tiny", img_size=96, pretrain_img_size=64, sr_ratios=[8, 1], num_classes=5,
                                    neck={"channels": 8}, decode_head={"channels": 8}, **TWO_STAGES)
    result = export_model(model, tmp_path / "fpn")
    assert all(c.ok for c in result.checks) and {c.shape[2:] for c in result.checks} == {(96, 96), (72, 120), (64, 64)}
    x = torch.randn(1, 3, 72, 120)
    with torch.no_grad():
        eager = model.eval()(x)
    (onnx_logits,) = run_onnx(result.files["onnx"], x)
    assert onnx_logits.shape == eager.shape == (1, 5, 18, 30)
    torch.testing.assert_close(onnx_logits, eager, atol=1e-4, rtol=0)


# -------------------------------------------------------------------------------- the app


def test_a_sweep_exports_each_model(capsys):
    argv = ["-m", "task=export", "model=glob([pvt_v2_b0*,pvt_v2_b1*])", *TINY_ARGS, "task.dynamic=[]", "task.formats=[onnx]"]
    code, out, err = run_main(argv, capsys)
    assert code == 0, err
    with only(list(Path.cwd().glob("multirun/*/*/sweep.csv"))).open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["model"], r["status"]) for r in rows] == [("pvt_v2_b0", "ok"), ("pvt_v2_b1", "ok")]
    assert all(0 <= float(r["onnxruntime max|diff|"]) <= 1e-4 for r in rows)  # a column of the sweep table
    for summary in Path.cwd().glob("multirun/*/*/*/summary.json"):
        record = json.loads(summary.read_text())
        assert (summary.parent / record["export"]["files"]["onnx"]).is_file()
        assert record["export"]["input"]["height"] == 64  # fixed
        assert [c["input"] for c in record["export"]["checks"]] == [[1, 3, 64, 64]]  # fixed sizes: the export size alone


def test_a_check_over_atol_fails_the_job_naming_the_size_and_runtime(capsys, monkeypatch):
    name, load = checks_module.RUNTIMES["onnx"]

    def perturbed(path):
        run = load(path)
        return lambda x: [t + 1e-3 if x.shape[0] == 3 else t for t in run(x)]  # wrong at batch 3 only

    monkeypatch.setitem(checks_module.RUNTIMES, "onnx", (name, perturbed))
    argv = ["task=export", "model=pvt_v2_b0", *TINY_ARGS, "task.dynamic=[]", "task.batch_size=3"]  # fixed: traces in a second
    code, _, err = run_main(argv, capsys)
    assert code == 1
    message = err.strip().splitlines()[-1]
    assert "onnxruntime (pvt_v2_b0.onnx) at input 3x3x64x64: max |diff| 0.001" in message and "atol=0.0001" in message
    assert "torch (pvt_v2_b0.pt2)" not in message and "1 of 2 checks passed" in message  # only what failed is named
    record = json.loads(only(list(Path.cwd().glob("outputs/*/*/summary.json"))).read_text())
    assert record["status"] == "failed" and "3x3x64x64" in record["error"]
    assert record["export"]["files"] == {"pt2": "pvt_v2_b0.pt2", "onnx": "pvt_v2_b0.onnx"}  # kept and named
    assert [(c["runtime"], c["ok"]) for c in record["export"]["checks"]] == [("onnxruntime", False), ("torch", True)]


def test_without_the_export_extra_onnx_is_one_sentence_naming_the_pip_command(capsys, monkeypatch, tmp_path):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    with pytest.raises(MissingExtra) as caught:
        export_model("pvt_v2_b0", tmp_path)
    assert str(caught.value) == ("ONNX export needs onnx, onnxscript, onnxruntime (onnxruntime missing here): "
                                 "pip install 'lucid-arch[export]'.")
    code, _, err = run_main(["task=export", "model=pvt_v2_b0", *TINY_ARGS], capsys)
    assert code == 1 and err.strip() == (
        "lucid-arch: task=export with task.formats including onnx needs onnx, onnxscript, onnxruntime "
        "(onnxruntime missing here): pip install 'lucid-arch[export]'."
    )
    # torch.export alone needs no extra.
    code, _, err = run_main(["task=export", "model=pvt_v2_b0", *TINY_ARGS, "task.formats=[pt2]", "task.dynamic=[]"], capsys)
    assert code == 0, err


def test_bad_export_settings_are_one_paragraph_naming_each_key(capsys):
    code, _, err = run_main(["task=export", *TINY_ARGS, "task.dynamic=[batch,depth]", "task.opset=17", "task.formats=[]",
                             "task.verify_sizes=[[1,64]]"], capsys)
    assert code == 2
    for text in ("task.dynamic = ['batch', 'depth']: give any of batch, height, width", "task.opset = 17: torch's ONNX exporter "
                 "writes opsets 18 to 23", "task.formats = []: give one or both of pt2, onnx", "task.verify_sizes = [[1, 64]]"):
        assert text in err, err
    code, _, err = run_main(["task=export", *TINY_ARGS, "task.opsett=18"], capsys)
    assert code == 2 and "task.opsett: not a setting of task=export (did you mean opset?)" in err
    code, _, err = run_main(["task=export", *TINY_ARGS, "task.min_side=80"], capsys)  # the export size 64 is below it
    assert code == 2 and "task.min_side: the export size 64x64 (model.img_size) has a height outside the dynamic range 80..4096" in err


def test_a_range_torch_export_cannot_keep_is_one_paragraph_with_its_suggestion(tmp_path):
    from lucid_arch.export import ExportFailed

    model = lucid_arch.create_model("pvt_v2_b0", img_size=64, **V2)
    with pytest.raises(ExportFailed) as caught:
        export_model(model, tmp_path, formats=["pt2"], min_side=40)  # stage 0 would reduce 10 px maps by 8
    assert str(caught.value) == (
        "torch.export cannot keep pvt_v2_b0 dynamic over batch 1.., height 40..4096, width 40..4096: it holds only for "
        "width: min=61, max=4096. Leave task.min_side null (the model's smallest side) or raise it, or fix the size (task.dynamic).")
    assert list(tmp_path.iterdir()) == []  # nothing half-written


# ------------------------------------------------------------------- pieces, without an export


def test_the_smallest_side_follows_the_stage_geometry():
    """Every stage map >= 2 px, and >= 2 x sr_ratio where a strided convolution reduces keys and values."""
    assert {n: smallest_side(resolve_spec(resolve_config(n, {}))) for n in ("pvt_v2_b0", "pvt_v2_b2_li", "pvt_tiny", "mit_b0")} == {
        "pvt_v2_b0": 61, "pvt_v2_b2_li": 33, "pvt_tiny": 64, "mit_b0": 61}
    # Fewer reductions, smaller inputs: sr_ratios 1 everywhere leaves only the 2 px rule (stage 3 at stride 32).
    assert smallest_side(resolve_spec(resolve_config("pvt_v2_b0", {"sr_ratios": [1, 1, 1, 1]}))) == 33
    spec = resolve_spec(resolve_config("pvt_v2_b0", {"features_only": True, "out_indices": [0]}))
    assert smallest_side(spec) == 61 and len(spec.stages) == 1  # a backbone of stage 0 alone: 16 px maps for sr 8


def test_checked_sizes_stay_inside_the_range_and_a_failure_names_each_size_and_runtime():
    free = InputShapes((2, 3, 224, 224), {"batch": (1, None), "height": (61, 4096), "width": (61, 4096)})
    assert check_shapes(free) == [(2, 3, 224, 224), (1, 3, 168, 280), (3, 3, 113, 113)]
    only_height = InputShapes((1, 3, 64, 96), {"height": (61, 4096)})  # batch and width fixed
    assert check_shapes(only_height) == [(1, 3, 64, 96), (1, 3, 61, 96)]  # both picks clamp to 61: checked once
    assert check_shapes(free, [(300, 200), (64, 64)]) == [(2, 3, 224, 224), (1, 3, 300, 200), (3, 3, 64, 64)]
    with pytest.raises(ExportSettingError, match=r"verify_sizes: 40x40 is outside what the export accepts \(batch 1\.\., height 61\.\.4096"):
        check_shapes(free, [(40, 40)])
    with pytest.raises(ExportSettingError, match="verify_sizes: 64x80 is outside"):
        check_shapes(only_height, [(80, 96), (64, 80)])  # the width is fixed at 96
    passed, failed = Check("torch", "m.pt2", (1, 3, 168, 280), 0.0, 1e-4), Check("onnxruntime", "m.onnx", (1, 3, 168, 280), 2e-3, 1e-4)
    assert failure([passed], Path("job")) is None
    error = failure([passed, failed, Check("onnxruntime", "m.onnx", (3, 3, 9, 9), float("nan"), 1e-4)], Path("out/job"))
    assert isinstance(error, VerificationError) and "\n" not in str(error) and len(error.checks) == 3
    assert str(error).startswith("the exported model disagrees with eager PyTorch by more than atol=0.0001 (fp32): onnxruntime "
                                 "(m.onnx) at input 1x3x168x280: max |diff| 0.002; onnxruntime (m.onnx) at input 3x3x9x9: max |diff| nan.")


def test_a_wrapper_around_a_pvt_gets_its_smallest_side_from_the_pvt_inside():
    from lucid_arch.export.dynamic import find_spec, input_shapes

    with torch.device("meta"):
        backbone = lucid_arch.create_model("mit_b0")
    wrapper = torch.nn.Sequential(backbone)  # as a segmentation model holds its encoder
    assert find_spec(wrapper) is backbone.spec
    shapes = input_shapes(wrapper, (512, 1024), 3, ("batch", "height", "width"))
    assert shapes.sample == (2, 3, 512, 1024) and shapes.ranges["width"] == (61, 4096)
    with pytest.raises(ExportSettingError, match="give min_side"):
        input_shapes(torch.nn.Conv2d(3, 8, 3), (64, 64), 3, ("height",))
    assert input_shapes(torch.nn.Conv2d(3, 8, 3), (64, 64), 3, ("height",), min_side=8).ranges == {"height": (8, 4096)}


def test_the_traceable_adaptive_pool_equals_torchs():
    torch.manual_seed(0)
    for h, w in [(56, 56), (12, 20), (9, 9), (7, 7), (3, 5), (97, 131)]:
        x = torch.randn(2, 4, h, w)
        assert (adaptive_avg_pool2d(x, 7) - F.adaptive_avg_pool2d(x, 7)).abs().max() <= 1e-6, (h, w)


def test_every_export_setting_is_documented_and_the_task_file_spells_the_defaults():
    import yaml

    docs = (ROOT / "docs" / "export.md").read_text()
    assert [key for key in field_help() if key != "name" and f"`task.{key}`" not in docs] == []
    spelled = yaml.safe_load((ROOT / "conf" / "task" / "export.yaml").read_text())
    defaults = ExportConfig()
    assert {k: v for k, v in spelled.items() if k != "defaults"} == {k: getattr(defaults, k) for k in field_help()}
