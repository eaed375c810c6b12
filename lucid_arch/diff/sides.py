"""One side of a diff: a spec (variant name, YAML path or ``REV:path``) resolved to a config.

A side that cannot be *found* (a bad revision, a missing file) is a usage error, raised as
:class:`SideError`. A side that is found but invalid is a result: its problems are kept, with
the file that set each bad key, so the report can say which side and which key.

Composing never instantiates anything: configs are merged as data, a ``_target_`` is just
an unknown key to the validator, and values that are ``${...}`` interpolations are refused
before composition, since resolving one can read the environment (a CI token) into a PR comment.
"""

from __future__ import annotations

import contextlib
import io
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Iterator, Optional, Sequence

from ..config.checks import ConfigError, Problem, validate_model
from ..config.compose import PRIMARY_CONFIG, is_yaml_path, load_config
from ..config.provenance import Provenance, provenance
from ..config.schema import ModelConfig


class SideError(Exception):
    """A side that names nothing loadable; the message is the whole explanation."""


@dataclass(frozen=True)
class Location:
    """What to hand to ``load_config``, and how to show the files it reads."""

    kind: str  # "variant", "file" or "git"
    name: str
    config_root: Optional[Path] = None
    display_root: Optional[str] = None  # replaces config_root in labels
    relabel: tuple[tuple[str, str], ...] = ()  # (temporary path, label) pairs


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

    def source_of(self, key: str) -> Optional[str]:
        """The file or override behind a problem key such as ``model.depths[1]``."""
        field_name = key.removeprefix("model.").split(".")[0].split("[")[0]
        return self.sources.get(field_name)


def load_side(role: str, spec: str, overrides: Sequence[str] = ()) -> Side:
    """Resolve and compose one side; raises :class:`SideError` only when it names nothing."""
    with locate(spec) as where:
        prov: Optional[Provenance]
        try:
            prov = provenance(where.name, overrides, where.config_root, where.display_root)
        except ConfigError:
            prov = None  # load_config below reports the same failure with every problem
        relabel = dict(where.relabel)
        chain = tuple(relabel.get(s, s) for s in prov.chain) if prov else ()
        sources = {k: relabel.get(s, s) for k, s in prov.values.items()} if prov else {}
        config, problems = None, ()
        refused = prov.interpolations if prov else {}
        if refused:
            problems = tuple(
                Problem(
                    f"model.{key}",
                    f"model.{key}: a ${{...}} interpolation, which a reviewed config may not hold (resolving one "
                    "can read the environment into the report); write the value itself.",
                )
                for key in refused
            )
        else:
            try:
                config = validate_model(load_config(where.name, overrides, where.config_root), source=spec)
            except ConfigError as err:
                problems = tuple(err.problems)
    return Side(role, spec, tuple(overrides), where.kind, config, problems, chain, sources)


def is_git_spec(spec: str) -> bool:
    """``REV:path.yaml`` and not an existing file (a path may contain ':' on some systems)."""
    rev, sep, path = spec.partition(":")
    return bool(sep and rev and is_yaml_path(path)) and not Path(spec).is_file()


@contextlib.contextmanager
def locate(spec: str) -> Iterator[Location]:
    """Where a side's config lives; temporary trees (git sides) exist for the ``with`` body."""
    if is_git_spec(spec):
        with _git_location(spec) as where:
            yield where
        return
    if not is_yaml_path(spec):
        yield Location("variant", spec)
        return
    path = Path(spec).expanduser()
    if not path.is_file():
        raise SideError(
            f"{spec}: no such file. Give a variant name (pvt_v2_b2), a YAML path, or REV:path/to/variant.yaml."
        )
    root = _tree_root(path)
    if root is None:  # a lone file: mounted onto the shipped conf/ by load_config
        yield Location("file", str(path))
    else:  # inside a config tree: its parents are that tree's files, not the installed ones
        yield Location("file", path.stem, root)


def _tree_root(path: Path) -> Optional[Path]:
    """``conf`` for ``conf/model/x.yaml`` when ``conf/config.yaml`` exists (a whole config tree)."""
    parent = path.resolve().parent
    if parent.name == "model" and (parent.parent / f"{PRIMARY_CONFIG}.yaml").is_file():
        return parent.parent.resolve()
    return None


# --- git sides --------------------------------------------------------------------------------


def _git(args: Sequence[str], cwd: Path) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, check=False)
    except FileNotFoundError:
        raise SideError(
            "git is not installed, so git sides (REV:path) cannot be read; give file paths instead."
        ) from None


@contextlib.contextmanager
def _git_location(spec: str) -> Iterator[Location]:
    """Compose ``REV:path`` against the config tree *as of REV*, checked out into a temp dir.

    A variant extends other variants, so reading the one file at REV but its parents from
    the working tree would mix two versions.
    """
    rev, _, path = spec.partition(":")
    cwd = Path.cwd()
    top = _git(["rev-parse", "--show-toplevel"], cwd)
    if top.returncode:
        raise SideError(
            f"{spec}: a git side, but {cwd} is not inside a git repository; run from the checkout or give a file path."
        )
    toplevel = Path(top.stdout.decode().strip())
    if _git(["rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], toplevel).returncode:
        raise SideError(
            f"{spec}: unknown git revision {rev!r} in {toplevel}. Check the name (git log --oneline), or fetch it "
            "(a CI checkout needs fetch-depth: 0 to see the base branch)."
        )
    rel = _repo_relative(path, cwd, toplevel)
    if _git(["cat-file", "-e", f"{rev}:{rel}"], toplevel).returncode:
        raise SideError(
            f"{spec}: {rev} has no file {rel} (paths are relative to the repository root; "
            "a file added since then has no old side to compare with)."
        )
    root = PurePosixPath(rel).parent.parent
    in_tree = (
        PurePosixPath(rel).parent.name == "model"
        and not _git(["cat-file", "-e", f"{rev}:{(root / f'{PRIMARY_CONFIG}.yaml').as_posix()}"], toplevel).returncode
    )
    with tempfile.TemporaryDirectory(prefix="lucid_arch_diff_") as tmp:
        if in_tree:
            _extract(rev, root.as_posix(), toplevel, Path(tmp))
            shown = f"{rev}:" if root == PurePosixPath(".") else f"{rev}:{root.as_posix()}"
            yield Location("git", PurePosixPath(rel).stem, Path(tmp) / root, shown)
        else:
            target = Path(tmp) / PurePosixPath(rel).name
            target.write_bytes(_git(["show", f"{rev}:{rel}"], toplevel).stdout)
            yield Location("git", str(target), relabel=((str(target), f"{rev}:{rel}"),))


def _repo_relative(path: str, cwd: Path, toplevel: Path) -> str:
    """git's rule: ``REV:path`` is relative to the repository root, ``REV:./path`` to the cwd."""
    if path.startswith(("./", "../")):
        return (cwd / path).resolve().relative_to(toplevel.resolve()).as_posix()
    return PurePosixPath(path).as_posix()


def _extract(rev: str, tree: str, toplevel: Path, dest: Path) -> None:
    archive = _git(["archive", "--format=tar", rev, "--", tree], toplevel)
    if archive.returncode:
        raise SideError(f"{rev}:{tree}: git archive failed: {archive.stderr.decode().strip()}")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4 (and security backports)
            tar.extractall(dest, filter="data")
            return
        # Older 3.11 (Debian's 3.11.2): the same rule by hand, plain files and folders inside dest only.
        for member in tar.getmembers():
            parts = PurePosixPath(member.name).parts
            if not (member.isfile() or member.isdir()) or member.name.startswith("/") or ".." in parts:
                raise SideError(f"{rev}:{tree}: refusing to extract {member.name!r} from git archive (not a plain file inside the tree).")
        tar.extractall(dest)  # noqa: S202 - every member checked above
