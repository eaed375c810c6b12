"""What a sweep varies, and the colour and marker that show it in sweep.png.

Read from the jobs' overrides: an override every job shares varies nothing. The varied key with
the most values sets the colour (colours tell more values apart than shapes); the other varied
keys, together, set the marker. So ``'model=glob(pvt_v2_*)' 'model.sr_ratios=...,...'`` is
coloured by model and shaped by sr_ratios, and the legend has a section for each.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "p", "h")
UNSET = "(unset)"  # the value of a key some jobs override and others leave at its default
NEUTRAL = "0.35"  # the marker legend's grey: the shape is what it shows


def override_pairs(overrides: str) -> dict[str, str]:
    """A row's overrides (space-joined ``key=value``) as a dict; ``+key`` and ``~key`` count as ``key``.

    A token without ``=`` continues the previous value (a value that held a space).
    """
    pairs: dict[str, str] = {}
    last = ""
    for token in overrides.split():
        key, eq, value = token.partition("=")
        if eq and key.lstrip("+~"):
            last = key.lstrip("+~")
            pairs[last] = value
        elif last:
            pairs[last] += " " + token
    return pairs


def varied(rows: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Each override key whose value differs between the rows -> its values, in order of first appearance."""
    per_row = [override_pairs(r["overrides"]) for r in rows]
    keys = dict.fromkeys(k for pairs in per_row for k in pairs)
    values = {k: list(dict.fromkeys(p.get(k, UNSET) for p in per_row)) for k in keys}
    return {k: v for k, v in values.items() if len(v) > 1}


def short(key: str) -> str:
    """A key as the legend names it: ``model.sr_ratios`` is ``sr_ratios``."""
    return key.removeprefix("model.")


def palette(n: int) -> list[Any]:
    """n colours that tell apart: tab10, tab20, then steps along viridis."""
    from matplotlib import colormaps

    if n <= 10:
        return [colormaps["tab10"](i) for i in range(n)]
    if n <= 20:
        return [colormaps["tab20"](i) for i in range(n)]
    return [colormaps["viridis"](i / (n - 1)) for i in range(n)]


@dataclass
class Encoding:
    """What colour and marker stand for in one plot."""

    colour_by: str = ""  # the key; "" when nothing varies
    marker_by: tuple[str, ...] = ()  # the other varied keys; () when none, or too many combinations for MARKERS
    colours: dict[str, Any] = field(default_factory=dict)  # colour_by's value -> colour
    markers: dict[str, str] = field(default_factory=dict)  # marker_by's values (marker_value) -> marker

    def marker_value(self, pairs: dict[str, str]) -> str:
        if len(self.marker_by) == 1:
            return pairs.get(self.marker_by[0], UNSET)
        return ", ".join(f"{short(k)}={pairs.get(k, UNSET)}" for k in self.marker_by)

    def style(self, row: dict[str, Any]) -> tuple[Any, str]:
        """(colour, marker) of a row."""
        pairs = override_pairs(row["overrides"])
        colour = self.colours[pairs.get(self.colour_by, UNSET)] if self.colour_by else palette(1)[0]
        return colour, self.markers[self.marker_value(pairs)] if self.marker_by else MARKERS[0]

    def legend_sections(self) -> list[tuple[str, list[tuple[str, Any, str]]]]:
        """(heading, [(value, colour, marker)]): the colour key's values, then the marker keys'."""
        sections = []
        if self.colour_by:
            sections.append((short(self.colour_by), [(v, c, MARKERS[0]) for v, c in self.colours.items()]))
        if self.marker_by:
            sections.append((", ".join(map(short, self.marker_by)), [(v, NEUTRAL, m) for v, m in self.markers.items()]))
        return sections


def encode(rows: list[dict[str, Any]]) -> Encoding:
    """Colour by the varied key with the most values (the first of equals), marker by the others together.

    When the others take more combinations than there are markers, shapes would repeat: every
    point is then a circle, and the job labels and sweep.md tell the jobs apart.
    """
    keys = varied(rows)
    if not keys:
        return Encoding()
    colour_by = max(keys, key=lambda k: len(keys[k]))  # max keeps the first of equals
    enc = Encoding(colour_by, colours=dict(zip(keys[colour_by], palette(len(keys[colour_by])))))
    others = tuple(k for k in keys if k != colour_by)
    combos = list(dict.fromkeys(Encoding(marker_by=others).marker_value(override_pairs(r["overrides"])) for r in rows))
    if others and len(combos) <= len(MARKERS):
        enc.marker_by, enc.markers = others, dict(zip(combos, MARKERS))
    return enc
