"""The model config that rebuilds a run: its own architecture, the weights asked for, and any
overrides on top (a larger img_size to export at, say).

This is what makes a run directory a model: ``create_model(RUN)`` and ``model.pretrained=RUN``
(without ``model=NAME``) build what was trained, never the default variant with a random head.
"""

from __future__ import annotations

from typing import Any, Mapping

from .run_dir import Run

# Saved settings that describe how the run started, not the model it is now.
_NOT_CARRIED = ("pretrained", "checkpoint", "new_head")


def rebuilt_config(run: Run, checkpoint: str = "last", overrides: Mapping[str, Any] = (), new_head: bool = False) -> dict[str, Any]:
    """The run's model config as a plain dict, loading ``run.weights(checkpoint)``, with ``overrides`` applied.

    Section overrides (``decode_head={"dropout": 0}``) change those fields and keep the run's others.
    """
    cfg = {k: v for k, v in run.model.items() if k not in _NOT_CARRIED}
    for key, value in dict(overrides or {}).items():
        if isinstance(value, Mapping) and isinstance(cfg.get(key), Mapping):
            value = {**cfg[key], **value}
        cfg[key] = value
    cfg.update(pretrained=str(run.weights(checkpoint)), checkpoint=checkpoint, new_head=new_head)
    return cfg
