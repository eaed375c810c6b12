"""What a config is and costs, per stage, without allocating a single weight.

A *probe* is built on the ``meta`` device (shapes, no storage): the same model with one block
per stage. The blocks of a stage are identical in shape, so each stage's parameters and FLOPs
(``torch.utils.flop_counter.FlopCounterMode`` over one forward of the probe) are its probe
counts plus (depth - 1) times its block 0's; pvt_v2_b5 (52 blocks) is counted from 4, and
pvt_huge is analysed as fast as b0. Feature-map shapes come from the stage specs the modules
are built from. FLOPs count a multiply-add as 2.
Attention matmuls are included and also reported apart (``attention_flops``): counted on real
CPU tensors, flop_counter does not see the fused SDPA kernel, which is why figures published
that way (1.06 G for pvt_v2_b0) are lower by exactly that share.

The command-line summary, the config-diff tool and the benchmarks all read this module.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Optional

from .builder import resolve_spec
from .config.checks import to_plain_dict
from .spec import ModelSpec, StageSpec


@dataclass(frozen=True)
class StageReport:
    index: int
    feature_size: tuple[int, int]
    tokens: int
    embed_dim: int
    num_heads: int
    head_dim: int
    sr_ratio: int
    kv_tokens: int
    linear: bool
    mlp_ratio: float
    depth: int
    params: int
    flops: int
    attention_flops: int


@dataclass(frozen=True)
class ModelReport:
    name: str
    img_size: int
    batch_size: int
    stages: tuple[StageReport, ...]
    head_params: int
    head_flops: int
    params: int
    flops: int
    attention_flops: int
    feature_shapes: tuple[tuple[int, ...], ...]
    logits_shape: tuple[int, ...]

    @property
    def gflops(self) -> float:
        return self.flops / 1e9

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def attention_flops(stage: StageSpec, batch_size: int = 1) -> int:
    """q @ k^T and attn @ v of every block: 2 matmuls x 2 FLOPs per multiply-add."""
    return 4 * batch_size * stage.tokens * stage.kv_tokens * stage.dim * stage.depth


def _stage_prefixes(spec: ModelSpec, i: int) -> tuple[str, ...]:
    prefixes: tuple[str, ...] = (f"stages.{i}.",)
    if i == 0:
        prefixes += ("patch_embed.",)  # the first stage's embedding lives at the model's top level
    if spec.stages[i].cls_token:
        prefixes += ("cls_token",)
    return prefixes


def analyze(cfg: Any, img_size: Optional[int] = None, batch_size: int = 1) -> ModelReport:
    """Per-stage shapes, parameters and FLOPs of any config form (see :func:`build_model`).

    ``img_size`` defaults to the config's own; the input is square.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from .model import PyramidVisionTransformer

    raw = to_plain_dict(cfg)
    spec = resolve_spec(raw if img_size is None else {**raw, "img_size": img_size})
    probe_spec = replace(spec, stages=tuple(replace(s, depth=1, drop_path=s.drop_path[:1]) for s in spec.stages))
    with torch.device("meta"):
        probe = PyramidVisionTransformer(probe_spec).eval().requires_grad_(False)
        x = torch.empty(batch_size, spec.in_channels, spec.img_size, spec.img_size)
    with FlopCounterMode(display=False) as counter:
        logits = probe(x)  # through __call__, so per-module counts are keyed by the model's FQNs
    by_module = {k: sum(v.values()) for k, v in counter.get_flop_counts().items()}
    root = type(probe).__name__
    params = {name: p.numel() for name, p in probe.named_parameters()}

    def block_params(i: int) -> int:
        return sum(n for k, n in params.items() if k.startswith(f"stages.{i}.blocks.0."))

    stages = []
    for i, s in enumerate(spec.stages):
        # The model calls each stage's patch embedding itself, outside the stage's forward.
        embed = f"{root}.patch_embed" if i == 0 else f"{root}.stages.{i}.downsample"
        left_out = s.depth - 1  # blocks the probe does not have, each the same as its block 0
        stages.append(
            StageReport(
                index=i,
                feature_size=s.grid,
                tokens=s.tokens,
                embed_dim=s.dim,
                num_heads=s.num_heads,
                head_dim=s.head_dim,
                sr_ratio=s.sr_ratio,
                kv_tokens=s.kv_tokens,
                linear=s.linear,
                mlp_ratio=s.mlp_ratio,
                depth=s.depth,
                params=sum(n for k, n in params.items() if k.startswith(_stage_prefixes(spec, i))) + left_out * block_params(i),
                flops=by_module.get(f"{root}.stages.{i}", 0) + by_module.get(embed, 0)
                + left_out * by_module.get(f"{root}.stages.{i}.blocks.0", 0),
                attention_flops=attention_flops(s, batch_size),
            )
        )
    head_params = sum(n for k, n in params.items() if k.startswith("head."))
    head_flops = by_module.get(f"{root}.head", 0)
    return ModelReport(
        name=spec.name,
        img_size=spec.img_size,
        batch_size=batch_size,
        stages=tuple(stages),
        head_params=head_params,
        head_flops=head_flops,
        params=sum(st.params for st in stages) + head_params,
        flops=sum(st.flops for st in stages) + head_flops,
        attention_flops=sum(st.attention_flops for st in stages),
        feature_shapes=tuple((batch_size, s.dim, *s.grid) for s in spec.stages),
        logits_shape=tuple(logits.shape),
    )
