"""The generic builder: any config form -> validated ModelConfig -> stage specs -> modules.

This is the only path from configuration to ``torch.nn``: a new variant is a YAML file,
never new Python. A config's ``pretrained`` checkpoint is loaded here too, so every caller
(``create_model``, the lucid entry points, the app's tasks) gets the same weights.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Mapping, Optional

import torch

from ..config.checks import ConfigError, Problem, to_plain_dict, validate_model
from ..config.compose import load_config
from ..config.schema import CHECKPOINT_CHOICES, ModelConfig
from ..runs import Run, RunError, find_run, rebuilt_config
from ..runs.run_dir import CONFIG as RUN_CONFIG
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

        report = load_pretrained(model, config.pretrained, new_head=config.new_head, checkpoint=config.checkpoint)
        (log.warning if report.head_reinitialized else log.info)("%s: %s", model.spec.name, report)


def resolve_config(name: Any, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """A variant's (or a training run's) model config as a plain dict, with Python keyword arguments
    (schema fields or lucid's) applied."""
    overrides = dict(overrides)
    if "reset_head" in overrides:  # timm's word for it
        overrides["new_head"] = overrides.pop("reset_head")
    run = run_named(name)
    if run is None:
        return apply_arguments(to_plain_dict(load_config(os.fspath(name))), overrides, source=os.fspath(name))
    checkpoint, new_head = overrides.pop("checkpoint", "last"), overrides.pop("new_head", False)
    if checkpoint not in CHECKPOINT_CHOICES:
        raise ConfigError([Problem("model.checkpoint", f"checkpoint = {checkpoint!r}: choose one of {', '.join(CHECKPOINT_CHOICES)}.")],
                          str(run.root))
    if overrides.get("pretrained") is not None:
        raise ConfigError([Problem("model.pretrained", f"pretrained = {overrides['pretrained']!r}: {run.root} is a training run and "
                                   "brings its own weights; pass checkpoint='best' or a checkpoint directory of the run instead, "
                                   "or build a variant by name with pretrained=PATH.")], str(run.root))
    try:
        cfg = rebuilt_config(run, checkpoint, new_head=new_head)
    except RunError as err:
        raise ConfigError([Problem("model.checkpoint", str(err))], str(run.root)) from None
    if run.status != "finished":
        log.warning("%s", run.describe(checkpoint))
    weights = {k: cfg.pop(k) for k in ("pretrained", "checkpoint", "new_head")}
    return {**apply_arguments(cfg, overrides, source=str(run.root)), **weights}


def run_named(name: Any) -> Optional[Run]:
    """The training run ``name`` is a path to (its directory, a checkpoint directory, a weights file or its
    config.yaml), or None for a variant name or a model YAML."""
    if not isinstance(name, (str, os.PathLike)):
        return None
    path = Path(name).expanduser()
    if path.is_file() and path.name == RUN_CONFIG:
        path = path.parent
    if not (path.is_dir() or (path.is_file() and path.suffix == ".safetensors")):
        return None
    run = find_run(path)
    if run is None and path.is_dir():
        raise ConfigError([Problem("model", f"{path}: a directory, but not a training run (no {RUN_CONFIG} nor checkpoints/step_*); "
                                   "give a variant name, a model YAML, or the directory task=train wrote.")], str(path))
    return run


def create_model(name: str | os.PathLike, **overrides: Any) -> Model:
    """A variant by name (or YAML path), or a training run by its directory, with schema fields or
    lucid's keyword arguments overridden.

    A run rebuilds exactly what it trained (architecture, class count, trained head) and loads its
    weights: ``checkpoint="best"`` for its best validation epoch's. A pretrained checkpoint whose
    head does not fit is an error unless ``new_head=True`` (or timm's ``reset_head=True``).

    >>> create_model("pvt_v2_b2", num_classes=10, depths=[3, 4, 18, 3])  # doctest: +SKIP
    >>> create_model("outputs/2026-12-07/10-00-00", checkpoint="best")  # doctest: +SKIP
    """
    source = os.fspath(name)
    return build_model(resolve_config(name, overrides), source=source)
