"""Wall times on a SLURM cluster: a 2-job sweep, and one training on 2 nodes next to one process.

Needs a cluster (``.ci/slurm-cluster.sh up`` starts two nodes on this machine, where both
"nodes" share its cores, so 2 nodes cannot be faster than 1 process here: the figure is
the cost of the SLURM path and the DDP rendezvous). Run from the repository root:

    python benchmarks/slurm_sweep.py --partition debug

Prints one line per measurement (median of --repeats) and, with --json, writes them.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCRIPT = Path(sys.executable).parent / "lucid-arch"
TRAIN = ["task=train", "model=pvt_v2_b0", "task.data.image_size=32", "task.data.num_train=512", "task.data.num_val=128",
         "task.batch_size=32", "task.epochs=1", "task.precision=fp32", "task.device=cpu", "task.progress=none",
         "task.data.augment=false", "task.checkpoint_every=0"]


def timed(args: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run([str(SCRIPT), *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"lucid-arch {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return time.perf_counter() - start


def train_seconds(run_dir: Path) -> float:
    """The training's own time (summary.json's 'train min'), without interpreter start and job scheduling."""
    summary = json.loads(next(run_dir.rglob("summary.json")).read_text())
    return 60 * summary["metrics"]["train min"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--partition", default="debug")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path)
    opts = parser.parse_args()
    slurm = ["-m", "hydra/launcher=submitit_slurm", f"hydra.launcher.partition={opts.partition}"]
    figures: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="lucid-slurm-bench-") as tmp:
        for i in range(opts.repeats):
            root = Path(tmp) / str(i)
            root.mkdir()
            figures.setdefault("2-job summary sweep, SLURM (s)", []).append(
                timed([*slurm, "model=pvt_v2_b0,pvt_v2_b1", "hydra.sweep.dir=sweep"], root))
            figures.setdefault("2-job summary sweep, basic launcher (s)", []).append(
                timed(["-m", "model=pvt_v2_b0,pvt_v2_b1", "hydra.sweep.dir=basic"], root))
            figures.setdefault("training, 1 process: wall (s)", []).append(timed([*TRAIN, "hydra.run.dir=one"], root))
            figures.setdefault("training, 1 process: train (s)", []).append(train_seconds(root / "one"))
            figures.setdefault("training, 2 nodes x 1 task on SLURM: wall (s)", []).append(
                timed([*slurm, "hydra.launcher.nodes=2", "hydra.launcher.tasks_per_node=1", *TRAIN, "hydra.sweep.dir=ddp"], root))
            figures.setdefault("training, 2 nodes x 1 task on SLURM: train (s)", []).append(train_seconds(root / "ddp"))
    medians = {name: round(statistics.median(values), 2) for name, values in figures.items()}
    for name, value in medians.items():
        print(f"{name:50s} {value:8.2f}   (runs: {', '.join(f'{v:.2f}' for v in figures[name])})")
    if opts.json:
        opts.json.write_text(json.dumps({"median": medians, "runs": figures}, indent=2) + "\n")


if __name__ == "__main__":
    main()
