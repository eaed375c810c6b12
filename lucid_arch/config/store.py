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


def register_configs(force: bool = False) -> None:
    """Register ``model/_schema``, ``task/_train_schema`` and ``task/_export_schema`` (idempotent).

    The family bases start their defaults list with ``_schema``, the train task with
    ``_train_schema`` and the export task with ``_export_schema``, so every variant and task
    file is merged onto its typed dataclass.
    """
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    nodes = (("model", "_schema", ModelConfig), ("task", "_train_schema", TrainConfig), ("task", "_export_schema", ExportConfig),
             ("task", "_predict_schema", PredictConfig), ("task", "_eval_schema", EvalConfig),
             ("logger", "_logger_schema", LoggerConfig))
    # Each composition calls this; building a dataclass's node costs more than the check (a sweep composes hundreds).
    # ``force``: store them again over a stand-in (the untyped schema of hydra_session._untyped_schema).
    if not force and all(f"{name}.yaml" in store.repo.get(group, {}) for group, name, _ in nodes):
        return
    for group, name, node in nodes:
        store.store(group=group, name=name, node=node)
