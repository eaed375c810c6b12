"""How fast the training data is made: shapes generation and batch augmentation, in images/s.

The shapes dataset is rendered when a training job starts, so its cost is start-up latency
(the default 5000 + 1000 images should take well under two seconds on two CPU cores); the
augmentation runs on every training batch, so it must stay far cheaper than a training step.

    python benchmarks/data_speed.py                      # 6000 shapes at 64 px, batches of 64
    python benchmarks/data_speed.py --size 224 --num 2000 --threads 1
    python benchmarks/data_speed.py --masks              # with the segmentation masks (and mask augmentation)
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from lucid_arch.data import ShapesDataset, random_resized_crop_flip, random_resized_crop_flip_pair


def best_of(repeats: int, fn) -> tuple[float, float]:
    """(fastest, median) of ``repeats`` runs in seconds; the fastest is the least disturbed by other processes."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num", type=int, default=6000, help="shapes images per generation run")
    parser.add_argument("--size", type=int, default=64, help="image side in pixels")
    parser.add_argument("--batch", type=int, default=64, help="augmentation batch size")
    parser.add_argument("--repeats", type=int, default=5, help="runs of each measurement (best and median shown)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--device", default="cpu", help="device the augmented batches live on")
    parser.add_argument("--masks", action="store_true", help="render the segmentation masks too, and augment them with the images")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.size}x{args.size} px")

    ShapesDataset(min(args.num, 300), args.size, masks=args.masks)  # warm-up: allocator, kernels
    best, median = best_of(args.repeats, lambda: ShapesDataset(args.num, args.size, masks=args.masks))
    what = "with masks" if args.masks else ""
    print(
        f"shapes generation   {args.num / best:>10,.0f} images/s  "
        f"({args.num} images{' ' + what if what else ''}: best {best:.3f} s, median {median:.3f} s)"
    )

    data = ShapesDataset(args.batch * 4, args.size, masks=args.masks)
    images = data.images.to(args.device)
    masks = data.masks.to(args.device) if args.masks else None
    batches = [images[i * args.batch : (i + 1) * args.batch] for i in range(4)]
    mask_batches = [masks[i * args.batch : (i + 1) * args.batch] if args.masks else None for i in range(4)]
    gen = torch.Generator().manual_seed(0)

    def augment() -> None:
        for batch, mask in zip(batches, mask_batches):
            if mask is None:
                random_resized_crop_flip(batch, gen, scale=(0.35, 1.0))
            else:
                random_resized_crop_flip_pair(batch, mask, gen, scale=(0.35, 1.0))
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()

    augment()
    best, median = best_of(args.repeats, augment)
    n = args.batch * len(batches)
    print(
        f"augmentation        {n / best:>10,.0f} images/s  "
        f"(random resized crop + flip, {len(batches)} batches of {args.batch} on {args.device}: "
        f"best {best * 1e3:.1f} ms, median {median * 1e3:.1f} ms)"
    )


if __name__ == "__main__":
    main()
