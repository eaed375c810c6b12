"""``model.pretrained=RUN`` in any task: the job's model becomes the run's own.

Without ``model=NAME`` on the command line the composed model is only the app's default
variant, which the run did not train; building it and loading the run's weights would either
fail or, worse, keep a random head. So the run's saved model config replaces it, with the
command line's ``model.KEY=VALUE`` overrides on top (``model.img_size=512`` to export larger).
With ``model=NAME`` the user asked for that architecture: it is built as asked and the weights
must fit it (a head that does not is an error naming ``model.new_head``).
"""

from __future__ import annotations

import sys
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf

from ..config import ConfigError, ModelConfig, Problem, validate_model
from ..runs import Run, RunError, find_run, read_run, rebuilt_config

_WEIGHT_KEYS = ("pretrained", "checkpoint", "new_head")


def model_from_run(cfg: DictConfig, model_cfg: ModelConfig, job: Any) -> tuple[ModelConfig, Optional[Run]]:
    """(the model config the job builds, the run it comes from or None)."""
    if not model_cfg.pretrained:
        return model_cfg, None
    try:
        run = find_run(model_cfg.pretrained)
        if run is None:
            return model_cfg, None
        if _chose_model(job):
            return model_cfg, run
        rebuilt = rebuilt_config(run, model_cfg.checkpoint, _model_overrides(cfg, job), new_head=model_cfg.new_head)
    except RunError as error:
        raise ConfigError([Problem("model.pretrained", str(error))], model_cfg.name) from None
    try:
        return validate_model(rebuilt, source=str(run.root)), run
    except ConfigError as error:
        raise ConfigError([Problem(p.key, f"{p.message} (the model of run {run.root}, with this command line's model overrides)")
                           for p in error.problems], str(run.root)) from None


def trained_run(model_cfg: ModelConfig, job: Any, task: str, does: str) -> Optional[Run]:
    """The run whose model a predict or eval job uses (None: weights of another origin, with model=NAME).

    Both need trained weights, and weights that are not a run need model=NAME to say what they are for;
    each refusal is one paragraph naming model.pretrained. ``does``: what the task does, for the message.
    """
    if not model_cfg.pretrained:
        raise ConfigError([Problem("model.pretrained", (
            f"model.pretrained is not set, and task={task} {does}: a randomly initialised model predicts nothing "
            "meaningful. Give a training run (model.pretrained=RUN_DIR, the directory task=train wrote; "
            "model.checkpoint=best for its best epoch), or model=NAME model.pretrained=FILE for other weights."))], model_cfg.name)
    try:
        run = find_run(model_cfg.pretrained)
        if run is None and not _chose_model(job):
            read_run(model_cfg.pretrained)  # not a run: its RunError says what the path lacks
            raise RunError(f"{model_cfg.pretrained} is not a training run, and without model=NAME nothing says which "
                           "architecture its weights are for; add model=NAME (the variant they were trained as).")
    except RunError as error:
        raise ConfigError([Problem("model.pretrained", str(error))], model_cfg.name) from None
    return run


def announce(run: Run, model_cfg: ModelConfig) -> None:
    """One line on stderr: which run, which weights, and whether it is still running or was killed."""
    print(f"lucid-arch: {run.describe(model_cfg.checkpoint)}", file=sys.stderr, flush=True)


def run_record(run: Run, model_cfg: ModelConfig) -> dict[str, Any]:
    """What summary.json keeps of the run a job used."""
    try:
        weights = str(run.weights(model_cfg.checkpoint))
    except RunError:
        weights = None
    return {"dir": str(run.root), "checkpoint": model_cfg.checkpoint, "weights": weights, "status": run.status,
            "kind": run.kind, "classes": list(run.classes)}


def _chose_model(job: Any) -> bool:
    return any(o.partition("=")[0].lstrip("~+") == "model" for o in job.overrides)


def _model_overrides(cfg: DictConfig, job: Any) -> dict[str, Any]:
    """The command line's ``model.KEY=VALUE`` overrides, as Hydra typed them, nested as the config is."""
    out: dict[str, Any] = {}
    for override in job.overrides:
        key = override.partition("=")[0]
        if key.startswith("~") or not key.lstrip("+").startswith("model."):
            continue
        path = key.lstrip("+").split(".")[1:]
        if not path or path[0] in _WEIGHT_KEYS:
            continue
        value = OmegaConf.select(cfg, "model." + ".".join(path))
        if isinstance(value, DictConfig) or type(value).__name__ == "ListConfig":
            value = OmegaConf.to_container(value, resolve=True)
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return out
