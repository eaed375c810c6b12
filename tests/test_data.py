"""lucid_arch.data: the shapes dataset, image folders, batch augmentation, epoch sharding."""

from __future__ import annotations

import functools
import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from PIL import Image
from torch.utils.data import DataLoader

from lucid_arch.config.train_schema import DataConfig
from lucid_arch.data import (
    DatasetError,
    DatasetNotFoundError,
    ImageFolder,
    ShapesDataset,
    build_datasets,
    collate_skip_bad,
    normalize,
    random_resized_crop_flip,
    random_resized_crop_flip_pair,
    shard_indices,
    to_float,
)
from lucid_arch.data.augment import crop_boxes
from lucid_arch.data.folder import load_image, scan_image_folder
from lucid_arch.data.shapes import CHUNK, CLASSES


def digest(t: torch.Tensor) -> str:
    return hashlib.sha256(t.contiguous().numpy().tobytes()).hexdigest()


# --- shapes ---------------------------------------------------------------------------------


def test_shapes_layout():
    ds = ShapesDataset(23, image_size=32, seed=3)
    assert ds.images.shape == (23, 3, 32, 32) and ds.images.dtype == torch.uint8
    assert ds.labels.shape == (23,) and ds.labels.dtype == torch.int64
    assert len(ds) == 23
    image, label = ds[5]
    assert image.shape == (3, 32, 32) and image.dtype == torch.uint8
    assert isinstance(label, int) and label == int(ds.labels[5])
    assert ds.classes == list(CLASSES) and len(set(ds.classes)) == 10


def test_shapes_same_seed_same_bytes_whatever_the_thread_count():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = ShapesDataset(40, image_size=48, seed=7)
        torch.set_num_threads(max(2, before))
        many = ShapesDataset(40, image_size=48, seed=7)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(one.images, many.images) and torch.equal(one.labels, many.labels)


def test_shapes_golden_bytes():
    """The dataset is part of the results people report: it must not drift across machines or edits."""
    ds = ShapesDataset(20, image_size=16, seed=0)
    assert ds.labels.tolist() == GOLDEN_LABELS
    assert digest(ds.images) == GOLDEN_DIGEST


GOLDEN_LABELS = [9, 7, 2, 8, 3, 0, 1, 4, 5, 6, 7, 9, 6, 4, 8, 5, 1, 0, 2, 3]
GOLDEN_DIGEST = "ccf0379fbb1b085b1fed37003d27c35fb621f89642957526d2234c2f7f79df75"


def test_shapes_seed_and_split_change_the_images():
    base = ShapesDataset(30, image_size=32, seed=0, split="train")
    other_seed = ShapesDataset(30, image_size=32, seed=1, split="train")
    val = ShapesDataset(30, image_size=32, seed=0, split="val")
    assert not torch.equal(base.images, other_seed.images)
    assert not torch.equal(base.images, val.images)
    train_set = {digest(img) for img in base.images}
    assert not any(digest(img) in train_set for img in val.images), "a val image copies a train image"


def test_shapes_image_i_does_not_depend_on_num_images():
    small = ShapesDataset(CHUNK + 7, image_size=16)
    large = ShapesDataset(CHUNK + 40, image_size=16)
    assert torch.equal(small.images, large.images[: CHUNK + 7])
    assert torch.equal(small.labels, large.labels[: CHUNK + 7])


def test_shapes_balanced_and_every_class_present():
    ds = ShapesDataset(2 * CHUNK + 3, image_size=16)
    counts = torch.bincount(ds.labels, minlength=10)
    assert counts.min() >= 1 and counts.max() - counts.min() <= 1, counts.tolist()
    assert counts.sum() == 2 * CHUNK + 3


@pytest.mark.parametrize("size", [16, 32, 64, 96])
def test_shapes_sizes(size):
    ds = ShapesDataset(12, image_size=size, seed=1)
    assert ds.images.shape == (12, 3, size, size)
    # Something is drawn: every image spans a real range of values.
    spread = ds.images.flatten(1).float()
    assert (spread.max(1).values - spread.min(1).values).min() > 60


def test_shapes_at_height_and_width_keep_the_square_scene_whole():
    square = ShapesDataset(6, image_size=32, seed=4)
    wide, tall = ShapesDataset(6, image_size=(32, 48), seed=4), ShapesDataset(6, image_size=[48, 32], seed=4)
    assert wide.images.shape == (6, 3, 32, 48) and tall.images.shape == (6, 3, 48, 32)
    assert torch.equal(wide.images[..., 8:40], square.images) and torch.equal(tall.images[:, :, 8:40], square.images)
    assert torch.equal(wide.images[..., :8], square.images[..., :1].expand(-1, -1, -1, 8))  # edge pixels repeated
    assert torch.equal(wide.labels, square.labels) and "32x48" in repr(wide)


def test_shapes_bad_arguments():
    with pytest.raises(ValueError, match="image_size"):
        ShapesDataset(4, image_size=8)
    with pytest.raises(ValueError, match="split"):
        ShapesDataset(4, split="test")


def test_shapes_not_solvable_by_pixel_templates():
    """Position, size, rotation and colours are random: class-mean templates stay near chance."""
    train = ShapesDataset(1000, image_size=32, seed=0, split="train")
    val = ShapesDataset(500, image_size=32, seed=0, split="val")
    x = train.images.flatten(1).float()
    means = torch.stack([x[train.labels == k].mean(0) for k in range(10)])
    pred = torch.cdist(val.images.flatten(1).float(), means).argmin(1)
    accuracy = (pred == val.labels).float().mean().item()
    assert accuracy < 0.3, accuracy


def test_shapes_colour_says_nothing_about_the_class():
    """Per-image colour mean and spread (which also reflect the shape's area) are at chance."""
    train = ShapesDataset(1000, image_size=16, seed=2, split="train")
    val = ShapesDataset(500, image_size=16, seed=2, split="val")

    def stats(ds):
        x = ds.images.float()
        return torch.cat([x.mean((2, 3)), x.std((2, 3))], 1)

    feats = stats(train)
    means = torch.stack([feats[train.labels == k].mean(0) for k in range(10)])
    accuracy = (torch.cdist(stats(val), means).argmin(1) == val.labels).float().mean().item()
    assert accuracy < 0.2, accuracy


# --- image folder ---------------------------------------------------------------------------


def save(path: Path, size=(40, 30), colour=(200, 30, 30), fmt=None, mode="RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, colour if mode == "RGB" else 128).save(path, format=fmt)
    return path


@pytest.fixture
def tree(tmp_path):
    """cat: 5 images (one truncated); dog: 5 good + 2 bad; fish: 2; plus files that are no images."""
    root = tmp_path / "images"
    save(root / "cat" / "a.png", (40, 30))
    save(root / "cat" / "b.jpg", (64, 48), fmt="JPEG")
    save(root / "cat" / "c.bmp", (20, 50))
    save(root / "cat" / "nested" / "d.PNG", (33, 33), fmt="PNG")
    big = root / "cat" / "e_truncated.jpg"
    save(big, (128, 128), fmt="JPEG")
    Image.effect_noise((128, 128), 60).convert("RGB").save(big, format="JPEG")
    big.write_bytes(big.read_bytes()[: big.stat().st_size // 2])
    (root / "cat" / "notes.txt").write_text("not an image")
    (root / "cat" / ".hidden.jpg").write_text("macOS resource fork")
    for i, size in enumerate([(50, 50), (70, 40), (40, 70), (100, 90), (25, 25)]):
        save(root / "dog" / f"{i}.png", size, colour=(30, 30, 200))
    (root / "dog" / "text_renamed.jpg").write_text("<html>not found</html>")
    (root / "dog" / "zero.png").write_bytes(b"")
    save(root / "fish" / "x.gif", (30, 30), fmt="GIF")
    save(root / "fish" / "y.webp", (30, 31), fmt="WEBP")
    return root


BAD = ("e_truncated.jpg", "text_renamed.jpg", "zero.png")


def test_folder_classes_and_files(tree):
    train = ImageFolder(tree, 16, "train", val_fraction=0.3)
    val = ImageFolder(tree, 16, "val", val_fraction=0.3)
    assert train.classes == val.classes == ["cat", "dog", "fish"]
    everything = sorted(train.samples + val.samples)
    names = sorted(Path(p).name for p, _ in everything)
    assert names == sorted(["a.png", "b.jpg", "c.bmp", "d.PNG", "e_truncated.jpg"] + [f"{i}.png" for i in range(5)]
                           + ["text_renamed.jpg", "zero.png", "x.gif", "y.webp"])
    assert not set(train.samples) & set(val.samples)
    # Stratified, round(n * 0.3) per class, at least one: cat 5 -> 2, dog 7 -> 2, fish 2 -> 1.
    per_class = torch.bincount(torch.tensor([label for _, label in val.samples]), minlength=3).tolist()
    assert per_class == [2, 2, 1]
    labels = {Path(p).parent.name if Path(p).parent.name != "nested" else "cat": label for p, label in everything}
    assert labels == {"cat": 0, "dog": 1, "fish": 2}


def test_folder_split_is_deterministic_and_seeded(tree):
    a = ImageFolder(tree, 16, "val", val_fraction=0.3, seed=0).samples
    b = ImageFolder(tree, 16, "val", val_fraction=0.3, seed=0).samples
    assert a == b
    others = [ImageFolder(tree, 16, "val", val_fraction=0.3, seed=s).samples for s in range(1, 6)]
    assert any(o != a for o in others)
    # At least one val image per class with >= 2 files, even when the share rounds to zero.
    tiny = ImageFolder(tree, 16, "val", val_fraction=0.01)
    assert sorted(label for _, label in tiny.samples) == [0, 1, 2]


def test_folder_splits_scans_once_and_agrees(tree):
    train, val = ImageFolder.splits(tree, 16, val_fraction=0.3, seed=4)
    assert train.samples == ImageFolder(tree, 16, "train", 0.3, 4).samples
    assert val.samples == ImageFolder(tree, 16, "val", 0.3, 4).samples


def by_file(root: Path, size: int) -> dict:
    """"CLASS/NAME" -> (dataset, index) over both splits of ``root``."""
    out = {}
    for ds in ImageFolder.splits(root, size, val_fraction=0.4):
        for i, (path, _) in enumerate(ds.samples):
            out[f"{Path(path).parent.name}/{Path(path).name}"] = (ds, i)
    return out


def test_folder_decodes_resizes_and_center_crops(tmp_path):
    image = Image.new("RGB", (100, 50), (255, 0, 0))
    image.paste((0, 0, 255), (50, 0, 100, 50))  # left half red, right half blue
    image.save(save(tmp_path / "a" / "wide.png"))
    save(tmp_path / "a" / "other.png")
    save(tmp_path / "b" / "grey.png", (30, 60), mode="L")
    save(tmp_path / "b" / "other.png")
    items = {key: ds[i] for key, (ds, i) in by_file(tmp_path, 32).items()}
    x, label = items["a/wide.png"]
    assert x.shape == (3, 32, 32) and x.dtype == torch.uint8 and label == 0
    # Shorter side 50 -> round(32 / 0.875) = 37, so 74 x 37, then the central 32 x 32.
    assert x[:, 16, 1].tolist() == [255, 0, 0] and x[:, 16, 30].tolist() == [0, 0, 255]
    assert x[:, :, 14].float().std() > 10  # the red/blue edge runs through the middle
    grey, label = items["b/grey.png"]
    assert grey.shape == (3, 32, 32) and label == 1 and grey.eq(128).all()


def test_folder_at_height_and_width_covers_then_crops(tmp_path):
    image = Image.new("RGB", (100, 50), (255, 0, 0))
    image.paste((0, 0, 255), (50, 0, 100, 50))  # left half red, right half blue
    image.save(save(tmp_path / "a" / "wide.png"))
    save(tmp_path / "b" / "tall.png", (30, 90))
    x = load_image(tmp_path / "a" / "wide.png", (16, 48))
    # Covering 18 x 55 (16 / 0.875, 48 / 0.875): the width binds, 100 x 50 -> 55 x 28, central 48 x 16.
    assert x.shape == (3, 16, 48) and x[:, 8, 2].tolist() == [255, 0, 0] and x[:, 8, 45].tolist() == [0, 0, 255]
    assert load_image(tmp_path / "b" / "tall.png", [40, 24]).shape == (3, 40, 24)
    assert torch.equal(load_image(tmp_path / "a" / "wide.png", (32, 32)), load_image(tmp_path / "a" / "wide.png", 32))
    empty, _ = collate_skip_bad([None], image_size=(16, 48))
    assert empty.shape == (0, 3, 16, 48)


def test_folder_bad_files_are_skipped_and_named_once(tree, capfd):
    ds = ImageFolder(tree, 16, "train", val_fraction=0.01, seed=0)
    bad = [i for i, (p, _) in enumerate(ds.samples) if Path(p).name in BAD]
    good = [i for i in range(len(ds)) if i not in bad]
    assert bad, "the fixture's bad files went to val: pick another seed"
    for i in bad:
        assert ds[i] is None
        assert ds[i] is None
    for i in good:
        assert ds[i][0].shape == (3, 16, 16)
    err = capfd.readouterr().err
    for i in bad:
        path = ds.samples[i][0]
        assert err.count(f"lucid-arch: skipping unreadable image {path} (") == 1, err
    assert len(err.strip().splitlines()) == len(bad)


@pytest.mark.parametrize("workers", [0, 2])
def test_folder_dataloader_drops_exactly_the_bad_files(tree, capfd, workers):
    ds = ImageFolder(tree, 16, "train", val_fraction=0.01, seed=0)
    n_bad = sum(Path(p).name in BAD for p, _ in ds.samples)
    loader = DataLoader(ds, batch_size=4, num_workers=workers, collate_fn=collate_skip_bad)
    for _epoch in range(2):
        seen = 0
        for images, labels in loader:
            assert images.dtype == torch.uint8 and images.shape[1:] == (3, 16, 16)
            assert labels.dtype == torch.int64 and labels.shape == (images.shape[0],)
            seen += images.shape[0]
        assert seen == len(ds) - n_bad
    err = capfd.readouterr().err
    # Once per file for the whole run: workers share what has been reported.
    assert err.count("lucid-arch: skipping unreadable image") == n_bad, err


def test_collate_skip_bad():
    item = (torch.zeros(3, 8, 8, dtype=torch.uint8), 3)
    images, labels = collate_skip_bad([None, item, None, item])
    assert images.shape == (2, 3, 8, 8) and labels.tolist() == [3, 3]
    images, labels = collate_skip_bad([None, None])
    assert images.shape[0] == 0 and labels.shape == (0,) and labels.dtype == torch.int64
    images, _ = functools.partial(collate_skip_bad, image_size=8)([None])
    assert images.shape == (0, 3, 8, 8) and images.dtype == torch.uint8


def test_folder_decompression_bombs_are_unreadable(tmp_path, monkeypatch, capfd):
    save(tmp_path / "a" / "warn.png", (12, 12))  # 144 pixels: over the limit -> a warning
    save(tmp_path / "a" / "error.png", (20, 20))  # 400: over twice the limit -> an error
    save(tmp_path / "b" / "1.png", (8, 8))
    items = by_file(tmp_path, 8)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    for name in ("a/warn.png", "a/error.png"):
        ds, i = items[name]
        assert ds[i] is None
    err = capfd.readouterr().err
    assert "warn.png" in err and "error.png" in err


def test_folder_fixed_train_val_layout(tmp_path):
    for cls in ("ant", "bee"):
        for i in range(3):
            save(tmp_path / "train" / cls / f"{i}.png")
    save(tmp_path / "val" / "bee" / "v.png")
    train = ImageFolder(tmp_path, 8, "train")
    val = ImageFolder(tmp_path, 8, "val")
    assert train.classes == val.classes == ["ant", "bee"]
    assert len(train) == 6 and [(Path(p).name, label) for p, label in val.samples] == [("v.png", 1)]

    save(tmp_path / "val" / "cow" / "v.png")
    with pytest.raises(DatasetError, match="cow") as info:
        ImageFolder(tmp_path, 8, "train")
    assert str(tmp_path / "val") in str(info.value)


def test_folder_errors_name_the_path(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(DatasetNotFoundError) as info:
        ImageFolder(missing, 8)
    assert isinstance(info.value, FileNotFoundError) and str(missing) in str(info.value)

    flat = tmp_path / "flat"
    save(flat / "loose.png")
    with pytest.raises(DatasetError, match="no class sub-folders") as info:
        ImageFolder(flat, 8)
    assert str(flat) in str(info.value)

    empty_class = tmp_path / "empty_class"
    save(empty_class / "a" / "1.png")
    (empty_class / "b" / "sub").mkdir(parents=True)
    (empty_class / "b" / "readme.txt").write_text("no images here")
    with pytest.raises(DatasetError, match="holds no images") as info:
        ImageFolder(empty_class, 8)
    assert str(empty_class / "b") in str(info.value)

    singles = tmp_path / "singles"
    save(singles / "a" / "1.png")
    save(singles / "b" / "1.png")
    assert len(ImageFolder(singles, 8, "train")) == 2
    with pytest.raises(DatasetError, match="val split .* is empty") as info:
        ImageFolder(singles, 8, "val")
    assert str(singles) in str(info.value)

    half = tmp_path / "half"
    save(half / "train" / "a" / "1.png")
    with pytest.raises(DatasetError, match="no val/") as info:
        ImageFolder(half, 8)
    assert str(half / "train") in str(info.value)


def test_data_package_does_not_import_pil():
    code = (
        "import sys, lucid_arch.data as d; d.ShapesDataset(10, 16); d.collate_skip_bad([None]); "
        "print('PIL' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --- build_datasets -------------------------------------------------------------------------


def test_build_datasets_shapes_from_a_dictconfig():
    cfg = OmegaConf.structured(DataConfig(num_train=30, num_val=20, image_size=16, seed=5))
    train, val, classes = build_datasets(cfg)
    assert (len(train), len(val)) == (30, 20) and classes == list(CLASSES)
    assert torch.equal(train.images, ShapesDataset(30, 16, 5, "train").images)
    assert not torch.equal(train.images[:20], val.images)


def test_build_datasets_at_height_and_width(tree):
    train, _, _ = build_datasets(OmegaConf.structured(DataConfig(num_train=4, num_val=2, image_size=[16, 24])))
    assert train.images.shape == (4, 3, 16, 24)
    folder, _, _ = build_datasets(DataConfig(dataset="folder", root=str(tree), image_size=[16, 24], val_fraction=0.3))
    assert next(item for item in folder if item is not None)[0].shape == (3, 16, 24)


def test_build_datasets_folder(tree):
    train, val, classes = build_datasets(DataConfig(dataset="folder", root=str(tree), image_size=16, val_fraction=0.3))
    assert classes == ["cat", "dog", "fish"] and (len(train), len(val)) == (9, 5)
    with pytest.raises(DatasetError, match="root"):
        build_datasets(DataConfig(dataset="folder", root=None))


# --- augmentation ---------------------------------------------------------------------------


def batch(n=8, size=24, seed=0):
    return torch.randint(0, 256, (n, 3, size, size), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def test_augment_range_shape_dtype():
    x = batch()
    for images in (x, to_float(x)):
        out = random_resized_crop_flip(images, torch.Generator().manual_seed(0))
        assert out.shape == x.shape and out.dtype == torch.float32
        assert out.min() >= 0.0 and out.max() <= 1.0
    rect = random_resized_crop_flip(batch(4, 20)[..., :12], torch.Generator().manual_seed(0))
    assert rect.shape == (4, 3, 20, 12)


def test_augment_deterministic_per_generator_and_thread_count():
    x = batch(16, 32)
    a = random_resized_crop_flip(x, torch.Generator().manual_seed(3))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        b = random_resized_crop_flip(x, torch.Generator().manual_seed(3))
    finally:
        torch.set_num_threads(before)
    assert torch.equal(a, b)
    assert not torch.equal(a, random_resized_crop_flip(x, torch.Generator().manual_seed(4)))


def test_augment_full_scale_without_flip_is_identity():
    x = batch()
    out = random_resized_crop_flip(x, torch.Generator().manual_seed(0), scale=(1.0, 1.0), hflip=False)
    torch.testing.assert_close(out, to_float(x), atol=1e-6, rtol=0)


def test_augment_hflip_flips_about_half():
    x = batch(32)
    out = random_resized_crop_flip(x, torch.Generator().manual_seed(0), scale=(1.0, 1.0), hflip=True)
    flipped = [torch.allclose(o, to_float(i).flip(-1), atol=1e-5) for o, i in zip(out, x)]
    same = [torch.allclose(o, to_float(i), atol=1e-5) for o, i in zip(out, x)]
    assert all(f != s for f, s in zip(flipped, same))
    assert 6 <= sum(flipped) <= 26


def test_augment_crops_obey_scale_and_ratio_and_match_affine_grid():
    boxes = crop_boxes(500, 40, 30, torch.Generator().manual_seed(1), (0.2, 0.6), (0.5, 2.0))
    x0, y0, w, h = boxes.unbind(1)
    area = w * h / (40 * 30)
    assert (x0 >= 0).all() and (y0 >= 0).all() and (x0 + w <= 30 + 1e-9).all() and (y0 + h <= 40 + 1e-9).all()
    assert area.min() >= 0.2 - 1e-9 and area.max() <= 0.6 + 1e-9
    assert (w / h).min() >= 0.5 - 1e-9 and (w / h).max() <= 2.0 + 1e-9

    # The hand-built grid is affine_grid's, for the same boxes and flips.
    x = to_float(batch(6, 20))
    out = random_resized_crop_flip(x, torch.Generator().manual_seed(2), scale=(0.3, 0.9))
    gen = torch.Generator().manual_seed(2)
    x0, y0, w, h = crop_boxes(6, 20, 20, gen, (0.3, 0.9), (3 / 4, 4 / 3)).float().unbind(1)
    flip = torch.rand(6, generator=gen, dtype=torch.float64) < 0.5
    theta = torch.zeros(6, 2, 3)
    theta[:, 0, 0] = torch.where(flip, -w / 20, w / 20)
    theta[:, 1, 1] = h / 20
    theta[:, 0, 2] = (x0 + w / 2) / 10 - 1
    theta[:, 1, 2] = (y0 + h / 2) / 10 - 1
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    ref = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)


def test_normalize():
    x = torch.full((2, 3, 4, 4), 0.5)
    out = normalize(x, [0.5, 0.25, 0.0], [0.5, 0.25, 0.5])
    assert out[:, 0].eq(0).all() and out[:, 1].eq(1).all() and out[:, 2].eq(1).all()
    assert to_float(torch.tensor([0, 255], dtype=torch.uint8)).tolist() == [0.0, 1.0]


# --- shard_indices --------------------------------------------------------------------------


def test_shard_indices_partition_the_epoch():
    n, world = 103, 4
    shards = [shard_indices(n, epoch=2, seed=0, rank=r, world_size=world) for r in range(world)]
    assert len({len(s) for s in shards}) == 1 and len(shards[0]) == 26
    merged = [i for s in shards for i in s]
    assert set(merged) == set(range(n)) and len(merged) == 104  # one sample padded by wrapping
    tiny = [shard_indices(2, 0, 0, r, 5) for r in range(5)]
    assert all(len(s) == 1 for s in tiny) and {s[0] for s in tiny} == {0, 1}


def test_shard_indices_deterministic_and_epoch_dependent():
    a = shard_indices(50, epoch=0, seed=1)
    assert a == shard_indices(50, epoch=0, seed=1)
    assert sorted(a) == list(range(50)) and a != list(range(50))
    assert a != shard_indices(50, epoch=1, seed=1)
    assert a != shard_indices(50, epoch=0, seed=2)
    assert shard_indices(10, epoch=3, seed=1, shuffle=False) == list(range(10))
    assert shard_indices(10, epoch=3, seed=1, rank=1, world_size=3, shuffle=False) == [1, 4, 7, 0]  # padded: 0 1 .. 9 0 1
    with pytest.raises(ValueError, match="rank"):
        shard_indices(10, 0, 0, rank=2, world_size=2)


# --- hostile folders ------------------------------------------------------------------------


def test_folder_symlinks_never_count_an_image_twice_or_under_another_class(tmp_path):
    import os

    root = tmp_path / "images"
    for name in ("ant", "bee", "cow"):
        save(root / name / "1.png")
    save(root / "ant" / "sub" / "2.png")
    save(tmp_path / "elsewhere" / "3.png")  # outside the tree: a linked folder is followed
    os.symlink("..", root / "ant" / "up")  # a link to the parent: every class again
    os.symlink("../bee", root / "ant" / "to_bee")  # another class's folder
    os.symlink("..", root / "ant" / "sub" / "loop")  # a loop
    os.symlink("sub", root / "ant" / "sub_again")  # a folder linked twice
    os.symlink(tmp_path / "elsewhere", root / "cow" / "more")
    index = ImageFolder.splits(root, 8, val_fraction=0.3)
    files = {name: sorted(str(p.relative_to(root)) for p in found) for name, found in scan_image_folder(root).files.items()}
    assert files == {"ant": ["ant/1.png", "ant/sub/2.png"], "bee": ["bee/1.png"], "cow": ["cow/1.png", "cow/more/3.png"]}
    assert sum(len(ds) for ds in index) == 5


def test_folder_with_one_class_is_an_error(tmp_path):
    save(tmp_path / "only" / "1.png")
    save(tmp_path / "only" / "2.png")
    with pytest.raises(DatasetError, match="one class folder \\(only\\): a classifier needs two or more") as info:
        ImageFolder(tmp_path, 8)
    assert str(tmp_path) in str(info.value)


def test_folder_image_too_large_once_resized_is_skipped_before_decoding(tmp_path, capfd):
    import time

    strip = tmp_path / "a" / "strip.png"
    Image.new("L", (1, 1_000_000)).save(save(strip, (1, 1)))  # 4 KB on disk; 73 x 73 M pixels once resized
    assert strip.stat().st_size < 8_000
    save(tmp_path / "a" / "ok.png")
    save(tmp_path / "b" / "1.png")
    save(tmp_path / "b" / "2.png")
    ds, i = by_file(tmp_path, 64)["a/strip.png"]
    start = time.perf_counter()
    assert ds[i] is None
    assert time.perf_counter() - start < 1.0  # refused from the header, not decoded
    err = capfd.readouterr().err
    assert f"skipping unreadable image {strip} (1x1000000 pixels (73x73000000 once resized) is over the limit" in err


# --- segmentation: the shapes' masks --------------------------------------------------------


def test_shapes_masks_leave_images_and_labels_as_they_were_golden_bytes():
    """Masks come from the same scene: the images and labels stay byte for byte the classification set's."""
    ds = ShapesDataset(20, image_size=16, seed=0, masks=True)
    assert digest(ds.images) == GOLDEN_DIGEST and ds.labels.tolist() == GOLDEN_LABELS
    assert digest(ds.masks) == GOLDEN_MASK_DIGEST
    assert ds.masks.shape == (20, 16, 16) and ds.masks.dtype == torch.uint8
    assert ds.classes == ["background", *CLASSES]
    image, mask = ds[3]
    assert torch.equal(image, ds.images[3]) and torch.equal(mask, ds.masks[3])


GOLDEN_MASK_DIGEST = "97accdffcb0a7f41806cc3b86ca99a4c25591ec38a9224055c305da99ec0861e"


def test_shapes_masks_same_bytes_whatever_the_thread_count():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = ShapesDataset(40, image_size=48, seed=7, masks=True)
        torch.set_num_threads(max(2, before))
        many = ShapesDataset(40, image_size=48, seed=7, masks=True)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(one.masks, many.masks) and torch.equal(one.images, many.images)


def test_shapes_masks_lie_on_the_painted_shape():
    """Each mask holds background, its image's own class (1 + label) and a few ignored pixels, and
    the pixels it calls shape are painted in another luminance than those it calls background."""
    ds = ShapesDataset(60, image_size=48, seed=5, masks=True)
    luma = (ds.images.float() * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1)
    ignored = 0
    for image_luma, mask, label in zip(luma, ds.masks, ds.labels):
        assert set(mask.unique().tolist()) <= {0, int(label) + 1, 255}
        inside, outside = mask == int(label) + 1, mask == 0
        assert 0.02 < inside.float().mean() < 0.5  # radius 0.22-0.38 of the side, thin rings included
        # Interior pixels (all four neighbours inside too) against the background: 0.25 luminance apart, less grain and blotches.
        core = inside[1:-1, 1:-1] & inside[:-2, 1:-1] & inside[2:, 1:-1] & inside[1:-1, :-2] & inside[1:-1, 2:]
        if core.sum() >= 4:
            contrast = (image_luma[1:-1, 1:-1][core].median() - image_luma[outside].median()).abs()
            assert contrast > 0.15 * 255, contrast
        ignored += int((mask == 255).sum())
    assert 0 < ignored < 0.01 * ds.masks.numel()  # strokes of another colour over the shape: rare, never most


def test_shapes_masks_at_height_and_width_follow_the_images():
    square = ShapesDataset(6, image_size=32, seed=4, masks=True)
    wide = ShapesDataset(6, image_size=(32, 48), seed=4, masks=True)
    assert wide.masks.shape == (6, 32, 48)
    assert torch.equal(wide.masks[..., 8:40], square.masks) and wide.masks[..., :8].eq(0).all()
    assert torch.equal(wide.images, ShapesDataset(6, image_size=(32, 48), seed=4).images)


def test_build_datasets_for_a_segmentation_model():
    cfg = OmegaConf.structured(DataConfig(num_train=12, num_val=4, image_size=16))
    train, val, classes = build_datasets(cfg, segmentation=True)
    assert classes == ["background", *CLASSES] and len(val) == 4
    image, mask = train[0]
    assert image.shape == (3, 16, 16) and mask.shape == (16, 16)
    folder = OmegaConf.structured(DataConfig(dataset="folder", root="/nowhere"))
    with pytest.raises(DatasetError, match="task.data.masks is not set, and a segmentation model learns from per-pixel labels"):
        build_datasets(folder, segmentation=True)


# --- segmentation: images and masks augmented together --------------------------------------


def test_augment_pair_keeps_every_label_on_its_pixel():
    """Images whose colour encodes the class of each 6x6 block: after a crop, resize and flip, the
    label map says the class the image's colour says, wherever the image's pixel is not a blend."""
    g = torch.Generator().manual_seed(0)
    classes = torch.randint(0, 12, (16, 8, 8), generator=g)
    classes[:, 0, 0] = 255  # an ignored block stays ignored
    masks = classes.repeat_interleave(6, 1).repeat_interleave(6, 2)  # 16 x 48 x 48
    images = (masks.clamp(max=12) * 20).to(torch.uint8)[:, None].expand(-1, 3, -1, -1)
    out, labels = random_resized_crop_flip_pair(images, masks, torch.Generator().manual_seed(1), scale=(0.25, 1.0))
    assert labels.shape == (16, 48, 48) and labels.dtype == torch.int64
    assert set(labels.unique().tolist()) <= set(classes.unique().tolist())  # nearest: no class made by averaging
    colour = out[:, 0] * 255 / 20
    pure = (colour - colour.round()).abs() < 1e-3  # not a blend of two blocks
    expected = colour.round().long().where(colour.round() < 12, torch.tensor(255))
    assert pure.float().mean() > 0.6
    assert (labels[pure] == expected[pure]).float().mean() > 0.999
    flipped = [bool((labels[i] != labels[i].flip(-1)).any()) for i in range(16)]
    assert any(flipped)
    # The draws are the images' own: the same images as without masks.
    alone = random_resized_crop_flip(images, torch.Generator().manual_seed(1), scale=(0.25, 1.0))
    assert torch.equal(out, alone)


def test_augment_pair_identity_and_bad_masks():
    images, masks = batch(4, 16), torch.randint(0, 5, (4, 16, 16), dtype=torch.uint8)
    out, labels = random_resized_crop_flip_pair(images, masks, torch.Generator().manual_seed(0), scale=(1.0, 1.0), hflip=False)
    assert torch.equal(labels, masks.long())
    torch.testing.assert_close(out, to_float(images), atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="masks of shape \\(4, 8, 8\\) for images of shape"):
        random_resized_crop_flip_pair(images, masks[:, :8, :8], torch.Generator())


# --- segmentation: image folders with masks -------------------------------------------------


def seg_folder(root: Path, names=("a", "b", "c", "d"), size=(48, 40), classes: str | None = "background\nleft\nright\n") -> Path:
    """root/images/NAME.png (red left half, blue right half) and root/masks/NAME.png (1 left, 2 right, 0 a top band)."""
    w, h = size
    for name in names:
        pixels = torch.zeros(h, w, 3, dtype=torch.uint8)
        pixels[:, : w // 2] = torch.tensor([220, 20, 20], dtype=torch.uint8)
        pixels[:, w // 2 :] = torch.tensor([20, 20, 220], dtype=torch.uint8)
        labels = torch.ones(h, w, dtype=torch.uint8)
        labels[:, w // 2 :] = 2
        labels[:4] = 0
        save_array(root / "images" / f"{name}.png", pixels)
        save_array(root / "masks" / f"{name}.png", labels)
    if classes is not None:
        (root / "masks" / "classes.txt").write_text(classes)
    return root


def save_array(path: Path, array: torch.Tensor, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(array.numpy())
    (image.convert(mode) if mode else image).save(path)
    return path


def every_pair(root: Path, size=16, num_classes=None):
    """One MaskFolder over every pair of seg_folder's root, by name."""
    from lucid_arch.data import MaskFolder

    train, val = MaskFolder.splits(root / "images", root / "masks", size, val_fraction=0.25, num_classes=num_classes)
    samples = sorted(train.samples + val.samples)
    return MaskFolder(samples, train.classes, size, root, "train"), {Path(image).stem: i for i, (image, _) in enumerate(samples)}


def test_mask_folder_image_and_mask_are_resized_and_cropped_alike(tmp_path):
    from lucid_arch.data import MaskFolder

    root = seg_folder(tmp_path)
    train, val = MaskFolder.splits(root / "images", root / "masks", 16, val_fraction=0.25, seed=0)
    assert train.classes == ["background", "left", "right"] and (len(train), len(val)) == (3, 1)
    image, mask = train[0]
    assert image.shape == (3, 16, 16) and mask.shape == (16, 16) and mask.dtype == torch.uint8
    # 48x40 -> 19x16 (aspect kept) -> the centre 16 columns: the halves' border moves to column 8, as the colours' does.
    red = image[0].float() > image[2].float()
    assert torch.equal(mask[4:] == 1, red[4:]) and torch.equal(mask[4:] == 2, ~red[4:])
    assert mask[:1].eq(0).all()  # the top band (4 of 40 rows: 1.6 of 16) stays background
    again = MaskFolder.splits(root / "images", root / "masks", 16, val_fraction=0.25, seed=0)
    assert [s for s in again[1].samples] == val.samples  # a seeded split: the same every time
    assert MaskFolder.splits(root / "images", root / "masks", [12, 20], val_fraction=0.25)[0][0][1].shape == (12, 20)


def test_mask_folder_fixed_split_and_masks_inside_root(tmp_path):
    from lucid_arch.data import MaskFolder

    seg_folder(tmp_path / "train", names=("a", "b"))
    seg_folder(tmp_path / "val", names=("c",))
    root = tmp_path / "all"
    for split in ("train", "val"):  # root/train, root/val; the masks inside root, at root/masks/train ...
        (root / split).mkdir(parents=True)
        for p in (tmp_path / split / "images").iterdir():
            p.rename(root / split / p.name)
        (root / "masks").mkdir(exist_ok=True)
        (tmp_path / split / "masks").rename(root / "masks" / split)
    (root / "masks" / "classes.txt").write_text("bg\nl\nr\n")
    train, val = MaskFolder.splits(root, root / "masks", 16)
    assert [Path(i).name for i, _ in train.samples] == ["a.png", "b.png"] and [Path(i).name for i, _ in val.samples] == ["c.png"]
    assert all(Path(m) == root / "masks" / Path(i).relative_to(root).with_suffix(".png") for i, m in train.samples + val.samples)


def test_mask_folder_class_names(tmp_path):
    from lucid_arch.data import MaskError, MaskFolder

    root = seg_folder(tmp_path, classes=None)
    with pytest.raises(MaskError, match="has no classes.txt and task.data.num_classes is not set") as info:
        MaskFolder.splits(root / "images", root / "masks", 16)
    assert str(root / "masks" / "classes.txt") in str(info.value) and info.value.key == "task.data.masks"
    assert MaskFolder.splits(root / "images", root / "masks", 16, num_classes=3)[0].classes == ["0", "1", "2"]
    (root / "masks" / "classes.txt").write_text("bg\n\nright\n")
    with pytest.raises(MaskError, match="line 2 is blank"):
        MaskFolder.splits(root / "images", root / "masks", 16)
    (root / "masks" / "classes.txt").write_text("bg\nleft\nright\n\n")  # trailing blank lines are fine
    with pytest.raises(MaskError, match="task.data.num_classes = 5, but .* names 3 classes"):
        MaskFolder.splits(root / "images", root / "masks", 16, num_classes=5)


def test_mask_folder_missing_masks_are_an_error_naming_the_files(tmp_path):
    from lucid_arch.data import MaskError, MaskFolder

    root = seg_folder(tmp_path, names=("a", "b", "c", "d", "e", "f"))
    for name in ("b", "d", "e", "f"):
        (root / "masks" / f"{name}.png").unlink()
    with pytest.raises(MaskError) as info:
        MaskFolder.splits(root / "images", root / "masks", 16)
    text = str(info.value)
    assert text.startswith("4 of the 6 images under") and "(and 1 more)" in text and "\n" not in text
    assert f"{root / 'images' / 'b.png'} has no {root / 'masks' / 'b.png'}" in text and "task.data.masks" in text


def test_mask_folder_that_is_the_image_folder_is_an_error(tmp_path):
    from lucid_arch.data import MaskError, MaskFolder

    root = seg_folder(tmp_path)
    with pytest.raises(MaskError, match="task.data.masks and task.data.root are the same folder") as info:
        MaskFolder.splits(root / "masks", root / "masks" / ".", 16)  # the same folder, spelled two ways
    assert "\n" not in str(info.value) and info.value.key == "task.data.masks"


def test_mask_folder_damaged_or_mis_sized_masks_are_skipped_and_named_once(tmp_path, capfd):
    root = seg_folder(tmp_path)
    save_array(root / "masks" / "b.png", torch.zeros(20, 24, dtype=torch.uint8))  # another size than b's image
    (root / "masks" / "c.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    ds, items = every_pair(root)
    for _ in range(2):
        assert ds[items["b"]] is None and ds[items["c"]] is None and ds[items["a"]] is not None
    err = capfd.readouterr().err
    assert f"skipping {root / 'masks' / 'b.png'} (24x20 pixels, but its image {root / 'images' / 'b.png'} is 48x40;" in err
    assert f"skipping {root / 'masks' / 'c.png'} (unreadable label map:" in err
    assert err.count("skipping") == 2  # once per file, however often it is read
    images, masks = collate_skip_bad([ds[items["a"]], None, ds[items["d"]]])
    assert images.shape == (2, 3, 16, 16) and masks.shape == (2, 16, 16)


@pytest.mark.parametrize("workers", [0, 1])
def test_mask_folder_bad_ids_or_colour_masks_are_an_error_naming_the_file(tmp_path, workers):
    from lucid_arch.data import MaskError, MaskFolder

    root = seg_folder(tmp_path)
    bad = torch.ones(40, 48, dtype=torch.uint8)
    bad[0, :3] = torch.tensor([255, 3, 9], dtype=torch.uint8)  # 255 is fine; 3 and 9 are not among 3 classes
    save_array(root / "masks" / "a.png", bad)
    save_array(root / "masks" / "b.png", torch.zeros(40, 48, 3, dtype=torch.uint8))  # RGB: colours, not ids
    ds, items = every_pair(root)
    for name, needle in (("a", "holds class id(s) 3, 9, but there are 3 classes (ids 0 .. 2; 255 is ignore)"),
                         ("b", "is a mode RGB image; a label map is 8-bit, mode L or P")):
        one = MaskFolder([ds.samples[items[name]]], ds.classes, 16, root, "train")
        loader = DataLoader(one, batch_size=1, num_workers=workers, collate_fn=collate_skip_bad)
        with pytest.raises(MaskError) as info:
            list(loader)
        text = str(info.value)
        assert text.startswith(f"Mask {root / 'masks' / name}.png") and needle in text
        assert "Traceback" not in text and "\n" not in text  # a worker's error arrives as its one paragraph


def test_mask_folder_palette_masks_are_read_as_ids(tmp_path):
    root = seg_folder(tmp_path)
    image = Image.new("P", (48, 40), 2)  # every pixel palette index 2
    image.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * 759)  # VOC-like: the palette colours the ids
    image.save(root / "masks" / "a.png")
    assert Image.open(root / "masks" / "a.png").mode == "P"
    ds, items = every_pair(root)
    assert ds[items["a"]][1].eq(2).all()
