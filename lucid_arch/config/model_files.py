"""Model files are data: the rules every ``model/*.yaml`` obeys before Hydra may read it.

A model file can come from a stranger: a pull request that ``lucid-arch-diff`` reviews in CI,
or a directory of variants passed with ``-cd``. Left to themselves, Hydra and OmegaConf would
follow such a file anywhere: a ``# @package _global_`` header reaches ``hydra.callbacks`` (code
runs), a defaults entry like ``/../../x@key`` reads a file outside the tree, ``${oc.env:TOKEN}``
reads the environment, and a 500-byte alias bomb or a deeply nested list exhausts memory.

So a model file is read here first, by a bounded parser, and must be plain data:

- at most :data:`MAX_FILE_BYTES`, UTF-8, no YAML anchors, aliases, merge keys or explicit tags
  (``!!python/...``), no duplicate keys, bounded nesting and node count;
- a mapping of model fields, with scalars, lists and nothing else; no ``${...}`` anywhere;
- no ``# @`` header (a model file is always merged into ``model``);
- a ``defaults`` list naming only other model files of the same directory (and ``_self_``).

Nothing here imports Hydra or torch; :mod:`lucid_arch.config.guard` applies these rules to
every model file Hydra loads, and the diff tool applies them to reviewed trees.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from .checks import Problem

MAX_FILE_BYTES = 64 * 1024  # the shipped variants are under 1 KiB
MAX_NODES = 5_000  # YAML nodes in one file
MAX_DEPTH = 8  # nesting: a mapping of lists of scalars needs 3
MAX_SCALAR_CHARS = 4_096  # longer than any path a `pretrained` value needs
MAX_CHAIN_VISITS = 256  # defaults-list entries Hydra would expand for one variant
MAX_LABEL_CHARS = 120
SELF = "_self_"
SCHEMA = "_schema"  # the typed dataclass, from Hydra's ConfigStore (lucid_arch.config.schema)
NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$")  # no '/', '@', '$'; '..' checked apart
_HEADER_RE = re.compile(r"^#\s*@")
_SCALAR_TYPES = (str, int, float, bool, type(None))


def quote(text: Any, limit: int = MAX_LABEL_CHARS) -> str:
    """``text`` safe to print anywhere: control characters escaped, length capped.

    File names and keys from a reviewed tree end up in terminal output and error messages, where
    an escape sequence could rewrite the screen; they are shown this way.
    """
    s = str(text)
    out = "".join(c if c.isprintable() else repr(c)[1:-1] for c in s)
    return out if len(out) <= limit else out[: limit - 1] + "…"


def valid_name(name: str) -> bool:
    """A model file name (without .yaml) that Hydra reads as one plain config of the group."""
    return bool(NAME_RE.match(name)) and ".." not in name


def name_problem(name: str, label: str) -> Optional[Problem]:
    if valid_name(name):
        return None
    return Problem(
        "model",
        f"{quote(label)}: {quote(name)!r} is not a usable model file name; a model file is named with letters, "
        "digits and _ . - only (no '/', '@', '$', '{', spaces or '..'), e.g. my_variant.yaml.",
    )


@dataclass
class ModelFile:
    """One parsed, checked model file."""

    name: str
    label: str  # how reports name it: a path, or REV:path
    data: dict[str, Any] = field(default_factory=dict)  # the fields it sets (defaults removed)
    parents: tuple[str, ...] = ()  # its defaults entries, in order, _self_ included
    lines: dict[str, int] = field(default_factory=dict)  # top-level key -> 1-based line
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class _Refused(Exception):
    def __init__(self, what: str, mark: Any, fix: str):
        super().__init__(what)
        self.what, self.fix = what, fix
        self.line = mark.line + 1 if mark is not None else None


def _bounded_loader():
    """A pure-Python SafeLoader that refuses what a model file never needs, before building it."""
    import yaml

    class Loader(yaml.SafeLoader):
        def __init__(self, stream: str):
            super().__init__(stream)
            self._nodes = 0
            self._depth = 0

        def compose_node(self, parent, index):  # noqa: ANN001 - PyYAML's signature
            event = self.peek_event()
            if isinstance(event, yaml.AliasEvent):
                raise _Refused("a YAML alias (*name)", event.start_mark, "write the value out")
            if getattr(event, "anchor", None) is not None:
                raise _Refused("a YAML anchor (&name)", event.start_mark, "write the value out")
            if getattr(event, "tag", None) is not None:
                raise _Refused(f"an explicit YAML tag ({quote(event.tag, 60)})", event.start_mark, "write plain values")
            if isinstance(event, yaml.ScalarEvent) and len(event.value) > MAX_SCALAR_CHARS:
                raise _Refused(f"a value longer than {MAX_SCALAR_CHARS:,} characters", event.start_mark, "shorten it")
            self._nodes += 1
            if self._nodes > MAX_NODES:
                raise _Refused(f"more than {MAX_NODES:,} YAML nodes", event.start_mark, "a model file needs a few dozen")
            self._depth += 1
            if self._depth > MAX_DEPTH:
                raise _Refused(f"nesting deeper than {MAX_DEPTH} levels", event.start_mark, "model fields are numbers, strings and flat lists")
            try:
                return super().compose_node(parent, index)
            finally:
                self._depth -= 1

        def construct_mapping(self, node, deep=False):  # noqa: ANN001
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    raise _Refused("a YAML merge key (<<)", key_node.start_mark, "write the keys out")
                key = self.construct_object(key_node, deep=True)
                if not isinstance(key, str):
                    raise _Refused(f"a key that is not a string ({quote(repr(key), 40)})", key_node.start_mark, "keys are field names")
                if key in seen:
                    raise _Refused(f"the key {quote(key, 40)!r} twice (first on line {seen[key]})", key_node.start_mark, "keep one")
                seen[key] = key_node.start_mark.line + 1
            return super().construct_mapping(node, deep=deep)

    return Loader


def _header_problem(text: str) -> Optional[str]:
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        if not stripped.startswith("#"):
            return None
        if _HEADER_RE.match(stripped):
            return (
                f"a '{quote(stripped, 60)}' header; model files carry no @package (or other @) directive, "
                "they are always merged into `model`. Delete the line."
            )
    return None


def _content_problems(value: Any, path: str, where: Callable[[str], str]) -> list[str]:
    """Interpolations and unsupported value types anywhere in a parsed value."""
    out: list[str] = []
    stack = [(path, value)]
    while stack:
        key, v = stack.pop()
        if isinstance(v, dict):
            for k, item in v.items():
                if "${" in k:
                    out.append(f"{where(key)}{quote(key + '.' + k)}: a ${{...}} interpolation in a key; write the key itself.")
                stack.append((f"{key}.{k}", item))
        elif isinstance(v, list):
            stack.extend((f"{key}[{i}]", item) for i, item in enumerate(v))
        elif not isinstance(v, _SCALAR_TYPES):
            out.append(f"{where(key)}{quote(key)} = {quote(repr(v), 60)}: not a plain value (a {type(v).__name__}); use a number, string, true/false or null.")
        elif isinstance(v, str) and "${" in v:
            out.append(
                f"{where(key)}{quote(key)} = {quote(v, 60)!r}: a ${{...}} interpolation, which a model file may not hold "
                "(resolving one can read the environment or other files); write the value itself."
            )
    return out


def _parents(entries: Any, label: str) -> tuple[tuple[str, ...], list[str]]:
    hint = (
        "a model file's defaults list names other model files of the same directory and _self_, "
        "e.g. defaults: [pvt_v2_b2, _self_]"
    )
    if entries is None:
        return (), []
    if not isinstance(entries, list):
        return (), [f"{quote(label)}: defaults = {quote(repr(entries), 60)}: expected a list; {hint}."]
    out: list[str] = []
    problems: list[str] = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, str):
            problems.append(
                f"{quote(label)}: defaults[{i}] = {quote(repr(entry), 60)}: group choices, overrides and optional "
                f"entries are not allowed here; {hint}."
            )
        elif entry != SELF and not valid_name(entry):
            problems.append(
                f"{quote(label)}: defaults[{i}] = {quote(entry, 60)!r}: not a model file of this directory "
                f"(no paths, '..', '@package' or interpolations); {hint}."
            )
        elif entry in out:
            problems.append(f"{quote(label)}: defaults[{i}] = {quote(entry, 60)!r} is listed twice; {hint}.")
        else:
            out.append(entry)
    return tuple(out), problems


def parse_model_file(raw: bytes, name: str, label: str) -> ModelFile:
    """Read one model file's bytes; every rule it breaks is a :class:`Problem`, nothing raises."""
    import yaml

    result = ModelFile(name=name, label=label)

    def fail(message: str) -> ModelFile:
        result.problems.append(Problem("model", message))
        return result

    bad_name = name_problem(name, label)
    if bad_name:
        result.problems.append(bad_name)
        return result
    if len(raw) > MAX_FILE_BYTES:
        return fail(f"{quote(label)}: {len(raw):,} bytes; a model file may hold at most {MAX_FILE_BYTES:,}.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        return fail(f"{quote(label)}: not UTF-8 text (byte {err.start} is 0x{raw[err.start]:02x}); save the file as UTF-8.")
    header = _header_problem(text)
    if header:
        return fail(f"{quote(label)}: {header}")
    loader = _bounded_loader()(text)
    try:
        content = loader.get_single_data()
    except _Refused as err:
        where = f", line {err.line}" if err.line else ""
        return fail(f"{quote(label)}{where}: {err.what} is not allowed in a model file; {err.fix}.")
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = getattr(err, "problem", None) or str(err).splitlines()[0]
        return fail(f"{quote(label)}: invalid YAML{where}: {quote(what)}; fix the file's syntax.")
    except (ValueError, OverflowError, RecursionError) as err:  # e.g. an int too long to convert
        return fail(f"{quote(label)}: a value cannot be read ({quote(err, 80)}); write plain numbers and strings.")
    finally:
        loader.dispose()
    if content is None:
        content = {}
    if not isinstance(content, dict):
        return fail(f"{quote(label)}: expected a mapping of model fields, got a {type(content).__name__}.")
    result.lines = top_level_lines(text)
    parents, problems = _parents(content.pop("defaults", None), label)
    result.parents = parents
    result.data = content
    result.problems += [Problem("model", p) for p in problems]
    result.problems += [
        Problem("model", p) for p in _content_problems(content, "model", lambda key: f"{quote(label)}: ")
    ]
    return result


def top_level_lines(text: str) -> dict[str, int]:
    """Top-level key -> line, for error messages (a cheap scan; the file already parsed)."""
    out: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        match = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)\s*:", line)
        if match and match.group(1) not in out:
            out[match.group(1)] = number
    return out


def check_loaded_model(content: Any, header_package: Optional[str], label: str) -> list[Problem]:
    """The same rules for a config Hydra already loaded from a non-file source (``pkg://``)."""
    problems: list[str] = []
    if header_package is not None:
        problems.append(f"{quote(label)}: a '# @package {quote(header_package, 40)}' header; model files carry no @package directive.")
    if isinstance(content, dict):
        content = dict(content)
        _, parent_problems = _parents(content.pop("defaults", None), label)
        problems += parent_problems
        problems += _content_problems(content, "model", lambda key: f"{quote(label)}: ")
    return [Problem("model", p) for p in problems]


# --- a variant's whole chain ---------------------------------------------------------------------


def resolve_chain(name: str, load: Callable[[str], Optional[ModelFile]]) -> tuple[dict[str, ModelFile], list[Problem]]:
    """Every model file ``name`` extends, checked, before Hydra expands its defaults list.

    ``load(name)`` returns a parsed file or None when there is none. Hydra re-expands a parent
    each time it is reached (a diamond is merged twice) and recurses forever on a cycle, so
    both are bounded here: cycles are refused, and so is a chain whose expansion would exceed
    :data:`MAX_CHAIN_VISITS` entries.
    """
    files: dict[str, ModelFile] = {}
    problems: list[Problem] = []
    visits: dict[str, int] = {}

    def walk(current: str, stack: tuple[str, ...], referrer: Optional[str]) -> int:
        if current == SCHEMA:
            return 1
        if current in stack:
            cycle = " -> ".join(quote(s, 40) for s in (*stack[stack.index(current):], current))
            problems.append(Problem("model", f"defaults cycle {cycle}; a variant cannot extend itself."))
            return 1
        if current in visits:
            return visits[current]
        if current not in files:
            loaded = load(current)
            if loaded is None:
                where = f"{quote(files[referrer].label)}: defaults names {quote(current, 60)!r}" if referrer else f"model={quote(current, 60)}"
                problems.append(Problem("model", f"{where}, but there is no model file of that name; check its defaults list."))
                visits[current] = 1
                return 1
            files[current] = loaded
            problems.extend(loaded.problems)
            if not loaded.ok:
                visits[current] = 1
                return 1
        count = 1 + sum(walk(p, (*stack, current), current) for p in files[current].parents if p != SELF)
        visits[current] = count
        return count

    total = walk(name, (), None)
    if total > MAX_CHAIN_VISITS and not problems:
        problems.append(
            Problem("model", f"model={quote(name, 60)}: its defaults lists expand to {total:,} entries (at most {MAX_CHAIN_VISITS}); "
                    "a variant should extend a short chain of parents.")
        )
    return files, problems
