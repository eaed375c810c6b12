"""task=predict and the inference core: whole and slide inference, flip and multi-scale averaging,
labels at each input's own size, the Predictor API, and the folder of outputs a rerun resumes.

Models are tiny (a 4-stage SegFormer / PVT v2 with 1 block per stage, 32-px training size), so
every pass takes milliseconds; two runs are trained once per module (one epoch, a few seconds).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import run_main
from PIL import Image
from test_segmentation_training import TINY_SEG, colour_regions
from test_training import TINY, _in_tmp  # noqa: F401 -- the autouse fixture: each test in its own tmp dir

from lucid_arch.inference import (
    Predictor,
    SegmentOptions,
    classify_probs,
    post_process_semantic_segmentation,
    segment_batch,
    segment_probs,
)
from lucid_arch.inference import resize as resize_mod
from lucid_arch.inference import segment as segment_mod
from lucid_arch.inference.inputs import Source, Unreadable, decode, list_inputs
from lucid_arch.inference.outputs import output_names
from lucid_arch.inference.segment import min_input_side, windows
from lucid_arch.report.palette import colour, overlay, palette
from lucid_arch.report.ticker import Ticker
from lucid_arch.runs import Preprocessing

SEG_PREP = Preprocessing(image_size=(32, 32), resize="keep_ratio")
TRAIN = ["task=train", "task.epochs=1", "task.batch_size=8", "task.precision=fp32", "task.progress=none", "task.threads=1",
         "task.data.image_size=32", "format=text"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models run fastest on one thread; with two on a busy machine the threads wait on each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _tiny(name: str, overrides: list[str], num_classes: int) -> torch.nn.Module:
    from lucid_arch import build_model, load_config

    torch.manual_seed(0)
    return build_model(load_config(name, [*overrides, f"model.num_classes={num_classes}", "model.img_size=32"])).eval()


def _tiny_segformer(num_classes: int = 4) -> torch.nn.Module:
    return _tiny("segformer_b0", TINY_SEG[1:], num_classes)


@pytest.fixture(scope="module")
def seg_model() -> torch.nn.Module:
    return _tiny_segformer()


def _pixels(h: int, w: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def _train(argv: list[str], run_dir: Path) -> Path:
    """``lucid-arch task=train ...`` in-process, for a module fixture (capsys is per test)."""
    from lucid_arch.cli import app

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            app.main([*argv, f"hydra.run.dir={run_dir}"])
        except SystemExit as exc:
            assert not exc.code, out.getvalue()
    return run_dir


@pytest.fixture(scope="module")
def seg_run(tmp_path_factory) -> Path:
    """A SegFormer trained one epoch on red, green and blue rectangles (classes background, red, green, blue)."""
    root = colour_regions(tmp_path_factory.mktemp("colours"), n_train=16, n_val=8)
    return _train([*TRAIN, *TINY_SEG, "model.decode_head.channels=32", "task.data.dataset=folder", f"task.data.root={root / 'images'}",
                   f"task.data.masks={root / 'masks'}"], tmp_path_factory.mktemp("seg") / "run")


@pytest.fixture(scope="module")
def cls_run(tmp_path_factory) -> Path:
    """A PVT v2 classifier trained one epoch on the built-in shapes (10 named classes)."""
    return _train([*TRAIN, "model=pvt_v2_b0", *TINY, "task.data.num_train=32", "task.data.num_val=16"],
                  tmp_path_factory.mktemp("cls") / "run")


def _save(path: Path, pixels: torch.Tensor) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels.permute(1, 2, 0).numpy()).save(path)
    return path


class Pointwise(torch.nn.Module):
    """A 'segmentation model' whose logits at a pixel depend on that pixel alone, at full resolution:
    every window that covers a pixel gives it the same logits, so slide must equal whole exactly."""

    def __init__(self, classes: int = 3):
        super().__init__()
        torch.manual_seed(1)
        self.decode_head = torch.nn.Conv2d(3, classes, 1)
        self.num_classes = classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode_head(x)


# ------------------------------------------------------------------------------ the inference core


def test_slide_windows_follow_mmsegs_grid_and_cover_every_pixel():
    assert windows((32, 45), (32, 32), (21, 21)) == [(0, 0, 32, 32), (0, 13, 32, 45)]  # the last window flush with the edge
    assert windows((20, 30), (64, 64), (42, 42)) == [(0, 0, 20, 30)]  # a window larger than the image shrinks to it
    spots = windows((70, 100), (32, 48), (21, 32))
    count = torch.zeros(70, 100)
    for t, l, b, r in spots:
        assert (b - t, r - l) == (32, 48)
        count[t:b, l:r] += 1
    assert count.min() >= 1 and len(spots) == 3 * 3  # ceil((70-32)/21)+1 rows, ceil((100-48)/32)+1 columns


def test_slide_agrees_with_whole_where_it_must():
    # A pointwise model: overlapping windows' logits are averaged by the count map back to the very same values.
    model = Pointwise().eval()
    image = _pixels(37, 53)
    whole = segment_probs(model, image, SEG_PREP)
    slide = segment_probs(model, image, SEG_PREP, mode="slide", crop=(16, 20), stride=(7, 9))
    assert torch.allclose(whole, slide, atol=1e-6)
    # A real model with one window covering an image already at the training size: one forward pass, same logits.
    seg = _tiny_segformer()
    at_size = _pixels(32, 45, seed=3)
    assert torch.allclose(segment_probs(seg, at_size, SEG_PREP), segment_probs(seg, at_size, SEG_PREP, mode="slide", crop=(64, 64)), atol=1e-6)
    # Windows smaller than the image give another (valid) answer: probabilities at the image's size.
    other = segment_probs(seg, at_size, SEG_PREP, mode="slide", crop=(24, 24), stride=(8, 8))
    assert other.shape == (4, 32, 45) and torch.allclose(other.sum(0), torch.ones(32, 45), atol=1e-5)


def test_flip_averages_the_mirrored_pass_at_the_image_size(seg_model):
    image = _pixels(37, 53, seed=1)
    x = (image.float()[None] / 255 - torch.tensor(SEG_PREP.mean).view(1, 3, 1, 1)) / torch.tensor(SEG_PREP.std).view(1, 3, 1, 1)
    x = F.interpolate(x, size=(32, 46), mode="bilinear", align_corners=False, antialias=True)  # shorter side 37 -> 32
    with torch.no_grad():
        plain = F.interpolate(seg_model(x), size=(37, 53), mode="bilinear", align_corners=False).softmax(1)
        mirrored = F.interpolate(seg_model(x.flip(-1)), size=(37, 53), mode="bilinear", align_corners=False).softmax(1).flip(-1)
    expected = ((plain + mirrored) / 2)[0]
    assert torch.allclose(segment_probs(seg_model, image, SEG_PREP, flip=True), expected, atol=1e-5)
    assert torch.allclose(segment_probs(seg_model, image, SEG_PREP), plain[0], atol=1e-5)
    assert not torch.allclose(plain, mirrored, atol=1e-3)  # the mirror is a different pass


def test_multi_scale_averages_each_scale_at_the_inputs_own_size(seg_model):
    image = _pixels(37, 53, seed=2)
    scales = [0.5, 1.0, 1.5]
    both = segment_probs(seg_model, image, SEG_PREP, scales=scales, flip=True)
    assert both.shape == (4, 37, 53) and torch.allclose(both.sum(0), torch.ones(37, 53), atol=1e-5)
    singles = [segment_probs(seg_model, image, SEG_PREP, scales=[s], flip=True) for s in scales]
    assert torch.allclose(both, sum(singles) / 3, atol=1e-5)
    slide = segment_probs(seg_model, image, SEG_PREP, mode="slide", scales=[0.75, 1.25], flip=True)
    assert slide.shape == (4, 37, 53)


def test_inputs_under_the_models_smallest_size_are_padded_not_refused(seg_model):
    assert min_input_side(seg_model) == 13  # stage 1's 1/4 map must hold its sr_ratio 4
    tiny = _pixels(5, 9)
    probs = segment_probs(seg_model, tiny, SEG_PREP, scales=[0.25])  # shorter side 8 px: under 13, padded
    assert probs.shape == (4, 5, 9) and torch.isfinite(probs).all()
    with pytest.raises(ValueError, match="input too small"):  # what the padding spares the user
        seg_model(torch.zeros(1, 3, 8, 14))


def test_large_images_are_scored_a_band_of_rows_at_a_time(seg_model, monkeypatch):
    image = _pixels(41, 67, seed=4)
    whole_single = segment_batch(seg_model, image[None], SEG_PREP)[0]
    whole_flip = segment_batch(seg_model, image[None], SEG_PREP, SegmentOptions(flip=True))[0]
    logits = torch.randn(2, 5, 9, 13)
    reference = F.interpolate(logits, size=(41, 67), mode="bilinear", align_corners=False)
    monkeypatch.setattr(segment_mod, "BAND_BYTES", 5 * 67 * 4 * 3)  # three rows a band
    monkeypatch.setattr(resize_mod, "BAND_BYTES", 5 * 67 * 4 * 3)
    assert len(list(resize_mod.bands(5, (41, 67)))) == 14
    assert torch.allclose(resize_mod.resize_rows(logits, (41, 67), 10, 17), reference[:, :, 10:17], atol=1e-5)
    assert torch.equal(segment_batch(seg_model, image[None], SEG_PREP)[0], whole_single)
    assert torch.equal(segment_batch(seg_model, image[None], SEG_PREP, SegmentOptions(flip=True))[0], whole_flip)
    labels = post_process_semantic_segmentation(logits, [(41, 67), (6, 4)])
    assert torch.equal(labels[0], reference[0].argmax(0)) and labels[1].shape == (6, 4)


def test_post_process_semantic_segmentation_like_hugging_faces():
    logits = torch.randn(3, 6, 8, 10)
    maps = post_process_semantic_segmentation(logits, [(31, 40), (8, 10), (17, 5)])
    assert [tuple(m.shape) for m in maps] == [(31, 40), (8, 10), (17, 5)]
    assert torch.equal(maps[1], logits[1].argmax(0))
    assert torch.equal(maps[0], F.interpolate(logits[:1], size=(31, 40), mode="bilinear", align_corners=False)[0].argmax(0))
    assert [tuple(m.shape) for m in post_process_semantic_segmentation(logits)] == [(8, 10)] * 3
    with pytest.raises(ValueError, match="2 target sizes for a batch of 3"):
        post_process_semantic_segmentation(logits, [(1, 1), (2, 2)])


def test_classify_probs_sees_what_validation_sees(tmp_path):
    from lucid_arch.data.folder import load_image

    model = _tiny("pvt_v2_b0", TINY, 5)
    prep = Preprocessing(image_size=(32, 32))
    file = _save(tmp_path / "x.png", _pixels(45, 70))
    validation = load_image(file, 32)
    probs = classify_probs(model, validation[None], prep)
    assert torch.allclose(classify_probs(model, [_pixels(45, 70)], prep), probs)  # the crop done from pixels, as load_image does
    assert probs.shape == (1, 5) and torch.allclose(probs.sum(), torch.tensor(1.0))
    result = Predictor(model, classes=list("abcde"), preprocessing=prep, top_k=3)(str(file))
    assert [t.index for t in result.top] == probs[0].topk(3).indices.tolist()
    assert result.top[0].name == "abcde"[result.top[0].index] and result.top[0].score == pytest.approx(probs[0].max().item())


# ------------------------------------------------------------------------------ inputs and outputs


def test_inputs_from_a_folder_a_file_and_a_glob(tmp_path):
    for name in ("b/2.png", "a.jpg", "b/1.PNG", ".hidden.png", ".cache/x.png", "notes.txt"):
        (tmp_path / "in" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "in" / name).write_bytes(b"")
    assert [s.relative for s in list_inputs(tmp_path / "in")] == ["a.jpg", "b/1.PNG", "b/2.png"]
    assert [s.relative for s in list_inputs(tmp_path / "in" / "a.jpg")] == ["a.jpg"]
    assert [s.relative for s in list_inputs(f"{tmp_path}/in/**/*.png")] == ["b/2.png"]
    assert [s.relative for s in list_inputs(f"{tmp_path}/in/*/*.png")] == ["b/2.png"]
    with pytest.raises(ValueError, match="task.input = .*no such file or folder"):
        list_inputs(tmp_path / "missing")
    with pytest.raises(ValueError, match="matches no files"):
        list_inputs(f"{tmp_path}/in/*.webp")
    # Two inputs that would share an output name keep their extensions.
    sources = [Source(Path(p), p) for p in ("x/a.jpg", "x/a.png", "x/b.jpg")]
    assert output_names(sources) == ["x/a.jpg.png", "x/a.png.png", "x/b.png"]


def test_decoding_skips_fifos_and_images_past_the_pixel_bound(tmp_path):
    os.mkfifo(tmp_path / "pipe.png")
    with pytest.raises(Unreadable, match="not a regular file"):
        decode(tmp_path / "pipe.png")  # would block forever if opened
    Image.new("L", (200_000, 1)).save(tmp_path / "strip.png")  # a small file that resizes to 32 x 6.4 M px
    predictor = Predictor(_tiny_segformer(), preprocessing=SEG_PREP)
    with pytest.raises(Unreadable, match="over the limit"):
        predictor.load(tmp_path / "strip.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    with pytest.raises(Unreadable):
        decode(tmp_path / "broken.png")


def test_palette_is_vocs_and_overlays_blend():
    assert [colour(k) for k in range(5)] == [(0, 0, 0), (128, 0, 0), (0, 128, 0), (128, 128, 0), (0, 0, 128)]
    table = palette(300)
    assert len({tuple(c) for c in table[:256]}) == 256 and table.shape == (300, 3) and np.array_equal(palette(300), table)
    image = np.full((2, 3, 3), 100, dtype=np.uint8)
    labels = np.array([[0, 1, 2], [3, 1, 0]])
    blended = overlay(image, labels, table, opacity=0.25)
    assert blended[0, 1].tolist() == [round(100 * 0.75 + 128 * 0.25), 75, 75] and blended[0, 0].tolist() == [75, 75, 75]
    assert np.array_equal(overlay(image, labels, table, opacity=0.0), image)


def test_ticker_writes_a_line_every_interval_when_piped():
    now = [0.0]
    stream = io.StringIO()
    with Ticker(10, label="predict", every=10, stream=stream, clock=lambda: now[0]) as tick:
        assert tick.mode == "log"  # auto on a pipe
        for _ in range(10):
            now[0] += 4.0
            tick.advance()
    lines = stream.getvalue().splitlines()
    assert lines == ["predict: 3/10 images (30%), 0.25 images/s, about 28 s left",
                     "predict: 6/10 images (60%), 0.25 images/s, about 16 s left",
                     "predict: 9/10 images (90%), 0.25 images/s, about 4 s left",
                     "predict: 10/10 images (100%), 0.25 images/s, 40 s in all"]
    quiet = io.StringIO()
    with Ticker(3, mode="none", stream=quiet) as tick:
        tick.advance(3)
    assert quiet.getvalue() == ""


# ------------------------------------------------------------------------------ the Python API


def test_predictor_from_a_run_on_paths_pil_images_and_pixels(seg_run, tmp_path):
    import lucid_arch

    assert lucid_arch.Predictor is Predictor
    predictor = Predictor.from_run(seg_run, checkpoint="best", batch_size=2)
    assert predictor.kind == "segmentation" and predictor.classes == ("background", "red", "green", "blue")
    file = _save(tmp_path / "a.png", _pixels(37, 53))
    by_path = predictor(str(file))
    assert by_path.mask.shape == (37, 53) and by_path.mask.dtype == torch.long and by_path.source == str(file)
    by_pil = predictor(Image.open(file))
    by_hwc = predictor(_pixels(37, 53).permute(1, 2, 0).numpy())
    assert torch.equal(by_pil.mask, by_path.mask) and torch.equal(by_hwc.mask, by_path.mask)
    batch = predictor([_pixels(37, 53), _pixels(20, 31, seed=1), _pixels(37, 53)])  # same-size neighbours share a pass
    assert [tuple(r.mask.shape) for r in batch] == [(37, 53), (20, 31), (37, 53)] and torch.equal(batch[2].mask, by_path.mask)
    present = by_path.present()
    assert {c["name"] for c in present} <= set(predictor.classes) and sum(c["share"] for c in present) == pytest.approx(1.0)
    with_probs = Predictor.from_run(seg_run, return_probs=True, flip=True)(_pixels(37, 53))
    assert with_probs.probs.shape == (4, 37, 53) and torch.equal(with_probs.probs.argmax(0), with_probs.mask)
    with pytest.raises(TypeError, match="give uint8 pixels"):
        predictor(torch.rand(3, 8, 8))
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(Unreadable, match=f"{tmp_path / 'empty.png'}: cannot identify image file"):
        predictor(tmp_path / "empty.png")
    assert "segmentation, 4 classes, keep_ratio at 32x32" in repr(predictor)


def test_predictor_for_a_classifier_run_gives_named_top_k(cls_run):
    predictor = Predictor.from_run(cls_run, top_k=3)
    results = predictor([_pixels(40, 40), _pixels(33, 70, seed=5)])
    names = predictor.classes
    assert len(names) == 10 and "disc" in names
    for result in results:
        assert len(result.top) == 3 and [t.name for t in result.top] == [names[t.index] for t in result.top]
        assert result.top[0].score >= result.top[1].score >= result.top[2].score
        assert result.probs.shape == (10,) and result.label == result.top[0].name


# ------------------------------------------------------------------------------ task=predict


def _mixed_folder(root: Path) -> Path:
    _save(root / "a.png", _pixels(37, 53))
    _save(root / "deep" / "b.png", _pixels(64, 40, seed=1))
    _save(root / "deep" / "c.jpg", _pixels(37, 53, seed=2))
    (root / "broken.png").write_bytes(b"not a png")
    return root


def test_predict_a_folder_with_a_segmentation_run(seg_run, capsys):
    folder = _mixed_folder(Path("photos"))
    code, out, err = run_main(["task=predict", f"model.pretrained={seg_run}", f"task.input={folder}", "task.output=pred",
                               "task.threads=1", "task.progress=log", "task.opacity=0.4", "hydra.run.dir=job"], capsys)
    assert code == 0, err
    assert f"skipping unreadable image {folder / 'broken.png'}" in err and err.count("broken.png") == 1
    assert "predict: 4/4 images (100%)" in err and "1 unreadable" in err  # the closing progress line
    assert "3 images predicted into" in out and "1 unreadable" in out and "background" in out
    pred = Path("pred")
    for rel, size in (("a.png", (53, 37)), ("deep/b.png", (40, 64)), ("deep/c.png", (53, 37))):
        with Image.open(pred / "masks" / rel) as mask, Image.open(pred / "overlays" / rel) as over:
            assert mask.mode == "L" and mask.size == size and over.size == size
    record = json.loads((pred / "predictions.json").read_text())
    assert record["classes"] == ["background", "red", "green", "blue"] and record["complete"]
    assert [e["input"] for e in record["images"]] == ["a.png", "deep/b.png", "deep/c.jpg"]
    assert record["unreadable"] == [{"input": "broken.png", "reason": "cannot identify image file"}]
    first = record["images"][0]
    ids = np.array(Image.open(pred / first["mask"]))
    assert {c["id"] for c in first["classes"]} == set(np.unique(ids).tolist())
    assert all(c["name"] == record["classes"][c["id"]] for c in first["classes"])
    assert sum(c["share"] for c in first["classes"]) == pytest.approx(1.0, abs=1e-5)
    # The overlay is the image blended with the palette colour of each pixel's class.
    image = _pixels(37, 53).permute(1, 2, 0).numpy().astype(np.float32)
    expected = np.rint(image * 0.6 + palette(4)[ids].astype(np.float32) * 0.4)
    assert np.abs(np.array(Image.open(pred / first["overlay"])).astype(np.float32) - expected).max() <= 1
    assert record["palette"] == palette(4).tolist() and (pred / "legend.png").is_file()
    summary = json.loads(Path("job/summary.json").read_text())
    assert summary["status"] == "ok" and summary["predict"]["output"] == str(pred.resolve())
    assert (summary["predict"]["predicted"], summary["predict"]["unreadable"], summary["predict"]["skipped_existing"]) == (3, 1, 0)
    assert summary["predict"]["classes"] == record["classes"] and summary["predict"]["mode"] == "whole"

    # A rerun finds every output there and writes nothing.
    stamps = {p: p.stat().st_mtime_ns for p in pred.rglob("*")}
    code, out, err = run_main(["task=predict", f"model.pretrained={seg_run}", f"task.input={folder}", "task.output=pred",
                               "task.threads=1", "task.progress=log", "task.opacity=0.4", "hydra.run.dir=job2"], capsys)
    assert code == 0, err
    assert "0 images predicted" in out and "3 skipped (outputs already there)" in out and "nothing new" in out
    assert {p: p.stat().st_mtime_ns for p in pred.rglob("*")} == stamps
    assert json.loads(Path("job2/summary.json").read_text())["predict"]["skipped_existing"] == 3

    # A lost output is made again, alone.
    (pred / "overlays" / "deep" / "b.png").unlink()
    code, out, _ = run_main(["task=predict", f"model.pretrained={seg_run}", f"task.input={folder}", "task.output=pred",
                             "task.threads=1", "task.progress=none", "task.opacity=0.4", "hydra.run.dir=job3"], capsys)
    assert code == 0 and "1 images predicted" in out and "2 skipped" in out and (pred / "overlays" / "deep" / "b.png").is_file()

    # Other settings into the same folder would mix two models' outputs: refused, with the way out.
    code, _, err = run_main(["task=predict", f"model.pretrained={seg_run}", f"task.input={folder}", "task.output=pred",
                             "task.flip=true", "task.mode=slide", "task.opacity=0.4", "hydra.run.dir=job4"], capsys)
    assert code == 2 and "Traceback" not in err
    assert "holds predictions made with other settings or weights" in err and "crop, flip, mode, stride differ" in err
    assert "task.skip_existing=false" in err


def test_predict_slide_flip_multiscale_into_the_jobs_directory(seg_run, capsys):
    _save(Path("one.png"), _pixels(45, 33))
    code, _, err = run_main(["task=predict", f"model.pretrained={seg_run}", "task.input=one.png", "task.mode=slide",
                               "task.crop=24", "task.stride=[12,16]", "task.flip=true", "task.scales=[0.75,1.0]", "task.overlay=false",
                               "task.threads=1", "task.progress=none", "format=json", "hydra.run.dir=job"], capsys)
    assert code == 0, err
    record = json.loads(Path("job/summary.json").read_text())["predict"]
    assert (record["mode"], record["crop"], record["stride"], record["scales"], record["flip"]) == ("slide", [24, 24], [12, 16], [0.75, 1.0], True)
    with Image.open("job/masks/one.png") as mask:
        assert mask.size == (33, 45)
    assert not Path("job/overlays").exists()


def test_predict_with_a_classifier_run_writes_top_k_csv_and_json(cls_run, capsys):
    _mixed_folder(Path("photos"))
    code, out, err = run_main(["task=predict", f"model.pretrained={cls_run}", "task.input='photos/**/*.png'", "task.top_k=3",
                               "task.threads=1", "task.progress=none", "hydra.run.dir=job"], capsys)
    assert code == 0, err
    lines = Path("job/predictions.csv").read_text().splitlines()
    assert lines[0] == "file,top1_id,top1_name,top1_score,top2_id,top2_name,top2_score,top3_id,top3_name,top3_score"
    assert [line.split(",")[0] for line in lines[1:]] == ["a.png", "deep/b.png"]  # the glob's matches; broken.png unreadable
    record = json.loads(Path("job/predictions.json").read_text())
    names = record["classes"]
    for entry, line in zip(record["images"], lines[1:]):
        assert [t["name"] for t in entry["top"]] == [names[t["index"]] for t in entry["top"]] == line.split(",")[2::3]
        assert entry["top"][0]["score"] >= entry["top"][2]["score"]
    assert "a.png" in out and "1 unreadable" in out
    code, _, err = run_main(["task=predict", f"model.pretrained={cls_run}", "task.input=photos", "task.mode=slide", "task.flip=true",
                             "hydra.run.dir=job2"], capsys)
    assert code == 2 and "task.mode:" in err and "task.flip:" in err and "is a classifier" in err


def test_predict_with_weights_not_from_a_run_numbers_the_classes(seg_model, capsys):
    from safetensors.torch import save_file

    save_file(seg_model.state_dict(), "weights.safetensors")
    _save(Path("x.png"), _pixels(30, 40))
    code, _, err = run_main(["task=predict", *TINY_SEG, "model.num_classes=4",
                               "model.pretrained=weights.safetensors", "task.input=x.png", "task.progress=none", "task.threads=1",
                               "format=json", "hydra.run.dir=job"], capsys)
    assert code == 0, err
    assert json.loads(Path("job/summary.json").read_text())["predict"]["classes"] == ["0", "1", "2", "3"]
    with Image.open("job/masks/x.png") as mask:
        assert mask.size == (40, 30)


def test_predict_refuses_in_one_paragraph(capsys):
    code, _, err = run_main(["task=predict", "model=segformer_b0", "task.input=x.png"], capsys)
    assert code == 2 and "model.pretrained is not set, and task=predict predicts with a trained model: a randomly initialised model predicts nothing meaningful" in err
    code, _, err = run_main(["task=predict", "task.mode=sliding", "task.opacity=2", "task.top_k=0", "task.crop=64",
                             "task.formats=[xml]", "task.device=gpu"], capsys)
    assert code == 2 and "Traceback" not in err
    for key in ("task.input", "task.mode", "task.opacity", "task.top_k", "task.crop", "task.formats", "task.device"):
        assert f"{key} =" in err, key
    _save(Path("x.png"), _pixels(30, 40))
    code, _, err = run_main(["task=predict", "model=segformer_b0", "model.pretrained=nothing/here", "task.input=x.png"], capsys)
    assert code == 2 and "model.pretrained" in err and "Traceback" not in err


def test_every_predict_setting_is_documented():
    from lucid_arch.config.predict_schema import field_help

    page = (Path(__file__).resolve().parents[1] / "docs" / "predict.md").read_text()
    yaml_keys = [line.split(":")[0] for line in (Path(__file__).resolve().parents[1] / "conf" / "task" / "predict.yaml").read_text().splitlines()
                 if line and line[0].isalpha() and not line.startswith("defaults")]
    assert [key for key in field_help() if key != "name" and f"| `{key}` |" not in page] == []
    assert yaml_keys == list(field_help())  # the task file spells out every setting, in the schema's order
