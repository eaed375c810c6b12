"""The generic builder: any config form -> validated ModelConfig -> stage specs -> modules.

This is the only path from configuration to ``torch.nn``: a new variant is a YAML file,
never new Python. A config's ``pretrained`` checkpoint is loaded here too, so every caller
(``create_model``, the lucid entry points, the app's tasks) gets the same weights.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping, Optional

import torch

from ..config.checks import to_plain_dict, validate_model
from ..config.compose import load_config
from ..config.schema import ModelConfig
from .lucid_args import apply_arguments
from .memory_check import check_fits
from .assemble import Model, model_from_spec
from .spec import ModelSpec, model_spec

log = logging.getLogger(__name__)


def resolve_spec(cfg: Any, source: Optional[str] = None) -> ModelSpec:
    """Validate any config form and resolve its stage specs (no torch involved)."""
    return model_spec(validate_model(cfg, source=source))


def build_model(cfg: Any, source: Optional[str] = None) -> Model:
    """Build from a composed Hydra config (full or its ``model`` node), a dict or a ModelConfig.

    Modules are created on the meta device and given storage afterwards, so each weight is
    initialised once (PyTorch's per-layer default init, which ``init_weights`` would overwrite,
    is skipped): about a quarter of pvt_v2_b2's build time. In between, a model whose weights
    exceed the device's free memory is refused (see :mod:`lucid_arch.modeling.memory_check`).

    With ``pretrained`` set, the checkpoint is loaded over the initialisation (see
    :func:`lucid_arch.weights.load_pretrained`); a head of another class count keeps its
    initialisation. Under ``torch.device("meta")`` (analysis, summaries, the diff tool) the
    model is shapes only and the file is never read, so a config naming weights on another
    machine can still be analysed.
    """
    config = validate_model(cfg, source=source)
    with torch.device("meta"):
        model = model_from_spec(model_spec(config))
    materialize(model, config)
    return model


def materialize(model: Model, config: ModelConfig) -> None:
    """Give a model built on the meta device its storage on the default device, initial weights and
    ``config.pretrained``; a model too big for the device is refused first. Nothing under meta."""
    device = torch.get_default_device()
    if device.type == "meta":
        return
    check_fits(model, device, config)  # before a single byte is allocated
    model.to_empty(device=device)
    model.init_weights()
    load_configured_weights(model, config)


def load_configured_weights(model: Model, config: ModelConfig) -> None:
    """Load ``config.pretrained`` into an initialised model; nothing for a meta model or no checkpoint."""
    if config.pretrained and not next(model.parameters()).is_meta:
        from ..weights import load_pretrained  # safetensors and the file are only touched here

        log.info("%s: %s", model.spec.name, load_pretrained(model, config.pretrained))


def resolve_config(name: str, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """A variant's model config as a plain dict, with Python keyword arguments (schema fields or lucid's) applied."""
    return apply_arguments(to_plain_dict(load_config(name)), overrides, source=name)


def create_model(name: str, **overrides: Any) -> Model:
    """A variant by name (or YAML path), with schema fields or lucid's keyword arguments overridden.

    >>> create_model("pvt_v2_b2", num_classes=10, depths=[3, 4, 18, 3])  # doctest: +SKIP
    """
    return build_model(resolve_config(name, overrides), source=name)
