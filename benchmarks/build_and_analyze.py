"""Build time (compose + build + init) against timm.create_model, and analysis time of a variant.

Why: a sweep composes and builds hundreds of configs, and the config-diff and summary tools
call ``lucid_arch.analyze`` on every one, so both should cost less than the model they
describe. Builds are timed alternately with timm's constructor when timm is importable.
``analyze`` is timed twice: its first call in a fresh interpreter (after ``import torch,
lucid_arch``: one-off costs land there), and warm calls in this process.

    python benchmarks/build_and_analyze.py --model pvt_v2_b2 --analyze pvt_v2_b5 --json out.json
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from lucid_arch.perf.benchmark_suite import run_build_suite, timm_reference
from lucid_arch.perf.benchmarking import Stats, environment, format_table, write_json

FIRST_ANALYZE = """
import sys, time
import torch, lucid_arch
from lucid_arch.perf.analysis import analyze
cfg = lucid_arch.load_config(sys.argv[1], sys.argv[2:])
start = time.perf_counter()
analyze(cfg)
print(time.perf_counter() - start)
"""


def time_analyze(model: str, overrides: list[str], repeats: int) -> dict[str, object]:
    import lucid_arch

    first = [float(subprocess.run([sys.executable, "-c", FIRST_ANALYZE, model, *overrides], check=True, capture_output=True, text=True).stdout)
             for _ in range(max(1, min(repeats, 3)))]  # fmt: skip
    cfg = lucid_arch.load_config(model, overrides)
    lucid_arch.analyze(cfg)
    warm = []
    for _ in range(repeats):
        start = time.perf_counter()
        report = lucid_arch.analyze(cfg)
        warm.append(time.perf_counter() - start)
    return {"model": model, "params": report.params, "flops": report.flops,
            "first_call_s": Stats.from_samples(first), "warm_call_s": Stats.from_samples(warm)}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="pvt_v2_b2", help="variant to build")
    p.add_argument("--analyze", default="pvt_v2_b5", help="variant to analyse")
    p.add_argument("--override", action="append", default=[], help="Hydra override for both, repeatable")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--no-timm", action="store_true")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)

    factory = None if args.no_timm or args.override else timm_reference(args.model)
    timings = run_build_suite(args.model, args.override, {"timm": factory} if factory else None, repeats=args.repeats)
    print(format_table(timings))
    analysis = time_analyze(args.analyze, args.override, args.repeats)
    first, warm = analysis["first_call_s"], analysis["warm_call_s"]
    print(f"analyze({args.analyze}): first call in a fresh process {first.median:.3f} s, warm {warm.median:.3f} s "  # type: ignore[union-attr]
          f"(IQR {warm.iqr * 1e3:.1f} ms)")  # type: ignore[union-attr]
    if args.json:
        write_json(args.json, {"environment": environment(), "build": [t.to_dict() for t in timings], "analyze": analysis})
    return 0


if __name__ == "__main__":
    sys.exit(main())
