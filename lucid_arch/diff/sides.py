"""One side of a diff: a spec (variant name, YAML path or ``REV:path``) resolved to a config.

A side that cannot be *found* (a bad revision, a missing file, an unusable name or override)
is a usage error, raised as :class:`SideError`. A side that is found but invalid is a result:
its problems are kept, each with the file and line that set the bad key, so the report can say
which side and which key.

Every side is treated as hostile. Its model directory is read into memory by
:mod:`~lucid_arch.diff.trees` (bounded, nothing outside the directory), and composed by
:mod:`~lucid_arch.diff.worker` in a sandboxed child process (:mod:`~lucid_arch.diff.sandbox`)
under the model-file rules: no ``_target_``, tag, ``@package`` header, path in a defaults list,
or ``${...}`` interpolation is ever acted on; each is reported as that side's problem.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Optional, Sequence

from ..config.checks import ConfigError, Problem, suggest, validate_model
from ..config.compose import MOUNT_PREFIX, PRIMARY_CONFIG, config_dir, is_yaml_path
from ..config.model_files import quote, valid_name
from ..config.paths import display_path, file_label
from ..config.provenance import source_key
from ..config.schema import ModelConfig
from . import sandbox, trees
from .trees import ModelDir, TreeError

MAX_SPEC_CHARS = 1_000
MAX_OVERRIDES = 64
_OVERRIDE_RE = re.compile(r"^(~|\+{1,2})?model\.[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*=")


class SideError(Exception):
    """A side that names nothing loadable; the message is the whole explanation."""


@dataclass(frozen=True)
class Target:
    """Where a side's config lives: a snapshot of its model directory and the variant in it."""

    kind: str  # "variant", "file" or "git"
    snapshot: ModelDir
    name: str  # the variant's file name in the snapshot (``_file_<stem>`` for a lone file)
    set_name: Optional[str] = None  # a lone file without `name:` is named after itself


@dataclass(frozen=True)
class Side:
    role: str  # "old" or "new"
    spec: str
    overrides: tuple[str, ...]
    kind: str
    config: Optional[ModelConfig]
    problems: tuple[Problem, ...]
    chain: tuple[str, ...]
    sources: dict[str, str] = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        return self.config is not None and not self.problems

    @property
    def label(self) -> str:
        return " ".join([self.spec, *self.overrides])

    def source_of(self, problem: Problem) -> Optional[str]:
        """The file (and line) or override behind a problem such as ``model.depths[1]``."""
        if problem.where:
            return problem.where
        key = source_key(problem.key if problem.key.startswith("model.") else f"model.{problem.key}")
        return self.sources.get(key) if key else None


def load_side(role: str, spec: str, overrides: Sequence[str] = ()) -> Side:
    """Resolve and compose one side; raises :class:`SideError` only when it names nothing."""
    return load_sides([(role, spec, overrides)])[0]


def load_sides(sides: Sequence[tuple[str, str, Sequence[str]]]) -> list[Side]:
    """Several sides at once: one sandboxed child per model directory they come from, in parallel.

    Sides from the same directory (two shipped variants, or a variant and its override) share a
    child; sides from different trees (a git revision and the working tree) never do.
    """
    shared: dict[str, ModelDir] = {}
    targets = [(role, spec, check_overrides(overrides), locate(spec, shared)) for role, spec, overrides in sides]
    snapshots: list[ModelDir] = []
    for *_, target in targets:
        if not any(target.snapshot is s for s in snapshots):
            snapshots.append(target.snapshot)
    requests = [[{"name": t.name, "overrides": list(o), "set_name": t.set_name} for _, _, o, t in targets if t.snapshot is s] for s in snapshots]
    answers = [iter(a) for a in sandbox.compose_many(list(zip(snapshots, requests)))]
    out = []
    for role, spec, overrides, target in targets:
        answer = next(answers[next(i for i, s in enumerate(snapshots) if s is target.snapshot)])
        shown = file_label(spec) if target.kind == "file" else spec  # no machine path in a report
        out.append(side_from_answer(role, shown, overrides, target.kind, answer))
    return out


def side_from_answer(role: str, spec: str, overrides: Sequence[str], kind: str, answer: dict[str, Any]) -> Side:
    """A :class:`Side` from the worker's answer; the config is validated again here, in this process."""
    chain = tuple(str(c) for c in answer.get("chain", ()))
    sources = {str(k): str(v) for k, v in answer.get("sources", {}).items()}
    if "error" in answer:
        problem = Problem("model", f"composing this side {answer['error']}; the config cannot be reviewed.")
        return Side(role, spec, tuple(overrides), kind, None, (problem,), chain, sources)
    problems = tuple(Problem(str(p["key"]), str(p["message"]), p.get("where")) for p in answer.get("problems", ()))
    config = None
    if not problems and answer.get("config") is not None:
        try:
            config = validate_model(answer["config"], source=spec)
        except ConfigError as err:
            problems = tuple(err.problems)
    return Side(role, spec, tuple(overrides), kind, config, problems, chain, sources)


def check_overrides(overrides: Sequence[str]) -> tuple[str, ...]:
    """Only ``model.FIELD=VALUE`` overrides, of bounded size, with no interpolation."""
    if len(overrides) > MAX_OVERRIDES:
        raise SideError(f"{len(overrides)} overrides; at most {MAX_OVERRIDES}.")
    for o in overrides:
        if len(o) > MAX_SPEC_CHARS or not _OVERRIDE_RE.match(o):
            raise SideError(
                f"override {quote(o)!r}: the diff takes model fields only, as model.FIELD=VALUE "
                "(e.g. --both model.img_size=384); Hydra settings (hydra.*) and other groups are not reviewed."
            )
        if "${" in o:
            raise SideError(f"override {quote(o)!r}: a ${{...}} interpolation; write the value itself.")
    return tuple(overrides)


# --- finding a side ----------------------------------------------------------------------------------


def shipped(cache: Optional[dict[str, ModelDir]] = None) -> ModelDir:
    """The installed variants, as a snapshot (read under the same rules as any other tree); read once per ``cache``."""
    if cache is not None and "shipped" in cache:
        return cache["shipped"]
    model_dir = config_dir() / "model"
    snapshot = trees.read_dir(model_dir, display_path(model_dir) + "/")
    if cache is not None:
        cache["shipped"] = snapshot
    return snapshot


def is_git_spec(spec: str) -> bool:
    """``REV:path.yaml`` and not an existing file (a path may contain ':' on some systems)."""
    rev, sep, path = spec.partition(":")
    return bool(sep and rev and is_yaml_path(path)) and not Path(spec).is_file()


def locate(spec: str, cache: Optional[dict[str, ModelDir]] = None) -> Target:
    """The snapshot and variant a spec names; :class:`SideError` when it names nothing usable.

    ``cache`` lets sides naming shipped variants share one snapshot of them.
    """
    if len(spec) > MAX_SPEC_CHARS:
        raise SideError(f"a side of {len(spec):,} characters; at most {MAX_SPEC_CHARS:,}.")
    try:
        if is_git_spec(spec):
            return _git_target(spec, cache)
        if not is_yaml_path(spec):
            return _variant_target(spec, cache)
        return _file_target(spec, cache)
    except TreeError as err:
        raise SideError(f"{quote(spec)}: {err}") from None


def _variant_target(name: str, cache: Optional[dict[str, ModelDir]]) -> Target:
    snapshot = shipped(cache)
    if name in snapshot.refused:
        raise SideError(snapshot.refused[name])
    if not valid_name(name) or name not in snapshot.files:
        variants = [n for n in snapshot.names() if not n.startswith("_")]
        raise SideError(
            f"{quote(name)}: no such variant{suggest(name, variants)}. Give a variant name ({', '.join(variants[:4])}, ...), "
            "a YAML path, or REV:path/to/variant.yaml."
        )
    return Target("variant", snapshot, name)


def _stem(path: str) -> str:
    stem = PurePosixPath(path).stem
    if not valid_name(stem):
        raise SideError(
            f"{quote(path)}: {quote(stem)!r} is not a usable variant file name; name it with letters, digits and _ . - only."
        )
    return stem


def _file_target(spec: str, cache: Optional[dict[str, ModelDir]]) -> Target:
    path = Path(spec).expanduser()
    if not path.is_file():
        raise SideError(f"{quote(spec)}: no such file. Give a variant name (pvt_v2_b2), a YAML path, or REV:path/to/variant.yaml.")
    stem = _stem(spec)
    parent = path.parent
    if parent.name == "model" and (parent.parent / f"{PRIMARY_CONFIG}.yaml").is_file():
        # inside a config tree: its parents are that tree's files, not the installed ones
        return Target("file", trees.read_dir(parent, file_label(parent) + "/"), stem)
    mounted = f"{MOUNT_PREFIX}{stem}"
    return Target("file", shipped(cache).with_file(mounted, trees.read_file(path), file_label(path)), mounted, set_name=stem)


def _git_target(spec: str, cache: Optional[dict[str, ModelDir]]) -> Target:
    """``REV:path`` composed against the model directory *as of REV*, read from git's objects.

    A variant extends other variants, so reading the one file at REV but its parents from the
    working tree would mix two versions.
    """
    rev, _, path = spec.partition(":")
    cwd = Path.cwd()
    top = trees.toplevel(cwd)
    commit = trees.resolve_commit(rev, top)
    rel = _repo_relative(path, cwd, top)
    if rel is None:
        raise SideError(f"{quote(spec)}: the path leaves the repository; give a path inside it, relative to its root.")
    if not trees.has_blob(commit, rel, top):
        raise SideError(
            f"{quote(spec)}: {quote(rev)} has no file {quote(rel)} (paths are relative to the repository root; "
            "a file added since then has no old side to compare with)."
        )
    stem = _stem(rel)
    model_dir = PurePosixPath(rel).parent
    if model_dir.name == "model" and trees.has_blob(commit, (model_dir.parent / f"{PRIMARY_CONFIG}.yaml").as_posix(), top):
        return Target("git", trees.read_git_dir(commit, model_dir.as_posix(), top, f"{rev}:{model_dir.as_posix()}/"), stem)
    mounted = f"{MOUNT_PREFIX}{stem}"
    data = trees.read_git_file(commit, rel, top)
    return Target("git", shipped(cache).with_file(mounted, data, f"{rev}:{rel}"), mounted, set_name=stem)


def _repo_relative(path: str, cwd: Path, top: Path) -> Optional[str]:
    """git's rule: ``REV:path`` is relative to the repository root, ``REV:./path`` to the cwd."""
    if path.startswith(("./", "../")):
        absolute = (cwd / path).resolve()
        if not absolute.is_relative_to(top.resolve()):
            return None
        return absolute.relative_to(top.resolve()).as_posix()
    return trees.clean_relative(path)
