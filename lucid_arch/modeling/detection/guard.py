"""torchvision for detection: absent or unloadable becomes one sentence naming the pip command."""

from __future__ import annotations

import importlib.util

from ...extras import MissingExtra

HINT = "pip install 'lucid-arch[detection]'"


def require_torchvision() -> None:
    """Import torchvision or raise :class:`MissingExtra`; it loads only with a torch build it was compiled for."""
    if importlib.util.find_spec("torchvision") is None:
        raise MissingExtra(f"detection models (RetinaNet, Mask R-CNN) need torchvision, which is not installed here: {HINT}.",
                           name="torchvision")
    try:
        import torchvision.ops  # noqa: F401  (its compiled operators: nms, roi_align)
    except (ImportError, RuntimeError) as err:
        import torch

        raise MissingExtra(
            f"detection models need torchvision, which is installed but does not load with torch {torch.__version__} "
            f"({str(err).splitlines()[0]}): install the torchvision release built for this torch, {HINT}.",
            name="torchvision",
        ) from None
