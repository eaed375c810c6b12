"""How fast `lucid-arch` answers: help, config, info and tab completion against a full summary.

The config-only commands must never import torch (it dominates start-up); this script times
each command end to end, interpreter start included, and checks with ``-X importtime`` that
torch stayed out of the config-only ones.

    python benchmarks/cli_startup.py                 # 5 runs per command, a table
    python benchmarks/cli_startup.py --runs 10 --json startup.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

APP = [sys.executable, "-m", "lucid_arch.cli.app"]
COMMANDS: list[tuple[str, list[str], dict[str, str], bool]] = [
    # label, arguments, extra environment, must stay torch-free
    ("python -c pass (interpreter only)", [sys.executable, "-c", "pass"], {}, True),
    ("python -c 'import torch'", [sys.executable, "-c", "import torch"], {}, False),
    ("lucid-arch --help", [*APP, "--help"], {}, True),
    ("lucid-arch --cfg job", [*APP, "--cfg", "job"], {}, True),
    ("lucid-arch --info", [*APP, "--info"], {}, True),
    ("tab completion (model=pvt_v2_b)", [*APP, "-sc", "query=bash"], {"COMP_LINE": "lucid-arch model=pvt_v2_b"}, True),
    ("lucid-arch model=pvt_v2_b0 (summary)", [*APP, "model=pvt_v2_b0", "format=text"], {}, False),
    ("lucid-arch model=pvt_v2_b2 (summary)", [*APP, "model=pvt_v2_b2", "format=text"], {}, False),
    ("lucid-arch model=pvt_huge (summary)", [*APP, "model=pvt_huge", "format=text"], {}, False),
]


def time_command(args: list[str], env: dict[str, str], runs: int, cwd: str) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(args, env={**os.environ, **env}, cwd=cwd, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return times


def imports_torch(args: list[str], env: dict[str, str], cwd: str) -> bool:
    traced = [args[0], "-X", "importtime", *args[1:]]
    result = subprocess.run(traced, env={**os.environ, **env}, cwd=cwd, check=True, capture_output=True, text=True)
    return any(line.split("|")[-1].strip() == "torch" for line in result.stderr.splitlines())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="timed runs per command (after one warm-up run)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()

    results = []
    with tempfile.TemporaryDirectory() as cwd:  # summaries write outputs/ here, not into the checkout
        for label, command, env, torch_free in COMMANDS:
            time_command(command, env, 1, cwd)  # warm the file cache
            times = time_command(command, env, args.runs, cwd)
            loaded = imports_torch(command, env, cwd)
            results.append({
                "command": label,
                "median_s": statistics.median(times),
                "min_s": min(times),
                "max_s": max(times),
                "imports_torch": loaded,
                "must_be_torch_free": torch_free,
            })

    width = max(len(r["command"]) for r in results)
    print(f"{'command':<{width}}  median s  min s   max s   imports torch")
    for r in results:
        flag = "yes" if r["imports_torch"] else "no"
        if r["must_be_torch_free"] and r["imports_torch"]:
            flag += "  <-- must not"
        print(f"{r['command']:<{width}}  {r['median_s']:8.3f}  {r['min_s']:6.3f}  {r['max_s']:6.3f}  {flag}")
    print(f"({args.runs} runs each; {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"runs": args.runs, "python": platform.python_version(), "results": results}, f, indent=2)
    return 1 if any(r["must_be_torch_free"] and r["imports_torch"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
