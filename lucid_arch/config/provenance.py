"""Where a composed model config's values come from: its defaults chain and who set each field.

A variant file states only how it differs from what it extends, so a reviewer reading one YAML
cannot see which file a value was inherited from, and a text diff of it hides inherited
changes. This module replays Hydra's own defaults list (the merge order Hydra composes in)
rather than parsing ``defaults:`` by hand, so ``_self_`` placement, nested parents and
search-path files resolve exactly as in :func:`~lucid_arch.config.compose.load_config`.

Nothing here validates or builds: a config with an unknown key or a ``_target_`` still gets
its provenance (naming the file that smuggled the key), and no torch is imported.

    >>> defaults_chain("pvt_v2_b2_li")  # doctest: +SKIP
    ['schema default', 'conf/model/_pvt_v2.yaml', 'conf/model/pvt_v2_b1.yaml',
     'conf/model/pvt_v2_b2.yaml', 'conf/model/pvt_v2_b2_li.yaml']
    >>> value_sources("pvt_v2_b2_li", ["model.depths=[3,4,18,3]"])["depths"]  # doctest: +SKIP
    'override model.depths=[3,4,18,3]'
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Optional, Sequence

from .checks import ConfigError
from .hydra_session import PRIMARY_CONFIG, Dirs, _hydra_initialized, _model_choice, config_dir, explain_error
from .model_files import top_level_lines
from .paths import display_path
from .schema import SECTIONS, field_names
from .store import register_configs

SCHEMA_SOURCE = "schema default"  # the typed dataclass ModelConfig, ConfigStore's model/_schema
OVERRIDE_PREFIX = "override "
MODEL_PACKAGE = "model"


@dataclass(frozen=True)
class Source:
    """One step of the chain: a label for people, and the model fields it sets."""

    label: str
    keys: tuple[str, ...]
    lines: tuple[tuple[str, int], ...] = ()  # key -> line in the file, where the source is a file


@dataclass(frozen=True)
class Provenance:
    sources: tuple[Source, ...]  # merge order: later sources win

    @property
    def chain(self) -> list[str]:
        return [s.label for s in self.sources]

    @property
    def values(self) -> dict[str, str]:
        """Field -> label of the last source that set it; every schema field is present, and every
        section field (``decode_head.channels``) apart from the section's other fields."""
        out = dict.fromkeys(_source_keys(), SCHEMA_SOURCE)
        for source in self.sources:
            out.update(dict.fromkeys(source.keys, source.label))
        return out

    def where(self, key: str) -> Optional[str]:
        """'conf/model/x.yaml, line 4' (or the override) behind a key such as ``model.depths[1]``; None for schema defaults."""
        name = source_key(key)
        if name is None:
            return None
        found = None
        for source in self.sources:
            if name in source.keys:
                found = source
        if found is None or found.label == SCHEMA_SOURCE:
            return None
        lines = dict(found.lines)
        line = lines.get(name, lines.get(name.split(".")[0]))  # a section's field: the section's line
        return f"{found.label}, line {line}" if line else found.label


def defaults_chain(
    name_or_path: str,
    overrides: Sequence[str] = (),
    config_root: Optional[Path] = None,
    display_root: Optional[str] = None,
    extra_dirs: Dirs = (),
) -> list[str]:
    """The ordered sources of a model config: schema, family base, parents, the variant, overrides.

    Files are labelled by path (relative to the working directory when inside it); see
    :func:`provenance` for ``config_root`` and ``display_root``.
    """
    return provenance(name_or_path, overrides, config_root, display_root, extra_dirs).chain


def value_sources(
    name_or_path: str,
    overrides: Sequence[str] = (),
    config_root: Optional[Path] = None,
    display_root: Optional[str] = None,
    extra_dirs: Dirs = (),
) -> dict[str, str]:
    """Model field -> the file or override that last set it (:data:`SCHEMA_SOURCE` where none did).

    Keys a file sets that the schema lacks (a smuggled ``_target_``) are included, so an error
    about them can name the file.
    """
    return provenance(name_or_path, overrides, config_root, display_root, extra_dirs).values


def provenance(
    name_or_path: str,
    overrides: Sequence[str] = (),
    config_root: Optional[Path] = None,
    display_root: Optional[str] = None,
    extra_dirs: Dirs = (),
) -> Provenance:
    """Chain and per-field sources in one composition.

    ``config_root`` composes against another config tree (as :func:`load_config` does);
    ``display_root`` then replaces that tree's path in labels, e.g. ``origin/main:conf`` for
    a tree checked out of git into a temporary directory. Raises :class:`ConfigError` when the
    defaults list itself cannot be resolved (a missing parent, a bad override).
    """
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    register_configs()
    root = Path(config_root or config_dir()).resolve()
    user = list(overrides)
    with _model_choice(name_or_path) as choice:
        with _hydra_initialized(root, extra_dirs):
            try:
                defaults, repo = _defaults_list([*choice, *user])
                files = [_file_source(repo, d, root, display_root, name_or_path, choice) for d in defaults.defaults]
            except (HydraException, OmegaConfBaseException) as exc:
                raise ConfigError([explain_error(exc, name_or_path, config_root)], name_or_path) from None
        sources = [s for s in files if s is not None]
        mounted_label = sources[-1].label if sources else name_or_path
        for override in defaults.overrides.config_overrides:
            key = source_key(override.key_or_group)
            if key is None:
                continue
            keys = _expanded(key)
            if override.input_line in user:
                sources.append(Source(OVERRIDE_PREFIX + override.input_line, keys))
            else:  # added by load_config for a file without `name:`; the file is the source
                sources.append(Source(mounted_label, keys))
    return Provenance(tuple(_merge_adjacent(sources)))


def _defaults_list(overrides: list[str]):
    """Hydra's defaults list and the config repository it was resolved with.

    This is ``ConfigLoaderImpl.compute_defaults_list`` (Hydra 1.3) keeping its repository:
    the public loader's own repository lacks ``hydra.searchpath`` entries, where a YAML path
    is mounted, so files found through the search path could not be read back otherwise.
    """
    from hydra._internal.defaults_list import create_defaults_list
    from hydra.core.global_hydra import GlobalHydra

    loader = GlobalHydra.instance().config_loader()
    parsed, repo = loader._parse_overrides_and_create_caching_repo(PRIMARY_CONFIG, overrides)
    defaults = create_defaults_list(
        repo=repo, config_name=PRIMARY_CONFIG, overrides_list=parsed, prepend_hydra=False, skip_missing=False
    )
    return defaults, repo


def _merge_adjacent(sources: list[Source]) -> list[Source]:
    out: list[Source] = []
    for s in sources:
        if out and out[-1].label == s.label:
            out[-1] = Source(s.label, tuple(dict.fromkeys(out[-1].keys + s.keys)), out[-1].lines + s.lines)
        else:
            out.append(s)
    return out


def source_key(key: Optional[str]) -> Optional[str]:
    """'model.depths' (or 'model.depths.1') -> 'depths', 'model.decode_head.channels' -> 'decode_head.channels';
    None for keys outside the model."""
    if not key or not key.startswith(MODEL_PACKAGE + "."):
        return None
    parts = [p.split("[")[0] for p in key[len(MODEL_PACKAGE) + 1 :].split(".")]
    return ".".join(parts[:2]) if parts[0] in SECTIONS and len(parts) > 1 else parts[0]


def _section_fields(section: str) -> tuple[str, ...]:
    return tuple(f"{section}.{f.name}" for f in fields(SECTIONS[section]))


def _source_keys() -> list[str]:
    """Every key a source can set: the schema's fields, a section's own fields in its place."""
    return [k for name in field_names() for k in (_section_fields(name) if name in SECTIONS else (name,))]


def _expanded(key: str) -> tuple[str, ...]:
    """A whole section (``model.decode_head={...}``) sets every field of it."""
    return _section_fields(key) if key in SECTIONS else (key,)


def _file_source(
    repo, default, root: Path, display_root: Optional[str], name: str, choice: list[str]
) -> Optional[Source]:
    """The Source of one defaults-list entry, or None when it sets nothing in the model."""
    from omegaconf import OmegaConf

    if default.config_path is None:
        return None
    loaded = repo.load_config(default.config_path)
    if loaded is None:
        return None
    content = OmegaConf.to_container(loaded.config, resolve=False) if loaded.config is not None else {}
    content = content if isinstance(content, dict) else {}
    if default.package == MODEL_PACKAGE:
        values = {str(k): v for k, v in content.items() if k != "defaults"}
    elif default.package == "" and isinstance(content.get(MODEL_PACKAGE), dict):
        values = {str(k): v for k, v in content[MODEL_PACKAGE].items()}
    else:
        return None
    # A section given as a mapping sets the fields it names; given whole (null, a scalar the schema
    # will reject) it stands for every field of it.
    keys = tuple(
        key
        for k, v in values.items()
        for key in ((f"{k}.{sub}" for sub in v) if k in SECTIONS and isinstance(v, dict) else _expanded(k))
    )
    if loaded.is_schema_source or str(loaded.path).startswith("structured://"):
        return Source(SCHEMA_SOURCE, ())  # schema values are what value_sources reports by default
    lines = _lines(str(loaded.path), default.config_path)
    mounted = choice[0].split("=", 1)[1] if choice else None
    if default.config_path == f"{MODEL_PACKAGE}/{mounted}" and mounted != name:
        return Source(name, keys, lines)  # a YAML path mounted by load_config: label it as given
    return Source(_label(str(loaded.path), default.config_path, root, display_root), keys, lines)


def _file(provider_path: str, config_path: str) -> Path:
    return Path(provider_path.removeprefix("file://")) / f"{config_path}.yaml"


def _lines(provider_path: str, config_path: str) -> tuple[tuple[str, int], ...]:
    if not provider_path.startswith("file://"):
        return ()
    try:  # already read once under the model-file rules, so small and UTF-8
        text = _file(provider_path, config_path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ()
    return tuple({**top_level_lines(text), **section_field_lines(text)}.items())


def section_field_lines(text: str) -> dict[str, int]:
    """'decode_head.channels' -> its line, for the fields a section sets in block style.

    An error in a section's field then points at the field's own line, not the section's; a
    section written in flow style (``decode_head: {type: fpn}``) keeps the section's line.
    """
    out: dict[str, int] = {}
    section, indent = None, None
    for number, line in enumerate(text.splitlines(), start=1):
        top = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)\s*:", line)
        if top:
            section, indent = (top.group(1), None) if top.group(1) in SECTIONS else (None, None)
            continue
        nested = re.match(r"^(\s+)([A-Za-z_][A-Za-z0-9_]*)\s*:", line) if section else None
        if nested and indent in (None, len(nested.group(1))):  # the section's own fields, not a deeper level's
            indent = len(nested.group(1))
            out.setdefault(f"{section}.{nested.group(2)}", number)
    return out


def _label(provider_path: str, config_path: str, root: Path, display_root: Optional[str]) -> str:
    path = _file(provider_path, config_path).resolve()
    if display_root is not None and path.is_relative_to(root):
        sep = "" if display_root.endswith((":", "/")) else "/"
        return f"{display_root}{sep}{path.relative_to(root).as_posix()}"
    return display_path(path)
