"""Hydra composition of model configs: compose, validate and explain, every problem at once.

``load_config("pvt_v2_b2", ["model.depths=[3,4,18,3]"])`` is exactly what the command line
does with the same override strings, so a config that works in Python works in a sweep.
Problems name the file and line (or override) that set each bad key, read from
:mod:`~lucid_arch.config.provenance`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Optional, Sequence

from .checks import ConfigError, Problem, check_model, to_plain_dict
from .hydra_session import (  # noqa: F401 - the names other layers know this module by
    MOUNT_PREFIX,
    PRIMARY_CONFIG,
    Dirs,
    _compose,
    _model_choice,
    _untyped_schema,
    chosen,
    config_dir,
    explain_error,
    is_yaml_path,
    list_models,
)
from .provenance import provenance
from .store import register_configs


def load_config(
    name: str = "pvt_v2_b0", overrides: Sequence[str] = (), config_root: Optional[Path] = None, extra_dirs: Dirs = ()
):
    """Compose ``model=name`` (a variant name or a YAML path) plus command-line style overrides.

    Returns the validated config; raises :class:`ConfigError` naming every bad key with the file
    and line (or override) that set it, never a raw Hydra traceback. ``config_root`` composes
    against another config tree than the shipped ``conf/`` (the config-diff tool composes a
    reviewed ``model/`` directory this way); ``extra_dirs`` add variant directories as
    ``lucid-arch -cd DIR`` does.
    """
    cfg, problems = compose_model(name, overrides, config_root, extra_dirs)
    if problems:
        raise ConfigError(locate(problems, name, overrides, config_root, extra_dirs), name)
    return cfg


def compose_model(
    name: str, overrides: Sequence[str] = (), config_root: Optional[Path] = None, extra_dirs: Dirs = ()
) -> tuple[Any, list[Problem]]:
    """One typed composition: ``(config, [])``, or ``(None or config, every problem)`` not yet located."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    register_configs()
    typed_error: Optional[Exception] = None
    try:
        with _model_choice(name) as choice:
            try:
                cfg = _compose([*choice, *overrides], config_root, extra_dirs)
            except (HydraException, OmegaConfBaseException) as error:
                typed_error = error
    except ConfigError as refused:  # a model file that breaks the model-file rules
        return None, refused.problems
    if typed_error is not None:  # composed again untyped, under a mount of its own
        return None, _every_problem(typed_error, name, overrides, config_root, extra_dirs)
    return cfg, check_model(to_plain_dict(cfg))


def diagnose(
    error: Exception, name: str, overrides: Sequence[str], config_root: Optional[Path] = None, extra_dirs: Dirs = ()
) -> ConfigError:
    """Every problem behind a failed typed composition of ``model=name`` plus ``overrides``, located.

    ``overrides`` are the other overrides of the command line; the ``lucid-arch`` app explains
    what Hydra raised with this.
    """
    return ConfigError(locate(_every_problem(error, name, overrides, config_root, extra_dirs), name, overrides, config_root, extra_dirs), name)


def _every_problem(error: Exception, name: str, overrides: Sequence[str], config_root: Optional[Path], extra_dirs: Dirs) -> list[Problem]:
    """Hydra stops at the first bad value; composing again untyped lets :func:`check_model` name them all."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    with _untyped_schema(), _model_choice(name) as choice:
        try:
            raw = _compose([*choice, *overrides], config_root, extra_dirs)
        except ConfigError as refused:
            return refused.problems
        except (HydraException, OmegaConfBaseException) as exc:
            return [explain_error(exc, name, config_root, overrides)]
    return check_model(to_plain_dict(raw)) or [explain_error(error, name, config_root, overrides)]


def locate(
    problems: Sequence[Problem], name: str, overrides: Sequence[str] = (), config_root: Optional[Path] = None, extra_dirs: Dirs = ()
) -> list[Problem]:
    """``problems`` of ``model=name`` with the file and line (or override) that set each key, where one did."""
    try:
        prov = provenance(name, overrides, config_root, None, extra_dirs)
    except ConfigError:
        return list(problems)
    return [dataclasses.replace(p, where=p.where or prov.where(p.key)) for p in problems]
