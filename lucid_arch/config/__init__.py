"""Config layer: schema, validation and Hydra composition. Imports no torch."""

from .checks import ConfigError, Problem, check_model, validate_model
from .compose import config_dir, list_models, load_config
from .schema import ModelConfig
from .store import register_configs

__all__ = [
    "ConfigError",
    "ModelConfig",
    "Problem",
    "check_model",
    "config_dir",
    "list_models",
    "load_config",
    "register_configs",
    "validate_model",
]
