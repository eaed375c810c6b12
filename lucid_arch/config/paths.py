"""Where the shipped configs are, and how reports name a config file.

A review comment or a job log is read by other people, often on another machine: the
installed package's absolute path (``/home/runner/.../site-packages/lucid_arch/conf/...``)
tells them nothing and leaks the runner's file system. So a report names

- a shipped file by its place in the package: ``lucid_arch:model/_pvt_v2.yaml``;
- any other file relative to the root of the git work tree holding it (what a pull request
  shows), else relative to the working directory, else as the caller spelt it.

No torch, no Hydra, no subprocess: the work tree is found by looking for ``.git`` upwards.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

PRIMARY_CONFIG = "config"
SHIPPED_PREFIX = "lucid_arch:"  # a shipped file's label: lucid_arch:model/pvt_v2_b2.yaml


def config_dir() -> Path:
    """The ``conf/`` root: inside the installed wheel, or beside the package in a checkout."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "conf", package.parent / "conf"):
        if (candidate / f"{PRIMARY_CONFIG}.yaml").is_file():
            return candidate
    raise FileNotFoundError(
        f"lucid_arch cannot find its configs: neither {package / 'conf'} (installed wheel) nor "
        f"{package.parent / 'conf'} (source checkout) holds {PRIMARY_CONFIG}.yaml; reinstall the package."
    )


def _inside(path: Path, root: Path) -> Optional[str]:
    """``path`` relative to ``root`` in POSIX form, or None when it lies outside."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return None


def work_tree(path: Path) -> Optional[Path]:
    """The root of the git work tree holding ``path`` (a directory with ``.git``), or None."""
    for parent in (path, *path.parents):
        if (parent / ".git").exists():
            return parent
    return None


def file_label(path: os.PathLike[str] | str) -> str:
    """A reviewed or user file: relative to its repository root, else to the working directory, else as given."""
    given = Path(path)
    try:
        absolute = given.resolve()
    except OSError:
        return given.as_posix()
    tree = work_tree(absolute if absolute.is_dir() else absolute.parent)
    if tree is not None:
        rel = _inside(absolute, tree.resolve())
        if rel is not None:
            return rel or "."
    rel = _inside(absolute, Path.cwd().resolve())
    if rel is not None:
        return rel or "."
    return given.as_posix()


def display_path(path: os.PathLike[str] | str) -> str:
    """How reports name a config file or directory: shipped ones as ``lucid_arch:...``, others by :func:`file_label`."""
    try:
        rel = _inside(Path(path).resolve(), config_dir().resolve())
    except (OSError, FileNotFoundError):
        rel = None
    if rel is not None:
        return SHIPPED_PREFIX + rel
    return file_label(path)
