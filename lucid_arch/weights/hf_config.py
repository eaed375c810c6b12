"""A Hugging Face directory's ``config.json`` against the model being built.

Some differences leave every tensor the same shape (the number of heads) and others show up
only as a list of mismatched keys; comparing the architecture the directory declares with the
model's own gives one error that names both, field by field. The field names are a table per
``model_type`` (Hugging Face's name -> ours); heads and widths are compared over the stages the
model builds, so a backbone that stops early still loads a full encoder's directory. A field the
model does not have is not compared: a Segformer's ``decoder_hidden_size`` only against a
segmentation model's all-MLP head (``decode_head.channels``); its ``num_labels`` never (another
class count re-initialises the classifier).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from ..modeling.spec import ModelSpec
from ..safe_io import read_bounded

MAX_CONFIG_BYTES = 16 << 20  # a model hub's config.json is a few KiB

# model_type -> {Hugging Face config field: our schema field}
HF_FIELDS: dict[str, dict[str, str]] = {
    "pvt_v2": {
        "hidden_sizes": "embed_dims",
        "depths": "depths",
        "num_attention_heads": "num_heads",
        "mlp_ratios": "mlp_ratios",
        "sr_ratios": "sr_ratios",
        "linear_attention": "linear",
        "patch_sizes": "patch_sizes",
        "strides": "patch_strides",
        "num_channels": "in_channels",
    },
    "pvt": {
        "hidden_sizes": "embed_dims",
        "depths": "depths",
        "num_attention_heads": "num_heads",
        "mlp_ratios": "mlp_ratios",
        "sequence_reduction_ratios": "sr_ratios",
        "patch_sizes": "patch_sizes",
        "strides": "patch_strides",
        "num_channels": "in_channels",
    },
    "segformer": {
        "hidden_sizes": "embed_dims",
        "depths": "depths",
        "num_attention_heads": "num_heads",
        "mlp_ratios": "mlp_ratios",
        "sr_ratios": "sr_ratios",
        "patch_sizes": "patch_sizes",
        "strides": "patch_strides",
        "num_channels": "in_channels",
        "decoder_hidden_size": "decode_head.channels",
    },
}


def model_values(spec: ModelSpec) -> dict[str, Any]:
    """The model's value of every field the tables name, per built stage."""
    stages = spec.stages
    return {
        "embed_dims": [s.dim for s in stages],
        "depths": [s.depth for s in stages],
        "num_heads": [s.num_heads for s in stages],
        "mlp_ratios": [s.mlp_ratio for s in stages],
        "sr_ratios": [s.sr_ratio if not s.linear else None for s in stages],
        "linear": [s.linear for s in stages],
        "patch_sizes": [s.patch.kernel for s in stages],
        "patch_strides": [s.patch.stride for s in stages],
        "in_channels": spec.in_channels,
        "decode_head.channels": (
            spec.decode_head.channels if spec.decode_head is not None and spec.decode_head.kind == "all_mlp" else None
        ),
    }


def config_differences(config_file: Path, spec: ModelSpec) -> Optional[str]:
    """'hidden_sizes [..] vs embed_dims [..]; ...' where config.json and the model disagree; None if they agree.

    A config.json of an unknown ``model_type`` (or unreadable) is not compared: the key check
    that follows still catches any other architecture.
    """
    config = _read_config(config_file)
    table = HF_FIELDS.get(config.get("model_type")) if isinstance(config, dict) else None
    if table is None:
        return None
    ours = model_values(spec)
    n = len(spec.stages)
    differences = []
    for theirs_name, our_name in table.items():
        if theirs_name not in config:
            continue
        theirs, mine = config[theirs_name], ours[our_name]
        if mine is None:  # the model has no such part
            continue
        if isinstance(mine, list):
            if isinstance(theirs, bool):  # one switch for every stage
                theirs = [theirs] * n
            if not isinstance(theirs, list) or len(theirs) < n:
                differences.append((theirs_name, config[theirs_name], our_name, mine))
                continue
            pairs = [(t, m) for t, m in zip(theirs[:n], mine) if m is not None]
            if any(_differ(t, m) for t, m in pairs):
                differences.append((theirs_name, config[theirs_name], our_name, mine))
        elif _differ(theirs, mine):
            differences.append((theirs_name, theirs, our_name, mine))
    if not differences:
        return None
    return "; ".join(f"{t} {_text(tv)} there, {o} {_text(ov)} here" for t, tv, o, ov in differences)


def _read_config(config_file: Path) -> Any:
    """config.json's content; None when it cannot be read, or is not a small file (a FIFO, gigabytes: never waited on or read)."""
    try:
        return json.loads(read_bounded(config_file, MAX_CONFIG_BYTES))
    except (OSError, ValueError):
        return None


def matching_overrides(config_file: Path, spec: ModelSpec) -> str:
    """The overrides that build what config.json describes, e.g. 'model.embed_dims=[...] model.depths=[...]'."""
    config = _read_config(config_file)
    table = HF_FIELDS[config["model_type"]]
    wanted = ["embed_dims", "depths", "num_heads", "mlp_ratios", "sr_ratios", "linear"]
    if model_values(spec)["decode_head.channels"] is not None:
        wanted.append("decode_head.channels")
    pairs = [(ours, config[theirs]) for theirs, ours in table.items() if ours in wanted and theirs in config]
    return " ".join(f"'model.{ours}={_text(value)}'" for ours, value in pairs)


def _differ(theirs: Any, mine: Any) -> bool:
    if isinstance(theirs, (int, float)) and isinstance(mine, (int, float)) and not isinstance(theirs, bool):
        return float(theirs) != float(mine)
    return theirs != mine


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return "[" + ",".join(_text(v) for v in value) + "]"
    return str(value)
