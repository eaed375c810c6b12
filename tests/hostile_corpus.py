"""A corpus of hostile model files, as a stranger's pull request could hold them.

Each case is a variant file (its name is the case) built around three canaries: an environment
variable, a file outside the tree, and an importable module that leaves a marker file behind
when it is imported. A safe tool never prints the first two, and never imports the third.
Used by tests/test_hostile.py through the diff tool (files and git revisions), the app (-cd)
and the Python API, and by the CI example's test.
"""

from __future__ import annotations

import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path

ENV = "LUCID_CANARY_SECRET"
MODULE = "lucid_canary_module"

# Cases whose config is valid: they test that output is inert, not that they are refused.
VALID = {"markup_name", "control_name"}
# Cases reachable only through the diff's review of a directory (a name nobody types).
NAME_ONLY = {"${oc.env:LUCID_CANARY_SECRET}"}


@dataclass(frozen=True)
class Canaries:
    secret: str  # the environment variable's value
    outside: Path  # a file outside the tree; its text must never be printed
    outside_text: str
    module_dir: Path  # on PYTHONPATH; importing the module creates `marker`
    marker: Path

    def env(self) -> dict[str, str]:
        return {**os.environ, ENV: self.secret, "PYTHONPATH": str(self.module_dir)}

    def leaked(self, *texts: str) -> list[str]:
        """Which canaries appear in ``texts`` (or were triggered)."""
        found = []
        joined = "\n".join(texts)
        if self.secret in joined:
            found.append("environment secret")
        if self.outside_text in joined:
            found.append("outside file")
        if self.marker.exists() or MODULE in sys.modules:
            found.append("module imported")
        return found


def make_canaries(root: Path) -> Canaries:
    token = secrets.token_hex(6)
    outside = root / "outside"
    outside.mkdir(parents=True, exist_ok=True)
    text = f"canary-file-{token}"
    (outside / "creds.yaml").write_text(f"qk_scale: 0.125\nname: {text}\n")
    (outside / "config.json").write_text(f'{{"auths": "{text}"}}\n')
    module_dir = root / "modules"
    module_dir.mkdir(exist_ok=True)
    marker = root / "imported"
    (module_dir / f"{MODULE}.py").write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).write_text('imported')\ndef boom(*a, **k):\n    return 0\n"
    )
    return Canaries(f"canary-env-{token}", outside / "creds.yaml", text, module_dir, marker)


def _alias_bomb() -> str:
    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for i in range(1, 12):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]")
    return "\n".join(lines) + "\nname: *a11\n"


def cases(c: Canaries) -> dict[str, bytes]:
    """Case name -> file bytes; a name starting with '_' is a helper file, not a case."""
    base = "defaults: [pvt_v2_b0, _self_]\n"
    rel = os.path.relpath(c.outside.parent, "/")
    out: dict[str, str | bytes] = {
        # interpolations in every position
        "interp_value": base + f"name: ${{oc.env:{ENV}}}\n",
        "interp_key": base + f'"${{oc.env:{ENV}}}": 1\n',
        "interp_list": base + f'depths: [2, "${{oc.env:{ENV}}}", 2, 2]\n',
        "interp_defaults": f'defaults: ["${{oc.env:{ENV}}}", _self_]\n',
        "interp_package": 'defaults: [pvt_v2_b0, "_leak@name", _self_]\n',
        "_leak": f"x: ${{oc.env:{ENV}}}\n",
        "interp_relative": base + "name: ${.embed_dims}\n",
        "${oc.env:LUCID_CANARY_SECRET}": base,
        # escapes from the tree: defaults paths, packages, symlinks
        "escape_absolute": f'defaults: [pvt_v2_b0, "/../../../../../../{rel}/creds@qk_scale", _self_]\n',
        "escape_relative": f'defaults: [pvt_v2_b0, "../../../../../../../{rel}/creds", _self_]\n',
        "escape_group": 'defaults: [pvt_v2_b0, "/hydra/launcher/basic@name", _self_]\n',
        "escape_link_parent": "defaults: [_link, _self_]\n",
        # code: headers, hydra keys, targets, tags
        "package_global": f"# @package _global_\nhydra:\n  callbacks:\n    boom:\n      _target_: {MODULE}.boom\n",
        "package_hydra": f"# @package hydra\nsearchpath: [pkg://{MODULE}]\n",
        "hydra_searchpath": base + f"hydra:\n  searchpath: [pkg://{MODULE}]\n",
        "target": base + f"_target_: {MODULE}.boom\n",
        "python_tag": base + f"name: !!python/object/apply:{MODULE}.boom []\n",
        "python_name_tag": base + f"name: !!python/name:{MODULE}.boom\n",
        "override_entry": 'defaults: [pvt_v2_b0, {override /hydra/launcher: basic}, _self_]\n',
        # cost: aliases, nesting, huge numbers, cycles, size
        "alias_bomb": _alias_bomb(),
        "deep_nesting": base + "name: " + "[" * 3000 + "]" * 3000 + "\n",
        "huge_depth": base + "depths: [99999999999999999999999, 2, 2, 2]\n",
        "huge_digits": base + "depths: [" + "9" * 4000 + ", 2, 2, 2]\n",
        "huge_float": base + "mlp_ratios: [1.0e+308, 8, 4, 4]\n",
        "tiny_ratio": base + "mlp_ratios: [0.000001, 8, 4, 4]\n",
        "many_stages": base + "embed_dims: [" + ", ".join(["32"] * 500) + "]\n",
        # the dense-prediction sections: code, interpolation, cost, nesting inside them
        "section_target": base + f"num_classes: 3\ndecode_head:\n  type: all_mlp\n  _target_: {MODULE}.boom\n",
        "section_interp": base + f"num_classes: 3\ndecode_head:\n  type: all_mlp\n  channels: ${{oc.env:{ENV}}}\n",
        "section_huge": base + "num_classes: 3\nneck:\n  type: fpn\n  num_outs: 99999999999999\ndecode_head:\n"
        "  type: fpn\n  channels: 99999999999999999999999\n  in_index: [" + ", ".join(["7"] * 2000) + "]\n",
        "section_nested": base + "decode_head:\n  type: {a: {b: {c: [1, 2]}}}\n",
        "section_not_a_mapping": base + f"decode_head: {MODULE}.boom\n",
        "cycle": "defaults: [_cycle_b, _self_]\nname: cycle\n",
        "_cycle_b": "defaults: [cycle, _self_]\n",
        "diamond_bomb": "defaults: [_dia0_a, _dia0_b, _self_]\n",
        "too_big": base + "# " + "x" * 70_000 + "\n",
        # bytes and structure
        "bad_utf8": (base + "name: caf").encode() + b"\xe9\xff\n",
        "duplicate_keys": base + "depths: [1, 1, 1, 1]\ndepths: [2, 2, 2, 2]\n",
        "not_a_mapping": "- 1\n- 2\n",
        "date_value": base + "name: 2024-01-01\n",
        # valid configs whose values try to become markup or terminal control
        "markup_name": base
        + 'name: "</details><img src=x onerror=alert(1)> @everyone [click](https://evil.example) [bold red]x[/] | `tick`"\n',
        "control_name": base + 'name: "\\e[2J\\e]0;owned\\a\\u202Egnp.exe"\n',
    }
    for i in range(24):  # each level names the next twice: Hydra would expand 2**24 entries
        out[f"_dia{i}_a"] = f"defaults: [_dia{i + 1}_a, _dia{i + 1}_b, _self_]\n"
        out[f"_dia{i}_b"] = f"defaults: [_dia{i + 1}_a, _dia{i + 1}_b, _self_]\n"
    out["_dia24_a"] = out["_dia24_b"] = "x: 1\n"
    return {k: v.encode() if isinstance(v, str) else v for k, v in out.items()}


SYMLINKS = {"_link": "outside", "link_out": "outside"}  # name -> what it points at


def plant_in_checkout(checkout: Path, c: Canaries) -> None:
    """Code a pull request could add beside its configs: the module, and a Hydra plugin importing it.

    Run from the checkout, a tool that put the working directory on sys.path (or let Hydra
    discover plugins there) would import it.
    """
    (checkout / f"{MODULE}.py").write_text((c.module_dir / f"{MODULE}.py").read_text())
    (checkout / "hydra_plugins").mkdir(exist_ok=True)
    (checkout / "hydra_plugins" / f"{MODULE}_plugin.py").write_text(f"import {MODULE}\n")


def write_model_dir(model_dir: Path, c: Canaries, with_symlinks: bool = True) -> list[str]:
    """Write the corpus into ``model_dir``; returns the case names (variants, no '_' helpers)."""
    model_dir.mkdir(parents=True, exist_ok=True)
    for name, data in cases(c).items():
        (model_dir / f"{name}.yaml").write_bytes(data)
    if with_symlinks:
        (model_dir / "_link.yaml").symlink_to(c.outside)
        (model_dir / "link_out.yaml").symlink_to(c.outside.parent / "config.json")
    return sorted(n for n in [*cases(c), *(SYMLINKS if with_symlinks else ())] if not n.startswith("_"))
