"""Validation of a model config: types, unknown keys and the cross-field rules.

Every rule reports a :class:`Problem` naming the key path (``model.num_heads[2]``), the value
and the rule in one sentence, and every problem in a config is reported at once, so a
researcher fixes a broken YAML in one round trip. Rules whose inputs already failed a type
check are skipped rather than piling derived errors on top.
"""

from __future__ import annotations

import functools
import math
import os
import typing
from dataclasses import MISSING, fields
from typing import Any, Mapping, Optional

from .problems import ConfigError, Problem, suggest
from .section_checks import dense_problems, filled, section_type_problems
from .geometry import default_patch_sizes, feature_sizes, image_hw, patch_geometry, reductions
from .schema import (
    MAX_BLOCKS,
    MAX_MLP_RATIO,
    MAX_STAGES,
    OPTIONAL_PER_STAGE_FIELDS,
    PER_STAGE_FIELDS,
    PROBABILITY_FIELDS,
    SECTIONS,
    VALUE_RANGES,
    plain_defaults,
    ModelConfig,
)


_HINTS = typing.get_type_hints(ModelConfig)
_DEFAULTS = plain_defaults()
_CHOICES = {f.name: f.metadata["choices"] for f in fields(ModelConfig) if "choices" in f.metadata}


# --- type checks --------------------------------------------------------------------------


def _scalar_error(value: Any, kind: type) -> Optional[str]:
    if kind is bool:
        return None if isinstance(value, bool) else "expected true or false"
    if kind is int:
        return None if isinstance(value, int) and not isinstance(value, bool) else "expected an integer"
    if kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return None if ok else "expected a number"
    if kind is str:
        return None if isinstance(value, str) else "expected a string"
    return None


def _type_problems(key: str, value: Any, hint: Any) -> list[Problem]:
    """Problems of ``value`` against a schema annotation (scalars, lists, Optional, Any)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union:  # Optional[X]
        if value is None:
            return []
        hint = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (list, typing.List):
        if not isinstance(value, (list, tuple)):
            return [Problem(key, f"{key} = {value!r}: expected a list, one entry per stage, e.g. [2, 2, 2, 2].")]
        out = []
        for i, item in enumerate(value):
            err = _scalar_error(item, args[0])
            if err:
                out.append(Problem(f"{key}[{i}]", f"{key}[{i}] = {item!r}: {err}."))
        return out
    err = _scalar_error(value, hint)
    return [Problem(key, f"{key} = {value!r}: {err}.")] if err else []


def _linear_problems(key: str, value: Any) -> list[Problem]:
    if isinstance(value, bool):
        return []
    if isinstance(value, (list, tuple)):
        return [
            Problem(f"{key}[{i}]", f"{key}[{i}] = {v!r}: expected true or false (linear attention on or off for that stage).")
            for i, v in enumerate(value)
            if not isinstance(v, bool)
        ]
    return [Problem(key, f"{key} = {value!r}: expected true/false or a list of them, one per stage.")]


def _pretrained_problems(key: str, value: Any) -> list[Problem]:
    """Only the type: the file may live on another machine, so its existence is checked at build time."""
    if value is None or isinstance(value, (str, os.PathLike)):
        return []
    return [
        Problem(
            key,
            f"{key} = {value!r}: expected the path of a checkpoint file or training run directory, "
            "or null for random initialisation (nothing is downloaded).",
        )
    ]


def _img_size_problems(key: str, value: Any) -> list[Problem]:
    """One side (an integer) or [height, width]."""
    def is_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    if is_int(value) or (isinstance(value, (list, tuple)) and len(value) == 2 and all(is_int(v) for v in value)):
        return []
    return [Problem(key, f"{key} = {value!r}: expected an integer (a square input's side) or [height, width], e.g. [512, 1024].")]


def _pretrain_img_size_problems(key: str, value: Any) -> list[Problem]:
    return [] if value is None else _img_size_problems(key, value)


_CUSTOM_TYPE_CHECKS = {
    "linear": _linear_problems,
    "pretrained": _pretrained_problems,
    "img_size": _img_size_problems,
    "pretrain_img_size": _pretrain_img_size_problems,
    **{name: functools.partial(section_type_problems, cls=cls, type_problems=_type_problems) for name, cls in SECTIONS.items()},
}



# --- cross-field rules ---------------------------------------------------------------------


def _positive(value: float) -> bool:
    """True for finite numbers above zero; NaN and infinities fail (``nan <= 0`` is False)."""
    return math.isfinite(value) and value > 0


def _short(value: Any) -> str:
    """A value for a message, however long its digits (``1e23`` as an int has 24)."""
    text = repr(value)
    return text if len(text) <= 24 else f"{text[:10]}...({len(text)} digits)"


def _as_list(value: Any, n: int) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value] * n


def _cross_field_problems(cfg: Mapping[str, Any], bad: set[str], p: str) -> list[Problem]:
    out: list[Problem] = []

    def ok(*names: str) -> bool:
        return not any(n in bad for n in names)

    def add(key: str, message: str) -> None:
        out.append(Problem(f"{p}{key}", f"{p}{message}"))

    # Stage count and list lengths.
    if not ok("embed_dims"):
        return out
    n = len(cfg["embed_dims"])
    if n == 0:
        add("embed_dims", "embed_dims is empty: a model needs at least one stage.")
        return out
    staged = [f for f in PER_STAGE_FIELDS[1:] if ok(f)]
    staged += [f for f in OPTIONAL_PER_STAGE_FIELDS if ok(f) and cfg[f] is not None]
    if ok("linear") and isinstance(cfg["linear"], (list, tuple)):
        staged.append("linear")
    for name in staged:
        if len(cfg[name]) != n:
            add(
                name,
                f"{name} has {len(cfg[name])} entries but embed_dims has {n}: "
                f"every per-stage list needs exactly one entry per stage.",
            )
            bad.add(name)

    # Per-entry and scalar ranges (schema.VALUE_RANGES), so no later rule loops over a huge value.
    for name, (low, high) in VALUE_RANGES.items():
        if not ok(name) or cfg[name] is None:
            continue
        entries = enumerate(cfg[name]) if isinstance(cfg[name], (list, tuple)) else [(None, cfg[name])]
        for i, v in entries:
            key = name if i is None else f"{name}[{i}]"
            if not low <= v <= high:
                limit = f"at least {low}" if v < low else f"at most {high:,} (a bound that keeps checks and reviews fast)"
                add(key, f"{key} = {_short(v)}: must be {limit}.")
                bad.add(name)
    if ok("depths") and sum(cfg["depths"]) > MAX_BLOCKS:
        add("depths", f"depths = {cfg['depths']}: {sum(cfg['depths']):,} blocks in all; at most {MAX_BLOCKS:,}.")
        bad.add("depths")
    if ok("mlp_ratios"):
        for i, v in enumerate(cfg["mlp_ratios"]):
            if not _positive(v) or v > MAX_MLP_RATIO:
                add(f"mlp_ratios[{i}]", f"mlp_ratios[{i}] = {_short(v)}: must be a positive, finite number of at most {MAX_MLP_RATIO:g}.")
                bad.add("mlp_ratios")
            elif ok("embed_dims") and int(cfg["embed_dims"][i] * v) < 1:
                add(
                    f"mlp_ratios[{i}]",
                    f"mlp_ratios[{i}] = {v}: gives the MLP of stage {i} no hidden unit (embed_dims[{i}] * mlp_ratios[{i}] < 1); use a larger ratio.",
                )
                bad.add("mlp_ratios")
    out_indices_problems(cfg, bad, n, add)
    if ok("norm_eps") and not _positive(cfg["norm_eps"]):
        add("norm_eps", f"norm_eps = {cfg['norm_eps']}: must be a positive, finite number.")
    if ok("qk_scale") and cfg["qk_scale"] is not None and not _positive(cfg["qk_scale"]):
        add("qk_scale", f"qk_scale = {cfg['qk_scale']}: must be a positive, finite number, or null for head_dim ** -0.5.")
    for name in PROBABILITY_FIELDS:
        if ok(name) and not 0.0 <= cfg[name] < 1.0:
            add(name, f"{name} = {cfg[name]}: a probability must lie in [0, 1).")

    # Heads divide widths.
    if ok("embed_dims", "num_heads"):
        for i, (d, h) in enumerate(zip(cfg["embed_dims"], cfg["num_heads"])):
            if d % h:
                divisors = [k for k in range(1, min(d, 16) + 1) if d % k == 0]
                add(
                    f"num_heads[{i}]",
                    f"num_heads[{i}] = {h}: does not divide embed_dims[{i}] = {d} "
                    f"(each head needs embed_dims/num_heads channels); try one of {divisors}.",
                )

    # Choices of the string switches.
    for name, choices in _CHOICES.items():
        if ok(name) and cfg[name] not in choices:
            add(name, f"{name} = {cfg[name]!r}: must be one of {', '.join(choices)}{suggest(str(cfg[name]), choices)}.")
            bad.add(name)

    # Switch combinations.
    if ok("pool", "cls_token") and cfg["pool"] == "cls" and not cfg["cls_token"]:
        add("pool", "pool = 'cls': needs cls_token = true (there is no class token to read); use pool=mean.")
    if ok("cls_token") and cfg["cls_token"]:
        last = n - 1
        if ok("sr_ratios") and cfg["sr_ratios"][last] != 1:
            add(
                f"sr_ratios[{last}]",
                f"sr_ratios[{last}] = {cfg['sr_ratios'][last]}: the stage carrying the class token "
                "cannot reduce keys spatially; set it to 1 or cls_token=false.",
            )
        if ok("linear") and _as_list(cfg["linear"], n)[last]:
            key = f"linear[{last}]" if isinstance(cfg["linear"], (list, tuple)) else "linear"
            add(
                key,
                f"{key} = true: the last stage carries the class token and cannot use linear attention; "
                "turn it off there or set cls_token=false.",
            )
        if ok("mlp_dwconv") and cfg["mlp_dwconv"]:
            add("mlp_dwconv", "mlp_dwconv = true: the MLP's depthwise convolution needs a pure token grid, which the class token breaks; set cls_token=false or mlp_dwconv=false.")
    if ok("patch_embed", "patch_sizes", "patch_strides") and cfg["patch_embed"] == "non_overlapping":
        if cfg["patch_strides"] is not None:
            kernels = cfg["patch_sizes"] or default_patch_sizes("non_overlapping", n)
            for i, (k, s) in enumerate(zip(kernels, cfg["patch_strides"])):
                if k != s:
                    add(
                        f"patch_strides[{i}]",
                        f"patch_strides[{i}] = {s}: non_overlapping patches need stride == patch size ({k}); "
                        "use patch_embed=overlapping for other strides.",
                    )
                    bad.add("patch_strides")

    geometry = patch_geometry(cfg["patch_embed"], n, cfg["patch_sizes"], cfg["patch_strides"]) \
        if ok("patch_embed", "patch_sizes", "patch_strides") else None
    if geometry and ok("pretrain_img_size", "pos_embed") and cfg["pretrain_img_size"] is not None:
        size = cfg["pretrain_img_size"]
        if not cfg["pos_embed"]:
            add("pretrain_img_size", f"pretrain_img_size = {size}: sizes the position-embedding tables, which this model "
                "does not have (pos_embed=false); remove it.")
        elif any(h < 1 or w < 1 for h, w in feature_sizes(*image_hw(size), geometry)):
            add("pretrain_img_size", f"pretrain_img_size = {size}: too small, a stage's position table would be empty; "
                "use the size the tables were trained at (224).")
    dense_problems(cfg, bad, add, reductions(geometry) if geometry else None)

    # Shapes at img_size: every stage keeps at least one token, reductions fit the map.
    if geometry and ok("img_size", "sr_ratios", "linear"):
        linear = _as_list(cfg["linear"], n)
        size = cfg["img_size"]
        for i, (h, w) in enumerate(feature_sizes(*image_hw(size), geometry)):
            if h < 1 or w < 1:
                add("img_size", f"img_size = {size}: too small, stage {i}'s feature map would be {h}x{w}; use a larger img_size or fewer stages.")
                break
            sr = cfg["sr_ratios"][i]
            if not linear[i] and sr > min(h, w):
                add(
                    f"sr_ratios[{i}]",
                    f"sr_ratios[{i}] = {sr}: larger than stage {i}'s {h}x{w} feature map at img_size={size}; use at most {min(h, w)}.",
                )
    return out


def out_indices_problems(cfg: Mapping[str, Any], bad: set[str], n: int, add) -> None:
    """out_indices: needs features_only, each a stage of the n (negative from the end), no repeats."""
    if "out_indices" in bad or cfg["out_indices"] is None:
        return
    if "features_only" not in bad and not cfg["features_only"]:
        add("out_indices", f"out_indices = {cfg['out_indices']}: only a backbone returns selected stages; "
            "set features_only=true, or out_indices=null.")
        return
    seen: set[int] = set()
    for i, v in enumerate(cfg["out_indices"]):
        if not -n <= v < n:
            add(f"out_indices[{i}]", f"out_indices[{i}] = {v}: the model has {n} stages; use 0..{n - 1} (or -{n}..-1 from the end).")
        elif v % n in seen:
            add(f"out_indices[{i}]", f"out_indices[{i}] = {v}: stage {v % n} is selected twice.")
        seen.add(v % n)
    if not cfg["out_indices"]:
        add("out_indices", "out_indices = []: select at least one stage, or null for all of them.")


# --- entry points ----------------------------------------------------------------------------


def _is_missing(value: Any) -> bool:
    return value is MISSING or value == "???"


def check_model(raw: Mapping[str, Any], prefix: str = "model") -> list[Problem]:
    """Every problem of a raw model mapping; fields it leaves out take the schema defaults."""
    p = f"{prefix}." if prefix else ""
    problems: list[Problem] = []
    bad: set[str] = set()
    for key in raw:
        if key not in _HINTS:
            problems.append(
                Problem(f"{p}{key}", f"{p}{key}: unknown key, not a field of the model schema{suggest(str(key), _HINTS)}.")
            )
    cfg: dict[str, Any] = {}
    for name, hint in _HINTS.items():
        value = raw.get(name, _DEFAULTS[name])
        if _is_missing(value):
            problems.append(Problem(f"{p}{name}", f"{p}{name} is required: set it in the variant's YAML or as an override."))
            bad.add(name)
            continue
        custom = _CUSTOM_TYPE_CHECKS.get(name)
        if isinstance(value, (list, tuple)) and len(value) > MAX_STAGES:  # never walk a huge list
            found = [Problem(f"{p}{name}", f"{p}{name} has {len(value):,} entries; a model has at most {MAX_STAGES} stages.")]
        else:
            found = custom(f"{p}{name}", value) if custom else _type_problems(f"{p}{name}", value, hint)
        if found:
            problems.extend(found)
            bad.add(name)
        cfg[name] = filled(value, SECTIONS[name]) if name in SECTIONS and name not in bad else value
    return problems + _cross_field_problems(cfg, bad, p)


def to_plain_dict(cfg: Any) -> dict[str, Any]:
    """A plain dict from a ModelConfig, a mapping or an OmegaConf node (model node or full config)."""
    if isinstance(cfg, ModelConfig):
        out = {f.name: getattr(cfg, f.name) for f in fields(ModelConfig)}
        return {k: filled(v, SECTIONS[k]) if k in SECTIONS else v for k, v in out.items()}
    if type(cfg).__module__.startswith("omegaconf"):
        from omegaconf import OmegaConf

        cfg = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    if not isinstance(cfg, Mapping):
        raise TypeError(f"expected a model config (ModelConfig, dict or DictConfig), got {type(cfg).__name__}")
    if "model" in cfg and isinstance(cfg["model"], Mapping):  # a full composed config
        cfg = cfg["model"]
    return dict(cfg)


def validate_model(cfg: Any, source: Optional[str] = None, prefix: str = "model") -> ModelConfig:
    """A checked :class:`ModelConfig` from any config form; raises :class:`ConfigError` listing every problem."""
    raw = to_plain_dict(cfg)
    problems = check_model(raw, prefix)
    if problems:
        raise ConfigError(problems, source or raw.get("name"))
    values = {name: raw.get(name, _DEFAULTS[name]) for name in _HINTS}
    for name, value in values.items():  # tuples from Python callers become lists, floats stay floats
        if isinstance(value, tuple):
            values[name] = list(value)
    values["mlp_ratios"] = [float(r) for r in values["mlp_ratios"]]
    for name, cls in SECTIONS.items():
        values[name] = cls(**filled(values[name], cls))
    if values["pretrained"] is not None:  # a pathlib.Path from Python callers
        values["pretrained"] = os.fspath(values["pretrained"])
    return ModelConfig(**values)
