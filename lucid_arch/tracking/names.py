"""The app's records as tracking keys: flattened parameters, per-epoch and final metrics.

One naming for both backends, so a key found in MLflow is the same in TensorBoard and in
metrics.jsonl: ``train_loss``, ``val_acc``, ``val_iou/<class name>`` (TensorBoard groups by the
part before the slash). MLflow accepts letters, digits, ``_ - . / :`` and spaces in a key, so
anything else (the ``|`` of ``onnxruntime max|diff|``, brackets) is rewritten here, once, and
two class names that would meet in one key are told apart by their ids.
"""

from __future__ import annotations

import math
import re
from typing import Any, Iterable, Mapping, Optional, Sequence

_DROPPED = re.compile(r"[()\[\]{},;]")  # brackets and list punctuation: "(bf16, fp32)" reads "bf16 fp32"
_OTHER = re.compile(r"[^\w\-. /:]+")
MAX_PARAM = 6000  # MLflow's limit on a parameter's value
PER_CLASS = {"val_iou": "val_iou"}  # list-valued epoch keys -> the prefix of their per-class metrics


def metric_key(name: str) -> str:
    """``name`` as a key every backend accepts: brackets and commas dropped, other odd characters as ``_``, no empty path parts."""
    text = _OTHER.sub("_", _DROPPED.sub("", str(name)))
    parts = [p.strip(" _") for p in text.split("/")]
    return "/".join(p for p in parts if p and p not in (".", "..")) or "_"


def class_keys(prefix: str, classes: Sequence[str]) -> list[str]:
    """``prefix/<class name>`` for each class; a name that is empty or shared after cleaning gets its id too."""
    cleaned = [metric_key(str(c).replace("/", "_")) for c in classes]
    seen: dict[str, int] = {}
    for key in cleaned:
        seen[key] = seen.get(key, 0) + 1
    return [f"{prefix}/{i}_{key}" if seen[key] > 1 or key == "_" else f"{prefix}/{key}" for i, key in enumerate(cleaned)]


def _number(value: Any) -> Optional[float]:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def epoch_metrics(record: Mapping[str, Any], classes: Sequence[str]) -> dict[str, float]:
    """Every number of an epoch record (metrics.jsonl's line), and its per-class list by class name.

    A figure not measured that epoch (no validation: null) or undefined (a class never seen: null)
    is left out rather than logged as 0 or NaN.
    """
    out: dict[str, float] = {}
    for key, value in record.items():
        if key in PER_CLASS and isinstance(value, list):
            names = list(classes) if len(classes) == len(value) else [str(i) for i in range(len(value))]
            for name, item in zip(class_keys(PER_CLASS[key], names), value):
                if (number := _number(item)) is not None:
                    out[name] = number
        elif (number := _number(value)) is not None:
            out[metric_key(key)] = number
    return out


def final_metrics(metrics: Mapping[str, Any], already: Iterable[str] = ()) -> dict[str, float]:
    """A job's summary metrics (summary.json's ``metrics``) that are numbers, minus keys the epochs already logged."""
    skip = set(already)
    out = {metric_key(k): n for k, v in metrics.items() if (n := _number(v)) is not None}
    return {k: v for k, v in out.items() if k not in skip}


def per_class_metrics(per_class: Mapping[str, Any]) -> dict[str, float]:
    """An eval's per-class figures (summary.json's ``eval.per_class``: {class: {IoU: .., Acc: ..}}) as ``IoU/<class>``."""
    if not isinstance(per_class, Mapping):
        return {}
    names = list(per_class)
    columns = [c for c in dict.fromkeys(k for v in per_class.values() if isinstance(v, Mapping) for k in v)]
    out: dict[str, float] = {}
    for column in columns:
        for key, name in zip(class_keys(metric_key(column), names), names):
            value = per_class[name].get(column) if isinstance(per_class[name], Mapping) else None
            if (number := _number(value)) is not None:
                out[key] = number
    return out


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"task": {"optimizer": {"lr": 5e-4}}}`` -> ``{"task.optimizer.lr": 5e-4}``; lists stay whole values."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def param_text(value: Any) -> str:
    """A parameter's value as MLflow stores it: lists as ``[2, 2, 2, 2]``, null as ``None``, cut at MLflow's limit."""
    if isinstance(value, Mapping):
        value = dict(value)
    elif isinstance(value, (list, tuple)):
        value = list(value)
    text = str(value)
    return text if len(text) <= MAX_PARAM else text[: MAX_PARAM - 3] + "..."


def hparam_value(value: Any) -> Any:
    """A parameter as TensorBoard's HParams takes it: a number, bool or string."""
    if isinstance(value, (bool, int, float, str)):
        return value
    return param_text(value)
