"""A search's report: each row's place (front, dominated, pruned, rejected ...), pareto.csv, pareto.md.

Read from what the sweep report already gathered (one row per job of the ledger, rejected
candidates included) and the search's definition in the ledger (objectives and directions),
so it needs neither Optuna nor the study: the front is recomputed from the jobs' own
summary.json, the record that outlives any database.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Optional

from ..report.tables import Table, cell, to_markdown
from ..safe_io import atomic_write, write_text_atomic
from .objectives import MAXIMIZE, Objectives
from .pareto import dominates, front

FRONT, DOMINATED = "front", "dominated"
ACCURACIES = ("val_acc", "best_val_acc", "val_miou", "best_val_miou", "val_pixel_acc", "val_box_ap", "best_val_box_ap")  # compared in percentage points, not relative change


def objectives_of_ledger(search: dict[str, Any]) -> Objectives:
    identity = search.get("identity", {})
    return Objectives(tuple(identity.get("objectives", ())), tuple(identity.get("directions", ())))


def values(row: dict[str, Any], objectives: Objectives) -> Optional[list[float]]:
    try:
        return objectives.values(row["metrics"])
    except ValueError:
        return None


def place(rows: list[dict[str, Any]], objectives: Objectives) -> list[dict[str, Any]]:
    """Each row with ``place``: front / dominated (finished with every objective), else its status."""
    done = [r for r in rows if r["status"] == "ok" and values(r, objectives) is not None]
    points = [values(r, objectives) for r in done]
    on_front = set(front(points, objectives.directions))
    for i, r in enumerate(done):
        r["place"] = FRONT if i in on_front else DOMINATED
        r["dominated_by"] = [done[j]["trial"] for j in range(len(done)) if j != i and dominates(points[j], points[i], objectives.directions)]
    for r in rows:
        r.setdefault("place", r["status"])
    return rows


def _fmt(value: Any) -> str:
    return cell(value, digits=4)


def _front_rows(rows: list[dict[str, Any]], objectives: Objectives) -> list[dict[str, Any]]:
    """The front, best first on the first objective."""
    sign = -1 if objectives.directions[0] == MAXIMIZE else 1
    return sorted((r for r in rows if r["place"] == FRONT), key=lambda r: sign * r["metrics"][objectives.names[0]])


def _extra_columns(rows: list[dict[str, Any]], objectives: Objectives) -> list[str]:
    return [m for m in ("params", "gflops") if m not in objectives.names and any(m in r["metrics"] for r in rows)]


def write_csv(rows: list[dict[str, Any]], objectives: Objectives, path: Path) -> None:
    """Every trial with objective values: on the front or not, and which trials dominate it."""
    done = [r for r in rows if r["place"] in (FRONT, DOMINATED)]
    extra = _extra_columns(done, objectives)
    text = io.StringIO(newline="")
    out = csv.writer(text)
    out.writerow(["trial", "job", "front", *objectives.names, *extra, "baseline", "dominated_by", "overrides", "dir"])
    for r in sorted(done, key=lambda r: (r["place"] != FRONT, r["trial"])):
        out.writerow([r["trial"], r["job"], "yes" if r["place"] == FRONT else "no", *(r["metrics"][n] for n in objectives.names),
                      *(r["metrics"].get(m, "") for m in extra), "yes" if r.get("baseline") else "",
                      " ".join(map(str, r["dominated_by"])), r["overrides"], r["dir"]])
    atomic_write(path, lambda tmp: tmp.write_text(text.getvalue(), encoding="utf-8", newline=""))


def trade_offs(rows: list[dict[str, Any]], objectives: Objectives, common: tuple[str, ...] = ()) -> list[str]:
    """The summary lines: the best trial per objective, and how the front compares with the baseline."""
    done = [r for r in rows if r["place"] in (FRONT, DOMINATED)]
    if not done:
        return ["No trial finished with every objective, so there is no front."]
    lines = []
    for name, direction in zip(objectives.names, objectives.directions):
        pick = (max if direction == MAXIMIZE else min)(done, key=lambda r: r["metrics"][name])
        lines.append(f"Best {name}: trial {pick['trial']} ({_fmt(pick['metrics'][name])}), {_vector(pick, objectives)}.")
    base = next((r for r in rows if r.get("baseline")), None)
    if base is None:
        return lines
    if base["place"] not in (FRONT, DOMINATED):
        return lines + [f"The baseline (trial {base['trial']}) did not finish ({base['status']}), so nothing is compared with it."]
    base_values = values(base, objectives)
    better = [r for r in _front_rows(rows, objectives) if r is not base and dominates(values(r, objectives), base_values, objectives.directions)]
    if not better:
        where = "is on the front" if base["place"] == FRONT else f"is dominated by trials {', '.join(map(str, base['dominated_by']))}"
        return lines + [f"No trial of the front beats the baseline (trial {base['trial']}: {_vector(base, objectives)}) on every "
                        f"objective; the baseline {where}."]
    lines.append(f"{len(better)} trial(s) of the front beat the baseline (trial {base['trial']}: {_vector(base, objectives)}) "
                 f"on every objective:")
    lines += [f"- trial {r['trial']}: {_versus(r, base, objectives)} (`{_own(r, common)}`)" for r in better]
    return lines


def _own(row: dict[str, Any], common: tuple[str, ...]) -> str:
    """A row's overrides without those every trial has."""
    return " ".join(o for o in row["overrides"].split() if o not in common)


def _vector(row: dict[str, Any], objectives: Objectives) -> str:
    return ", ".join(f"{n} {_fmt(row['metrics'][n])}" for n in objectives.names)


def _versus(row: dict[str, Any], base: dict[str, Any], objectives: Objectives) -> str:
    parts = []
    for n in objectives.names:
        a, b = row["metrics"][n], base["metrics"][n]
        if n in ACCURACIES:
            change = f"{100 * (a - b):+.1f} points"
        else:
            change = f"{(a - b) / abs(b):+.0%}" if b else f"{a - b:+.4g}"
        parts.append(f"{n} {_fmt(a)} ({change})")
    return ", ".join(parts)


def counts(rows: list[dict[str, Any]]) -> dict[str, int]:
    out = {k: 0 for k in (FRONT, DOMINATED, "pruned", "rejected", "failed", "missing")}
    for r in rows:
        out[r["place"]] = out.get(r["place"], 0) + 1
    return out


def write_markdown(rows: list[dict[str, Any]], objectives: Objectives, path: Path, title: str, common: list[str]) -> None:
    shown = _front_rows(rows, objectives)
    extra = _extra_columns(shown, objectives)
    table = Table(
        title=title,
        columns=["trial", "job", "overrides", *objectives.names, *extra],
        rows=[[str(r["trial"]) + (" (baseline)" if r.get("baseline") else ""), str(r["job"]),
               f"`{_own(r, tuple(common))}`",
               *(_fmt(r["metrics"][n]) for n in objectives.names), *(_fmt(r["metrics"].get(m)) for m in extra)] for r in shown],
        right=frozenset(range(3, 3 + len(objectives.names) + len(extra))),
        notes=[("objectives", objectives.describe()), *([("every trial", f"`{' '.join(common)}`")] if common else [])],
    )
    n = counts(rows)
    tally = (f"{n[FRONT] + n[DOMINATED] + n['pruned'] + n['failed'] + n['missing']} trials ran or were launched: {n[FRONT]} on the "
             f"front, {n[DOMINATED]} dominated, {n['pruned']} pruned, {n['failed']} failed" + (f", {n['missing']} missing" if n["missing"] else "")
             + f"; {n['rejected']} candidates rejected before running (sweep.md says why).")
    text = to_markdown(table) + "\n\n" + tally + "\n\n#### Best trade-offs\n\n" + "\n".join(trade_offs(rows, objectives, tuple(common))) + "\n"
    write_text_atomic(path, text)


def write(rows: list[dict[str, Any]], search: dict[str, Any], sweep_dir: Path, common: list[str]) -> Objectives:
    objectives = objectives_of_ledger(search)
    place(rows, objectives)
    write_csv(rows, objectives, sweep_dir / "pareto.csv")
    write_markdown(rows, objectives, sweep_dir / "pareto.md", f"Pareto front of {sweep_dir.name}", common)
    return objectives
