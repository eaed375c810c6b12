"""``lucid-arch-diff --review BASE``: every variant of a pull request against its base revision.

This is what CI runs on a pull request that touches ``conf/``. Every variant is compared, not
only the files the pull request changed, because values are inherited: an edit to
``_pvt_v2.yaml`` or ``pvt_v2_b1.yaml`` changes b2 ... b5 without touching their files. Added and
deleted variants are reported as such, and a file the rules refuse (an unusable name, a
symlink out of the tree, anything :mod:`lucid_arch.config.model_files` rejects) is an invalid
variant, never skipped.

Both trees are read into memory first (BASE from git objects, the pull request from the working
tree) and each is composed in a sandboxed child (:mod:`lucid_arch.diff.sandbox`). A variant
whose whole defaults chain has the same bytes on both sides composes the same, so the pull
request's side takes BASE's answer for it: only what the pull request can have changed is
composed twice. Variants whose own file changed are composed beside BASE; the rest, once
BASE's answers name their chains.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from ..config.model_files import quote, valid_name
from . import sandbox, trees
from .compare import DiffReport, compare
from .sides import Side, side_from_answer
from .trees import ModelDir, TreeError

# Status of a variant, and the exit code it asks for (the review's is the largest).
STATUS_EXIT = {"unchanged": 0, "changed": 1, "new": 1, "deleted": 1, "invalid": 2}


@dataclass(frozen=True)
class Variant:
    name: str  # as quoted for display
    status: str  # a key of STATUS_EXIT
    report: Optional[DiffReport]  # None for a deleted variant or one whose file is refused
    problem: Optional[str] = None  # why a file was refused outright

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "problem": self.problem, "report": self.report.to_dict() if self.report else None}


@dataclass(frozen=True)
class Review:
    base: str
    tree: str
    variants: tuple[Variant, ...]

    @property
    def exit_code(self) -> int:
        return max((STATUS_EXIT[v.status] for v in self.variants), default=0)

    def count(self, status: str) -> int:
        return sum(1 for v in self.variants if v.status == status)

    def to_dict(self) -> dict[str, Any]:
        return {"base": self.base, "tree": self.tree, "variants": [v.to_dict() for v in self.variants], "exit_code": self.exit_code}


def _variants(snapshot: ModelDir) -> list[str]:
    return [n for n in snapshot.names() if not n.startswith("_")]


def review(base: str, tree: str = "conf", cwd: Optional[Path] = None) -> Review:
    """Compare ``TREE/model/*.yaml`` at revision ``base`` with the working tree's."""
    top = trees.toplevel(cwd or Path.cwd())
    commit = trees.resolve_commit(base, top)
    rel = trees.clean_relative(tree)
    if rel is None:
        raise TreeError(f"--tree {quote(tree)!r}: give a directory inside the repository, relative to its root (e.g. conf).")
    model_dir = f"{rel}/model"
    old = trees.read_git_dir(commit, model_dir, top, f"{base}:{model_dir}/")  # empty where the base has no such directory
    head = top / model_dir
    if not head.is_dir():
        raise TreeError(f"{quote(model_dir)}: no such directory in the working tree; is --tree right?")
    new = trees.read_dir(head, f"{model_dir}/")
    names = sorted({*_variants(old), *_variants(new)})

    def item(snapshot: ModelDir, name: str) -> Optional[dict[str, Any]]:
        return {"name": name, "overrides": []} if name in snapshot.files and valid_name(name) else None

    old_items = [i for n in names if (i := item(old, n))]
    new_items = [i for n in names if (i := item(new, n))]
    memo = sandbox.Memo()  # BASE's answers, for the pull request's variants whose chains are unchanged
    edited = [i for i in new_items if old.files.get(i["name"]) != new.files[i["name"]]]
    rest = [i for i in new_items if old.files.get(i["name"]) == new.files[i["name"]]]
    old_answers, edited_answers = sandbox.compose_many([(old, old_items), (new, edited)], memo)
    answers = dict(zip([i["name"] for i in [*edited, *rest]], [*edited_answers, *sandbox.compose(new, rest, memo)]))
    new_answers = [answers[i["name"]] for i in new_items]
    old_sides = {i["name"]: side_from_answer("old", old.label(i["name"]), [], "git", a) for i, a in zip(old_items, old_answers)}
    new_sides = {i["name"]: side_from_answer("new", new.label(i["name"]), [], "file", a) for i, a in zip(new_items, new_answers)}
    return Review(base, rel, tuple(_variant(n, old, new, old_sides.get(n), new_sides.get(n)) for n in names))


def _refusal(name: str, snapshot: ModelDir) -> Optional[str]:
    if name in snapshot.refused:
        return snapshot.refused[name]
    if not valid_name(name):
        return f"{quote(snapshot.label(name))}: not a usable variant file name; name it with letters, digits and _ . - only."
    return None


def _variant(name: str, old: ModelDir, new: ModelDir, old_side: Optional[Side], new_side: Optional[Side]) -> Variant:
    shown = quote(name, 80)
    in_old, in_new = name in old.names(), name in new.names()
    if not in_new:
        return Variant(shown, "deleted", None)
    refused = _refusal(name, new)
    if refused or new_side is None:
        return Variant(shown, "invalid", None, refused or "cannot be read")
    if not in_old or old_side is None or _refusal(name, old) or (not old_side.valid and new_side.valid):
        report = compare(new_side, new_side)  # nothing valid to compare with: validated and costed alone
        return Variant(shown, "new" if report.comparable else "invalid", report)
    report = compare(old_side, new_side)
    status = {0: "unchanged", 1: "changed"}.get(report.exit_code, "invalid")
    return Variant(shown, status, report)
