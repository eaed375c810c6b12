"""Hydra composition of model configs: find ``conf/``, list variants, compose and validate.

``load_config("pvt_v2_b2", ["model.depths=[3,4,18,3]"])`` is exactly what the command line
does with the same override strings, so a config that works in Python works in a sweep.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
import shutil
import tempfile
from pathlib import Path
from typing import Iterator, Sequence

from .checks import ConfigError, Problem, check_model, suggest, to_plain_dict, validate_model
from .schema import ModelConfig, field_names, register_configs

PRIMARY_CONFIG = "config"


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


def is_yaml_path(name: str) -> bool:
    """Whether a model argument names a YAML file rather than a shipped variant."""
    return name.endswith((".yaml", ".yml"))


def list_models(pattern: str = "*") -> list[str]:
    """Names of the shipped variants (``conf/model/*.yaml`` minus the ``_``-prefixed bases)."""
    names = (p.stem for p in (config_dir() / "model").glob("*.yaml") if not p.stem.startswith("_"))
    return sorted(n for n in names if fnmatch.fnmatch(n, pattern))


@contextlib.contextmanager
def _untyped_schema() -> Iterator[None]:
    """Swap the typed schema for an untyped copy, so a badly typed config still composes.

    Hydra stops at the first type error; composing untyped lets :func:`check_model` report
    every problem at once. The typed schema is restored on exit.
    """
    from hydra.core.config_store import ConfigStore

    untyped = {f.name: f.default for f in dataclasses.fields(ModelConfig)}  # same keys and defaults, no types
    ConfigStore.instance().store(group="model", name="_schema", node=untyped)
    try:
        yield
    finally:
        register_configs()


def _compose(overrides: Sequence[str]):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return compose(config_name=PRIMARY_CONFIG, overrides=list(overrides))


def _root_cause(exc: BaseException) -> BaseException:
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return exc


def _explain(exc: BaseException, name: str) -> Problem:
    """One sentence from a Hydra/OmegaConf composition error."""
    from hydra.errors import MissingConfigException, OverrideParseException

    cause = _root_cause(exc)
    if isinstance(exc, MissingConfigException):
        if not is_yaml_path(name) and name not in list_models():
            return Problem(
                "model",
                f"model={name}: no such model{suggest(name, list_models())}; "
                f"lucid_arch.list_models() lists them: {', '.join(list_models())}.",
            )
        return Problem("model", f"{name}: {str(exc).splitlines()[0]} (check its defaults list).")
    if isinstance(exc, OverrideParseException):
        return Problem("overrides", f"cannot parse override: {str(exc).splitlines()[0]} (quote lists: 'model.depths=[3,4,6,3]').")
    key = getattr(cause, "full_key", None) or getattr(exc, "full_key", None)
    text = str(cause).splitlines()[0]
    if key and "not in struct" in str(cause):
        field = str(key).split(".")[-1]
        return Problem(str(key), f"{key}: unknown key, not a field of the model schema{suggest(field, field_names())}.")
    return Problem(str(key or "model"), f"{key + ': ' if key else ''}{text}.")


@contextlib.contextmanager
def _model_choice(name: str) -> Iterator[list[str]]:
    """Overrides selecting ``name``: a shipped variant, or a YAML file anywhere on disk.

    A file is mounted as the only member of a temporary ``model`` group on Hydra's search path,
    so its defaults list can still extend shipped variants (``defaults: [pvt_v2_b2, _self_]``).
    """
    if not is_yaml_path(name):
        yield [f"model={name}"]
        return
    path = Path(name).expanduser()
    if not path.is_file():
        raise ConfigError([Problem("model", f"model file {name}: not found; give a variant name or an existing YAML path.")], name)
    with tempfile.TemporaryDirectory(prefix="lucid_arch_") as tmp:
        mounted = f"_file_{path.stem}"
        (Path(tmp) / "model").mkdir()
        shutil.copyfile(path, Path(tmp) / "model" / f"{mounted}.yaml")
        choice = [f"model={mounted}", f"hydra.searchpath=[file://{tmp}]"]
        if "name" not in _read_yaml(path):  # else it would report the name of the variant it extends
            choice.append(f"model.name={path.stem}")
        yield choice


def _yaml_problem(exc: Exception, path: object) -> Problem:
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    what = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return Problem("model", f"{path}: invalid YAML{where}: {what}; fix the file's syntax.")


def _read_yaml(path: Path) -> dict:
    import yaml

    try:
        content = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError([_yaml_problem(exc, path)], str(path)) from None
    if not isinstance(content, dict):
        raise ConfigError([Problem("model", f"{path}: expected a mapping of model fields, got {type(content).__name__}.")], str(path))
    return content


def load_config(name: str = "pvt_v2_b0", overrides: Sequence[str] = ()):
    """Compose ``model=name`` (a variant name or a YAML path) plus command-line style overrides.

    Returns the validated config; raises :class:`ConfigError` naming every bad key, never a
    raw Hydra traceback.
    """
    import yaml
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    register_configs()
    with _model_choice(name) as choice:
        overrides = [*choice, *overrides]
        try:
            cfg = _compose(overrides)
        except yaml.YAMLError as exc:  # a config file on the search path that is not YAML
            mark = getattr(exc, "problem_mark", None)
            raise ConfigError([_yaml_problem(exc, mark.name if mark else name)], name) from None
        except (HydraException, OmegaConfBaseException) as typed_error:
            with _untyped_schema():
                try:
                    raw = _compose(overrides)
                except (HydraException, OmegaConfBaseException) as exc:
                    raise ConfigError([_explain(exc, name)], name) from None
            problems = check_model(to_plain_dict(raw)) or [_explain(typed_error, name)]
            raise ConfigError(problems, name) from None
    validate_model(cfg, source=name)
    return cfg
