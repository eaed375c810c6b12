"""Stage specs: a validated config resolved into what each stage is, before any torch module.

The builder turns these into modules and the analysis reads shapes and costs from them, so
the two cannot disagree. Nothing here imports torch or Hydra.

A ``features_only`` config resolves to a backbone: only the stages up to the last selected
one, no class token and no LayerNorm that only the classifier reads (PVT v1's final norm), as
the official detection code builds it. A segmentation config adds a neck and a decode head over
a backbone of every stage; a detection config (``detector.type``) a neck and a
:class:`DetectionSpec`, which names the settings torchvision's parts are built with.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

from ..config.geometry import PatchGeometry, feature_sizes, image_hw, patch_geometry, reductions
from ..config.schema import AnchorConfig, DetectorConfig, ModelConfig, RoIConfig, RPNConfig


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
    pos_grid: Optional[tuple[int, int]]  # the position table's (H, W): at pretrain_img_size, else grid; None without one
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
class Level:
    """One feature map a neck or head reads or writes: its channels, output stride and (H, W) at img_size."""

    channels: int
    stride: int
    grid: tuple[int, int]


@dataclass(frozen=True)
class NeckSpec:
    kind: str  # a key of the registry's NECKS
    inputs: tuple[Level, ...]  # the encoder's maps it reads (from start_level on)
    channels: int
    num_outs: int
    start_level: int = 0  # the encoder map inputs[0] is
    extra_convs: str = "none"  # how levels beyond the inputs are made (schema.NECK_EXTRA_CHOICES)
    relu_before_extra_convs: bool = False

    @property
    def outputs(self) -> tuple[Level, ...]:
        """Every input level at ``channels``, then the extra levels at twice the stride of the one before
        (a stride-2 max-pool with kernel 1 or a 3x3 stride-2 convolution: the same size either way)."""
        out = [Level(self.channels, lv.stride, lv.grid) for lv in self.inputs]
        while len(out) < self.num_outs:
            last = out[-1]
            out.append(Level(self.channels, last.stride * 2, ((last.grid[0] - 1) // 2 + 1, (last.grid[1] - 1) // 2 + 1)))
        return tuple(out)

    @property
    def extra_in_channels(self) -> tuple[int, ...]:
        """Input channels of each extra convolution (none when extra levels are max-pools)."""
        extras = self.num_outs - len(self.inputs)
        if self.extra_convs == "none" or extras <= 0:
            return ()
        first = self.inputs[-1].channels if self.extra_convs == "on_input" else self.channels
        return (first,) + (self.channels,) * (extras - 1)


@dataclass(frozen=True)
class DecodeHeadSpec:
    kind: str  # a key of the registry's DECODE_HEADS
    inputs: tuple[Level, ...]  # the maps it reads (the neck's levels or the stages, picked by in_index)
    in_index: tuple[int, ...]
    channels: int
    num_classes: int
    dropout: float
    align_corners: bool

    @property
    def output(self) -> Level:
        """The logits: num_classes channels at the first map's stride and size."""
        first = self.inputs[0]
        return Level(self.num_classes, first.stride, first.grid)


@dataclass(frozen=True)
class DetectionSpec:
    """A detector over the neck's levels: what lucid_arch.modeling.detection builds with torchvision's parts."""

    kind: str  # "retinanet" or "mask_rcnn" (schema.DETECTOR_CHOICES)
    num_classes: int  # object classes, background not counted
    levels: tuple[Level, ...]  # the neck's outputs, every one read by the head or the RPN
    settings: DetectorConfig  # model.detector
    anchors: AnchorConfig  # model.anchors
    rpn: Optional[RPNConfig] = None  # Mask R-CNN's
    roi: Optional[RoIConfig] = None  # Mask R-CNN's
    roi_levels: int = 0  # Mask R-CNN: RoIAlign reads the first roi_levels levels (those of the encoder's maps)

    @property
    def anchor_sizes(self) -> tuple[tuple[float, ...], ...]:
        """Per level, the anchor sizes (square side, pixels): stride x base_scale x 2^(j / scales_per_octave)."""
        n = self.anchors.scales_per_octave
        return tuple(tuple(s * self.anchors.base_scale * 2 ** (j / n) for j in range(n)) for s in self.anchors.strides)

    @property
    def anchors_per_location(self) -> int:
        return self.anchors.scales_per_octave * len(self.anchors.ratios)

    @property
    def anchors_per_level(self) -> tuple[int, ...]:
        """Anchors of each level at img_size: its pixels times anchors per location."""
        return tuple(lv.grid[0] * lv.grid[1] * self.anchors_per_location for lv in self.levels)


@dataclass(frozen=True)
class ModelSpec:
    name: str
    img_size: int | tuple[int, int]  # as configured: one side, or (height, width)
    in_channels: int
    num_classes: int  # 0 for a backbone
    stages: tuple[StageSpec, ...]  # the stages built (a backbone stops at its last selected stage)
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
    out_indices: Optional[tuple[int, ...]] = None  # a backbone's returned stages; None: a classifier
    stage_outputs: tuple[tuple[int, int], ...] = ()  # (channels, reduction) of every configured stage, built or not
    neck: Optional[NeckSpec] = None  # a segmentation model's, when it has one; a detector's FPN
    decode_head: Optional[DecodeHeadSpec] = None  # set: a segmentation model over the encoder (a backbone of every stage)
    detection: Optional[DetectionSpec] = None  # set: a detector over the encoder (a backbone of every stage) and neck

    @property
    def input_size(self) -> tuple[int, int]:
        """(height, width) of the nominal input."""
        return image_hw(self.img_size)

    @property
    def features_only(self) -> bool:
        """A backbone: forward returns the selected maps (a segmentation model's or detector's encoder is one too)."""
        return self.out_indices is not None and self.decode_head is None and self.detection is None

    @property
    def segmentation(self) -> bool:
        return self.decode_head is not None

    @property
    def task(self) -> str:
        """'classification' (a classifier or a backbone), 'segmentation' or 'detection'."""
        return "detection" if self.detection is not None else "segmentation" if self.segmentation else "classification"

    @property
    def encoder(self) -> "ModelSpec":
        """The spec of the encoder alone: the model itself, or a segmentation model's or detector's backbone."""
        dense = self.segmentation or self.detection is not None
        return replace(self, neck=None, decode_head=None, detection=None) if dense else self

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


def is_segmentation(cfg: ModelConfig) -> bool:
    """A decode head over the encoder (features_only builds the encoder alone)."""
    return cfg.decode_head.type != "none" and not cfg.features_only


def is_detection(cfg: ModelConfig) -> bool:
    """A detector over the encoder and its FPN (features_only builds the encoder alone)."""
    return cfg.detector.type != "none" and not cfg.features_only


def selected_stages(cfg: ModelConfig) -> Optional[tuple[int, ...]]:
    """The encoder maps a features_only config returns (or a segmentation model's neck reads),
    ascending, negative indices resolved; None for a classifier."""
    n = len(cfg.embed_dims)
    if is_segmentation(cfg) or is_detection(cfg):
        return tuple(range(n))
    if not cfg.features_only:
        return None
    chosen = range(n) if cfg.out_indices is None else cfg.out_indices
    return tuple(sorted({i % n for i in chosen}))


def neck_spec(cfg: ModelConfig, levels: tuple[Level, ...]) -> Optional[NeckSpec]:
    """The neck over the encoder's maps (``levels``, one per stage), or None."""
    if cfg.neck.type == "none":
        return None
    read = levels[cfg.neck.start_level:]
    return NeckSpec(cfg.neck.type, read, cfg.neck.channels, cfg.neck.num_outs or len(read), cfg.neck.start_level,
                    cfg.neck.extra_convs, cfg.neck.relu_before_extra_convs)


def detection_spec(cfg: ModelConfig, neck: NeckSpec) -> DetectionSpec:
    mask_rcnn = cfg.detector.type == "mask_rcnn"
    return DetectionSpec(
        kind=cfg.detector.type,
        num_classes=cfg.num_classes,
        levels=neck.outputs,
        settings=cfg.detector,
        anchors=cfg.anchors,
        rpn=cfg.rpn if mask_rcnn else None,
        roi=cfg.roi if mask_rcnn else None,
        roi_levels=len(neck.inputs) if mask_rcnn else 0,
    )


def dense_specs(
    cfg: ModelConfig, stages: list[StageSpec], strides: list[int]
) -> tuple[Optional[NeckSpec], Optional[DecodeHeadSpec], Optional[DetectionSpec]]:
    """The neck and decode head of a segmentation config, or the neck and detector of a detection config,
    sized from the encoder's stages."""
    if not (is_segmentation(cfg) or is_detection(cfg)):
        return None, None, None
    levels = tuple(Level(s.dim, stride, s.grid) for s, stride in zip(stages, strides))
    neck = neck_spec(cfg, levels)
    if is_detection(cfg):
        assert neck is not None, "a validated detection config has a neck"
        return neck, None, detection_spec(cfg, neck)
    if neck is not None:
        levels = neck.outputs
    index = tuple(cfg.decode_head.in_index) if cfg.decode_head.in_index is not None else tuple(range(len(levels)))
    head = DecodeHeadSpec(
        kind=cfg.decode_head.type,
        inputs=tuple(levels[i] for i in index),
        in_index=index,
        channels=cfg.decode_head.channels,
        num_classes=cfg.num_classes,
        dropout=cfg.decode_head.dropout,
        align_corners=cfg.decode_head.align_corners,
    )
    return neck, head, None


def model_spec(cfg: ModelConfig) -> ModelSpec:
    """Resolve a *validated* config (see :func:`lucid_arch.config.validate_model`)."""
    n = len(cfg.embed_dims)
    out_indices = selected_stages(cfg)
    built = n if out_indices is None else out_indices[-1] + 1
    linear = list(cfg.linear) if isinstance(cfg.linear, (list, tuple)) else [bool(cfg.linear)] * n
    geometry = patch_geometry(cfg.patch_embed, n, cfg.patch_sizes, cfg.patch_strides)
    img_size = tuple(cfg.img_size) if isinstance(cfg.img_size, (list, tuple)) else cfg.img_size
    grids = feature_sizes(*image_hw(img_size), geometry)
    table_size = cfg.pretrain_img_size if cfg.pretrain_img_size is not None else img_size
    pos_grids = feature_sizes(*image_hw(table_size), geometry)
    strides = reductions(geometry)
    rates = _linspace(cfg.drop_path_rate, sum(cfg.depths))
    classifier = out_indices is None
    stages, start = [], 0
    for i in range(built):
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
                pos_grid=pos_grids[i] if cfg.pos_embed else None,
                cls_token=cfg.cls_token and last and classifier,
                norm=cfg.norm_each_stage or (last and classifier),
                drop_path=tuple(rates[start : start + cfg.depths[i]]),
            )
        )
        start += cfg.depths[i]
    neck, decode_head, detection = dense_specs(cfg, stages, strides)
    return ModelSpec(
        name=cfg.name,
        img_size=img_size,
        in_channels=cfg.in_channels,
        num_classes=cfg.num_classes if classifier else 0,
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
        out_indices=out_indices,
        stage_outputs=tuple(zip(cfg.embed_dims, strides)),
        neck=neck,
        decode_head=decode_head,
        detection=detection,
    )
