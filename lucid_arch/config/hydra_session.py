"""Hydra, initialised on a config tree: one composition, the model choice, errors in one sentence.

The low layer under :mod:`lucid_arch.config.compose` (the public ``load_config``) and
:mod:`lucid_arch.config.provenance`, which both compose through it: where ``conf/`` is, how a
variant name or YAML path becomes ``model=...``, Hydra set up with the same search path as
``lucid-arch -cd DIR``, model files read under the rules of :mod:`lucid_arch.config.guard`,
and what a Hydra or OmegaConf exception means for the person who typed the overrides.
"""

from __future__ import annotations

import contextlib
import fnmatch
import tempfile
from pathlib import Path
from typing import Iterator, Optional, Sequence

from .checks import ConfigError, Problem, suggest
from .guard import labelled, model_files_checked, read_model_path
from .model_files import quote, valid_name
from .paths import PRIMARY_CONFIG, config_dir, display_path
from .schema import SECTIONS, field_names, plain_defaults
from .section_checks import unknown_key_message
from .store import register_configs

Dirs = Sequence[Path]  # extra config directories, as `lucid-arch -cd DIR` adds them

LAUNCHER_HINT = " (launchers are Hydra plugins: pip install 'lucid-arch[joblib]' or 'lucid-arch[slurm]')"


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

    untyped = plain_defaults()  # same keys and defaults, no types
    ConfigStore.instance().store(group="model", name="_schema", node=untyped)
    try:
        yield
    finally:
        register_configs(force=True)


@contextlib.contextmanager
def _hydra_initialized(config_root: Optional[Path] = None, extra_dirs: Dirs = ()) -> Iterator[None]:
    """Hydra initialised on ``config_root`` (default: the shipped ``conf/``); also used by provenance.

    ``extra_dirs`` join the search path where ``lucid-arch -cd DIR`` puts DIR, so an error met
    by the app is explained against the same files. Model files are read under the rules of
    :mod:`~lucid_arch.config.guard`. Inside a running Hydra app (a ``lucid-arch`` job) the app's
    GlobalHydra is set aside and restored on exit, so jobs can compose other configs too.
    """
    from hydra import version
    from hydra._internal.hydra import Hydra
    from hydra._internal.utils import create_config_search_path
    from hydra.core.config_search_path import SearchPathQuery
    from hydra.core.global_hydra import GlobalHydra

    app = GlobalHydra.instance()
    outer = app.hydra if app.is_initialized() else None
    app.clear()
    version.setbase("1.3")
    search_path = create_config_search_path(str(Path(config_root or config_dir()).resolve()))
    for extra in extra_dirs:
        search_path.prepend("command-line", f"file://{Path(extra).resolve()}", anchor=SearchPathQuery(provider="schema"))
    try:
        Hydra.create_main_hydra2(task_name="app", config_search_path=search_path)
        with model_files_checked():
            yield
    finally:
        GlobalHydra.instance().clear()
        if outer is not None:
            GlobalHydra.instance().initialize(outer)


def _compose(overrides: Sequence[str], config_root: Optional[Path] = None, extra_dirs: Dirs = ()):
    from hydra import compose

    with _hydra_initialized(config_root, extra_dirs):
        return compose(config_name=PRIMARY_CONFIG, overrides=list(overrides))


def _root_cause(exc: BaseException) -> BaseException:
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return exc


def default_choice(group: str, config_root: Optional[Path] = None) -> str:
    """The option ``conf/config.yaml`` picks for ``group`` when the command line does not."""
    import yaml

    defaults = yaml.safe_load((Path(config_root or config_dir()) / f"{PRIMARY_CONFIG}.yaml").read_text()).get("defaults", [])
    return next((str(d[group]) for d in defaults if isinstance(d, dict) and group in d), group)


def chosen(group: str, overrides: Sequence[str], config_root: Optional[Path] = None) -> str:
    """The option a command line picks for ``group``: its last ``group=`` override, else the primary config's default."""
    for override in reversed(overrides):
        key, _, value = override.partition("=")
        if key.lstrip("~+") == group:
            return value
    return default_choice(group, config_root)


def _failing_override(overrides: Sequence[str]) -> Optional[str]:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    for override in overrides:
        try:
            parser.parse_overrides([override])
        except Exception:  # noqa: BLE001 - Hydra's parse errors have several types
            return override
    return None


def explain_error(exc: BaseException, name: str, config_root: Optional[Path] = None, overrides: Sequence[str] = ()) -> Problem:
    """One sentence from a Hydra/OmegaConf composition error, with the fix where the slip is a known one."""
    import re

    from hydra.errors import MissingConfigException, OverrideParseException

    from . import hints

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
                f"model={quote(name)}: no such model{suggest(name, models)}; "
                f"lucid_arch.list_models() lists them: {', '.join(models)}.",
            )
        return Problem("model", f"{quote(name)}: {quote(str(exc).splitlines()[0], 300)} (check its defaults list).")
    if isinstance(exc, OverrideParseException):
        bad = _failing_override(overrides)
        tasks = [p.stem for p in (Path(config_root or config_dir()) / "task").glob("*.yaml") if not p.stem.startswith("_")]
        fix = hints.unparsable(bad, list_models(config_root=config_root), tasks) if bad else None
        if fix:
            return Problem("overrides", fix)
        return Problem("overrides", f"cannot parse override: {quote(str(exc).splitlines()[0], 300)} (quote lists: 'model.depths=[3,4,6,3]').")
    text = str(cause).splitlines()[0]
    ambiguous = re.match(r"Ambiguous value for argument '(.*)'$", text)
    if ambiguous:
        return Problem("overrides", hints.ambiguous(ambiguous.group(1)))
    key = getattr(cause, "full_key", None) or getattr(exc, "full_key", None)
    if key and ("not in struct" in text or re.search(r"Key '[^']*' not in '", text)):
        key = str(key)
        section = key.split(".")[1] if key.count(".") == 2 else None
        if key.startswith("model.") and section in SECTIONS:
            return Problem(key, unknown_key_message(quote(key), SECTIONS[section]))
        if key.startswith("model."):
            return Problem(key, f"{quote(key)}: unknown key, not a field of the model schema{suggest(key.split('.')[-1], field_names())}.")
        task_dir = Path(config_root or config_dir()) / "task"
        return Problem(key, hints.unknown_key(key, chosen("task", overrides, config_root), task_dir))
    return Problem(str(key or "model"), f"{quote(key) + ': ' if key else ''}{quote(text, 300)}.")


MOUNT_PREFIX = "_file_"  # a YAML path given by path is mounted as model/_file_<stem>


@contextlib.contextmanager
def _model_choice(name: str) -> Iterator[list[str]]:
    """Overrides selecting ``name``: a shipped variant, or a YAML file anywhere on disk.

    A file is mounted as the only member of a temporary ``model`` group on Hydra's search path,
    so its defaults list can still extend shipped variants (``defaults: [pvt_v2_b2, _self_]``).
    It is read under the model-file rules first (:mod:`~lucid_arch.config.model_files`).
    """
    if not is_yaml_path(name):
        yield [f"model={name}"]
        return
    path = Path(name).expanduser()
    if not path.is_file():
        raise ConfigError([Problem("model", f"model file {quote(name)}: not found; give a variant name or an existing YAML path.")], name)
    if not valid_name(path.stem):
        raise ConfigError(
            [Problem("model", f"model file {quote(name)}: name it with letters, digits and _ . - only (the name becomes the variant's name).")],
            name,
        )
    checked = read_model_path(str(path), path.stem, str(path.resolve().parent))
    if checked.problems:
        raise ConfigError(checked.problems, name)
    mounted = f"{MOUNT_PREFIX}{path.stem}"
    with tempfile.TemporaryDirectory(prefix="lucid_arch_") as tmp, labelled(mounted, display_path(path)):
        (Path(tmp) / "model").mkdir()
        (Path(tmp) / "model" / f"{mounted}.yaml").write_bytes(path.read_bytes())
        choice = [f"model={mounted}", f"hydra.searchpath=[file://{tmp}]"]
        if "name" not in checked.data:  # else it would report the name of the variant it extends
            choice.append(f"model.name={path.stem}")
        yield choice
