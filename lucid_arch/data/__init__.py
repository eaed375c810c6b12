"""Training data: what ``task.data`` (:class:`lucid_arch.config.train_schema.DataConfig`) names.

    shapes.py   the built-in dataset, rendered from a seed in memory (no download)
    folder.py   root/CLASS/*.jpg through PIL; unreadable files are skipped, not fatal
    mask_folder.py  images + PNG label maps (task.data.masks) for segmentation
    coco.py     COCO-format detection data: images + an instances JSON (task.data.annotations)
    box_augment.py  the crop and flip above, carried to a detector's boxes and instance masks
    augment.py  random resized crop + flip on whole batches, reproducible from a generator
    seeds.py    seeds derived from (seed, split, chunk, epoch ...), the same on every machine

The training loop needs only :func:`build_datasets` and :func:`shard_indices`; the epoch
order comes from (seed, epoch) alone, so a resumed run and every rank agree on it.
PIL is imported only when a folder image is decoded.
"""

from __future__ import annotations

from typing import Any, Optional

import torch

from .augment import normalize, random_resized_crop_flip, random_resized_crop_flip_pair, to_float
from .folder import DatasetError, DatasetNotFoundError, ImageFolder, collate_skip_bad
from .mask_folder import MaskError, MaskFolder
from .seeds import derive_seed
from .shapes import ShapesDataset

__all__ = [
    "DatasetError",
    "DatasetNotFoundError",
    "ImageFolder",
    "MaskError",
    "MaskFolder",
    "ShapesDataset",
    "build_datasets",
    "masks_mismatch",
    "collate_skip_bad",
    "normalize",
    "random_resized_crop_flip",
    "random_resized_crop_flip_pair",
    "shard_indices",
    "to_float",
]


def build_datasets(data_cfg: Any, segmentation: bool = False, detection: Optional[str] = None
                   ) -> tuple[torch.utils.data.Dataset, torch.utils.data.Dataset, list[str]]:
    """(train, val, class names) for a ``task.data`` node (a DictConfig or a DataConfig).

    Items are (uint8 3 x H x W, int label), or with ``segmentation`` (uint8 3 x H x W, uint8
    H x W label map: the shapes' masks, or the folder's ``task.data.masks``); a folder item may be
    ``None`` (an unreadable file), which :func:`collate_skip_bad` drops. ``image_size`` is a side
    or [height, width]. ``detection`` ("boxes", or "masks" for instance masks too) gives
    (image, target dict) items: the shapes' boxes, or a COCO-format folder (coco.py).
    """
    dataset = data_cfg.dataset
    size = data_cfg.image_size
    size = int(size) if isinstance(size, int) else tuple(int(v) for v in size)
    seed = int(data_cfg.seed)
    if detection is not None:
        return _detection_datasets(data_cfg, size, seed, detection == "masks")
    if dataset == "coco":
        raise _dataset_error("task.data.dataset=coco holds boxes for a detector (model=retinanet_... or mask_rcnn_...); a "
                           "classifier learns from class folders (dataset=folder) and a segmentation model from label maps "
                           "(dataset=folder with task.data.masks).")
    if dataset == "shapes":
        train = ShapesDataset(int(data_cfg.num_train), size, seed, "train", masks=segmentation)
        val = ShapesDataset(int(data_cfg.num_val), size, seed, "val", masks=segmentation)
        return train, val, list(train.classes)
    if dataset == "folder":
        if not data_cfg.root:
            raise DatasetError("dataset=folder needs the image folder: task.data.root=/path/to/images.")
        masks = getattr(data_cfg, "masks", None)
        mismatch = masks_mismatch(data_cfg, segmentation)
        if mismatch:
            raise MaskError(mismatch)
        if segmentation:
            num_classes = getattr(data_cfg, "num_classes", None)
            train, val = MaskFolder.splits(data_cfg.root, masks, size, float(data_cfg.val_fraction), seed, num_classes)
        else:
            train, val = ImageFolder.splits(data_cfg.root, size, float(data_cfg.val_fraction), seed)
        return train, val, list(train.classes)
    raise ValueError(f"task.data.dataset={dataset!r}: choose 'shapes' or 'folder'.")


def _detection_datasets(data_cfg: Any, size: Any, seed: int, masks: bool) -> tuple[Any, Any, list[str]]:
    if data_cfg.dataset == "shapes":
        train = ShapesDataset(int(data_cfg.num_train), size, seed, "train", detection=True)
        return train, ShapesDataset(int(data_cfg.num_val), size, seed, "val", detection=True), list(train.classes)
    if data_cfg.dataset != "coco":
        raise _dataset_error(f"task.data.dataset={data_cfg.dataset!r}: a detector learns from boxes: the built-in shapes "
                           f"(dataset=shapes) or a COCO-format folder (dataset=coco task.data.root=IMAGES "
                           f"task.data.annotations=instances.json).")
    from .coco import CocoDetection

    pad = [min(255, max(0, round(float(m) * 255))) for m in data_cfg.mean]  # the mean colour: zero once normalised
    train, val = CocoDetection.splits(data_cfg.root, getattr(data_cfg, "annotations", None), size, float(data_cfg.val_fraction),
                                      seed, getattr(data_cfg, "val_annotations", None), getattr(data_cfg, "val_root", None),
                                      masks=masks, pad=pad)
    return train, val, list(train.classes)


def _dataset_error(message: str) -> DatasetError:
    error = DatasetError(message)
    error.key = "task.data.dataset"
    return error


def masks_mismatch(data_cfg: Any, segmentation: bool) -> str:
    """Why ``task.data.masks`` does not fit the model ("" when it does): a folder needs masks for a
    segmentation model, and a classifier has no use for them."""
    masks = getattr(data_cfg, "masks", None)
    if data_cfg.dataset != "folder" or segmentation == bool(masks):
        return ""
    if segmentation:
        return ("task.data.masks is not set, and a segmentation model learns from per-pixel labels: with dataset=folder set "
                "task.data.masks=DIR, a folder of PNG label maps laid out like task.data.root (root/a/x.jpg -> masks/a/x.png; "
                "see docs/segmentation-training.md), or train a classifier on the folder's class sub-folders.")
    return (f"task.data.masks = {masks!r} gives label maps, but the model is a classifier (no decode head): drop "
            f"task.data.masks, or train a segmentation model (e.g. model=segformer_b0).")


def shard_indices(
    n: int, epoch: int, seed: int, rank: int = 0, world_size: int = 1, shuffle: bool = True
) -> list[int]:
    """This rank's sample indices for ``epoch``: the same on every rank, run and resume.

    A permutation of range(n) drawn from (seed, epoch) (identity order when not ``shuffle``),
    padded by wrapping around to a multiple of ``world_size`` so every rank takes the same
    number of steps (a few samples are then seen twice in an epoch), then ``perm[rank::world_size]``.
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"shard_indices: rank={rank}, world_size={world_size}; need 0 <= rank < world_size.")
    if n < 0:
        raise ValueError(f"shard_indices: n={n}; give 0 or more samples.")
    if n == 0:
        return []
    if shuffle:
        gen = torch.Generator().manual_seed(derive_seed("epoch-order", seed, epoch))
        order = torch.randperm(n, generator=gen).tolist()
    else:
        order = list(range(n))
    total = -(-n // world_size) * world_size
    while len(order) < total:  # n < world_size - 1 needs more than one lap
        order += order[: total - len(order)]
    return order[rank::world_size]
