"""Which of a job's or a sweep's files are uploaded as artifacts: the reports, and the weights on request.

Named here, not globbed: a job directory also holds checkpoints (hundreds of MB each), a
predict's output folders and whatever a user put there, none of which belongs in a tracking
store by default. Only regular files are taken (a FIFO or a directory under a report's name is
skipped, never opened).
"""

from __future__ import annotations

from pathlib import Path

from ..safe_io import special_kind

# A job's reports: what every task writes (summary.json, the job's log), training's record of
# itself, the eval's tables and plot, the benchmark's timings; Hydra's composed config under hydra/.
JOB_REPORTS = ("summary.json", "config.yaml", "metrics.jsonl", "inference.json", "per_class.csv", "confusion.json",
               "confusion.png", "benchmark.json", "lucid_arch.log")
HYDRA_FILES = ("config.yaml", "overrides.yaml", "hydra.yaml")
WEIGHT_PATTERNS = ("*.safetensors", "*.pt2", "*.onnx", "*.onnx.data")  # the job directory's own, not its checkpoints/
SWEEP_REPORTS = ("sweep.md", "sweep.csv", "sweep.png", "pareto.md", "pareto.csv", "multirun.yaml")


def _regular(path: Path) -> bool:
    return path.is_file() and special_kind(path) is None


def job_artifacts(job_dir: Path, weights: bool) -> list[tuple[Path, str]]:
    """(file, artifact folder) pairs: reports at the top, Hydra's files under hydra/, weights (if asked) under model/."""
    job_dir = Path(job_dir)
    found = [(job_dir / name, "") for name in JOB_REPORTS]
    found += [(job_dir / ".hydra" / name, "hydra") for name in HYDRA_FILES]
    if weights:
        found += [(path, "model") for pattern in WEIGHT_PATTERNS for path in sorted(job_dir.glob(pattern))]
    return [(path, folder) for path, folder in found if _regular(path)]


def sweep_artifacts(sweep_dir: Path) -> list[tuple[Path, str]]:
    return [(Path(sweep_dir) / name, "") for name in SWEEP_REPORTS if _regular(Path(sweep_dir) / name)]
