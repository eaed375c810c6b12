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
from typing import Iterator, Optional, Sequence

from .checks import ConfigError, Problem, check_model, suggest, to_plain_dict, validate_model
from .schema import ModelConfig, field_names
from .store import register_configs

PRIMARY_CONFIG = "config"
LAUNCHER_HINT = " (launchers are Hydra plugins: pip install 'lucid-arch[joblib]' or 'lucid-arch[slurm]')"


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


def list_models(pattern: str = "*", config_root: Optional[Path] = None) -> list[str]:
    """Names of the shipped variants (``conf/model/*.yaml`` minus the ``_``-prefixed bases).

    ``config_root`` lists another config tree instead, e.g. ``conf/`` as of a git revision.
    """
    names = (p.stem for p in (Path(config_root or config_dir()) / "model").glob("*.yaml") if not p.stem.startswith("_"))
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


@contextlib.contextmanager
def _hydra_initialized(config_root: Optional[Path] = None) -> Iterator[None]:
    """Hydra initialised on ``config_root`` (default: the shipped ``conf/``); also used by provenance.

    Inside a running Hydra app (a ``lucid-arch`` job) the app's GlobalHydra is set aside and
    restored on exit, so jobs can compose other configs too.
    """
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    app = GlobalHydra.instance()
    outer = app.hydra if app.is_initialized() else None
    app.clear()
    try:
        with initialize_config_dir(config_dir=str(Path(config_root or config_dir()).resolve()), version_base="1.3"):
            yield
    finally:
        if outer is not None:
            GlobalHydra.instance().initialize(outer)


def _compose(overrides: Sequence[str], config_root: Optional[Path] = None):
    from hydra import compose

    with _hydra_initialized(config_root):
        return compose(config_name=PRIMARY_CONFIG, overrides=list(overrides))


def _root_cause(exc: BaseException) -> BaseException:
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return exc


def explain_error(exc: BaseException, name: str, config_root: Optional[Path] = None) -> Problem:
    """One sentence from a Hydra/OmegaConf composition error."""
    from hydra.errors import MissingConfigException, OverrideParseException

    cause = _root_cause(exc)
    if isinstance(exc, MissingConfigException):
        missing = str(getattr(exc, "missing_cfg_file", None) or "")
        group, _, choice = missing.rpartition("/")
        if group and group != "model":  # another config group of the app, e.g. task=NAME
            options = [o for o in (getattr(exc, "options", None) or []) if not o.startswith("_")]
            hint = LAUNCHER_HINT if group == "hydra/launcher" else ""
            return Problem(group, f"{group}={choice}: no such option{suggest(choice, options)}; choose one of {', '.join(options)}{hint}.")
        models = list_models(config_root=config_root)
        if group == "model" and not is_yaml_path(name) and name not in models:
            name = choice  # a sweep ("pvt_v2_b0,pvt_v2_bX"): the value that failed is in the error
        if not is_yaml_path(name) and name not in models:
            return Problem(
                "model",
                f"model={name}: no such model{suggest(name, models)}; "
                f"lucid_arch.list_models() lists them: {', '.join(models)}.",
            )
        return Problem("model", f"{name}: {str(exc).splitlines()[0]} (check its defaults list).")
    if isinstance(exc, OverrideParseException):
        return Problem("overrides", f"cannot parse override: {str(exc).splitlines()[0]} (quote lists: 'model.depths=[3,4,6,3]').")
    key = getattr(cause, "full_key", None) or getattr(exc, "full_key", None)
    text = str(cause).splitlines()[0]
    if key and "not in struct" in str(cause):
        field = str(key).split(".")[-1]
        if str(key).startswith("model."):
            return Problem(str(key), f"{key}: unknown key, not a field of the model schema{suggest(field, field_names())}.")
        return Problem(str(key), f"{key}: unknown key (`lucid-arch --cfg job` shows the keys there are; prefix + to add one).")
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


def load_config(name: str = "pvt_v2_b0", overrides: Sequence[str] = (), config_root: Optional[Path] = None):
    """Compose ``model=name`` (a variant name or a YAML path) plus command-line style overrides.

    Returns the validated config; raises :class:`ConfigError` naming every bad key, never a
    raw Hydra traceback. ``config_root`` composes against another config tree than the shipped
    ``conf/`` (the config-diff tool reads ``conf/`` as of a git revision this way).
    """
    import yaml
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    register_configs()
    with _model_choice(name) as choice:
        overrides = [*choice, *overrides]
        try:
            cfg = _compose(overrides, config_root)
        except yaml.YAMLError as exc:  # a config file on the search path that is not YAML
            mark = getattr(exc, "problem_mark", None)
            raise ConfigError([_yaml_problem(exc, mark.name if mark else name)], name) from None
        except (HydraException, OmegaConfBaseException) as typed_error:
            raise diagnose(typed_error, overrides, name, config_root) from None
    validate_model(cfg, source=name)
    return cfg


def diagnose(error: Exception, overrides: Sequence[str], name: str, config_root: Optional[Path] = None) -> ConfigError:
    """Every problem behind a failed typed composition, as one :class:`ConfigError`.

    Hydra stops at the first bad value; composing again against an untyped schema lets
    :func:`check_model` name them all. Used by :func:`load_config` and the ``lucid-arch`` app.
    """
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    with _untyped_schema():
        try:
            raw = _compose(overrides, config_root)
        except (HydraException, OmegaConfBaseException) as exc:
            return ConfigError([explain_error(exc, name, config_root)], name)
    return ConfigError(check_model(to_plain_dict(raw)) or [explain_error(error, name, config_root)], name)
