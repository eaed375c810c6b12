"""A reviewed ``model/`` directory read into memory, from the working tree or a git revision.

Everything the diff tool composes comes from a :class:`ModelDir` snapshot: file names mapped
to their bytes, read here with bounds and handed to a sandboxed worker
(:mod:`lucid_arch.diff.sandbox`), which never opens the reviewed tree itself. Reading is where
a hostile tree could reach outside itself, so the rules are strict:

- only ``*.yaml`` entries of the one directory, at most :data:`MAX_ENTRIES`, each at most
  :data:`~lucid_arch.config.model_files.MAX_FILE_BYTES` and :data:`MAX_TOTAL_BYTES` in all;
- a symlink is followed only to a regular file in the same directory; any other target (outside
  the tree, a directory, a device, a FIFO) makes that entry a problem, never a read;
- git objects are read with ``git cat-file`` by object id after ``ls-tree``, so no path,
  revision or attribute of the reviewed tree reaches a shell or a checkout, and a revision
  that looks like an option is refused.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Optional, Sequence

from ..config.model_files import MAX_FILE_BYTES, quote

MAX_ENTRIES = 1_024
MAX_TOTAL_BYTES = 4 * 1024 * 1024
GIT_TIMEOUT_S = 30
SUFFIX = ".yaml"


class TreeError(Exception):
    """A reviewed tree or revision that cannot be read at all; the message is the explanation."""


@dataclass
class ModelDir:
    """``name -> bytes`` of one model directory, and ``name -> why`` for entries refused."""

    label_prefix: str  # "conf/model/", "origin/main:conf/model/"
    files: dict[str, bytes] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)  # a mounted lone file: its own label

    def label(self, name: str) -> str:
        return self.labels.get(name) or f"{self.label_prefix}{name}{SUFFIX}"

    def with_file(self, name: str, data: bytes, label: str) -> "ModelDir":
        """This snapshot plus one more file (a lone YAML mounted onto the shipped variants)."""
        return ModelDir(self.label_prefix, {**self.files, name: data}, dict(self.refused), {**self.labels, name: label})

    def names(self) -> list[str]:
        return sorted({*self.files, *self.refused})


def _budget(model_dir: ModelDir, name: str, size: int, total: int) -> Optional[str]:
    if size > MAX_FILE_BYTES:
        return f"{quote(model_dir.label(name))}: {size:,} bytes; a model file may hold at most {MAX_FILE_BYTES:,}."
    if total + size > MAX_TOTAL_BYTES:
        return f"{quote(model_dir.label(name))}: the directory's model files exceed {MAX_TOTAL_BYTES:,} bytes in all."
    return None


# --- the working tree ------------------------------------------------------------------------------


def read_dir(path: Path, label_prefix: str) -> ModelDir:
    """Snapshot a model directory on disk (see the module doc for what is refused)."""
    out = ModelDir(label_prefix)
    try:
        entries = sorted(os.scandir(path), key=lambda e: e.name)
    except OSError as err:
        raise TreeError(f"{quote(label_prefix)}: cannot list the directory ({quote(err.strerror)}).") from None
    yamls = [e for e in entries if e.name.endswith(SUFFIX)]
    if len(yamls) > MAX_ENTRIES:
        raise TreeError(f"{quote(label_prefix)}: {len(yamls):,} model files; at most {MAX_ENTRIES:,} are reviewed.")
    real_dir = os.path.realpath(path)
    total = 0
    for entry in yamls:
        name = entry.name[: -len(SUFFIX)]
        target = os.path.realpath(entry.path)
        try:
            info = os.stat(target) if os.path.dirname(target) == real_dir else None
        except OSError:
            info = None
        if info is None or not stat.S_ISREG(info.st_mode):
            what = "a symlink leaving the model directory" if entry.is_symlink() else "not a regular file"
            out.refused[name] = f"{quote(out.label(name))}: {what}; model files are plain files inside their directory."
            continue
        problem = _budget(out, name, info.st_size, total)
        if problem:
            out.refused[name] = problem
            continue
        with open(target, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
        total += len(data)
        out.files[name] = data
    return out


# --- git -------------------------------------------------------------------------------------------


def git(args: Sequence[str], cwd: Path, stdin: Optional[bytes] = None) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(
            ["git", "-c", "core.quotePath=false", *args],
            cwd=cwd,
            input=stdin,
            capture_output=True,
            check=False,
            timeout=GIT_TIMEOUT_S,
        )
    except FileNotFoundError:
        raise TreeError("git is not installed, so git sides (REV:path) cannot be read; give file paths instead.") from None
    except subprocess.TimeoutExpired:
        raise TreeError(f"git {quote(args[0])} took longer than {GIT_TIMEOUT_S} s; is the repository healthy?") from None


def toplevel(cwd: Path) -> Path:
    top = git(["rev-parse", "--show-toplevel"], cwd)
    if top.returncode:
        raise TreeError(
            f"{quote(cwd)} is not inside a git repository; run from the checkout or give file paths instead of REV:path."
        )
    return Path(top.stdout.decode(errors="replace").strip())


_REV_RE = re.compile(r"^[^\s\x00-\x1f~^:?*\[\\]{1,200}$")


def resolve_commit(rev: str, top: Path) -> str:
    """The commit id of ``rev``; a revision that could be read as an option or pathspec is refused."""
    if rev.startswith("-") or not _REV_RE.match(rev) or ".." in rev:
        raise TreeError(
            f"{quote(rev)!r} is not a revision this tool reads; give a branch, tag or commit id "
            "(letters, digits, / . _ -; not starting with '-')."
        )
    found = git(["rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}"], top)
    if found.returncode:
        raise TreeError(
            f"unknown git revision {quote(rev)!r} in {quote(top)}. Check the name (git log --oneline), or fetch it "
            "(a CI checkout needs fetch-depth: 0 to see the base branch)."
        )
    return found.stdout.decode().strip()


def clean_relative(path: str) -> Optional[str]:
    """``path`` as a normalised repository-relative POSIX path, or None if it leaves the root."""
    parts = [p for p in PurePosixPath(path).parts if p not in ("", ".")]
    if not parts or path.startswith("/") or ".." in parts:
        return None
    return "/".join(parts)


def _ls(commit: str, tree: str, top: Path) -> dict[str, tuple[str, str, str, int]]:
    """File name -> (mode, type, object id, size) of each entry directly in ``tree`` at ``commit``."""
    listed = git(["ls-tree", "-z", "-l", commit, "--", f"{tree}/" if tree else "."], top)
    if listed.returncode:
        raise TreeError(f"{commit[:12]}:{quote(tree)}: git ls-tree failed: {quote(listed.stderr.decode(errors='replace').strip())}")
    rows = {}
    for record in listed.stdout.split(b"\0"):
        if record:
            meta, _, path = record.partition(b"\t")
            mode, kind, oid, size = meta.decode().split()
            rows[PurePosixPath(path.decode("utf-8", errors="replace")).name] = (mode, kind, oid, int(size) if size.isdigit() else 0)
    return rows


def has_blob(commit: str, path: str, top: Path) -> bool:
    return git(["cat-file", "-t", f"{commit}:{path}"], top).stdout.strip() == b"blob"


def read_git_dir(commit: str, tree: str, top: Path, label_prefix: str) -> ModelDir:
    """Snapshot ``tree`` (a model directory) at ``commit``: blobs by id, symlinks resolved inside it."""
    out = ModelDir(label_prefix)
    rows = {n: r for n, r in _ls(commit, tree, top).items() if n.endswith(SUFFIX)}
    if len(rows) > MAX_ENTRIES:
        raise TreeError(f"{quote(label_prefix)}: {len(rows):,} model files; at most {MAX_ENTRIES:,} are reviewed.")
    links = {n: r[2] for n, r in rows.items() if r[0] == "120000"}
    targets = {oid: data.decode("utf-8", errors="replace") for oid, data in _read_blobs(list(links.values()), top).items()}
    wanted: dict[str, tuple[str, int]] = {}  # name -> (blob id, size)
    total = 0
    for file_name, (mode, kind, oid, size) in sorted(rows.items()):
        name = file_name[: -len(SUFFIX)]
        if mode == "120000":  # a symlink: its blob is the target path
            target = targets.get(oid, "")
            row = rows.get(target)
            if row is None or row[0] == "120000":
                out.refused[name] = f"{quote(out.label(name))}: a symlink to {quote(target)!r}, not a model file of the same directory."
                continue
            mode, kind, oid, size = row
        if kind != "blob":
            out.refused[name] = f"{quote(out.label(name))}: not a regular file."
            continue
        problem = _budget(out, name, size, total)
        if problem:
            out.refused[name] = problem
            continue
        total += size
        wanted[name] = (oid, size)
    blobs = _read_blobs(list(dict.fromkeys(oid for oid, _ in wanted.values())), top)
    for name, (oid, _) in wanted.items():
        if oid in blobs:
            out.files[name] = blobs[oid]
        else:
            out.refused[name] = f"{quote(out.label(name))}: cannot be read from git."
    return out


def read_git_file(commit: str, path: str, top: Path) -> bytes:
    """One regular file's bytes at ``commit`` (a lone YAML side), bounded like a model file."""
    parent, _, file_name = path.rpartition("/")
    row = _ls(commit, parent, top).get(file_name)
    if row is None or row[1] != "blob":
        raise TreeError(f"{quote(path)} is not a file at {commit[:12]}.")
    if row[0] == "120000":
        raise TreeError(f"{quote(path)} is a symlink at {commit[:12]}; give the path of the file it points to.")
    if row[3] > MAX_FILE_BYTES:
        raise TreeError(f"{quote(path)}: {row[3]:,} bytes; a model file may hold at most {MAX_FILE_BYTES:,}.")
    return _read_blobs([row[2]], top).get(row[2], b"")


def read_file(path: Path) -> bytes:
    """A lone YAML file on disk: a regular file, a symlink only within its own directory, bounded."""
    real = os.path.realpath(path)
    if os.path.dirname(real) != os.path.realpath(path.parent):
        raise TreeError(f"{quote(path)} is a symlink to {quote(real)}, outside its directory; give the file itself.")
    info = os.stat(real)
    if not stat.S_ISREG(info.st_mode):
        raise TreeError(f"{quote(path)} is not a regular file.")
    if info.st_size > MAX_FILE_BYTES:
        raise TreeError(f"{quote(path)}: {info.st_size:,} bytes; a model file may hold at most {MAX_FILE_BYTES:,}.")
    with open(real, "rb") as f:
        return f.read(MAX_FILE_BYTES + 1)


def _read_blobs(oids: list[str], top: Path) -> dict[str, bytes]:
    if not oids:
        return {}
    done = git(["cat-file", "--batch"], top, stdin="".join(f"{oid}\n" for oid in oids).encode())
    out: dict[str, bytes] = {}
    data, pos = done.stdout, 0
    while pos < len(data):
        end = data.index(b"\n", pos)
        header = data[pos:end].split()
        pos = end + 1
        if len(header) < 3 or header[1] == b"missing":
            continue
        size = int(header[2])
        out[header[0].decode()] = data[pos : pos + size]
        pos += size + 1
    return out
