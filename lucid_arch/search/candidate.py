"""A candidate judged before anything is built: composed, validated, costed, held to the budgets.

The sweeper asks Optuna for a candidate, composes its config exactly as its job would, and
lets it run only if the typed schema and the cross-field rules accept the model (no torch
needed) and its closed-form cost (parameters, GFLOPs on the meta device: no weights) is within
``search.max_params`` / ``search.max_gflops``. A refusal is one sentence that names the key.
The cost is the one the job will report: at the training resolution and class count for
``task=train``, at ``model.img_size`` (and ``task.batch_size``) for the summary task.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

from omegaconf import OmegaConf

from ..config import ConfigError, ModelConfig, validate_model
from .settings import SearchSettings

INVALID, OVER_BUDGET = "invalid", "over budget"


@dataclass(frozen=True)
class Verdict:
    reason: Optional[str] = None  # None: the candidate may run
    kind: str = ""  # INVALID or OVER_BUDGET when refused
    cost: dict[str, Any] = field(default_factory=dict)  # params, gflops: as the job will report them


def sentence(error: BaseException) -> str:
    """A refusal in one line: a config error's first problem (one sentence), or the exception's text."""
    if isinstance(error, ConfigError) and error.problems:
        more = len(error.problems) - 1
        return str(error.problems[0]) + (f" (and {more} more problem{'s' * (more > 1)} of the same candidate)" if more else "")
    return " ".join(f"{type(error).__name__}: {error}".split())


def job_model(cfg: Any, model_cfg: ModelConfig) -> tuple[ModelConfig, int]:
    """The model as the job runs it, and the batch its FLOPs are counted for."""
    task = str(OmegaConf.select(cfg, "task.name", default="summary"))
    if task == "train":
        from ..config.train_schema import plain_image_size

        size = plain_image_size(OmegaConf.select(cfg, "task.data.image_size"))
        classes = model_cfg.num_classes
        if OmegaConf.select(cfg, "task.data.dataset", default="shapes") == "shapes":  # as the training builds it
            from ..data.shapes import CLASSES, SEGMENTATION_CLASSES  # torch is loaded by the analysis anyway
            from ..modeling.spec import is_segmentation

            classes = len(SEGMENTATION_CLASSES if is_segmentation(model_cfg) else CLASSES)
        return dataclasses.replace(model_cfg, img_size=size, num_classes=classes), 1
    if task == "summary":
        return model_cfg, int(OmegaConf.select(cfg, "task.batch_size", default=1))
    return model_cfg, 1


def cost_of(cfg: Any, model_cfg: ModelConfig) -> dict[str, Any]:
    """Parameters and GFLOPs as the job will report them (rounded as the tasks round them)."""
    from ..perf.analysis import analyze

    model, batch = job_model(cfg, model_cfg)
    report = analyze(model, batch_size=batch)
    return {"params": report.params, "gflops": round(report.gflops, 4)}


def _at(cfg: Any, model_cfg: ModelConfig) -> str:
    from ..config.geometry import image_hw, size_text

    model, batch = job_model(cfg, model_cfg)
    return f"at {size_text(image_hw(model.img_size))} px" + (f", batch {batch}" if batch > 1 else "")


def judge(compose: Callable[[Sequence[str]], Any], overrides: Sequence[str], settings: SearchSettings,
          explain: Callable[[BaseException, Sequence[str]], str] = lambda e, o: sentence(e)) -> Verdict:
    """May the candidate run? ``compose(overrides)`` composes its job config as the launcher will."""
    try:
        cfg = compose(list(overrides))
    except Exception as error:  # noqa: BLE001 -- Hydra's and OmegaConf's composition errors, said in one sentence
        return Verdict(explain(error, overrides), INVALID)
    try:
        model_cfg = validate_model(cfg.model)
        cost = cost_of(cfg, model_cfg)
    except Exception as error:  # noqa: BLE001 -- the schema's problems, or a model the analysis cannot build
        return Verdict(sentence(error), INVALID)
    over = []
    if settings.max_gflops is not None and cost["gflops"] > settings.max_gflops:
        over.append(f"{cost['gflops']:.4g} GFLOPs {_at(cfg, model_cfg)} is over search.max_gflops = {settings.max_gflops:g}")
    if settings.max_params is not None and cost["params"] > settings.max_params:
        over.append(f"{cost['params']:,} parameters is over search.max_params = {settings.max_params:,}")
    if over:
        return Verdict(f"{' and '.join(over)}.", OVER_BUDGET, cost)
    return Verdict(None, "", cost)
