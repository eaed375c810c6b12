"""What the app offers as choices: the options ``--help`` lists, in completion, ``--info`` and globs.

Config files whose name starts with ``_`` are internal: family bases (``model/_pvt_v2``), the
typed schemas Hydra's ConfigStore holds (``model/_schema``, ``task/_train_schema``, ``task/_export_schema``). They stay
usable as parents, but completing ``task=_train_schema`` would start a ten-epoch training and
``model=glob(*)`` would sweep bases that cannot build. Hydra lists every config of a group in
those places through one method of its config loader, which :func:`public_options` filters for
the duration of the app.

Tab completion runs the app as ``lucid-arch -sc query=bash`` with the typed line in
``COMP_LINE``; a ``-cd DIR`` in that line is handed to Hydra too (:func:`completion_argv`), so
the variants of a user's directory complete like shipped ones.
"""

from __future__ import annotations

import contextlib
import os
import shlex
from typing import Any, Iterator


def hidden(name: str) -> bool:
    return name.rsplit("/", 1)[-1].startswith("_")


@contextlib.contextmanager
def public_options() -> Iterator[None]:
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra.core.object_type import ObjectType

    original = ConfigLoaderImpl.get_group_options

    def get_group_options(self: Any, group_name: str, results_filter: Any = ObjectType.CONFIG, *args: Any, **kwargs: Any) -> list[str]:
        options = original(self, group_name, results_filter, *args, **kwargs)
        return [o for o in options if not hidden(o)] if results_filter == ObjectType.CONFIG else options

    ConfigLoaderImpl.get_group_options = get_group_options  # type: ignore[method-assign]
    try:
        yield
    finally:
        ConfigLoaderImpl.get_group_options = original  # type: ignore[method-assign]


def completion_argv(argv: list[str]) -> list[str]:
    """``argv`` plus the ``-cd DIR`` of the line being completed, when this run answers a completion query."""
    if "-sc" not in argv and "--shell-completion" not in argv:
        return argv
    try:
        words = shlex.split(os.environ.get("COMP_LINE", ""))
    except ValueError:  # an unterminated quote while typing
        words = os.environ.get("COMP_LINE", "").split()
    extra: list[str] = []
    for i, word in enumerate(words):
        if word in ("-cd", "--config-dir") and i + 1 < len(words) and os.path.isdir(words[i + 1]):
            extra += ["-cd", words[i + 1]]
        elif word.startswith("--config-dir=") and os.path.isdir(word.split("=", 1)[1]):
            extra += ["-cd", word.split("=", 1)[1]]
    return [*extra, *argv] if extra and "-cd" not in argv else argv
