"""Stage specs: a validated config resolved into what each stage is, before any torch module.

The builder turns these into modules and the analysis reads shapes and costs from them, so
the two cannot disagree. Nothing here imports torch or Hydra.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from .config.geometry import PatchGeometry, feature_sizes, patch_geometry
from .config.schema import ModelConfig


@dataclass(frozen=True)
class StageSpec:
    index: int
    in_dim: int  # channels entering the stage's patch embedding
    dim: int
    depth: int
    num_heads: int
    mlp_ratio: float
    sr_ratio: int
    linear: bool
    patch: PatchGeometry
    grid: tuple[int, int]  # feature map (H, W) at img_size
    pos_embed: bool
    cls_token: bool  # the class token is prepended to this stage's tokens
    norm: bool  # a LayerNorm closes the stage
    drop_path: tuple[float, ...]  # one stochastic-depth rate per block

    @property
    def head_dim(self) -> int:
        return self.dim // self.num_heads

    @property
    def hidden_dim(self) -> int:
        return int(self.dim * self.mlp_ratio)

    @property
    def num_prefix_tokens(self) -> int:
        return int(self.cls_token)

    @property
    def tokens(self) -> int:
        return self.grid[0] * self.grid[1] + self.num_prefix_tokens

    @property
    def kv_grid(self) -> tuple[int, int]:
        """(H, W) keys and values come from: a 7x7 pool (linear), a reduced map, or the map."""
        if self.linear:
            return (7, 7)
        h, w = self.grid
        return (h // self.sr_ratio, w // self.sr_ratio) if self.sr_ratio > 1 else (h, w)

    @property
    def kv_tokens(self) -> int:
        reduced = self.linear or self.sr_ratio > 1
        return self.kv_grid[0] * self.kv_grid[1] + (0 if reduced else self.num_prefix_tokens)


@dataclass(frozen=True)
class ModelSpec:
    name: str
    img_size: int
    in_channels: int
    num_classes: int
    stages: tuple[StageSpec, ...]
    pool: str
    mlp_dwconv: bool
    mlp_act: str
    attn_proj: bool
    qkv_bias: bool
    qk_scale: Optional[float]
    conv_init: str
    norm_eps: float
    drop_rate: float
    attn_drop_rate: float
    drop_path_rate: float  # what the per-block rates rise to (each stage holds its blocks' rates)

    @property
    def num_features(self) -> int:
        return self.stages[-1].dim

    @property
    def cls_token(self) -> bool:
        return any(s.cls_token for s in self.stages)


def _linspace(end: float, n: int) -> list[float]:
    """Stochastic-depth rates 0 .. end over n blocks, as torch.linspace(0, end, n) gives them."""
    if n == 1:
        return [0.0]
    return [end * i / (n - 1) for i in range(n)]


def model_spec(cfg: ModelConfig) -> ModelSpec:
    """Resolve a *validated* config (see :func:`lucid_arch.config.validate_model`)."""
    n = len(cfg.embed_dims)
    linear = list(cfg.linear) if isinstance(cfg.linear, (list, tuple)) else [bool(cfg.linear)] * n
    geometry = patch_geometry(cfg.patch_embed, n, cfg.patch_sizes, cfg.patch_strides)
    grids = feature_sizes(cfg.img_size, cfg.img_size, geometry)
    rates = _linspace(cfg.drop_path_rate, sum(cfg.depths))
    stages, start = [], 0
    for i in range(n):
        last = i == n - 1
        stages.append(
            StageSpec(
                index=i,
                in_dim=cfg.in_channels if i == 0 else cfg.embed_dims[i - 1],
                dim=cfg.embed_dims[i],
                depth=cfg.depths[i],
                num_heads=cfg.num_heads[i],
                mlp_ratio=float(cfg.mlp_ratios[i]),
                sr_ratio=cfg.sr_ratios[i],
                linear=linear[i],
                patch=geometry[i],
                grid=grids[i],
                pos_embed=cfg.pos_embed,
                cls_token=cfg.cls_token and last,
                norm=cfg.norm_each_stage or last,
                drop_path=tuple(rates[start : start + cfg.depths[i]]),
            )
        )
        start += cfg.depths[i]
    return ModelSpec(
        name=cfg.name,
        img_size=cfg.img_size,
        in_channels=cfg.in_channels,
        num_classes=cfg.num_classes,
        stages=tuple(stages),
        pool=cfg.pool,
        mlp_dwconv=cfg.mlp_dwconv,
        mlp_act=cfg.mlp_act,
        attn_proj=cfg.attn_proj,
        qkv_bias=cfg.qkv_bias,
        qk_scale=cfg.qk_scale,
        conv_init=cfg.conv_init,
        norm_eps=cfg.norm_eps,
        drop_rate=cfg.drop_rate,
        attn_drop_rate=cfg.attn_drop_rate,
        drop_path_rate=cfg.drop_path_rate,
    )
