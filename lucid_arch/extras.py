"""Optional features and the pip extra that installs each one's dependencies.

A feature that needs packages outside the core dependencies checks for them here before it
starts, so that a user without them reads one sentence naming the pip command, not an
ImportError from deep inside a third-party package halfway through a job. Importing this
module imports nothing heavy: the checks look modules up without importing them.
"""

from __future__ import annotations

import importlib.util

# extra -> the modules it provides (pyproject.toml's [project.optional-dependencies] says why each).
EXTRAS: dict[str, tuple[str, ...]] = {
    "export": ("onnx", "onnxscript", "onnxruntime"),
    "mlflow": ("mlflow", "sqlalchemy", "alembic"),  # logger=mlflow; SQLAlchemy and Alembic hold its SQLite store
    "tensorboard": ("tensorboard",),  # logger=tensorboard
    "detection": ("torchvision", "pycocotools"),
}


class MissingExtra(ImportError):
    """An optional feature's packages are missing; the message is the one sentence that says how to install them."""


def missing(extra: str) -> list[str]:
    """The modules of ``extra`` this environment cannot import."""
    return [name for name in EXTRAS[extra] if importlib.util.find_spec(name) is None]


def require(extra: str, feature: str) -> None:
    """Raise :class:`MissingExtra` unless every module of ``extra`` is importable."""
    absent = missing(extra)
    if absent:
        raise MissingExtra(
            f"{feature} needs {', '.join(EXTRAS[extra])} ({', '.join(absent)} missing here): pip install 'lucid-arch[{extra}]'.",
            name=absent[0],
        )

