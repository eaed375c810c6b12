"""Hydra reads model files only through the rules of :mod:`lucid_arch.config.model_files`.

Every composition of this package (``load_config``, provenance, the ``lucid-arch`` app with
its sweeps and ``-cd`` directories) runs inside :func:`model_files_checked`. While it is active,
each ``model/NAME`` config Hydra is about to load is first read with the bounded parser, and
the whole chain of files it extends is checked, so a model file can neither escape into
``hydra.*`` with a ``@package`` header, nor read a file outside its directory, nor hold an
interpolation, nor hang Hydra with a defaults cycle. A file that breaks a rule is a
:class:`~lucid_arch.config.checks.ConfigError` naming it.

Hydra has no public hook for this, so the check wraps ``ConfigRepository.load_config`` (Hydra
1.3's single entry for loading a config; the version is pinned below 1.4) for the duration of
the ``with`` block only. Configs outside the ``model`` group (the app's own, experiments) are
untouched: they are the user's application configuration, not data.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path
from typing import Any, Iterator, Optional

from .checks import ConfigError, Problem
from .model_files import (
    MAX_FILE_BYTES,
    SCHEMA,
    ModelFile,
    check_loaded_model,
    name_problem,
    parse_model_file,
    quote,
    resolve_chain,
)
from .paths import display_path

GROUP = "model/"
_active = 0
_labels: dict[str, str] = {}  # a YAML path mounted under another name -> the path it was given as


@contextlib.contextmanager
def labelled(name: str, label: str) -> Iterator[None]:
    """Within the block, messages about model file ``name`` call it ``label`` (a mounted YAML path)."""
    _labels[name] = label
    try:
        yield
    finally:
        _labels.pop(name, None)


def read_model_path(path: str, name: str, model_dir: str) -> ModelFile:
    """Parse the model file at ``path`` if it is a regular file inside ``model_dir`` (symlinks resolved)."""
    label = _labels.get(name) or display_path(Path(path))
    real = os.path.realpath(path)
    if os.path.dirname(real) != os.path.realpath(model_dir):
        return ModelFile(
            name,
            label,
            problems=[Problem("model", f"{quote(label)}: a symlink to {quote(real)}, outside the model directory; "
                                       "model files are read only from inside their directory. Copy the file in instead.")],
        )
    try:
        info = os.stat(real)
        if not stat.S_ISREG(info.st_mode):
            raise IsADirectoryError
        if info.st_size > MAX_FILE_BYTES:
            raw = b"\0" * (MAX_FILE_BYTES + 1)  # reported by size, never read
        else:
            with open(real, "rb") as f:
                raw = f.read(MAX_FILE_BYTES + 1)
    except OSError:
        return ModelFile(name, label, problems=[Problem("model", f"{quote(label)}: not a readable regular file.")])
    return parse_model_file(raw, name, label)


class _Checker:
    """The model-file check for one repository: parse each file once, check each chain once."""

    def __init__(self, repo: Any):
        self.repo = repo
        self.parsed: dict[str, Optional[ModelFile]] = {}
        self.checked: set[str] = set()

    def load(self, name: str) -> Optional[ModelFile]:
        if name in self.parsed:
            return self.parsed[name]
        from hydra.core.object_type import ObjectType

        bad = name_problem(name, f"model={name}")
        if bad:
            self.parsed[name] = ModelFile(name, name, problems=[bad])
            return self.parsed[name]
        source = self.repo._find_object_source(config_path=GROUP + name, object_type=ObjectType.CONFIG)
        if source is None:
            self.parsed[name] = None  # Hydra names the missing config itself
        elif source.scheme() == "file":
            root = source.path.removeprefix("file://")
            model_dir = os.path.join(root, GROUP.rstrip("/"))
            self.parsed[name] = read_model_path(os.path.join(model_dir, f"{name}.yaml"), name, model_dir)
        else:  # pkg:// (an installed package's configs) or structured:// (the ConfigStore schema)
            self.parsed[name] = self._check_loaded(source, name)
        return self.parsed[name]

    def _check_loaded(self, source: Any, name: str) -> ModelFile:
        from omegaconf import OmegaConf

        result = source.load_config(config_path=GROUP + name)
        content = OmegaConf.to_container(result.config, resolve=False) if result.config is not None else {}
        header = (result.header or {}).get("package")
        parents = tuple(str(e) for e in content.get("defaults", []) or []) if isinstance(content, dict) else ()
        label = f"{source.path}/{GROUP}{name}"
        return ModelFile(name, label, parents=parents, problems=check_loaded_model(content, header, label))

    def check(self, name: str) -> None:
        if name == SCHEMA or name in self.checked or self.load(name) is None:
            return  # a missing variant: Hydra's own error lists the ones there are
        _, problems = resolve_chain(name, self.load)
        if problems:
            raise ConfigError(problems, name)
        self.checked.add(name)


@contextlib.contextmanager
def model_files_checked() -> Iterator[None]:
    """Within the block, Hydra loads a ``model/`` config only after its chain passes the rules."""
    global _active
    from hydra._internal.config_repository import ConfigRepository

    if _active:
        _active += 1
        try:
            yield
        finally:
            _active -= 1
        return
    original = ConfigRepository.load_config
    checkers: dict[int, _Checker] = {}

    def load_config(self: Any, config_path: str) -> Any:
        if config_path.startswith(GROUP):
            checker = checkers.get(id(self))
            if checker is None or checker.repo is not self:
                checker = checkers[id(self)] = _Checker(self)
            checker.check(config_path[len(GROUP):].removesuffix(".yaml"))
        return original(self, config_path)

    ConfigRepository.load_config = load_config  # type: ignore[method-assign]
    _active = 1
    try:
        yield
    finally:
        _active = 0
        ConfigRepository.load_config = original  # type: ignore[method-assign]
