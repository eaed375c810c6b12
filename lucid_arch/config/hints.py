"""One-sentence fixes for the slips people make in Hydra overrides.

Hydra reports these in its own terms ("Ambiguous value for argument", "LexerNoViableAltException",
"Key 'epoch' not in 'TrainConfig'"), which say what failed but not what to type instead. Each
function here recognises one slip from the failing override and the override list, and returns
the sentence a user needs, or None when it is not that slip. Nothing here imports torch.
"""

from __future__ import annotations

import difflib
import functools
from pathlib import Path
from typing import Optional, Sequence

from .checks import suggest
from .model_files import quote
from .schema import field_names


def _key_value(override: str) -> tuple[str, str]:
    key, _, value = override.partition("=")
    return key.lstrip("~+"), value


def ambiguous(override: str) -> str:
    """``model=a,b`` or ``model.depths=3,4,18,3`` outside a multirun."""
    key, value = _key_value(override)
    q = quote(override, 80)
    if key.startswith("model.") or "." in key:
        return f"{q}: a comma outside brackets gives several values; to set a list, quote it with brackets: '{key}=[{value}]'; to sweep the values, add -m."
    return f"{q}: several values in one run; add -m to sweep them (lucid-arch -m {q}), or give one value."


def unparsable(override: str, model_names: Sequence[str], task_names: Sequence[str]) -> Optional[str]:
    """A bare word (``pvt_v2_b2``), or a value Hydra's grammar cannot read (``~/w.pth``)."""
    q = quote(override, 80)
    if "=" not in override:
        close = [override] if override in model_names else difflib.get_close_matches(override, model_names, n=1, cutoff=0.6)
        if close:
            return f"{q}: an override is KEY=VALUE; did you mean model={close[0]}?"
        if override in task_names:
            return f"{q}: an override is KEY=VALUE; did you mean task={override}?"
        return f"{q}: an override is KEY=VALUE, e.g. model=pvt_v2_b2 or 'model.depths=[3,4,18,3]'."
    key, value = _key_value(override)
    if "~" in value:
        home = f"{key}=$HOME{value[1:]}" if value.startswith("~") else f"{key}=$HOME/..."
        return (
            f"{q}: Hydra's override grammar does not take a bare '~' in a value; quote the value, "
            f"""'{key}="{value}"', or let the shell expand it: {home}."""
        )
    return None


@functools.lru_cache(maxsize=1)
def task_keys(task_dir: str) -> dict[str, frozenset[str]]:
    """Task name -> its dotted settings (``epochs``, ``data.image_size``), from conf/task and the task schemas."""
    import yaml

    from .export_schema import field_help as export_help
    from .train_schema import field_help as train_help

    schemas = {"train": train_help, "export": export_help}  # tasks typed by a schema: every key, nested ones too
    out: dict[str, frozenset[str]] = {}
    for path in sorted(Path(task_dir).glob("*.yaml")):
        if path.stem.startswith("_"):
            continue
        content = yaml.safe_load(path.read_text()) or {}
        keys = {k for k in content if k != "defaults"}
        if path.stem in schemas:
            keys |= set(schemas[path.stem]())
        out[path.stem] = frozenset(keys)
    return out


def unknown_key(key: str, selected_task: str, task_dir: Path) -> str:
    """A key that is not in the composed config: a model field without ``model.``, a setting of another task, a typo."""
    if "." not in key and key in field_names():
        return f"{quote(key)}: not a key at the top level; did you mean model.{key}? (model fields are set as model.FIELD=VALUE)."
    if key.startswith("task."):
        setting = key[len("task.") :]
        tasks = task_keys(str(task_dir))
        own = tasks.get(selected_task, frozenset())
        owners = [t for t, keys in tasks.items() if setting in keys and t != selected_task]
        if owners:
            return f"{quote(key)}: not a setting of task={selected_task}; it belongs to task={owners[0]} (add task={owners[0]})."
        return f"{quote(key)}: not a setting of task={selected_task}{suggest(setting, own)}; `lucid-arch task={selected_task} --cfg job` lists them."
    owners = [t for t, keys in task_keys(str(task_dir)).items() if key in keys]
    if owners:
        return f"{quote(key)}: not a key at the top level; did you mean task.{key} (with task={owners[0]})?"
    return f"{quote(key)}: unknown key (`lucid-arch --cfg job` shows the keys there are; prefix + to add one)."
