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
    """The summary lines: the best trial of the front per objective, and how the front compares with the baseline.

    "Best" is taken from the front: a dominated trial never is, even when it ties the best value
    (a front trial then has that value at a better trade-off). A tie with the baseline is not a
    win: "beat on every objective" means strictly better on each; trials that only dominate it
    (equal on some objective) are listed apart, each tie said as "same".
    """
    done = [r for r in rows if r["place"] in (FRONT, DOMINATED)]
    if not done:
        return ["No trial finished with every objective, so there is no front."]
    on_front = sorted((r for r in done if r["place"] == FRONT), key=lambda r: r["trial"])
    lines = []
    for name, direction in zip(objectives.names, objectives.directions):
        best = (max if direction == MAXIMIZE else min)(r["metrics"][name] for r in on_front)
        picks = [r for r in on_front if r["metrics"][name] == best]
        if len(picks) == 1:
            lines.append(f"Best {name}: trial {picks[0]['trial']} ({_fmt(best)}), {_vector(picks[0], objectives)}.")
        else:  # equal on this objective, each better than the others on another one
            lines.append(f"Best {name}: trials {_and(r['trial'] for r in picks)}, equal at {_fmt(best)}: "
                         + "; ".join(f"trial {r['trial']}: {_vector(r, objectives)}" for r in picks) + ".")
    base = next((r for r in rows if r.get("baseline")), None)
    if base is None:
        return lines
    if base["place"] not in (FRONT, DOMINATED):
        return lines + [f"The baseline (trial {base['trial']}) did not finish ({base['status']}), so nothing is compared with it."]
    base_values = values(base, objectives)
    ahead = [r for r in _front_rows(rows, objectives) if r is not base and dominates(values(r, objectives), base_values, objectives.directions)]
    beat = [r for r in ahead if all(a != b for a, b in zip(values(r, objectives), base_values))]  # strictly better on each
    matched = [r for r in ahead if r not in beat]  # as good on some objective, better on the others
    said = f"the baseline (trial {base['trial']}: {_vector(base, objectives)})"
    if not ahead:
        where = "is on the front" if base["place"] == FRONT else f"is dominated by trials {', '.join(map(str, base['dominated_by']))}"
        return lines + [f"No trial of the front beats {said} on every objective; the baseline {where}."]
    if beat:
        lines.append(f"{len(beat)} trial(s) of the front beat {said} on every objective:")
        lines += [f"- trial {r['trial']}: {_versus(r, base, objectives)} (`{_own(r, common)}`)" for r in beat]
    else:
        lines.append(f"No trial of the front beats {said} on every objective.")
    if matched:
        lines.append(f"{len(matched)} {'more ' if beat else ''}trial(s) of the front match the baseline on some objective "
                     f"and beat it on the others (they dominate it; a tie is not a win):")
        lines += [f"- trial {r['trial']}: {_versus(r, base, objectives)} (`{_own(r, common)}`)" for r in matched]
    return lines


def _and(items: Any) -> str:
    items = [str(i) for i in items]
    return ", ".join(items[:-1]) + f" and {items[-1]}" if len(items) > 1 else "".join(items)


def _own(row: dict[str, Any], common: tuple[str, ...]) -> str:
    """A row's overrides without those every trial has."""
    return " ".join(o for o in row["overrides"].split() if o not in common)


def _vector(row: dict[str, Any], objectives: Objectives) -> str:
    return ", ".join(f"{n} {_fmt(row['metrics'][n])}" for n in objectives.names)


def _versus(row: dict[str, Any], base: dict[str, Any], objectives: Objectives) -> str:
    """Each objective against the baseline's: "same" when equal; a change never rounds to a signed zero."""
    parts = []
    for n in objectives.names:
        a, b = row["metrics"][n], base["metrics"][n]
        if a == b:
            change = "same"
        elif n in ACCURACIES:
            change = f"{_signed(100 * (a - b), 1)} points"
        else:
            change = f"{_signed(100 * (a - b) / abs(b), 0)}%" if b else f"{a - b:+.4g}"
        parts.append(f"{n} {_fmt(a)} ({change})")
    return ", ".join(parts)


def _signed(value: float, decimals: int) -> str:
    """``value`` with a sign and ``decimals`` places, or two significant digits where those would show 0."""
    text = f"{value:+.{decimals}f}"
    return text if float(text) != 0 else f"{value:+.2g}"


def counts(rows: list[dict[str, Any]]) -> dict[str, int]:
    out = {k: 0 for k in (FRONT, DOMINATED, "pruned", "rejected", "failed", "missing", "interrupted")}
    for r in rows:
        out[r["place"]] = out.get(r["place"], 0) + 1
    return out


def tally(rows: list[dict[str, Any]], study: Optional[dict[str, Any]] = None) -> str:
    """What became of the candidates, and how that squares with Optuna's own count of the study's trials."""
    n = counts(rows)
    launched = sum(v for k, v in n.items() if k != "rejected")
    said = [f"{n[FRONT]} on the front", f"{n[DOMINATED]} dominated", f"{n['pruned']} pruned", f"{n['failed']} failed"]
    said += [f"{n[k]} {k}" for k in n if k not in (FRONT, DOMINATED, "pruned", "failed", "rejected", "interrupted") and n[k]]
    if n["interrupted"]:
        said.append(f"{n['interrupted']} interrupted by a stop (not counted toward n_trials)")
    text = (f"{launched} trials ran or were launched: {', '.join(said)}; {n['rejected']} candidates rejected before "
            "running (sweep.md says why).")
    if study and study.get("trials"):
        outcomes = study.get("outcomes") or {}
        parts = ", ".join(f"{v} {k}" for k, v in outcomes.items() if v)
        repeats = outcomes.get("repeat", 0)
        text += (f" Optuna counts {study['trials']} trials in the study {study.get('name', '')!r} ({parts})"
                 + (f": the candidates sweep.md lists, and {repeats} repeated proposals, told FAIL with lucid_outcome=repeat and not run again."
                    if repeats else "."))
    return text


def write_markdown(rows: list[dict[str, Any]], objectives: Objectives, path: Path, title: str, common: list[str],
                   study: Optional[dict[str, Any]] = None) -> None:
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
    text = to_markdown(table) + "\n\n" + tally(rows, study) + "\n\n#### Best trade-offs\n\n" + "\n".join(trade_offs(rows, objectives, tuple(common))) + "\n"
    write_text_atomic(path, text)


def write(rows: list[dict[str, Any]], search: dict[str, Any], sweep_dir: Path, common: list[str]) -> Objectives:
    objectives = objectives_of_ledger(search)
    place(rows, objectives)
    write_csv(rows, objectives, sweep_dir / "pareto.csv")
    write_markdown(rows, objectives, sweep_dir / "pareto.md", f"Pareto front of {sweep_dir.name}", common, search.get("study"))
    return objectives
