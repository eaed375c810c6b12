"""Hostile and faulty files the app reads and writes: data folders, class lists, checkpoints, searches, outputs.

tests/test_hostile.py feeds hostile *model configs* through every door; this file does the
same for the other inputs a user points the app at (issue 30): each class of input is bounded,
refused in one paragraph naming the file or key and the rule (exit 2 in the app), and nothing
the app writes is left partial under its final name. Every case builds its own tiny files;
FIFOs are guarded by an alarm, so a regression fails the test instead of hanging the suite.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import struct
import zipfile
from pathlib import Path

import pytest
import torch
from PIL import Image

from conftest import run_main
from test_training import _in_tmp  # noqa: F401 -- each test in its own tmp dir, no rank variables

SECONDS = 10  # an alarm for anything that could block: far above what each case takes
TINY_SEG = ["model=segformer_b0", "model.embed_dims=[16,32,48,64]", "model.depths=[1,1,1,1]", "model.num_heads=[1,2,3,4]",
            "model.mlp_ratios=[2,2,2,2]", "model.sr_ratios=[4,2,1,1]", "model.decode_head.channels=32"]
SEG_TRAIN = ["task=train", *TINY_SEG, "task.data.image_size=32", "task.batch_size=2", "task.epochs=1", "task.progress=none",
             "task.precision=fp32", "task.threads=1", "task.data.num_workers=0"]


UNBLOCK = """
import os, sys, time
wait, marker, *fifos = sys.argv[1:]
time.sleep(float(wait))
while True:
    for fifo in fifos:
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)  # succeeds only while a reader waits on it
        except OSError:
            continue
        open(marker, "w").close()
        os.close(fd)
    time.sleep(0.2)
"""


@contextlib.contextmanager
def deadline(seconds: int = SECONDS, fifos: tuple[Path, ...] = ()):
    """Fail, never hang, when the body blocks.

    SIGALRM ends a Python loop. A reader blocked in C or Rust on a FIFO holds the GIL, or
    retries its open() on EINTR (SQLite does), so no signal handler or thread of this process
    would ever run: a helper *process* plays the missing writer instead. Past the deadline it
    opens each of ``fifos`` for writing, which lets the reader's open() return (and read an
    empty pipe), and the test fails.
    """
    import subprocess
    import sys
    import tempfile

    def expired(*_):
        raise TimeoutError(f"blocked for {seconds} s")

    marker = Path(tempfile.mkdtemp()) / "unblocked"
    helper = subprocess.Popen([sys.executable, "-c", UNBLOCK, str(seconds), str(marker), *map(str, fifos)]) if fifos else None
    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds + 1)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        if helper is not None:
            helper.kill()
            helper.wait()
    assert not marker.exists(), f"blocked for {seconds} s on a FIFO: it was opened and waited on"


def one_paragraph(text: str) -> str:
    assert "Traceback" not in text and text.strip().count("\n") == 0, text
    return text


def save_png(path: Path, array, mode: str | None = None) -> Path:
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(np.asarray(array, dtype=np.uint8))
    (image.convert(mode) if mode else image).save(path)
    return path


def seg_folder(root: Path, names=("a", "b", "c", "d"), classes: str | None = "background\nleft\nright\n") -> Path:
    """root/images/NAME.png and root/masks/NAME.png (ids 0-2), 40x48 px."""
    import numpy as np

    for name in names:
        pixels = np.zeros((40, 48, 3), np.uint8)
        pixels[:, 24:] = 200
        labels = np.ones((40, 48), np.uint8)
        labels[:, 24:] = 2
        labels[:4] = 0
        save_png(root / "images" / f"{name}.png", pixels)
        save_png(root / "masks" / f"{name}.png", labels)
    if classes is not None:
        (root / "masks" / "classes.txt").write_text(classes)
    return root


def class_folder(root: Path, classes=("cat", "dog"), per_class: int = 3) -> Path:
    for c in classes:
        for i in range(per_class):
            save_png(root / c / f"{i}.png", [[[i * 40, 0, 0]] * 8] * 8)
    return root


def mask_splits(root: Path, num_classes=None):
    from lucid_arch.data import MaskFolder

    return MaskFolder.splits(root / "images", root / "masks", 16, val_fraction=0.25, num_classes=num_classes)


# === class lists: bounded before they are read ===============================================


def test_a_huge_sparse_classes_txt_is_refused_by_its_size_before_it_is_read(tmp_path):
    from lucid_arch.data import MaskError

    root = seg_folder(tmp_path)
    with open(root / "masks" / "classes.txt", "wb") as f:  # 8 GiB of holes: read whole, a MemoryError
        f.write(b"background\nleft\nright\n")
        f.truncate(8 << 30)
    with pytest.raises(MaskError) as info:
        mask_splits(root)
    text = one_paragraph(str(info.value))
    assert text.startswith(f"{root / 'masks' / 'classes.txt'}: holds 8.0 GiB, over the limit of 256.0 KiB")
    assert info.value.key == "task.data.masks"


@pytest.mark.parametrize(("content", "said"), [
    (b"background\n" + b"x" * 200_000 + b"\n", "line 2 is 200,000 characters long; a class name has at most 200"),
    (b"background\nroad\x1b]0;owned\x07\n", "line 2 holds U+001B"),
    ("background\n\u202egnp.exe\n".encode(), "line 2 holds U+202E (RIGHT-TO-LEFT OVERRIDE)"),
    (b"background\nroad\ncar\nroad\n", "line 4 repeats 'road' (line 2); each class needs its own name"),
    (b"background\ncaf\xe9\n", "not UTF-8 text (byte 15 cannot be decoded)"),
    (b"background\nroad\x0ccar\n", "line 2 holds U+000C"),  # splitlines() would make it two classes and shift the ids
])
def test_class_names_are_printable_bounded_distinct_utf8(tmp_path, content, said):
    from lucid_arch.data import MaskError

    root = seg_folder(tmp_path)
    (root / "masks" / "classes.txt").write_bytes(content)
    with pytest.raises(MaskError) as info:
        mask_splits(root)
    assert said in one_paragraph(str(info.value)) and str(root / "masks" / "classes.txt") in str(info.value)


def test_a_bom_and_crlf_classes_txt_from_windows_reads_as_its_names(tmp_path):
    root = seg_folder(tmp_path)
    (root / "masks" / "classes.txt").write_bytes("\ufeffbackground\r\nleft\r\nright\r\n".encode())
    assert mask_splits(root)[0].classes == ["background", "left", "right"]


@pytest.mark.parametrize("kind", ["fifo", "directory", "device"])
def test_a_classes_txt_that_is_not_a_file_is_named_for_what_it_is(tmp_path, kind):
    from lucid_arch.data import MaskError

    root = seg_folder(tmp_path, classes=None)
    target = root / "masks" / "classes.txt"
    {"fifo": lambda: os.mkfifo(target), "directory": target.mkdir, "device": lambda: target.symlink_to("/dev/zero")}[kind]()
    with deadline(fifos=(target,)), pytest.raises(MaskError) as info:
        mask_splits(root)
    what = {"fifo": "a FIFO (named pipe)", "directory": "a directory", "device": "a character device"}[kind]
    assert one_paragraph(str(info.value)).startswith(f"{target}: is {what}, not a regular file")


def test_class_folder_names_a_terminal_would_interpret_are_refused(tmp_path):
    from lucid_arch.data import DatasetError, ImageFolder

    root = class_folder(tmp_path / "data", classes=("cat", "dog\x1b[2J"))
    with pytest.raises(DatasetError) as info:
        ImageFolder(root, 8)
    text = one_paragraph(str(info.value))
    assert "the class folder" in text and "dog\\x1b[2J" in text and "holds U+001B" in text and "rename that folder" in text


def test_the_app_refuses_a_huge_classes_txt_and_copies_nothing_of_it(tmp_path, capsys):
    root = seg_folder(tmp_path / "d")
    (root / "masks" / "classes.txt").write_bytes(b"background\n" + b"x" * 2_000_000 + b"\n")
    code, out, err = run_main([*SEG_TRAIN, "task.data.dataset=folder", f"task.data.root={root / 'images'}", f"task.data.masks={root / 'masks'}",
                               "hydra.run.dir=run"], capsys)
    assert code == 2, err
    assert f"{root / 'masks' / 'classes.txt'}: holds 1.9 MiB, over the limit of 256.0 KiB" in one_paragraph(err)
    summary = Path("run/summary.json")
    assert not summary.exists() or summary.stat().st_size < 10_000


# === special files in data folders ============================================================


def test_an_image_that_is_a_fifo_or_a_device_is_skipped_and_named_not_waited_on(tmp_path, capsys):
    from lucid_arch.data import ImageFolder

    root = class_folder(tmp_path / "data", per_class=4)
    os.mkfifo(root / "cat" / "9_pipe.png")  # listed like any image; opening it for reading would block for ever
    (root / "dog" / "9_zero.png").symlink_to("/dev/zero")  # reading it would never end
    ds = ImageFolder(root, 8, split="train", val_fraction=0.2)
    bad = [i for i, (path, _) in enumerate(ds.samples) if "9_" in path]
    assert len(bad) == 2
    with deadline(fifos=(root / "cat" / "9_pipe.png",)):
        assert [ds[i] for i in bad] == [None, None]
    err = capsys.readouterr().err
    assert f"skipping unreadable image {root / 'cat' / '9_pipe.png'} (is a FIFO (named pipe), not a regular file)" in err
    assert "9_zero.png (is a character device, not a regular file)" in err


def test_a_segmentation_image_or_mask_that_is_a_fifo(tmp_path, capsys):
    from lucid_arch.data import MaskError

    root = seg_folder(tmp_path)
    (root / "masks" / "b.png").unlink()
    os.mkfifo(root / "masks" / "b.png")
    with deadline(fifos=(root / "masks" / "b.png",)), pytest.raises(MaskError) as info:
        mask_splits(root)
    text = one_paragraph(str(info.value))
    assert f"{root / 'masks' / 'b.png'} is a FIFO (named pipe)" in text and "are not regular files" in text
    assert "has no label map" not in text
    # An image that is a FIFO (its mask a real file): one bad pair, named and skipped.
    (root / "masks" / "b.png").unlink()
    save_png(root / "masks" / "b.png", [[0] * 48] * 40)
    (root / "images" / "b.png").unlink()
    os.mkfifo(root / "images" / "b.png")
    train, val = mask_splits(root)
    every = train.samples + val.samples
    pairs = type(train)(every, train.classes, 16, root, "train")
    index = next(i for i, (image, _) in enumerate(every) if image.endswith("b.png"))
    with deadline(fifos=(root / "images" / "b.png",)):
        assert pairs[index] is None
    assert "is a FIFO (named pipe), not a regular file" in capsys.readouterr().err


@pytest.mark.parametrize(("mode", "said", "not_said"), [
    ("1", "1 bit per pixel, which PIL reads as 0 and 255, and 255 is ignore", "colour"),
    ("I;16", "It holds 16- or 32-bit values", "colour"),
    ("F", "It holds floating-point values", "colour"),
    ("LA", "ids with an alpha channel", "colour"),
    ("RGB", "It is colour-coded", "bit per pixel"),
])
def test_a_mask_of_another_mode_is_told_the_conversion_for_that_mode(tmp_path, mode, said, not_said):
    from lucid_arch.data import MaskError

    root = seg_folder(tmp_path)
    labels = Image.open(root / "masks" / "a.png")
    (labels.point(lambda v: 255 * (v > 0)).convert("1") if mode == "1" else labels.convert(mode)).save(root / "masks" / "a.tiff"
                                                                                                     if mode == "F" else root / "masks" / "a.png")
    if mode == "F":  # PNG cannot hold floats: a TIFF named .png is what such a mask looks like
        os.replace(root / "masks" / "a.tiff", root / "masks" / "a.png")
    train, val = mask_splits(root)
    every = train.samples + val.samples
    pairs = type(train)(every, train.classes, 16, root, "train")
    with pytest.raises(MaskError) as info:
        pairs[next(i for i, (image, _) in enumerate(every) if image.endswith("a.png"))]
    text = one_paragraph(str(info.value))
    assert text.startswith(f"Mask {root / 'masks' / 'a.png'} is a mode {mode} image") and said in text and not_said not in text


# === checkpoints: declared sizes checked before anything is allocated =========================

TINY = ["model.embed_dims=[16,32,48,64]", "model.depths=[1,1,1,1]", "model.num_heads=[1,2,3,4]", "model.mlp_ratios=[2,2,2,2]",
        "model.sr_ratios=[4,2,1,1]", "model.num_classes=3", "model.img_size=32"]


def tiny_model():
    import lucid_arch

    return lucid_arch.create_model("pvt_v2_b0", embed_dims=[16, 32, 48, 64], depths=[1, 1, 1, 1], num_heads=[1, 2, 3, 4],
                                   mlp_ratios=[2, 2, 2, 2], sr_ratios=[4, 2, 1, 1], num_classes=3, img_size=32)


def safetensors_file(path: Path, entries: dict[str, tuple[str, list[int], int, int]], data_bytes: int) -> Path:
    """A safetensors file whose header says ``entries`` (name -> dtype, shape, begin, end), ``data_bytes`` after it (a hole)."""
    header = json.dumps({k: {"dtype": d, "shape": s, "data_offsets": [b, e]} for k, (d, s, b, e) in entries.items()}).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header)) + header)
        f.truncate(8 + len(header) + data_bytes)  # sparse: no disk, no time
    return path


def peak_rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_an_honest_header_for_a_huge_tensor_is_refused_before_reading(tmp_path, monkeypatch):
    from lucid_arch.weights import CheckpointError, load_pretrained, read_checkpoint

    model = tiny_model()
    big = safetensors_file(tmp_path / "big.safetensors", {"patch_embed1.proj.weight": ("F32", [1 << 28], 0, 1 << 30)}, 1 << 30)
    before = peak_rss_mib()
    with pytest.raises(CheckpointError) as info:
        load_pretrained(model, big)
    assert peak_rss_mib() - before < 256, "the 1 GiB tensor was read"
    text = one_paragraph(str(info.value))
    assert text.startswith(f"pretrained weights {big}: declares 1.0 GiB of tensor data (its safetensors header; the largest "
                           "entry, 'patch_embed1.proj.weight', is 1.0 GiB), more than this model can take")
    assert "truncated or corrupt" not in text
    # Without a model to measure against, the memory there is the bound (LUCID_ARCH_MEMORY_LIMIT stands in for a small machine).
    monkeypatch.setenv("LUCID_ARCH_MEMORY_LIMIT", "512M")
    with pytest.raises(CheckpointError, match=r"declares 1.0 GiB .* more than LUCID_ARCH_MEMORY_LIMIT=512M \(512.0 MiB\): loading"):
        read_checkpoint(big)


@pytest.mark.parametrize(("entries", "data", "said"), [
    ({"w": ("F32", [1 << 18], 0, 1 << 20)}, 100, "truncated: its header declares 1.0 MiB of tensor data, but the file holds 100 B"),
    ({"w": ("F32", [4], 16, 0)}, 16, "a negative or reversed byte range"),
])
def test_a_damaged_safetensors_header_is_named_for_its_damage(tmp_path, entries, data, said):
    from lucid_arch.weights import CheckpointError, load_pretrained

    path = safetensors_file(tmp_path / "w.safetensors", entries, data)
    with pytest.raises(CheckpointError) as info:
        load_pretrained(tiny_model(), path)
    assert said in one_paragraph(str(info.value)) and str(path) in str(info.value)


def test_a_safetensors_header_length_of_exabytes_is_not_believed(tmp_path):
    from lucid_arch.weights import CheckpointError, read_checkpoint

    path = tmp_path / "w.safetensors"
    path.write_bytes(struct.pack("<Q", 1 << 60) + b"{}")
    with pytest.raises(CheckpointError, match=r"header declares 1,048,576.0 TiB of JSON, over safetensors' limit of 100.0 MiB"):
        read_checkpoint(path)


def test_a_small_pt_whose_storage_inflates_is_refused_from_its_zip_directory(tmp_path):
    import io

    from lucid_arch.weights import CheckpointError, load_pretrained

    buf = io.BytesIO()
    torch.save({"patch_embed1.proj.weight": torch.zeros(4)}, buf)
    bomb = tmp_path / "bomb.pt"
    with zipfile.ZipFile(buf) as src, zipfile.ZipFile(bomb, "w") as out:
        for info in src.infolist():
            data = bytes(128 << 20) if info.filename.endswith("/data/0") else src.read(info)
            out.writestr(info.filename, data, compress_type=zipfile.ZIP_DEFLATED)
    assert bomb.stat().st_size < 1 << 20  # 128 MiB of zeros, deflated
    before = peak_rss_mib()
    with pytest.raises(CheckpointError) as info:
        load_pretrained(tiny_model(), bomb)
    assert peak_rss_mib() - before < 64, "the storage was inflated"
    text = one_paragraph(str(info.value))
    assert "declares 128.0 MiB of tensor data (the uncompressed sizes in its zip directory; the largest entry, 'archive/data/0'" in text
    assert "more than this model can take" in text


@pytest.mark.parametrize("name", ["w.safetensors", "w.pt"])
def test_a_checkpoint_that_is_a_fifo_is_named_not_waited_on(tmp_path, name):
    from lucid_arch.weights import CheckpointError, load_pretrained

    os.mkfifo(tmp_path / name)
    with deadline(fifos=(tmp_path / name,)), pytest.raises(CheckpointError) as info:
        load_pretrained(tiny_model(), tmp_path / name)
    assert one_paragraph(str(info.value)).startswith(f"pretrained weights {tmp_path / name} is a FIFO (named pipe), not a regular file")


def test_a_huge_shard_index_is_refused_unread(tmp_path):
    from lucid_arch.weights import CheckpointError, read_checkpoint

    (tmp_path / "config.json").write_text("{}")
    with open(tmp_path / "model.safetensors.index.json", "wb") as f:
        f.truncate(1 << 30)
    with pytest.raises(CheckpointError, match=r"index.json holds 1.0 GiB, over the limit of 64.0 MiB: not a shard index"):
        read_checkpoint(tmp_path)


def test_the_app_refuses_an_oversized_checkpoint_with_exit_2(tmp_path, capsys):
    big = safetensors_file(tmp_path / "big.safetensors", {"head.weight": ("F32", [1 << 28], 0, 1 << 30)}, 1 << 30)
    code, out, err = run_main(["task=train", "model=pvt_v2_b0", *TINY, f"model.pretrained={big}", "task.data.image_size=32",
                               "task.data.num_train=8", "task.data.num_val=4", "task.batch_size=4", "task.epochs=1",
                               "task.progress=none", "task.threads=1", "hydra.run.dir=run"], capsys)
    assert code == 2 and f"pretrained weights {big}: declares 1.0 GiB" in one_paragraph(err)
    assert not Path("run/model.safetensors").exists()


def test_a_resumed_checkpoint_whose_trainer_state_inflates_is_refused_from_its_zip_directory(tmp_path, capsys):
    """A run directory is input too: its trainer_state.pt is checked as pretrained weights are, before torch.load."""
    train = ["task=train", "model=pvt_v2_b0", *TINY, "task.data.image_size=32", "task.data.num_train=8", "task.data.num_val=4",
             "task.batch_size=4", "task.epochs=1", "task.checkpoint_every=1", "task.progress=none", "task.threads=1",
             "hydra.run.dir=run"]
    code, out, err = run_main(train, capsys)
    assert code == 0, err
    step = Path("run/checkpoints/step_00000001")  # mid-epoch: the same command resumes it
    state = step / "trainer_state.pt"
    with zipfile.ZipFile(state) as src:
        members = {info.filename: src.read(info) for info in src.infolist()}
    with zipfile.ZipFile(state, "w") as out_zip:
        for name, data in members.items():
            out_zip.writestr(name, bytes(256 << 20) if name.endswith("/data/0") else data, compress_type=zipfile.ZIP_DEFLATED)
    assert state.stat().st_size < 2 << 20  # 256 MiB of zeros, deflated
    before = peak_rss_mib()
    code, out, err = run_main([*train, f"task.resume={step}"], capsys)
    assert peak_rss_mib() - before < 128, "the trainer state was inflated"
    text = one_paragraph(err)
    assert code == 2, text
    assert f"task.resume: checkpoint file {state} is damaged (it declares " in text
    assert "(the uncompressed sizes in its zip directory), more than a checkpoint of this model holds" in text


# === searches: settings, spaces, study files, ledgers ==========================================

SEARCH = ["-m", "hydra/sweeper=optuna", "hydra.sweeper.sampler.seed=0", "search.objectives=[params]"]


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_a_budget_that_is_not_a_number_is_refused_not_ignored(capsys, value):
    code, out, err = run_main([*SEARCH, "model.depths=choice([1,1,1,1],[2,2,2,2])", f"search.max_gflops={value}",
                               "hydra.sweep.dir=s"], capsys)
    assert code == 2, err
    assert f"search.max_gflops = {float(value)!r}: give a positive number or null" in one_paragraph(err)
    assert not Path("s/study.db").exists()


@pytest.mark.parametrize(("params", "said"), [
    ({"model.depths": "range(0, 10, 0)"}, "the step is 0"),
    ({"model.drop_path_rate": "range(0, 1, 0.0)"}, "the step is 0"),
    ({"task.seed": "range(0, inf, 1.0)"}, "a range needs finite numbers"),  # Hydra's FloatRange would count for ever
    ({"task.seed": "range(0, nan, 1)"}, "a range needs finite numbers"),
    ({"task.lr": "range(0.0, 1e12, 1)"}, "1,000,000,000,000 values; a range of floats is searched as the list of its values, at most 10,000"),
    ({"task.lr": "interval(0, inf)"}, "an interval needs two finite numbers"),
])
def test_a_search_space_is_bounded_before_it_is_listed(params, said):
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from lucid_arch.config import ConfigError
    from lucid_arch.search.space import parse_space

    with deadline(), pytest.raises(ConfigError) as info:
        parse_space(params, [], OverridesParser.create(), options=lambda group: [])
    [problem] = info.value.problems
    assert problem.key == f"hydra.sweeper.params.{next(iter(params))}" and said in problem.message


def test_a_trillion_integers_is_a_range_not_a_list():
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from lucid_arch.search.space import INT, parse_space

    with deadline():
        space = parse_space({"task.seed": "range(1, 1000000000000)", "task.epochs": "range(9, 0, -3)"}, [],
                            OverridesParser.create(), options=lambda group: [])
    dims = {d.key: d for d in space.dims}
    assert (dims["task.seed"].kind, dims["task.seed"].low, dims["task.seed"].high, dims["task.seed"].step) == (INT, 1, 999_999_999_999, 1)
    assert (dims["task.epochs"].low, dims["task.epochs"].high, dims["task.epochs"].step) == (3, 9, 3)


@pytest.mark.parametrize("kind", ["garbage", "damaged sqlite", "fifo", "directory"])
def test_a_study_file_that_is_not_one_is_named_before_anything_runs(capsys, kind):
    Path("s").mkdir()
    study = Path("s/study.db")
    if kind == "garbage":
        study.write_bytes(b"this is not a database\n" * 100)
    elif kind == "damaged sqlite":
        study.write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 64)
    elif kind == "fifo":
        os.mkfifo(study)
    else:
        study.mkdir()
    with deadline(30, fifos=(study,)):
        code, out, err = run_main([*SEARCH, "model.depths=choice([1,1,1,1],[2,2,2,2])", "hydra.sweep.dir=s"], capsys)
    assert code == 2, err
    text = one_paragraph(err)
    assert f"the search's study {study.absolute()} " in text and "move the file aside" in text, text
    assert "sqlalchemy" not in text.lower() or kind == "damaged sqlite"
    assert not list(Path("s").glob("*/summary.json"))


@pytest.mark.parametrize(("content", "said"), [
    (b"[1, 2, 3]", "is not a sweep's record of its jobs"),
    (b'{"jobs": [{"num": "x"}]}', "is not a sweep's record of its jobs"),
    (b"{", "cannot be read (Expecting property name"),
    (None, "is a FIFO (named pipe), not a regular file"),
])
def test_a_damaged_ledger_is_named_and_not_overwritten(capsys, content, said):
    Path("s").mkdir()
    ledger = Path("s/.lucid-sweep.json")
    os.mkfifo(ledger) if content is None else ledger.write_bytes(content)
    for argv in ([*SEARCH, "model.depths=choice([1,1,1,1],[2,2,2,2])"], ["-m", "model.depths=[1,1,1,1],[2,2,2,2]"]):
        with deadline(fifos=(ledger,)):
            code, out, err = run_main([*argv, "hydra.sweep.dir=s"], capsys)
        assert code == 2 and f"hydra.sweep.dir = 's': its ledger s/.lucid-sweep.json {said}" in one_paragraph(err), err
    assert content is None or ledger.read_bytes() == content


def test_a_running_search_refuses_a_second_one_in_a_sentence(tmp_path):
    import subprocess
    import sys

    from lucid_arch.cli import sweep_ledger
    from lucid_arch.config import ConfigError

    search = {"identity": {"space": {"model.depths": "choice(a, b)"}, "objectives": ["params"]}}
    sweep_ledger.open_search_ledger(tmp_path, search)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        ledger = json.loads((tmp_path / sweep_ledger.LEDGER).read_text())
        (tmp_path / sweep_ledger.LEDGER).write_text(json.dumps({**ledger, "pid": other.pid}))
        with pytest.raises(ConfigError) as info:
            sweep_ledger.open_search_ledger(tmp_path, search)
    finally:
        other.kill()
        other.wait()
    text = str(info.value.problems[0].message)
    assert text == (f"hydra.sweep.dir = {str(tmp_path)!r} is being searched right now by process {other.pid} on this machine, "
                    "and two searches in one directory would overwrite each other's ledger and trials. Wait for that search "
                    "to end (or stop it) and run this command again to continue it, or give this search a new directory.")


def test_a_search_whose_every_candidate_is_rejected_says_so(capsys):
    code, out, err = run_main([*SEARCH, "model.num_heads=choice([3,3,3,3],[5,5,5,5])", "hydra.sweeper.max_rejected=4",
                               "hydra.sweep.dir=s"], capsys)
    assert "search of 2 candidates, every one rejected before running: no job ran" in out, out + err
    assert "jobs (0 failed or missing)" not in out


# === the nested field's own line ===============================================================


def test_a_field_error_inside_a_section_names_the_fields_line(tmp_path):
    import lucid_arch

    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "myseg.yaml").write_text(
        "defaults: [segformer_b0, _self_]\nname: myseg\nnum_classes: 4\ndecode_head:\n  type: all_mlp\n\n"
        "  # the width\n  channels: -5\n  dropout: .nan\nneck: {type: none}\n")
    with pytest.raises(lucid_arch.ConfigError) as info:
        lucid_arch.load_config(str(tmp_path / "model" / "myseg.yaml"))
    text = str(info.value)
    assert "model.decode_head.channels = -5: must lie in [1, 16,384]. (set in" in text and "myseg.yaml, line 8)" in text
    assert "model.decode_head.dropout = nan" in text and "myseg.yaml, line 9)" in text


# === output: whole or not at all ===============================================================

# Writes that are not an output of the app, each with why it needs no temporary name.
NOT_OUTPUTS = {
    "lucid_arch/perf/benchmarking.py": "/proc/self/clear_refs: a kernel control file",
    "lucid_arch/config/hydra_session.py": "a model file copied into a private temporary directory",
    "lucid_arch/diff/worker.py": "the sandbox's private copy of a reviewed tree",
    "lucid_arch/safe_io.py": "atomic_write itself",
}
ATOMIC_HELPERS = {"torch_program.save"}  # functions that write through a temporary name themselves
PENDING: dict[str, str] = {}  # outputs written under their final name, with the reason (none today)


def direct_writes() -> list[str]:
    """'file:line: call' of every write in lucid_arch whose target is not a temporary name (a lint, from the AST)."""
    import ast

    root = Path(__file__).resolve().parents[1]
    found = []
    for path in sorted((root / "lucid_arch").rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
            if ast.unparse(f) in ATOMIC_HELPERS:
                continue
            if name in ("write_text", "write_bytes", "savefig", "save") and isinstance(f, ast.Attribute):
                target = ast.unparse(f.value) + " " + " ".join(ast.unparse(a) for a in node.args[:2])
            elif name == "save_file":
                target = " ".join(ast.unparse(a) for a in node.args[:2])
            elif name == "open":
                args = node.args[1:2] if isinstance(f, ast.Name) else node.args[:1]
                mode = next((a.value for a in [*args, *(k.value for k in node.keywords if k.arg == "mode")]
                             if isinstance(a, ast.Constant) and isinstance(a.value, str)), "")
                if not set(mode) & set("wax"):
                    continue
                target = ast.unparse(node)
            else:
                continue
            if "tmp" not in target and "staging" not in target and rel not in NOT_OUTPUTS and rel not in PENDING:
                found.append(f"{rel}:{node.lineno}: {ast.unparse(node)[:100]}")
    return found


def test_every_file_the_app_writes_goes_through_a_temporary_name():
    assert direct_writes() == [], "write to a temporary name and os.replace it (lucid_arch.safe_io.atomic_write)"


def test_atomic_write_leaves_nothing_when_the_writer_fails(tmp_path):
    from lucid_arch.safe_io import atomic_write

    (tmp_path / "report.md").write_text("the last whole report\n")

    def half(tmp: Path) -> None:
        tmp.write_text("half a rep")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        atomic_write(tmp_path / "report.md", half)
    assert (tmp_path / "report.md").read_text() == "the last whole report\n" and os.listdir(tmp_path) == ["report.md"]
    with pytest.raises(OSError):
        atomic_write(tmp_path / "new.md", half)
    assert sorted(os.listdir(tmp_path)) == ["report.md"]


def test_a_sweep_report_killed_midway_leaves_the_last_whole_table(capsys, monkeypatch):
    """The sweep's csv, md and png go through a temporary name: a failure while drawing leaves none half-written."""
    from lucid_arch.report import sweep_plot

    assert run_main(["-m", "model.depths=[1,1,1,1],[2,2,2,2]", "hydra.sweep.dir=g"], capsys)[0] == 0
    whole = Path("g/sweep.png").read_bytes()

    def dies(fig, path, **kwargs):
        Path(path).write_bytes(b"\x89PNG half")
        raise MemoryError("killed while drawing")

    import matplotlib.figure

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", dies)
    with pytest.raises(MemoryError):
        sweep_plot.write_plot([], Path("g/sweep.png"), "again")
    assert Path("g/sweep.png").read_bytes() == whole and not list(Path("g").glob(".*.tmp"))
