"""lucid's keyword arguments, both ways: into a model config, and out of a built model.

Code written from lucid's documentation of ``PVT``, ``PVT_V2`` and ``pvt_*`` passes arguments
that are no schema field (``norm_layer``, ``num_stages``, ``patch_size``) or have another type
(``sr_ratios=[8.0, 4.0, 2.0, 1.0]``, the ``list[float]`` of the v1 pages). They are translated
here, once, for every Python entry point (``lucid_arch.models`` and ``create_model``), so the
YAMLs, the schema and the layers never see lucid's vocabulary. The other direction gives a
model's repr the constructor call lucid prints. Nothing here imports torch or Hydra.
"""

from __future__ import annotations

import functools
import inspect
import math
import typing
from dataclasses import dataclass
from typing import Any, Mapping

from ..config.checks import ConfigError, Problem
from ..config.geometry import default_patch_sizes
from ..config.schema import OPTIONAL_PER_STAGE_FIELDS, PER_STAGE_FIELDS, SECTIONS, ModelConfig
from .spec import ModelSpec

LAYER_NORM_DEFAULT_EPS = 1e-5  # torch.nn.LayerNorm's eps when none is given (a test checks it)

# lucid's PVT_V2 signature, in its order (PVT's is the same without num_stages and linear),
# with the types this package accepts for each argument.
SIGNATURE: tuple[tuple[str, str], ...] = (
    ("img_size", "int"),
    ("patch_size", "int"),
    ("in_channels", "int"),
    ("num_classes", "int"),
    ("embed_dims", "list[int]"),
    ("num_heads", "list[int]"),
    ("mlp_ratios", "list[float]"),
    ("qkv_bias", "bool"),
    ("qk_scale", "float | None"),
    ("drop_rate", "float"),
    ("attn_drop_rate", "float"),
    ("drop_path_rate", "float"),
    ("norm_layer", "type[nn.LayerNorm] | functools.partial"),
    ("depths", "list[int]"),
    ("sr_ratios", "list[int]"),
    ("num_stages", "int"),
    ("linear", "bool | list[bool]"),
)

# The order of lucid's documented ``print(model)``: these first, then the rest in signature order.
_PRINTED_FIRST = ("img_size", "num_classes", "patch_size", "embed_dims", "num_heads", "depths", "sr_ratios", "linear")
REPR_ORDER = _PRINTED_FIRST + tuple(name for name, _ in SIGNATURE if name not in _PRINTED_FIRST)


# --- keyword arguments -> config ---------------------------------------------------------------


def _int_kind(hint: Any) -> str:
    """'scalar' or 'list' for the schema's integer fields (Optional stripped), else ''."""
    if typing.get_origin(hint) is typing.Union:
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    if hint is int:
        return "scalar"
    if typing.get_origin(hint) in (list, typing.List) and typing.get_args(hint) == (int,):
        return "list"
    return ""


_INT_ARGUMENTS = {name: kind for name, hint in typing.get_type_hints(ModelConfig).items() if (kind := _int_kind(hint))}
_INT_ARGUMENTS.update(patch_size="scalar", num_stages="scalar", img_size="either")  # img_size: a side or [height, width]


def _whole(value: Any) -> Any:
    """``8.0`` -> ``8``; anything else unchanged (``8.5`` stays, for validation to name)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _whole_numbers(name: str, value: Any) -> Any:
    kind = _INT_ARGUMENTS.get(name)
    if kind == "either":
        kind = "list" if isinstance(value, (list, tuple)) else "scalar"
    if kind == "scalar":
        return _whole(value)
    if kind == "list" and isinstance(value, (list, tuple)):
        return [_whole(v) for v in value]
    return value


def _describe(value: Any) -> str:
    """A norm_layer as its caller wrote it: ``nn.BatchNorm2d``, ``partial(nn.LayerNorm, eps=0)``, ``lucid.nn.LayerNorm``."""
    if isinstance(value, functools.partial):
        args = [_describe(value.func)] + [repr(a) for a in value.args] + [f"{k}={v!r}" for k, v in value.keywords.items()]
        return f"partial({', '.join(args)})"
    name, module = getattr(value, "__qualname__", None), getattr(value, "__module__", None) or ""
    if name is None:
        return repr(value)
    return f"nn.{name}" if module.startswith("torch.nn") else f"{module}.{name}".lstrip(".")


def _norm_eps(value: Any) -> tuple[float | None, list[Problem]]:
    """lucid's ``norm_layer`` as the schema's ``norm_eps``: the one norm the layers build is LayerNorm."""
    from torch import nn  # only a caller passing norm_layer pays for it; it is imported by then

    eps: Any = None
    if value is nn.LayerNorm:
        eps = LAYER_NORM_DEFAULT_EPS
    elif isinstance(value, functools.partial) and value.func is nn.LayerNorm and not value.args and set(value.keywords) <= {"eps"}:
        eps = value.keywords.get("eps", LAYER_NORM_DEFAULT_EPS)
    if eps is None:
        rule = (
            "only nn.LayerNorm or functools.partial(nn.LayerNorm, eps=...) is supported (torch.nn; "
            "the block and stage norms are LayerNorms, and the partial's eps becomes model.norm_eps)"
        )
    elif isinstance(eps, bool) or not isinstance(eps, (int, float)) or not (math.isfinite(eps) and eps > 0):
        rule = "its eps must be a positive, finite number, e.g. partial(nn.LayerNorm, eps=1e-6)"
    else:
        return float(eps), []
    return None, [Problem("model.norm_layer", f"model.norm_layer = {_describe(value)}: {rule}.")]


def _stage_problems(cfg: dict[str, Any], num_stages: Any) -> list[Problem]:
    """Keep the first ``num_stages`` entries of every per-stage list, as lucid and the official code do."""
    if isinstance(num_stages, bool) or not isinstance(num_stages, int) or num_stages < 1:
        return [Problem("model.num_stages", f"model.num_stages = {num_stages!r}: expected a whole number of stages, at least 1.")]
    names = list(PER_STAGE_FIELDS) + list(OPTIONAL_PER_STAGE_FIELDS) + ["linear"]
    problems = []
    for name in names:
        value = cfg.get(name)
        if not isinstance(value, (list, tuple)):  # null (derived per stage), a bool, or a type error validation names
            continue
        if len(value) < num_stages:
            problems.append(
                Problem(
                    f"model.{name}",
                    f"model.{name} has {len(value)} entries, fewer than num_stages = {num_stages}: "
                    f"give one entry per stage, or lower num_stages.",
                )
            )
        else:
            cfg[name] = list(value[:num_stages])
    return problems


def _apply_patch_size(cfg: dict[str, Any], patch_size: Any) -> None:
    """lucid's/upstream's ``patch_size`` is the first stage's patch: kernel (and stride for v1)."""
    n = len(cfg["embed_dims"])
    kernels = list(cfg.get("patch_sizes") or default_patch_sizes(cfg["patch_embed"], n))
    kernels[0] = patch_size
    cfg["patch_sizes"] = kernels
    if cfg["patch_embed"] == "non_overlapping" and cfg.get("patch_strides") is not None:
        strides = list(cfg["patch_strides"])
        strides[0] = patch_size
        cfg["patch_strides"] = strides


def apply_arguments(cfg: dict[str, Any], arguments: Mapping[str, Any], source: str) -> dict[str, Any]:
    """``cfg`` (a variant's fields) with Python keyword arguments applied: schema fields, or lucid's.

    Raises :class:`ConfigError` naming every lucid argument that cannot be translated; schema
    fields are left to validation, which names theirs.
    """
    arguments = {name: _whole_numbers(name, value) for name, value in arguments.items()}
    problems: list[Problem] = []
    if "norm_layer" in arguments:
        norm_layer = arguments.pop("norm_layer")
        if "norm_eps" in arguments:
            problems.append(
                Problem("model.norm_layer", "model.norm_layer and model.norm_eps are both given: pass one (norm_layer's eps is norm_eps).")
            )
        else:
            eps, found = _norm_eps(norm_layer)
            problems += found
            if eps is not None:
                arguments["norm_eps"] = eps
    num_stages = arguments.pop("num_stages", None)
    patch_size = arguments.pop("patch_size", None)
    if patch_size is not None and (isinstance(patch_size, bool) or not isinstance(patch_size, int)):
        problems.append(Problem("model.patch_size", f"model.patch_size = {patch_size!r}: expected an integer, the first stage's patch size."))
    for name in SECTIONS:  # decode_head={"channels": 32} changes that field and keeps the variant's others
        if isinstance(arguments.get(name), Mapping) and isinstance(cfg.get(name), Mapping):
            arguments[name] = {**cfg[name], **arguments[name]}
    cfg.update(arguments)
    if num_stages is not None:
        problems += _stage_problems(cfg, num_stages)
    if problems:
        raise ConfigError(problems, source)
    if patch_size is not None:
        _apply_patch_size(cfg, patch_size)
    return cfg


class _FromVariant:
    """The default of a class argument: the value in its base variant's YAML."""

    def __init__(self, variant: str):
        self.variant = variant

    def __repr__(self) -> str:
        return f"<{self.variant}.yaml>"


def class_signature(base_variant: str) -> inspect.Signature:
    """lucid's ``PVT_V2(...)`` signature, positional order included; defaults come from ``base_variant``."""
    default = _FromVariant(base_variant)
    params = [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default, annotation=kind) for name, kind in SIGNATURE]
    params.append(inspect.Parameter("fields", inspect.Parameter.VAR_KEYWORD, annotation="any ModelConfig field"))
    return inspect.Signature(params)


# --- model -> lucid's printed call -----------------------------------------------------------


@dataclass(frozen=True)
class LayerNormArgument:
    """``norm_layer`` as lucid passes it; the repr is the code that builds it."""

    eps: float

    def __repr__(self) -> str:
        return "nn.LayerNorm" if self.eps == LAYER_NORM_DEFAULT_EPS else f"partial(nn.LayerNorm, eps={self.eps!r})"


def lucid_arguments(spec: ModelSpec) -> dict[str, Any]:
    """The model's value of every argument lucid's ``PVT_V2`` documents, in its printed order."""
    stages = spec.stages
    linear = [s.linear for s in stages]
    values = {
        "img_size": spec.img_size,
        "num_classes": spec.num_classes,
        "patch_size": stages[0].patch.kernel,
        "embed_dims": [s.dim for s in stages],
        "num_heads": [s.num_heads for s in stages],
        "depths": [s.depth for s in stages],
        "sr_ratios": [s.sr_ratio for s in stages],
        "linear": linear[0] if len(set(linear)) == 1 else linear,
        "in_channels": spec.in_channels,
        "mlp_ratios": [_whole(s.mlp_ratio) for s in stages],
        "qkv_bias": spec.qkv_bias,
        "qk_scale": spec.qk_scale,
        "drop_rate": spec.drop_rate,
        "attn_drop_rate": spec.attn_drop_rate,
        "drop_path_rate": spec.drop_path_rate,
        "norm_layer": LayerNormArgument(spec.norm_eps),
        "num_stages": len(stages),
    }
    return {name: values[name] for name in REPR_ORDER}


def lucid_call(spec: ModelSpec, width: int = 100) -> str:
    """``name(img_size=224, num_classes=1000, ...)``, wrapped under its opening parenthesis as lucid's docs print it."""
    head = f"{spec.name}("
    arguments = lucid_arguments(spec)
    if spec.decode_head is not None:  # lucid documents classifiers; a segmentation model adds its head
        dense = spec.decode_head
        arguments["num_classes"] = dense.num_classes
        if spec.neck is not None:
            arguments["neck"] = f"{spec.neck.kind}(channels={spec.neck.channels})"
        arguments["decode_head"] = f"{dense.kind}(channels={dense.channels})"
    if spec.detection is not None:  # a detector: its class count, FPN and kind
        arguments["num_classes"] = spec.detection.num_classes
        neck = spec.neck
        arguments["neck"] = f"{neck.kind}(channels={neck.channels}, start_level={neck.start_level}, num_outs={neck.num_outs})"
        arguments["detector"] = spec.detection.kind
    items = [f"{name}={value!r}" if not isinstance(value, str) or name not in SECTIONS else f"{name}={value}"
             for name, value in arguments.items()]
    lines, line = [], head
    for i, item in enumerate(items):
        text = item + (")" if i == len(items) - 1 else ", ")
        if line != head and len(line) + len(text.rstrip()) > width:
            lines.append(line.rstrip())
            line = " " * len(head)
        line += text
    lines.append(line)
    return "\n".join(lines)
