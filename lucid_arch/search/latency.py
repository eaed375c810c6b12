"""``latency_ms``: a model's forward time, measured in the job when a search asks for it.

A search that minimises latency needs a figure per candidate, measured where the candidate
runs. Weights do not change the time of a forward pass, so the model is built fresh (seeded) at
the job's resolution and timed: a few warm-up passes, then the median of ``repeats``. On a
machine shared by parallel trials the figure carries their noise; run latency searches with
``n_jobs=1`` (or on a SLURM node of their own) when the figure matters.
"""

from __future__ import annotations

import statistics
import time

from ..config import ModelConfig
from ..config.geometry import image_hw
from .settings import LatencySettings


def measure_latency_ms(model_cfg: ModelConfig, settings: LatencySettings) -> float:
    import torch

    from ..modeling.builder import build_model

    threads = torch.get_num_threads()
    if settings.threads:
        torch.set_num_threads(settings.threads)
    try:
        torch.manual_seed(0)
        model = build_model(model_cfg).eval()
        x = torch.randn(settings.batch_size, 3, *image_hw(model_cfg.img_size))
        times = []
        with torch.inference_mode():
            for i in range(settings.warmup + settings.repeats):
                start = time.perf_counter()
                model(x)
                if i >= settings.warmup:
                    times.append(time.perf_counter() - start)
        return round(1000 * statistics.median(times), 3)
    finally:
        torch.set_num_threads(threads)
