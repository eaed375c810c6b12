"""The timing harness: statistics, alternation, agreement checks, memory, JSON. No timed assertions."""

from __future__ import annotations

import json

import pytest
import torch

from lucid_arch.perf.benchmarking import (
    OutputMismatch,
    Stats,
    Timing,
    check_agreement,
    compare,
    environment,
    format_table,
    peak_memory,
    time_alternating,
    top1_agreement,
    write_json,
)


def test_stats_are_median_quartiles_and_range():
    s = Stats.from_samples([5.0, 1.0, 4.0, 2.0, 3.0])
    assert (s.n, s.median, s.q1, s.q3, s.min, s.max, s.mean) == (5, 3.0, 2.0, 4.0, 1.0, 5.0, 3.0)
    assert s.iqr == 2.0
    one = Stats.from_samples([0.25])
    assert (one.median, one.iqr, one.min, one.max) == (0.25, 0.0, 0.25, 0.25)
    with pytest.raises(ValueError, match="repeats"):
        Stats.from_samples([])


def test_candidates_alternate_after_warmup():
    calls: list[str] = []
    log: list[str] = []
    candidates = {"a": lambda: calls.append("a"), "b": lambda: calls.append("b"), "c": lambda: calls.append("c")}
    stats = time_alternating(candidates, warmup=2, repeats=3, log=log)
    assert log == ["a", "b", "c"] * 3
    assert calls == ["a", "b", "c"] * 5  # 2 warm-up rounds, then the 3 timed ones
    assert set(stats) == {"a", "b", "c"} and all(s.n == 3 for s in stats.values())


def test_compare_reports_speedups_against_the_reference():
    x = torch.randn(4, 8)
    log: list[str] = []
    timings = compare("cfg", {"ours": lambda: x * 2, "ref": lambda: x + x}, items=4, reference="ref", atol=0.0, repeats=2, log=log)
    by_name = {t.candidate: t for t in timings}
    assert log == ["ours", "ref", "ours", "ref"]
    assert by_name["ours"].speedup == pytest.approx(by_name["ref"].seconds.median / by_name["ours"].seconds.median)
    assert (by_name["ours"].speedup_vs, by_name["ours"].max_abs_diff) == ("ref", 0.0)
    assert by_name["ref"].speedup is None and by_name["ref"].items_per_second > 0
    table = format_table(timings)
    assert "x vs ref" in table and table.splitlines()[0].startswith("config")


def test_disagreeing_outputs_are_never_timed():
    log: list[str] = []
    calls = {"ours": 0, "ref": 0}

    def run(name: str, value: float):
        def fn():
            calls[name] += 1
            return torch.full((2, 3), value)

        return fn

    with pytest.raises(OutputMismatch, match=r"'ref'.*ours: 0\.1"):
        compare("cfg", {"ours": run("ours", 1.1), "ref": run("ref", 1.0)}, items=2, reference="ref", atol=1e-3, log=log)
    assert log == [] and calls == {"ours": 1, "ref": 1}


def test_agreement_checks_lists_and_nan():
    ref = [torch.zeros(2), torch.ones(2)]
    assert check_agreement({"a": [torch.zeros(2), torch.ones(2) + 1e-6], "r": ref}, "r", 1e-5)["a"] == pytest.approx(1e-6, rel=0.1)
    with pytest.raises(OutputMismatch):
        check_agreement({"a": torch.tensor([float("nan")]), "r": torch.zeros(1)}, "r", 1.0)
    assert top1_agreement(torch.tensor([[0.0, 1.0], [1.0, 0.0]]), torch.tensor([[0.0, 2.0], [0.0, 2.0]])) == 0.5


def test_peak_memory_sees_a_large_allocation():
    peak = peak_memory(lambda: torch.ones(16 * 2**20))  # 64 MiB, written
    assert peak is None or peak >= 32 * 2**20  # None only where /proc/self/clear_refs is missing


def test_results_are_written_as_json(tmp_path):
    timing = Timing("cfg", "ours", 8, Stats.from_samples([0.5, 0.25]), peak_memory_bytes=10, speedup_vs="ref", speedup=2.0)
    path = tmp_path / "sub" / "out.json"
    write_json(path, {"environment": environment(), "timings": [timing], "stats": timing.seconds})
    data = json.loads(path.read_text())
    assert data["timings"][0]["items_per_second"] == pytest.approx(8 / 0.375)
    assert data["timings"][0]["seconds"]["median"] == 0.375 and data["stats"]["n"] == 2
    assert {"date", "torch", "device", "threads", "cpu"} <= set(data["environment"])


def test_speedup_by_mean_when_calls_differ_by_design():
    """A candidate that is slow on one call in four: its median hides that, its mean does not."""
    import time

    calls = iter(range(100))
    slow_every_fourth = lambda: time.sleep(0.02 if next(calls) % 4 == 3 else 0.0)  # noqa: E731
    steady = lambda: time.sleep(0.004)  # noqa: E731
    timings = compare("cfg", {"ours": slow_every_fourth, "ref": steady}, items=1, reference="ref", warmup=0,
                      repeats=8, memory=False, statistic="mean")
    ours = next(t for t in timings if t.candidate == "ours")
    assert ours.statistic == "mean"
    assert ours.speedup == pytest.approx(timings[1].seconds.mean / ours.seconds.mean)
    assert ours.items_per_second == pytest.approx(1 / ours.seconds.mean)
    assert ours.seconds.mean > ours.seconds.median  # the two slow calls pull the mean only
    assert "(means)" in format_table(timings)
    with pytest.raises(ValueError, match="statistic='p90'"):
        compare("cfg", {"ref": steady}, items=1, reference="ref", repeats=1, memory=False, statistic="p90")
