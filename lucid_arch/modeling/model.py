"""PyramidVisionTransformer: the one model class behind every variant.

It is assembled from a :class:`~lucid_arch.modeling.spec.ModelSpec`, never from a config file, so it
knows nothing of Hydra. State-dict names follow timm's ``pvt_v2`` (``patch_embed``,
``stages.{i}.downsample``, ``stages.{i}.blocks.{j}``, ``stages.{i}.norm``, ``head``); PVT v1
adds ``stages.{i}.pos_embed`` and ``cls_token``.

Built from a ``features_only`` spec it is a backbone for dense prediction: ``forward`` returns
the selected stages' maps and ``feature_info`` describes them (timm's interface).
"""

from __future__ import annotations

import math
import torch
from torch import nn

from ..config.geometry import size_text
from .features import FeatureInfo
from .layers import Block, Mlp, PatchEmbed, SpatialReductionAttention, Stage
from .layers.attention import tokens_to_map
from .layers.shapes import concrete
from .lucid_args import lucid_call
from .registry import ACTIVATIONS, POOLS
from .spec import ModelSpec, StageSpec


def _build_stage(spec: StageSpec, model: ModelSpec) -> Stage:
    act_layer = ACTIVATIONS[model.mlp_act]
    blocks = [
        Block(
            spec.dim,
            attn=SpatialReductionAttention(
                spec.dim,
                spec.num_heads,
                sr_ratio=spec.sr_ratio,
                linear=spec.linear,
                qkv_bias=model.qkv_bias,
                qk_scale=model.qk_scale,
                attn_drop=model.attn_drop_rate,
                proj_drop=model.drop_rate,
                proj=model.attn_proj,
            ),
            mlp=Mlp(
                spec.dim,
                spec.hidden_dim,
                act_layer=act_layer,
                dwconv=model.mlp_dwconv,
                relu=spec.linear,
                drop=model.drop_rate,
            ),
            drop_path=rate,
            eps=model.norm_eps,
        )
        for rate in spec.drop_path
    ]
    return Stage(
        spec.dim,
        blocks,
        downsample=None if spec.index == 0 else _patch_embed(spec),
        pos_embed_grid=spec.pos_grid,
        num_prefix_tokens=spec.num_prefix_tokens,
        pos_drop=model.drop_rate,
        norm=spec.norm,
        eps=model.norm_eps,
    )


def _patch_embed(spec: StageSpec) -> PatchEmbed:
    return PatchEmbed(spec.in_dim, spec.dim, spec.patch.kernel, spec.patch.stride, spec.patch.padding)


_PARALLEL_FILL_MIN = 1 << 20  # elements; below this a thread pool costs more than it saves


@torch.no_grad()
def fill_normal(draws: list[tuple[torch.Tensor, float]]) -> None:
    """Draw each tensor from N(0, std^2), on every CPU thread torch may use.

    Drawing normals is sequential per generator, and is nearly all of building a model (56 of
    pvt_v2_b2's 77 ms on two cores). Each tensor gets its own generator, seeded in order from
    the global one, so the weights still follow ``torch.manual_seed`` exactly, and the
    tensors are filled concurrently (the kernels release the GIL).
    """
    if not draws:
        return
    seeds = torch.randint(0, 2**62, (len(draws),)).tolist()
    jobs = [(t, std, seed) for (t, std), seed in zip(draws, seeds)]
    threads = torch.get_num_threads()
    if threads == 1 or sum(t.numel() for t, _ in draws) < _PARALLEL_FILL_MIN or draws[0][0].device.type != "cpu":
        _fill(jobs)
        return
    from concurrent.futures import ThreadPoolExecutor

    shares: list[list[tuple[torch.Tensor, float, int]]] = [[] for _ in range(threads)]
    sizes = [0] * threads
    for job in sorted(jobs, key=lambda j: -j[0].numel()):  # largest first onto the lightest share
        k = sizes.index(min(sizes))
        shares[k].append(job)
        sizes[k] += job[0].numel()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(_fill, shares))


@torch.no_grad()  # grad mode is per thread: each pool thread needs its own
def _fill(jobs: list[tuple[torch.Tensor, float, int]]) -> None:
    for t, std, seed in jobs:
        t.normal_(0.0, std, generator=torch.Generator(t.device).manual_seed(seed))


class PyramidVisionTransformer(nn.Module):
    def __init__(self, spec: ModelSpec):
        super().__init__()
        self.spec = spec
        self.num_classes = spec.num_classes
        self.num_features = spec.num_features
        self.patch_embed = _patch_embed(spec.stages[0])
        self.stages = nn.ModuleList(_build_stage(s, spec) for s in spec.stages)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, spec.num_features)) if spec.cls_token else None
        self.num_prefix_tokens = int(spec.cls_token)
        self.pool = POOLS[spec.pool]()
        self.head = nn.Linear(self.num_features, spec.num_classes) if spec.num_classes > 0 else nn.Identity()
        self.feature_info = FeatureInfo.from_spec(spec)
        if not self.patch_embed.proj.weight.is_meta:  # meta tensors hold no values: to_empty(), then init_weights()
            self.init_weights()

    # --- initialisation --------------------------------------------------------------------
    def init_weights(self) -> None:
        """The official PVT initialisation: every parameter is (re)set, so it may follow ``to_empty()``."""
        for name, p in self.named_parameters():
            if name == "cls_token" or name.endswith("pos_embed"):
                nn.init.trunc_normal_(p, std=0.02)
        draws: list[tuple[torch.Tensor, float]] = []
        for m in self.modules():
            draws += self._init_module(m)
        fill_normal(draws)

    def _init_module(self, m: nn.Module) -> list[tuple[torch.Tensor, float]]:
        """Set what is constant; return the (weight, std) pairs to draw from a normal distribution."""
        if isinstance(m, nn.Linear):
            # Upstream's trunc_normal_(std=.02) truncates at +-2, 100 std away: the bounds are never
            # reached, so a plain normal is the same distribution, drawn ~2x faster.
            if m.bias is not None:
                nn.init.zeros_(m.bias)
            return [(m.weight, 0.02)]
        if isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Conv2d) and self.spec.conv_init == "fan_out":
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
            if m.bias is not None:
                nn.init.zeros_(m.bias)
            return [(m.weight, math.sqrt(2.0 / fan_out))]
        elif isinstance(m, nn.Conv2d):
            m.reset_parameters()  # PyTorch's default (v1)
        return []

    def no_weight_decay(self) -> set[str]:
        """Parameters an optimizer should not decay (timm's convention)."""
        return {n for n, _ in self.named_parameters() if n == "cls_token" or n.endswith("pos_embed")}

    # --- forward -----------------------------------------------------------------------------
    def _forward_stages(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Per-stage (B, C, H, W) maps, and the last stage's full token sequence."""
        maps: list[torch.Tensor] = []
        tokens = x
        for i, stage in enumerate(self.stages):
            embed = self.patch_embed if i == 0 else stage.downsample
            tokens, (h, w) = embed(x)
            self._check_map_size(i, h, w)
            prefix = None
            if stage.num_prefix_tokens:
                prefix = self.cls_token.expand(x.shape[0], -1, -1)
            tokens = stage(tokens, h, w, prefix)
            x = tokens_to_map(tokens[:, stage.num_prefix_tokens :], h, w)
            maps.append(x)
        return maps, tokens

    def _check_map_size(self, i: int, h: int, w: int) -> None:
        if not concrete(h, w):  # traced by torch.export: the dynamic range's minimum (lucid_arch.export.dynamic) holds it
            return
        spec = self.spec.stages[i]
        if not spec.linear and spec.sr_ratio > min(h, w):
            raise ValueError(
                f"input too small: stage {i}'s feature map is {h}x{w}, smaller than its sr_ratio "
                f"{spec.sr_ratio}; feed larger images (this model expects about {size_text(self.spec.input_size)} px) "
                f"or lower model.sr_ratios[{i}]."
            )

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(B, C_i, H_i, W_i) after every stage, for detection and segmentation necks."""
        return self._forward_stages(x)[0]

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Pool and classify the last stage's tokens (B, N, C), or, for mean pooling, its map (B, C, H, W)."""
        if self.spec.features_only:
            raise ValueError(
                f"{self.spec.name} is a features_only backbone: it has no head; its forward returns the maps of "
                f"stages {list(self.spec.out_indices)}. Build it with features_only=false to classify."
            )
        if x.ndim == 4:
            if self.num_prefix_tokens:
                raise ValueError("this model pools its class token, which a feature map does not hold: pass the token sequence")
            x = x.flatten(2).transpose(1, 2)
        x = self.pool(x, self.num_prefix_tokens)
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        """Logits (B, num_classes); for a features_only backbone, the selected stages' maps."""
        if self.spec.out_indices is not None:
            maps = self._forward_stages(x)[0]
            return [maps[i] for i in self.spec.out_indices]
        return self.forward_head(self._forward_stages(x)[1])

    def reset_classifier(self, num_classes: int) -> None:
        if self.spec.features_only:
            raise ValueError(f"{self.spec.name} is a features_only backbone: it has no classifier to reset.")
        self.num_classes = num_classes
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        if num_classes > 0:
            fill_normal(self._init_module(self.head))

    def __repr__(self) -> str:
        """The variant and lucid's documented arguments, as lucid prints a model, then the module tree.

        Read from the spec alone, so it costs nothing and works on meta-device models.
        """
        return f"{lucid_call(self.spec)}\n{super().__repr__()}"
