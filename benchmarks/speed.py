"""Forward, inference-path and training-step speed of a variant, side by side with timm.

Why a script and not a test: timings depend on the machine and its neighbours, so they are
measured on demand and recorded (table on stdout, JSON with --json), never asserted. When timm
is importable (``../shared/tools/timm-reference.sh`` makes an environment with it), timm's
model of the same name is the reference: it lends its weights to ours, outputs are checked to
agree, and the two are timed alternately, A B A B; ``speedup`` is timm's median time / ours.

    python benchmarks/speed.py --model pvt_v2_b2 --batch-sizes 1 8 --precision fp32 bf16 \\
        --inference-batch 8 --train-batch 8 --json results/b2_cpu.json
    python benchmarks/speed.py --model pvt_v2_b0 --override 'model.depths=[1,1,1,1]' --repeats 1
    python benchmarks/speed.py --device cuda --batch-sizes 256 --precision bf16 --compile \\
        --inference-batch 256 --inference-compile --train-batch 128
"""

from __future__ import annotations

import argparse
import sys

import torch

from lucid_arch.perf.benchmark_suite import SpeedSettings, run_speed_suite, timm_reference
from lucid_arch.perf.benchmarking import format_table, write_json


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="pvt_v2_b2", help="variant name or YAML path")
    p.add_argument("--override", action="append", default=[], help="Hydra override, repeatable: 'model.depths=[3,4,18,3]'")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    p.add_argument("--precision", nargs="+", choices=["fp32", "bf16"], default=["fp32"])
    p.add_argument("--channels-last", action="store_true", help="NHWC inputs and conv weights")
    p.add_argument("--compile", action="store_true", help="torch.compile every forward candidate (slow to start)")
    p.add_argument("--inference-batch", type=int, default=0, help="time lucid_arch.perf.inference.prepare_for_inference at this batch vs fp32 eager")
    p.add_argument("--inference-compile", action="store_true", help="compile the inference path")
    p.add_argument("--recheck-margin", type=float, default=0.005,
                   help="inference path: logit rows with a top-1 lead below this are recomputed in fp32 (0: off)")
    p.add_argument("--agreement-inputs", type=int, default=256, help="random images for the inference path's top-1 check")
    p.add_argument("--train-batch", type=int, default=0, help="time a training step (forward, backward, SGD) at this batch")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--img-size", type=int, default=None)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    p.add_argument("--no-timm", action="store_true", help="time ours only, even if timm is importable")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement")
    p.add_argument("--json", default=None, help="write the results here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = SpeedSettings(
        model=args.model,
        overrides=tuple(args.override),
        batch_sizes=tuple(args.batch_sizes),
        precisions=tuple(args.precision),
        channels_last=args.channels_last,
        compile=args.compile,
        device=args.device,
        warmup=args.warmup,
        repeats=args.repeats,
        memory=not args.no_memory,
        train_batch_size=args.train_batch,
        inference_batch_size=args.inference_batch,
        inference_compile=args.inference_compile,
        inference_recheck_margin=args.recheck_margin,
        agreement_inputs=args.agreement_inputs,
        img_size=args.img_size,
    )
    references = {}
    factory = None if args.no_timm else timm_reference(args.model)
    if factory is not None:
        references["timm"] = factory
    elif not args.no_timm:
        print(f"timm is not importable here (or has no {args.model}): timing lucid_arch alone.", file=sys.stderr)
    result = run_speed_suite(settings, references, progress=lambda line: print(line, file=sys.stderr, flush=True))
    print(format_table(result.timings))
    if result.agreement:
        a = result.agreement
        print(
            f"inference path vs fp32 on {a['inputs']} random images: top-1 agreement {a['top1_agreement']:.1%}, "
            f"max |diff| {a['max_abs_diff']:.3g}; fp32 top-1 margin: median {a['median_top1_margin']:.3g}, "
            f"largest that flipped {a['largest_flipped_margin']:.3g}; rechecked in fp32: {a['rechecked_fraction']:.1%}"
        )
    for note in result.notes:
        print(f"note: {note}")
    if args.json:
        write_json(args.json, result.to_dict())
    return 0


if __name__ == "__main__":
    sys.exit(main())
