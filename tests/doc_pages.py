"""The README and docs/*.md as the tests read them: sections, fenced blocks, links, anchors.

GitHub renders these pages, so anchors follow its rules: a heading's slug is its text in lower
case, with everything but letters, digits, spaces, ``-`` and ``_`` dropped and spaces turned
into ``-``; a repeated slug gets ``-1``, ``-2``, ... in order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README = ROOT / "README.md"


def pages() -> list[Path]:
    """The README and every docs page."""
    return [README, *sorted(DOCS.glob("*.md"))]


def text(name: str) -> str:
    """A page's text: ``README.md`` or a docs page by file name (``variants.md``)."""
    return (README if name == "README.md" else DOCS / name).read_text(encoding="utf-8")


def section(name: str, heading: str) -> str:
    """The text under ``heading`` (given with its #s), code blocks included, up to the next heading of its level or higher."""
    lines = text(name).splitlines(keepends=True)
    headings = [(i, line.split(" ", 1)[0], line.rstrip("\n")) for i, line in _headings(lines)]
    start, level = next((i, hashes) for i, hashes, line in headings if line == heading)
    end = next((i for i, hashes, _ in headings if i > start and len(hashes) <= len(level)), len(lines))
    return "".join(lines[start:end])


def _headings(lines: list[str]):
    """(index, line) of each heading line, outside code fences."""
    fenced = False
    for i, line in enumerate(lines):
        if _FENCE.match(line.rstrip("\n")):
            fenced = not fenced
        elif not fenced and re.match(r"#{1,6} ", line):
            yield i, line


@dataclass(frozen=True)
class Block:
    """A fenced code block: its page, the line its fence opens on, its language and its dedented text."""

    page: Path
    line: int
    lang: str
    code: str

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


_FENCE = re.compile(r"^(\s*)```(\S*)\s*$")


def split(path: Path) -> tuple[list[Block], str]:
    """A page's fenced blocks, and its prose: the text outside them (a blank line where each stood)."""
    blocks, prose, open_at, indent, lang, body = [], [], 0, "", "", []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        fence = _FENCE.match(line)
        if open_at and fence and fence.group(2) == "":
            blocks.append(Block(path, open_at, lang, "".join(b.removeprefix(indent) + "\n" for b in body)))
            open_at, body = 0, []
            prose.append("")
        elif open_at:
            body.append(line)
        elif fence:
            open_at, indent, lang = number, fence.group(1), fence.group(2)
        else:
            prose.append(line)
    assert not open_at, f"{path.name}:{open_at}: a code fence is never closed"
    return blocks, "\n".join(prose)


def blocks(lang: str) -> list[Block]:
    """Every block of one language in the README and docs, in page order."""
    return [b for path in pages() for b in split(path)[0] if b.lang == lang]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading's text."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors of a page's headings, repeated ones numbered as GitHub numbers them."""
    seen: dict[str, int] = {}
    out = set()
    for match in re.finditer(r"^#{1,6} (.+)$", split(path)[1], re.M):
        base = slug(match.group(1))
        out.add(f"{base}-{seen[base]}" if base in seen else base)
        seen[base] = seen.get(base, 0) + 1
    return out


_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def links(path: Path) -> list[str]:
    """The targets of a page's inline links, outside code blocks and code spans."""
    prose = re.sub(r"`[^`]*`", "", split(path)[1])
    return _LINK.findall(prose)
