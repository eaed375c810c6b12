"""The generic builder: any config form -> validated ModelConfig -> stage specs -> modules.

This is the only path from configuration to ``torch.nn``: a new variant is a YAML file,
never new Python. A config's ``pretrained`` checkpoint is loaded here too, so every caller
(``create_model``, the lucid entry points, the app's tasks) gets the same weights.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping, Optional

import torch

from .config.checks import to_plain_dict, validate_model
from .config.compose import load_config
from .config.geometry import default_patch_sizes
from .config.schema import ModelConfig
from .model import PyramidVisionTransformer
from .spec import ModelSpec, model_spec

log = logging.getLogger(__name__)


def resolve_spec(cfg: Any, source: Optional[str] = None) -> ModelSpec:
    """Validate any config form and resolve its stage specs (no torch involved)."""
    return model_spec(validate_model(cfg, source=source))


def build_model(cfg: Any, source: Optional[str] = None) -> PyramidVisionTransformer:
    """Build from a composed Hydra config (full or its ``model`` node), a dict or a ModelConfig.

    Modules are created on the meta device and given storage afterwards, so each weight is
    initialised once (PyTorch's per-layer default init, which ``init_weights`` would overwrite,
    is skipped): about a quarter of pvt_v2_b2's build time.

    With ``pretrained`` set, the checkpoint is loaded over the initialisation (see
    :func:`lucid_arch.weights.load_pretrained`); a head of another class count keeps its
    initialisation. Under ``torch.device("meta")`` (analysis, summaries, the diff tool) the
    model is shapes only and the file is never read, so a config naming weights on another
    machine can still be analysed.
    """
    config = validate_model(cfg, source=source)
    spec = model_spec(config)
    device = torch.get_default_device()
    if device.type == "meta":
        return PyramidVisionTransformer(spec)
    with torch.device("meta"):
        model = PyramidVisionTransformer(spec)
    model.to_empty(device=device)
    model.init_weights()
    load_configured_weights(model, config)
    return model


def load_configured_weights(model: PyramidVisionTransformer, config: ModelConfig) -> None:
    """Load ``config.pretrained`` into an initialised model; nothing for a meta model or no checkpoint."""
    if config.pretrained and not model.patch_embed.proj.weight.is_meta:
        from .weights import load_pretrained  # safetensors and the file are only touched here

        log.info("%s: %s", model.spec.name, load_pretrained(model, config.pretrained))


def _apply_lucid_patch_size(cfg: dict[str, Any], patch_size: Any) -> None:
    """lucid's/upstream's ``patch_size`` is the first stage's patch: kernel (and stride for v1)."""
    n = len(cfg["embed_dims"])
    kernels = list(cfg.get("patch_sizes") or default_patch_sizes(cfg["patch_embed"], n))
    kernels[0] = patch_size
    cfg["patch_sizes"] = kernels
    if cfg["patch_embed"] == "non_overlapping" and cfg.get("patch_strides") is not None:
        strides = list(cfg["patch_strides"])
        strides[0] = patch_size
        cfg["patch_strides"] = strides


def resolve_config(name: str, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """A variant's model config as a plain dict, with Python-side field overrides applied."""
    cfg = to_plain_dict(load_config(name))
    overrides = dict(overrides)
    patch_size = overrides.pop("patch_size", None)
    cfg.update(overrides)
    if patch_size is not None:
        _apply_lucid_patch_size(cfg, patch_size)
    return cfg


def create_model(name: str, **overrides: Any) -> PyramidVisionTransformer:
    """A variant by name (or YAML path), with schema fields or lucid's keyword arguments overridden.

    >>> create_model("pvt_v2_b2", num_classes=10, depths=[3, 4, 18, 3])  # doctest: +SKIP
    """
    return build_model(resolve_config(name, overrides), source=name)
