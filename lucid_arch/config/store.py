"""Registration of the typed schemas with Hydra's ConfigStore.

Kept apart from the schemas themselves so that neither schema module imports the other (the
training schema reuses the model layer's problem reporting, which reads the model schema).
"""

from __future__ import annotations

from .eval_schema import EvalConfig
from .export_schema import ExportConfig
from .logger_schema import LoggerConfig
from .predict_schema import PredictConfig
from .schema import ModelConfig
from .train_schema import TrainConfig


def register_configs() -> None:
    """Register ``model/_schema``, ``task/_train_schema`` and ``task/_export_schema`` (idempotent).

    The family bases start their defaults list with ``_schema``, the train task with
    ``_train_schema`` and the export task with ``_export_schema``, so every variant and task
    file is merged onto its typed dataclass.
    """
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    store.store(group="model", name="_schema", node=ModelConfig)
    store.store(group="task", name="_train_schema", node=TrainConfig)
    store.store(group="task", name="_export_schema", node=ExportConfig)
    store.store(group="task", name="_predict_schema", node=PredictConfig)
    store.store(group="task", name="_eval_schema", node=EvalConfig)
    store.store(group="logger", name="_logger_schema", node=LoggerConfig)
