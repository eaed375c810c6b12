"""The model config schema: the one place that says which fields a model config has.

Every YAML under ``conf/model/`` is composed on top of :class:`ModelConfig` (registered with
Hydra's ConfigStore as ``model/_schema``), so an unknown key or a wrongly typed value is caught
at composition time. Cross-field rules (list lengths, divisibility, ranges) live in
:mod:`lucid_arch.config.checks`.

Each field's ``help`` metadata documents it; the CLI reads it from here, and a test keeps
docs/variants.md listing every field, so the documentation cannot drift from the schema. This
module imports neither torch nor Hydra (:mod:`lucid_arch.config.store` registers it), which
keeps ``--help`` and tab completion fast.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, List, Optional

from omegaconf import MISSING  # "???": required, Hydra reports it if never set

# Vocabularies of the string-valued switches. The layer registry (lucid_arch.modeling.registry) provides
# one module per name and a test checks the two agree; they are spelled out here so that
# validating a config never needs torch.
PATCH_EMBED_CHOICES = ("overlapping", "non_overlapping")
POOL_CHOICES = ("mean", "cls")
ACT_CHOICES = ("gelu", "relu", "silu")
CONV_INIT_CHOICES = ("fan_out", "default")
NECK_CHOICES = ("none", "fpn")
DECODE_HEAD_CHOICES = ("none", "all_mlp", "fpn")
CHECKPOINT_CHOICES = ("last", "best")

# Fields that hold one entry per stage. The number of stages is len(embed_dims).
PER_STAGE_FIELDS = ("embed_dims", "depths", "num_heads", "mlp_ratios", "sr_ratios")
OPTIONAL_PER_STAGE_FIELDS = ("patch_sizes", "patch_strides")
PROBABILITY_FIELDS = ("drop_rate", "attn_drop_rate", "drop_path_rate")

# Bounds that keep every config cheap to check, analyse, summarise and review: with them, no
# value can make validation, stage specs, the analysis or the diff loop for long (a
# `depths: [1e23, ...]` from a pull request is a one-line error, not a hang). They are far above
# any published vision transformer (pvt_huge: 60 blocks in a stage, 76 in all; widths <= 768).
# Whether a config fits a machine's memory is checked apart, when a model is really built.
MAX_STAGES = 16
MAX_BLOCKS = 1024  # sum(depths)
VALUE_RANGES: dict[str, tuple[int, int]] = {  # field -> (smallest, largest); per entry for lists
    "embed_dims": (1, 16_384),
    "depths": (1, 256),
    "num_heads": (1, 1_024),
    "sr_ratios": (1, 1_024),
    "patch_sizes": (1, 1_024),
    "patch_strides": (1, 1_024),
    "img_size": (1, 16_384),
    "in_channels": (1, 1_024),
    "num_classes": (0, 1_000_000),
    "pretrain_img_size": (1, 16_384),
}
MAX_MLP_RATIO = 64.0
# The same for the neck's and the decode head's fields (model.neck.*, model.decode_head.*).
SECTION_RANGES: dict[str, tuple[int, int]] = {
    "channels": (1, 16_384),
    "num_outs": (1, 8),
    "in_index": (0, MAX_STAGES + 8 - 1),  # a stage or a neck level (up to num_outs)
}


def _doc(text: str, **extra: Any) -> dict:
    return {"help": " ".join(text.split()), **extra}


@dataclass
class NeckConfig:
    """What joins the encoder's maps before the decode head reads them (``model.neck``).

    mmsegmentation's FPN: a 1x1 lateral convolution per map, a top-down pathway adding each
    coarser level (nearest-neighbour upsampled) to the finer one, and a 3x3 output convolution
    per level, all with biases and no norm, as in the PVT papers' Semantic FPN.
    """

    type: str = field(
        default="none", metadata=_doc("The neck: 'none', or 'fpn' (the Feature Pyramid Network).", choices=NECK_CHOICES)
    )
    channels: int = field(default=256, metadata=_doc("Channels of every level the neck outputs (mmseg's out_channels)."))
    num_outs: Optional[int] = field(
        default=None,
        metadata=_doc(
            """Levels the neck outputs. null: one per encoder map. More: extra coarser levels, each a
            stride-2 max-pool of the last (mmseg's FPN without extra convolutions)."""
        ),
    )


@dataclass
class DecodeHeadConfig:
    """What turns feature maps into per-pixel class logits (``model.decode_head``).

    'all_mlp' is SegFormer's head: each map through a Linear to ``channels``, bilinearly
    upsampled to the first (stride-4) map, concatenated coarsest first, fused by a 1x1
    convolution without bias + BatchNorm + ReLU, then dropout and a 1x1 classifier. 'fpn' is
    the Semantic FPN head (mmseg's FPNHead): per level, 3x3 convolution + BatchNorm + ReLU
    blocks, each followed by a 2x bilinear upsampling, until the level reaches the first map's
    stride; the levels are summed, then dropout and a 1x1 classifier. Logits come out at the
    first map's stride (1/4 of the input) and are upsampled to the labels for the loss.
    """

    type: str = field(
        default="none",
        metadata=_doc(
            """The head: 'none' (a classifier, or a backbone), 'all_mlp' (SegFormer) or 'fpn'
            (Semantic FPN).""",
            choices=DECODE_HEAD_CHOICES,
        ),
    )
    channels: int = field(
        default=256,
        metadata=_doc(
            """Width of the head: all_mlp's embedding of every map (Hugging Face's
            decoder_hidden_size: 256 for SegFormer-B0/B1, 768 for B2-B5); fpn's channels of every
            scale head (128 in the PVT papers)."""
        ),
    )
    dropout: float = field(
        default=0.1,
        metadata=_doc("Channel dropout (Dropout2d, as the official code) before the classifier; 0 turns it off."),
    )
    in_index: Optional[List[int]] = field(
        default=None,
        metadata=_doc(
            """The maps the head reads, counted from 0 (the neck's levels when there is a neck, else
            the encoder's stages), in increasing stride. null: all of them."""
        ),
    )
    align_corners: bool = field(
        default=False, metadata=_doc("align_corners of the head's bilinear upsampling (false in the references).")
    )


@dataclass
class ModelConfig:
    """A Pyramid Vision Transformer, v1 or v2 or anything in between, as data.

    The per-stage lists (``embed_dims`` ... ``sr_ratios``) define the stages; the switches
    below them choose the components that distinguish PVT v1 from PVT v2. The family bases
    ``conf/model/_pvt_v1.yaml`` and ``_pvt_v2.yaml`` set every switch explicitly.
    """

    name: str = field(default="custom", metadata=_doc("Variant name, for reports and checkpoints."))

    # --- input and output -------------------------------------------------------------
    img_size: Any = field(
        default=224,
        metadata=_doc(
            """Nominal input size in pixels: one side for a square input, or [height, width].
            Sizes the v1 position-embedding tables and the per-stage shapes and FLOPs in
            reports; the model itself accepts any height and width."""
        ),
    )
    in_channels: int = field(default=3, metadata=_doc("Channels of the input image."))
    num_classes: int = field(
        default=1000, metadata=_doc("Classifier outputs; 0 drops the head and returns pooled features.")
    )
    features_only: bool = field(
        default=False,
        metadata=_doc(
            """Build a backbone for dense prediction (timm's features_only): forward returns the
            feature maps of the stages in out_indices, and the model carries feature_info
            (channels, reductions, module names). There is no head, no class token and no
            final LayerNorm that only the head reads (PVT v1's), as in the official detection
            code; stages after the last selected one are not built."""
        ),
    )
    out_indices: Optional[List[int]] = field(
        default=None,
        metadata=_doc(
            """Stages whose maps a features_only model returns, counted from 0 (negative counts
            from the end), in stage order. null: every stage. Needs features_only."""
        ),
    )

    pretrain_img_size: Any = field(
        default=None,
        metadata=_doc(
            """Input size the v1 position-embedding tables are sized for: one side or [height,
            width]. null: img_size. The official detection and segmentation code keeps the
            tables at their pretraining size (224) and interpolates them for larger inputs
            (mmdetection's pretrain_img_size); only models with pos_embed have tables."""
        ),
    )

    # --- dense prediction: a decode head (and a neck) over the encoder's maps -------------
    neck: NeckConfig = field(
        default_factory=NeckConfig,
        metadata=_doc("A neck between the encoder and the decode head (see NeckConfig); type 'none': none. Needs a decode head."),
    )
    decode_head: DecodeHeadConfig = field(
        default_factory=DecodeHeadConfig,
        metadata=_doc(
            """A segmentation head (see DecodeHeadConfig): with a type other than 'none' the model
            returns per-pixel logits (B, num_classes, H/4, W/4) instead of class scores, its encoder
            built as a backbone (every stage, no class token). With features_only=true the encoder
            alone is built, and neither neck nor head is."""
        ),
    )

    # --- per-stage lists (one entry per stage; required) --------------------------------
    embed_dims: List[int] = field(
        default=MISSING, metadata=_doc("Channels of each stage; its length is the number of stages.")
    )
    depths: List[int] = field(default=MISSING, metadata=_doc("Transformer blocks in each stage."))
    num_heads: List[int] = field(
        default=MISSING, metadata=_doc("Attention heads in each stage; must divide that stage's embed_dims.")
    )
    mlp_ratios: List[float] = field(
        default=MISSING, metadata=_doc("MLP hidden width of each stage, as a multiple of its embed_dims.")
    )
    sr_ratios: List[int] = field(
        default=MISSING,
        metadata=_doc(
            """Spatial-reduction ratio of each stage: keys and values come from a feature map
            shrunk by this factor per side (1 = full attention). Ignored where `linear` is on."""
        ),
    )
    linear: Any = field(
        default=False,
        metadata=_doc(
            """Linear spatial-reduction attention (PVT-v2 "li"): keys and values from a 7x7
            average pool, plus a ReLU in the MLP. A bool for every stage, or a list of bools."""
        ),
    )

    # --- patch embedding --------------------------------------------------------------
    patch_embed: str = field(
        default="overlapping",
        metadata=_doc(
            """'overlapping' (PVT v2: convolution padded by kernel//2) or 'non_overlapping'
            (PVT v1: kernel == stride, no padding).""",
            choices=PATCH_EMBED_CHOICES,
        ),
    )
    patch_sizes: Optional[List[int]] = field(
        default=None,
        metadata=_doc(
            """Patch-embedding kernel of each stage. null: 7 then 3s (overlapping) or 4 then 2s
            (non_overlapping), for any number of stages."""
        ),
    )
    patch_strides: Optional[List[int]] = field(
        default=None,
        metadata=_doc("Patch-embedding stride of each stage. null: 4 then 2s; non_overlapping needs it equal to patch_sizes."),
    )

    # --- component switches (v1 vs v2) -------------------------------------------------
    pos_embed: bool = field(
        default=False,
        metadata=_doc("Learned absolute position embedding per stage (PVT v1), interpolated for other input sizes."),
    )
    cls_token: bool = field(
        default=False, metadata=_doc("Prepend a class token before the last stage (PVT v1).")
    )
    pool: str = field(
        default="mean",
        metadata=_doc("What the head reads: 'mean' of the last stage's tokens (v2) or the 'cls' token (v1).", choices=POOL_CHOICES),
    )
    norm_each_stage: bool = field(
        default=True,
        metadata=_doc("LayerNorm at the end of every stage (v2); false: only after the last stage (v1)."),
    )
    mlp_dwconv: bool = field(
        default=True, metadata=_doc("Depthwise 3x3 convolution between the MLP's two linear layers (PVT v2).")
    )
    mlp_act: str = field(default="gelu", metadata=_doc("Activation of the MLP.", choices=ACT_CHOICES))
    attn_proj: bool = field(
        default=True,
        metadata=_doc(
            """Linear output projection after attention, as in the official code. false
            reproduces the parameter counts in lucid's PVT v1 docs, whose attention lacks it."""
        ),
    )
    qkv_bias: bool = field(default=True, metadata=_doc("Bias in the query and key/value projections."))
    qk_scale: Optional[float] = field(
        default=None, metadata=_doc("Attention logit scale; null: head_dim ** -0.5.")
    )
    conv_init: str = field(
        default="fan_out",
        metadata=_doc(
            """Initialisation of convolutions: 'fan_out' normal (PVT v2) or PyTorch's 'default'
            (PVT v1). Linear layers always get truncated normal std 0.02, as upstream.""",
            choices=CONV_INIT_CHOICES,
        ),
    )
    norm_eps: float = field(
        default=1e-6,
        metadata=_doc("Epsilon of the block and stage LayerNorms (patch-embedding and reduction norms keep 1e-5, as upstream)."),
    )

    # --- regularisation ----------------------------------------------------------------
    drop_rate: float = field(default=0.0, metadata=_doc("Dropout after attention and MLP projections (and position embeddings)."))
    attn_drop_rate: float = field(default=0.0, metadata=_doc("Dropout on attention weights."))
    drop_path_rate: float = field(
        default=0.0, metadata=_doc("Stochastic-depth rate of the last block; rises linearly from 0 over all blocks.")
    )

    # --- initial weights (not architecture: analysis, summaries and meta builds ignore them) ---
    pretrained: Optional[str] = field(
        default=None,
        metadata=_doc(
            """Checkpoint to initialise from: a .safetensors file, a torch .pth/.pt/.bin/.ckpt
            file (loaded with weights_only, so no code is ever run), or a training run directory
            (its model.safetensors, else its newest checkpoints/step_*/model.safetensors), or a
            Hugging Face model directory (config.json + model.safetensors or pytorch_model.bin).
            The layout is detected (see lucid_arch/weights/layouts.py): the official PVT v1/v2 and
            SegFormer code's, timm's, Hugging Face's Pvt/PvtV2/Segformer, mmdetection's, or ours;
            a segmentation model also reads whole segmentation checkpoints (Hugging Face's and
            NVlabs' SegFormer, mmsegmentation's Semantic FPN; see lucid_arch/weights/head_layouts.py)
            or an encoder's alone (its neck and decode head then keep their initialisation).
            A run directory also gives the architecture: without model=NAME the run's own model is
            rebuilt (see lucid_arch/runs/). A head that would keep a random initialisation (another
            class count, an encoder-only checkpoint) is an error unless new_head is true (task=train
            always starts a fresh head: it trains it); v1 position embeddings are resampled to
            img_size, and a backbone drops what only a classifier uses; any other mismatch is an
            error. null: the official random initialisation."""
        ),
    )
    checkpoint: str = field(
        default="last",
        metadata=_doc(
            """Which weights of a training run model.pretrained loads: 'last' (the final weights; for a
            run still training or killed, its newest checkpoints/step_*) or 'best' (the epoch with the
            best validation metric, model_best.safetensors). Ignored for any other checkpoint.""",
            choices=CHECKPOINT_CHOICES,
        ),
    )
    new_head: bool = field(
        default=False,
        metadata=_doc(
            """Accept a checkpoint whose classifier or decode head does not fit the model (another class
            count, or none at all): that head keeps its random initialisation, to be trained. false: such a
            checkpoint is an error, so a model never predicts with a random head by accident."""
        ),
    )


# Sections of the model config that are small typed mappings of their own.
SECTIONS: dict[str, type] = {"neck": NeckConfig, "decode_head": DecodeHeadConfig}


def plain_defaults() -> dict[str, Any]:
    """Every field's default as plain data (a section as a dict of its fields'), e.g. for an untyped schema."""
    out = {}
    for f in fields(ModelConfig):
        if f.name in SECTIONS:
            out[f.name] = {g.name: g.default for g in fields(SECTIONS[f.name])}
        else:
            out[f.name] = f.default
    return out


def field_names() -> tuple[str, ...]:
    return tuple(f.name for f in fields(ModelConfig))


def field_help() -> dict[str, str]:
    """Field name -> its one-line documentation (``neck.channels`` for a section's), for errors and ``--help``."""
    out = {f.name: f.metadata.get("help", "") for f in fields(ModelConfig)}
    for section, cls in SECTIONS.items():
        out.update({f"{section}.{f.name}": f.metadata.get("help", "") for f in fields(cls)})
    return out
