"""A timing harness: warm-up, repetitions, candidates run alternately, robust statistics.

Why a harness of our own: on a shared 2-core machine the speed of the machine drifts by 10-50%
within a minute, so timing model A for a minute and then model B measures the neighbours as
much as the models. Here candidates are timed in rounds, A B A B ..., so drift hits all of
them alike, and the *ratio* of their medians is what to trust. Each timing synchronises the
device (CUDA kernels are asynchronous), and results are plain dataclasses that turn into JSON.

This module knows nothing of configs or Hydra, so any task (the benchmark scripts under
``benchmarks/``, a command-line task) can time any callables with it.
"""

from __future__ import annotations

import ctypes
import datetime
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from ..report.tables import Table, to_text
from ..safe_io import write_text_atomic

Thunk = Callable[[], Any]


@dataclass(frozen=True)
class Stats:
    """Summary of repeated timings, in seconds: median and spread (quartiles, min, max)."""

    n: int
    median: float
    q1: float
    q3: float
    min: float
    max: float
    mean: float

    @classmethod
    def from_samples(cls, samples: Sequence[float]) -> Stats:
        if not samples:
            raise ValueError("no samples: repeats must be at least 1")
        s = sorted(samples)
        q1, q3 = (s[0], s[0]) if len(s) == 1 else statistics.quantiles(s, n=4, method="inclusive")[::2]
        return cls(len(s), statistics.median(s), q1, q3, s[0], s[-1], statistics.fmean(s))

    @property
    def iqr(self) -> float:
        return self.q3 - self.q1


def synchronize(device: torch.device | str) -> None:
    """Wait for queued kernels, so a wall-clock reading covers the work (CUDA is asynchronous)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def time_alternating(
    candidates: Mapping[str, Thunk],
    *,
    warmup: int = 2,
    repeats: int = 10,
    device: torch.device | str = "cpu",
    log: list[str] | None = None,
) -> dict[str, Stats]:
    """Seconds per call of each candidate, timed in rounds A B A B ... after ``warmup`` rounds.

    ``log``, if given, receives the name of every timed call in order (the tests read it).
    """
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(warmup):
        for fn in candidates.values():
            fn()
    synchronize(device)
    for _ in range(repeats):
        for name, fn in candidates.items():
            start = time.perf_counter()
            fn()
            synchronize(device)
            samples[name].append(time.perf_counter() - start)
            if log is not None:
                log.append(name)
    return {name: Stats.from_samples(s) for name, s in samples.items()}


def _proc_status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def peak_memory(fn: Thunk, device: torch.device | str = "cpu") -> int | None:
    """Bytes one call of ``fn`` needs beyond what was allocated before it, or None if unknown.

    CUDA: ``max_memory_allocated`` (exact, tensors only). CPU on Linux: growth of the process's
    peak resident set (VmHWM, reset through /proc/self/clear_refs) after free heap pages are
    returned to the OS; approximate (page granularity, allocator slack); elsewhere None.
    """
    device = torch.device(device)
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    if device.type != "cpu":
        return None
    _release_free_heap()  # else memory freed earlier and kept by malloc hides the growth
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    except OSError:
        return None
    before = _proc_status_kib("VmRSS")
    fn()
    after = _proc_status_kib("VmHWM")
    return None if before is None or after is None else max(0, after - before) * 1024


def _release_free_heap() -> None:
    """Give free heap pages back to the OS (glibc's malloc_trim); a no-op elsewhere."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (AttributeError, OSError):
        pass


class OutputMismatch(AssertionError):
    """Candidates disagree beyond tolerance; timing them would compare different computations."""


def max_abs_diff(a: Any, b: Any) -> float:
    """Largest absolute difference between two tensors (or lists of tensors), in float32."""
    if isinstance(a, (list, tuple)):
        return max((max_abs_diff(x, y) for x, y in zip(a, b, strict=True)), default=0.0)
    return (a.detach().float() - b.detach().float()).abs().max().item()


def check_agreement(outputs: Mapping[str, Any], reference: str, atol: float) -> dict[str, float]:
    """Max abs difference of every output from ``outputs[reference]``; raises OutputMismatch above ``atol``."""
    diffs = {name: max_abs_diff(out, outputs[reference]) for name, out in outputs.items() if name != reference}
    bad = {name: d for name, d in diffs.items() if not d <= atol}  # NaN is bad too
    if bad:
        worst = ", ".join(f"{name}: {d:.3g}" for name, d in bad.items())
        raise OutputMismatch(f"outputs differ from {reference!r} by more than {atol:g} ({worst}); not timing them.")
    return diffs


def top1_agreement(logits: torch.Tensor, reference_logits: torch.Tensor) -> float:
    """Fraction of rows whose argmax equals the reference's."""
    return (logits.argmax(-1) == reference_logits.argmax(-1)).float().mean().item()


@dataclass(frozen=True)
class Timing:
    """One candidate in one configuration. ``items`` per call (batch size) gives throughput."""

    config: str
    candidate: str
    items: int
    seconds: Stats
    peak_memory_bytes: int | None = None
    max_abs_diff: float | None = None
    speedup_vs: str | None = None
    speedup: float | None = None  # the reference's time / this candidate's, by ``statistic``
    # "median" (robust to a noisy neighbour) or "mean" (when calls differ by design: inputs
    # taken in turn whose cost varies, where only the mean is the throughput)
    statistic: str = "median"

    @property
    def items_per_second(self) -> float:
        return self.items / getattr(self.seconds, self.statistic)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "items_per_second": self.items_per_second}


def compare(
    config: str,
    candidates: Mapping[str, Thunk],
    *,
    items: int,
    reference: str | None = None,
    atol: float | None = None,
    warmup: int = 2,
    repeats: int = 10,
    device: torch.device | str = "cpu",
    memory: bool = True,
    log: list[str] | None = None,
    statistic: str = "median",
) -> list[Timing]:
    """Time candidates alternately; relative to ``reference``, check agreement first and report speedups.

    With ``atol``, each candidate's output must be within it of the reference's, or
    :class:`OutputMismatch` is raised before any timing. ``reference`` is any candidate:
    timm's model, our own fp32 eager model, or anything else.
    """
    if statistic not in ("median", "mean"):
        raise ValueError(f"statistic={statistic!r}: expected 'median' or 'mean'")
    diffs: dict[str, float] = {}
    if reference is not None and atol is not None:
        diffs = check_agreement({name: fn() for name, fn in candidates.items()}, reference, atol)
    stats = time_alternating(candidates, warmup=warmup, repeats=repeats, device=device, log=log)
    peaks = {name: peak_memory(fn, device) if memory else None for name, fn in candidates.items()}  # warm: no one-off allocations
    ref_time = getattr(stats[reference], statistic) if reference is not None else None
    return [
        Timing(
            config=config,
            candidate=name,
            items=items,
            seconds=s,
            peak_memory_bytes=peaks[name],
            max_abs_diff=diffs.get(name),
            speedup_vs=reference if reference is not None and name != reference else None,
            speedup=ref_time / getattr(s, statistic) if ref_time is not None and name != reference else None,
            statistic=statistic,
        )
        for name, s in stats.items()
    ]


def environment(device: torch.device | str = "cpu") -> dict[str, Any]:
    """What the figures depend on: versions, device, threads, date."""
    device = torch.device(device)
    env: dict[str, Any] = {
        "date": datetime.date.today().isoformat(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "device": device.type,
        "threads": torch.get_num_threads(),
        "cpu": _cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
        env["cuda"] = torch.version.cuda
    timm = sys.modules.get("timm")
    if timm is not None:
        env["timm"] = timm.__version__
    return env


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} x{os.cpu_count()}"
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()} x{os.cpu_count()}"


def format_table(timings: Sequence[Timing]) -> str:
    """A plain-text table: one row per configuration and candidate."""
    header = ("config", "candidate", "median ms", "IQR ms", "min-max ms", "items/s", "peak MiB", "max|diff|", "speedup")
    rows = []
    for t in timings:
        s = t.seconds
        rows.append(
            (
                t.config,
                t.candidate,
                f"{s.median * 1e3:.1f}",
                f"{s.iqr * 1e3:.1f}",
                f"{s.min * 1e3:.1f}-{s.max * 1e3:.1f}",
                f"{t.items_per_second:.1f}",
                "-" if t.peak_memory_bytes is None else f"{t.peak_memory_bytes / 2**20:.0f}",
                "-" if t.max_abs_diff is None else f"{t.max_abs_diff:.1e}",
                "-" if t.speedup is None else f"{t.speedup:.2f}x vs {t.speedup_vs}" + (" (means)" if t.statistic == "mean" else ""),
            )
        )
    return to_text(Table(title="", columns=header, rows=rows))


def write_json(path: str | os.PathLike[str], payload: Mapping[str, Any]) -> None:
    """``payload`` as JSON; Timing and Stats objects become dicts."""

    def default(obj: Any) -> Any:
        if isinstance(obj, Timing):
            return obj.to_dict()
        if isinstance(obj, Stats):
            return asdict(obj)
        raise TypeError(f"not JSON-able: {type(obj).__name__}")

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(payload, indent=2, default=default) + "\n")
