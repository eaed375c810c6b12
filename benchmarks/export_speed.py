"""What deploying through ONNX buys: onnxruntime (CPU) vs eager PyTorch vs the inference path, per model and batch.

Why a script and not a test: timings depend on the machine and its neighbours (see
lucid_arch/perf/benchmarking.py), so they are measured on demand and recorded, never asserted.
Each model is exported once as ``task=export`` ships it (dynamic batch, height and width,
the default opset) and the one ONNX file is timed at every batch size. The three run
alternately, A B C A B C, on the same images; medians, and the speedup is eager's median /
the candidate's. onnxruntime's outputs must agree with eager within 1e-4 before anything is
timed; the inference path's difference (bf16 where the CPU has it) is reported, not checked.

onnxruntime gets torch's thread count and does not spin its idle threads: spinning would take
the cores from the candidate timed next, and the figures would measure the interference.

    python benchmarks/export_speed.py                                       # b0 and b2, batch 1 and 8
    python benchmarks/export_speed.py --models pvt_v2_b0 --batch-sizes 1 --repeats 3
    python benchmarks/export_speed.py --json benchmarks/results/cpu_export_speed.json
    python benchmarks/export_speed.py --opsets 23 18 --batch-sizes 1 8       # the default opset against 18
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import sys
import tempfile
from pathlib import Path

import torch

from lucid_arch import create_model, export_model
from lucid_arch.config.export_schema import DEFAULT_OPSET
from lucid_arch.extras import require
from lucid_arch.perf.benchmarking import OutputMismatch, Timing, compare, environment, format_table, max_abs_diff, write_json
from lucid_arch.perf.inference import prepare_for_inference

EAGER = "eager fp32"
ATOL = 1e-4


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["pvt_v2_b0", "pvt_v2_b2"], help="variant names or YAML paths")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    p.add_argument("--opsets", type=int, nargs="+", default=[DEFAULT_OPSET], help="one ONNX file per opset, timed side by side")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads, and onnxruntime's intra-op threads")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement")
    p.add_argument("--json", default=None, help="write the results here")
    return p.parse_args(argv)


def ort_session(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def time_model(name: str, args: argparse.Namespace, workdir: Path, say) -> tuple[list[Timing], dict]:
    model = create_model(name).eval().requires_grad_(False)
    sessions, exports = {}, {}
    for opset in args.opsets:
        say(f"{name}: exporting (dynamic batch, height, width; opset {opset})")
        result = export_model(model, workdir / str(opset), formats=["onnx"], opset=opset, verify=False)
        label = "onnxruntime fp32" if len(args.opsets) == 1 else f"onnxruntime fp32 opset {opset}"
        sessions[label] = ort_session(result.files["onnx"])
        exports[label] = {"seconds": result.seconds, "opset": opset, "input": result.shapes.describe()}
    fast = prepare_for_inference(copy.deepcopy(model), precision="auto")
    fast_label = f"inference path ({'bf16' if fast.dtype == torch.bfloat16 else 'fp32'})"
    timings: list[Timing] = []
    for batch in args.batch_sizes:
        x = torch.randn(batch, 3, *model.spec.input_size, generator=torch.Generator().manual_seed(batch))
        xn = x.numpy()

        def eager() -> torch.Tensor:
            with torch.no_grad():
                return model(x)

        candidates = {EAGER: eager, fast_label: lambda: fast(x)}
        for label, session in sessions.items():
            candidates[label] = lambda session=session: torch.from_numpy(session.run(None, {"image": xn})[0])
        want = eager()
        diffs = {label: max_abs_diff(fn(), want) for label, fn in candidates.items() if label != EAGER}
        for label in sessions:
            if not diffs[label] <= ATOL:
                raise OutputMismatch(f"{name} batch {batch}: {label} differs from eager by {diffs[label]:.3g} > {ATOL:g}")
        config = f"{name} b{batch}"
        say(f"{config}: {', '.join(candidates)}")
        for t in compare(config, candidates, items=batch, reference=EAGER, warmup=args.warmup, repeats=args.repeats,
                         memory=not args.no_memory):
            timings.append(dataclasses.replace(t, max_abs_diff=diffs.get(t.candidate)))
    return timings, exports


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    require("export", "benchmarks/export_speed.py")
    if args.threads:
        torch.set_num_threads(args.threads)
    say = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    timings: list[Timing] = []
    exports = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            found, exports[name] = time_model(name, args, Path(tmp) / name, say)
            timings += found
    import onnxruntime

    env = {**environment("cpu"), "onnxruntime": onnxruntime.__version__}
    print(format_table(timings))
    print(f"torch {env['torch']}, onnxruntime {env['onnxruntime']}, {env['threads']} threads, {env['cpu']}; medians of "
          f"{args.repeats} alternating rounds; speedup = eager fp32 median / the candidate's")
    if args.json:
        settings = {k: v for k, v in vars(args).items() if k != "json"}  # no machine paths in results
        write_json(args.json, {"environment": env, "settings": settings, "exports": exports, "timings": timings})
        say(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
