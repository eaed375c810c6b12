"""A review of many variants as one PR comment (markdown), terminal text, or JSON.

The markdown is what the CI example posts: a summary line, one table row per variant that is
not unchanged, then each such variant's full report. The comment is fitted under GitHub's
limit by :func:`lucid_arch.diff.render_md.fit`, which folds whole variant reports (largest
first) into their one-line verdicts and says which.
"""

from __future__ import annotations

import io
import json
from typing import IO

from . import fmt
from .render_md import Section, code, fit, fixed, sections
from .review import Review, Variant

ICON = {"changed": "✎", "new": "➕", "deleted": "➖", "invalid": "✗", "unchanged": "✓"}


def _costs(v: Variant) -> tuple[str, str]:
    if v.report is None or not v.report.costs:
        return "–", "–"
    total = v.report.costs[-1]
    return (
        f"{fmt.count(total.old_params)} {fmt.ARROW} {fmt.count(total.new_params)}",
        f"{fmt.gflops(total.old_flops)} {fmt.ARROW} {fmt.gflops(total.new_flops)}",
    )


def headline(review: Review) -> str:
    counts = ", ".join(f"{review.count(s)} {s}" for s in ("changed", "new", "deleted", "invalid", "unchanged") if review.count(s))
    return f"{len(review.variants)} variants of `{review.tree}/model` against {code(review.base)}: {counts or 'none'} (exit {review.exit_code})."


def render_md(review: Review) -> str:
    out = [fixed(f"## Architecture review\n\n{headline(review)}\n")]
    shown = [v for v in review.variants if v.status != "unchanged"]
    if shown:
        rows = ["| variant | status | params OLD → NEW | GFLOPs OLD → NEW |", "|---|---|---|---|"]
        for v in shown:
            params, flops = _costs(v)
            rows.append(f"| {code(v.name)} | {ICON[v.status]} {v.status} | {params} | {flops} |")
        table = "\n".join(rows) + "\n"
        out.append(fixed(table))
    unchanged = [code(v.name) for v in review.variants if v.status == "unchanged"]
    if unchanged:
        line = f"No architectural change: {', '.join(unchanged)}.\n"
        out.append(fixed(line))
    for v in shown:
        out.append(_variant_section(v))
    return fit(out)


def _variant_section(v: Variant) -> Section:
    title = f"### {ICON[v.status]} {code(v.name)}: {v.status}"
    if v.report is None:
        why = f"\n\n- {code(v.problem, 500)}" if v.problem else ""
        text = f"{title}{why}\n" if v.status == "invalid" else f"{title}: configs naming it no longer compose.\n"
        return fixed(text)
    parts = sections(v.report, heading="####")
    full = f"{title}\n\n" + "\n".join(s.full for s in parts)
    folded = f"{title}: {fmt.verdict(v.report)} (details folded)\n"
    return Section(full, folded, f"the report of {code(v.name)}")


def render_term(review: Review, file: IO[str]) -> None:
    from .render_term import render

    print(headline(review).replace("`", ""), file=file)
    for v in review.variants:
        params, flops = _costs(v)
        extra = f"  params {params}  GFLOPs {flops}" if v.report is not None else (f"  {v.problem}" if v.problem else "")
        print(f"  {ICON[v.status]} {v.name:24} {v.status:9}{extra}", file=file)
    for v in review.variants:
        if v.report is not None and v.status != "unchanged":
            print(file=file)
            buffer = io.StringIO()
            render(v.report, buffer)
            file.write(buffer.getvalue())


def render_json(review: Review) -> str:
    return json.dumps(review.to_dict(), indent=2, ensure_ascii=True)
