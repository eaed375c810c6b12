"""End-to-end wall time of ``lucid-arch-diff pvt_v2_b2 pvt_v2_b5``, as a reviewer or CI pays it.

Each run is a fresh process (interpreter start, torch import, two compositions, two meta-device
analyses, checkpoint shapes, rendering), so the figure is what the console script costs, not a
warm in-process call. The target is under 3 s on a 2-core machine.

    python benchmarks/diff_speed.py [--runs 5] [OLD NEW [extra args...]]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGET_S = 3.0


def command() -> list[str]:
    """The installed console script beside this interpreter, else the module it runs."""
    script = Path(sys.executable).parent / "lucid-arch-diff"
    if script.is_file():
        return [str(script)]
    found = shutil.which("lucid-arch-diff")
    return [found] if found else [sys.executable, "-m", "lucid_arch.diff.cli"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("args", nargs="*", default=["pvt_v2_b2", "pvt_v2_b5"])
    a = p.parse_args()
    cmd = [*command(), *a.args]
    env = {**os.environ, "NO_COLOR": "1"}
    subprocess.run(cmd, capture_output=True, env=env, check=False)  # warm the OS file cache; not counted
    times, cpu = [], []
    for _ in range(a.runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, env=env, check=False)
        times.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        if done.returncode not in (0, 1):
            print(done.stderr.decode(), file=sys.stderr)
            return 2
    median = statistics.median(times)
    print(f"command: {' '.join(cmd)}")
    print(f"cpus:    {os.cpu_count()}")
    print(f"runs:    {', '.join(f'{t:.2f}' for t in times)} s")
    # CPU seconds of the process: what wall time would be on an idle machine (it is single-threaded).
    print(f"cpu:     median {statistics.median(cpu):.2f} s (user + system; load {os.getloadavg()[0]:.1f})")
    print(
        f"median:  {median:.2f} s  (min {min(times):.2f} s, target < {TARGET_S:.1f} s: "
        f"{'met' if median < TARGET_S else 'MISSED'})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
