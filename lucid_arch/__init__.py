"""lucid_arch: Pyramid Vision Transformers (PVT v1 and v2) defined as Hydra configs.

The public API is imported lazily, so ``import lucid_arch`` (and the command line's
``--help`` and tab completion) do not pay for importing torch until a model is built.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "create_model": "lucid_arch.modeling.builder",
    "build_model": "lucid_arch.modeling.builder",
    "load_config": "lucid_arch.config.compose",
    "list_models": "lucid_arch.config.compose",
    "ConfigError": "lucid_arch.config.checks",
    "ModelConfig": "lucid_arch.config.schema",
    "validate_model": "lucid_arch.config.checks",
    "convert_state_dict": "lucid_arch.weights",
    "load_pretrained": "lucid_arch.weights",
    "PyramidVisionTransformer": "lucid_arch.modeling.model",
    "analyze": "lucid_arch.perf.analysis",
    "export_model": "lucid_arch.export",
    "Predictor": "lucid_arch.inference.predictor",
}

__all__ = sorted(_EXPORTS) + ["models"]


def __getattr__(name: str) -> Any:
    if name == "models":
        return importlib.import_module("lucid_arch.models")
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'lucid_arch' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
