"""Exports carry the run: both files say what the model is, its classes and how to prepare an image;
the .pt2 refuses an out-of-range image in one sentence; a trained run exports with its own head;
and docs/export.md's onnxruntime programs run, so they cannot rot.

Models are tiny (two stages of one block, 16 and 32 channels): the classifier exports at a fixed
size (~2 s), the others with dynamic sizes (~10 s each, most of it torch.export).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import lucid_arch
from lucid_arch.export import ExportSettingError, export_model
from lucid_arch.export.input_check import message
from lucid_arch.export.metadata import KEYS, PREFIX, PT2_FILE, from_strings

from conftest import run_main
from doc_pages import DOCS, split
from test_segmentation_training import colour_regions
from test_training import _in_tmp  # noqa: F401 -- the same autouse fixture: each test in its tmp dir

TWO_STAGES = {"embed_dims": [16, 32], "depths": [1, 1], "num_heads": [1, 2], "mlp_ratios": [4, 4], "sr_ratios": [8, 4]}
SEG_RUN = ["model=segformer_b0", "model.embed_dims=[16,32]", "model.depths=[1,1]", "model.num_heads=[1,2]",
           "model.mlp_ratios=[4,4]", "model.sr_ratios=[2,1]", "model.decode_head.channels=16"]


def onnx_metadata(path: Path) -> dict[str, str]:
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_modelmeta().custom_metadata_map


def pt2_metadata(path: Path) -> dict:
    extra = {PT2_FILE: ""}
    torch.export.load(str(path), extra_files=extra)
    return json.loads(extra[PT2_FILE])


def doc_program(first_line: str) -> dict:
    """The python block of docs/export.md that starts with ``first_line``, executed as a module (not as __main__)."""
    code = only([b.code for b in split(DOCS / "export.md")[0] if b.lang == "python" and b.code.startswith(first_line)])
    namespace = {"__name__": "doc_snippet"}
    exec(compile(code, f"docs/export.md ({first_line})", "exec"), namespace)
    return namespace


def only(items: list):
    assert len(items) == 1, items
    return items[0]


def picture(path: Path, height: int, width: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)
    return path


# ------------------------------------------------------------------------------ a model built here


def test_a_classifier_not_from_a_run_carries_numbered_classes_and_imagenet_preprocessing(tmp_path, capsys):
    torch.manual_seed(0)
    model = lucid_arch.create_model("pvt_v2_b0", img_size=64, num_classes=10, **TWO_STAGES).eval()
    result = export_model(model, tmp_path, dynamic=["batch"])  # height and width fixed: traces in a second or two
    meta = result.metadata

    assert list(meta) == [PREFIX + k for k in KEYS]
    assert meta["lucid_arch.format"] == "1" and meta["lucid_arch.model"] == "pvt_v2_b0"
    assert meta["lucid_arch.task"] == "classification" and meta["lucid_arch.classes"] == [str(i) for i in range(10)]
    assert meta["lucid_arch.preprocessing"] == {
        "image_size": [64, 64], "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "resize": "center_crop",
        "color_order": "RGB", "value_range": [0, 255], "layout": "NCHW", "interpolation": "bicubic", "crop_fraction": 0.875}
    assert meta["lucid_arch.input"] == {"name": "image", "layout": "NCHW", "dtype": "float32", "channels": 3,
                                        "batch": {"min": 1, "max": None}, "height": {"min": 64, "max": 64},
                                        "width": {"min": 64, "max": 64}}
    assert [(o["name"], o["shape"]) for o in meta["lucid_arch.outputs"]] == [("logits", ["batch", "classes"])]
    assert meta["lucid_arch.source"] is None

    # The same object in all three places: ONNX metadata_props (text, JSON), the .pt2's lucid_arch.json, summary.json's record.
    props = onnx_metadata(result.files["onnx"])
    assert props["lucid_arch.task"] == "classification" and json.loads(props["lucid_arch.classes"])[9] == "9"
    assert from_strings(props) == meta == pt2_metadata(result.files["pt2"]) == result.to_dict()["metadata"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pvt_v2_b0.onnx", "pvt_v2_b0.pt2"]  # no temporary left behind

    # docs/export.md's classify.py on this file: its top 5 are eager PyTorch's on the image as training's validation loads it.
    from lucid_arch.data.folder import load_image
    from lucid_arch.inference.preprocess import normalize
    from lucid_arch.runs import Preprocessing

    image = picture(tmp_path / "photo.png", 50, 90)
    top = doc_program("# classify.py")["classify"](str(result.files["onnx"]), str(image))
    with torch.no_grad():
        x = normalize(load_image(image, 64).unsqueeze(0), Preprocessing(image_size=(64, 64)))
        probs = model(x).softmax(-1)[0]
    want = probs.topk(5)
    assert [name for name, _ in top] == [str(int(i)) for i in want.indices]
    assert np.allclose([p for _, p in top], want.values.numpy(), atol=1e-5)
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 5 and printed[0].endswith(f"  {top[0][0]}")

    with pytest.raises(ExportSettingError, match="3 class names for a model with 10 classes") as caught:
        export_model(model, tmp_path / "bad", dynamic=["batch"], classes=["cat", "dog", "bird"])
    assert caught.value.key == "classes" and list((tmp_path / "bad").iterdir()) == []  # refused before tracing


def test_the_pt2_refuses_an_image_outside_its_range_in_one_sentence(tmp_path):
    """pvt_v2_b0's first stage reduces keys and values by 8, so the smallest side is 61 (docs/export.md)."""
    model = lucid_arch.create_model("pvt_v2_b0", img_size=64, **TWO_STAGES).eval()
    result = export_model(model, tmp_path, formats=["pt2"], max_side=512)
    assert len(result.checks) == 3 and all(c.ok for c in result.checks)  # the program with its asserts, at three sizes
    program = torch.export.load(str(result.files["pt2"])).module()

    cases = {(40, 64): ("height", "small"), (64, 60): ("width", "small"), (2, 2): ("height", "small"),
             (513, 64): ("height", "large"), (64, 600): ("width", "large")}
    for (h, w), (side, too) in cases.items():
        with pytest.raises(RuntimeError) as caught:
            program(torch.randn(1, 3, h, w))
        assert str(caught.value) == message("pvt_v2_b0", side, too, 61, 512), (h, w)
    text = message("pvt_v2_b0", "height", "small", 61, 512)
    assert "height is below 61 px" in text and "61 to 512 px" in text and "\n" not in text
    x = torch.randn(2, 3, 61, 97)  # the smallest side itself runs, and equals eager PyTorch
    with torch.no_grad():
        torch.testing.assert_close(program(x), model(x), atol=1e-5, rtol=0)


# --------------------------------------------------------------------------------- a trained run


def test_a_trained_run_exports_its_head_and_names_and_the_docs_program_segments_with_it(tmp_path, capsys):
    root = colour_regions(tmp_path / "colours", n_train=8, n_val=4)
    code, _, err = run_main(["task=train", *SEG_RUN, "task.data.dataset=folder", f"task.data.root={root / 'images'}",
                             f"task.data.masks={root / 'masks'}", "task.data.image_size=32", "task.batch_size=4", "task.epochs=1",
                             "task.precision=fp32", "task.progress=log", "task.threads=1", "hydra.run.dir=run"], capsys)
    assert code == 0, err
    code, out, err = run_main(["task=export", f"model.pretrained={Path('run').resolve()}", "task.threads=1", "task.max_side=1024",
                               "format=text", "hydra.run.dir=exported"], capsys)
    assert code == 0, err
    record = json.loads(Path("exported/summary.json").read_text())
    export = record["export"]
    meta = export["metadata"]
    names = ["background", "red", "green", "blue"]
    assert meta["lucid_arch.task"] == "segmentation" and meta["lucid_arch.classes"] == names  # the run's, not 150 ADE classes
    assert meta["lucid_arch.preprocessing"]["image_size"] == [32, 32] and meta["lucid_arch.preprocessing"]["resize"] == "keep_ratio"
    assert meta["lucid_arch.source"] == {"run": "run", "weights": "model.safetensors", "checkpoint": "last", "status": "finished"}
    assert meta["lucid_arch.outputs"][0]["stride"] == 4 and meta["lucid_arch.input"]["height"]["max"] == 1024
    assert all(c["ok"] for c in export["checks"])
    onnx_file = Path("exported") / export["files"]["onnx"]
    assert from_strings(onnx_metadata(onnx_file)) == meta == pt2_metadata(Path("exported") / export["files"]["pt2"])
    import onnx

    logits_dims = [d.dim_param or d.dim_value for d in onnx.load(str(onnx_file)).graph.output[0].type.tensor_type.shape.dim]
    assert logits_dims[1] == 4  # the run's head: 4 classes
    assert "segmentation, 4 classes (background, red, green, blue)" in out and "from run run (model.safetensors)" in out

    # In Python a run directory is a model too, and brings the same names (a fixed-size .pt2 alone: a second or two).
    python = export_model("run", "from_python", formats=["pt2"], dynamic=[], verify=False)
    assert python.metadata["lucid_arch.classes"] == names and python.metadata["lucid_arch.source"]["run"] == "run"

    # docs/export.md's segment.py: a label map at the image's own size, the classes printed by name, and the same
    # labels as the trained model in PyTorch given the same preparation (resize, normalise, upsample, argmax).
    segment = doc_program("# segment.py")["segment"]
    image = root / "images" / "val" / "0.png"
    capsys.readouterr()  # what came before (the app's log lines)
    mask = segment(str(onnx_file), str(image), "mask.png")
    saved = np.array(Image.open("mask.png"))
    assert saved.shape == (40, 48) == mask.shape and saved.dtype == np.uint8 and (saved == mask).all()
    printed = capsys.readouterr().out.splitlines()
    assert printed and all(line.split(":")[0] in names and line.endswith("% of the pixels") for line in printed)

    from lucid_arch.inference.preprocess import normalize, resize_keep_ratio, to_pixels
    from lucid_arch.runs import read_run

    trained = lucid_arch.create_model("run").eval()
    prep = read_run("run").preprocessing
    with torch.no_grad():
        pixels = to_pixels(Image.open(image)).unsqueeze(0)
        logits = trained(normalize(resize_keep_ratio(pixels, prep), prep))
        want = torch.nn.functional.interpolate(logits, size=(40, 48), mode="bilinear", align_corners=False).argmax(1)[0]
    assert (torch.from_numpy(mask) == want).float().mean() > 0.98  # PIL's and torch's resizing differ by a grey level or so

    # An image whose resized size leaves the exported range is refused from the metadata, before onnxruntime runs.
    long = picture(tmp_path / "long.png", 4, 200)  # shorter side 4 -> 32, longer 200 -> 1600 > 1024
    with pytest.raises(SystemExit, match=r"resized to 1600x32 px, its width is outside the 13 to 1024 px the model accepts"):
        segment(str(onnx_file), str(long), "long_mask.png")
    assert not Path("long_mask.png").exists()
