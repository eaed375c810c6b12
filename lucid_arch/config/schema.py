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

from dataclasses import MISSING as NO_DEFAULT
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
NECK_EXTRA_CHOICES = ("none", "on_input", "on_lateral", "on_output")
DECODE_HEAD_CHOICES = ("none", "all_mlp", "fpn")
DETECTOR_CHOICES = ("none", "retinanet", "mask_rcnn")
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
    "start_level": (0, MAX_STAGES - 1),
    # the detection sections (model.detector, model.anchors, model.rpn, model.roi); their
    # fractions and thresholds are bounded in lucid_arch.config.detection_checks
    "head_convs": (0, 16),
    "head_channels": (1, 16_384),
    "topk_candidates": (1, 100_000),
    "detections_per_image": (1, 10_000),
    "min_size": (1, 16_384),
    "max_size": (1, 16_384),
    "size_divisible": (1, 1_024),
    "scales_per_octave": (1, 16),
    "strides": (1, 16_384),
    "convs": (1, 16),
    "batch_size_per_image": (1, 100_000),
    "pre_nms_top_n_train": (1, 100_000),
    "post_nms_top_n_train": (1, 100_000),
    "pre_nms_top_n_test": (1, 100_000),
    "post_nms_top_n_test": (1, 100_000),
    "box_pool_size": (1, 64),
    "mask_pool_size": (1, 64),
    "sampling_ratio": (0, 64),
    "fc_channels": (1, 16_384),
    "mask_convs": (0, 16),
    "mask_channels": (1, 16_384),
}
# The sections' real-valued fields: (smallest, largest, smallest allowed, largest allowed); per entry for lists.
SECTION_FLOAT_RANGES: dict[str, tuple[float, float, bool, bool]] = {
    "dropout": (0.0, 1.0, True, False),
    "fg_iou": (0.0, 1.0, False, True),
    "bg_iou": (0.0, 1.0, True, True),
    "positive_fraction": (0.0, 1.0, False, True),
    "score_threshold": (0.0, 1.0, True, False),
    "nms_iou": (0.0, 1.0, False, True),
    "base_scale": (0.0, 1_024.0, False, True),
    "ratios": (0.0, 1_024.0, False, True),
}
MAX_SECTION_LIST = MAX_STAGES + 8  # entries of a section's list (in_index, anchor ratios and strides)


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
            stride-2 max-pool of the last (mmseg's FPN without extra convolutions), or made by
            extra_convs."""
        ),
    )
    start_level: int = field(
        default=0,
        metadata=_doc(
            """The first encoder map the neck reads, counted from 0 (mmdetection's start_level):
            RetinaNet reads from 1 (stride 8), Mask R-CNN and Semantic FPN from 0 (stride 4)."""
        ),
    )
    extra_convs: str = field(
        default="none",
        metadata=_doc(
            """How the levels beyond the maps read are made (mmdetection's add_extra_convs): 'none',
            stride-2 max-pools (kernel 1) of the last level (Mask R-CNN's P6); 'on_input', a 3x3
            stride-2 convolution of the last encoder map (RetinaNet's P6 from C5, as the PVT
            detection configs build it); 'on_lateral', of the last lateral; 'on_output', of the
            last output level (torchvision's P6 from P5). Every further level is a 3x3 stride-2
            convolution of the one before.""",
            choices=NECK_EXTRA_CHOICES,
        ),
    )
    relu_before_extra_convs: bool = field(
        default=False,
        metadata=_doc(
            """A ReLU before each extra convolution after the first (torchvision's P7 and the RetinaNet
            paper's; mmdetection's RetinaNet configs, the PVT ones included, leave it off)."""
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
class DetectorConfig:
    """What turns the neck's levels into boxes (``model.detector``), built on torchvision's detectors.

    'retinanet': torchvision's RetinaNet head (classification and box subnets of ``head_convs``
    3x3 convolutions + ReLU each, sigmoid focal loss, no background class) over every neck level.
    'mask_rcnn': torchvision's region proposal network (``model.rpn``) and RoI heads
    (``model.roi``): two shared FCs, a box classifier with a background class, a 4-conv mask head.
    Images are normalised outside the model, as for every other model here; the model pads a
    batch to ``size_divisible`` and resizes only when ``min_size`` is set. Boxes come back in the
    input images' pixels, class ids 0..num_classes-1 (see lucid_arch.modeling.detection).
    """

    type: str = field(
        default="none",
        metadata=_doc("The detector: 'none', 'retinanet' or 'mask_rcnn'.", choices=DETECTOR_CHOICES),
    )
    head_convs: int = field(
        default=4,
        metadata=_doc(
            """RetinaNet: 3x3 convolution + ReLU layers in each of the classification and box subnets
            (mmdetection's stacked_convs; torchvision's fixed 4)."""
        ),
    )
    head_channels: int = field(
        default=256,
        metadata=_doc("RetinaNet: width of those convolutions (mmdetection's feat_channels: the neck's 256)."),
    )
    fg_iou: float = field(
        default=0.5,
        metadata=_doc(
            """RetinaNet: an anchor whose best IoU with a box is at least this is that box's positive
            (mmdetection's pos_iou_thr); each box also keeps its best anchors, however low."""
        ),
    )
    bg_iou: float = field(
        default=0.4,
        metadata=_doc("RetinaNet: an anchor below this IoU with every box is background; in between it is ignored."),
    )
    topk_candidates: int = field(
        default=1000,
        metadata=_doc("RetinaNet: best-scoring anchors kept per level before NMS (mmdetection's nms_pre)."),
    )
    score_threshold: float = field(
        default=0.05, metadata=_doc("Detections scoring below this are dropped before NMS (mmdetection's score_thr).")
    )
    nms_iou: float = field(
        default=0.5,
        metadata=_doc("IoU above which NMS removes the lower-scoring of two detections of the same class."),
    )
    detections_per_image: int = field(
        default=100,
        metadata=_doc("Detections kept per image after NMS, best first (mmdetection's max_per_img; torchvision's RetinaNet keeps 300)."),
    )
    min_size: Optional[int] = field(
        default=None,
        metadata=_doc(
            """null: images keep the size they come in (the data pipeline sizes them, as in
            mmdetection). A number: the model resizes each image so its shorter side is this,
            its longer at most max_size (torchvision's GeneralizedRCNNTransform), and maps
            boxes back to the input's pixels."""
        ),
    )
    max_size: int = field(default=1333, metadata=_doc("Longest side after the resize that min_size asks for."))
    size_divisible: int = field(
        default=32,
        metadata=_doc("A batch is zero-padded (bottom and right) to a multiple of this (mmdetection's size_divisor)."),
    )


@dataclass
class AnchorConfig:
    """The anchors of RetinaNet's head or of Mask R-CNN's RPN (``model.anchors``), mmdetection's way.

    Level i has ``scales_per_octave`` sizes ``strides[i] * base_scale * 2 ** (j / scales_per_octave)``,
    each at every ratio (height / width), centred on the level's pixels (top-left corners).
    """

    base_scale: float = field(
        default=4.0,
        metadata=_doc("Anchor size in units of the level's stride (mmdetection's octave_base_scale; RPN: 8)."),
    )
    scales_per_octave: int = field(
        default=3, metadata=_doc("Sizes per level, spread over one octave (RetinaNet 3, RPN 1).")
    )
    ratios: List[float] = field(
        default_factory=lambda: [0.5, 1.0, 2.0], metadata=_doc("Height-to-width ratios of the anchors at each size.")
    )
    strides: List[int] = field(
        default_factory=lambda: [8, 16, 32, 64, 128],
        metadata=_doc(
            """Stride of each neck level, one per level, in input pixels: where anchors are centred and
            how large they are. Must be the levels' own strides (torchvision infers them from
            the padded image, which is off for levels that round up, e.g. 61 for 64)."""
        ),
    )
    rounded: bool = field(
        default=False,
        metadata=_doc(
            """Round each anchor's corners to whole pixels, as torchvision's AnchorGenerator does;
            false keeps them exact, as mmdetection does."""
        ),
    )


@dataclass
class RPNConfig:
    """Mask R-CNN's region proposal network (``model.rpn``): torchvision's RPN with mmdetection 2.x's settings."""

    convs: int = field(default=1, metadata=_doc("3x3 convolution + ReLU layers before the objectness and box outputs."))
    fg_iou: float = field(default=0.7, metadata=_doc("Anchors at this IoU with a box or more are positives."))
    bg_iou: float = field(default=0.3, metadata=_doc("Anchors below this IoU with every box are negatives."))
    batch_size_per_image: int = field(default=256, metadata=_doc("Anchors sampled per image for the RPN's loss."))
    positive_fraction: float = field(default=0.5, metadata=_doc("Largest share of positives among those."))
    pre_nms_top_n_train: int = field(default=2000, metadata=_doc("Training: best proposals per level before NMS (nms_pre)."))
    post_nms_top_n_train: int = field(
        default=1000, metadata=_doc("Training: proposals per image after NMS (mmdetection 2.x's max_per_img; torchvision's 2000).")
    )
    pre_nms_top_n_test: int = field(default=1000, metadata=_doc("Inference: best proposals per level before NMS."))
    post_nms_top_n_test: int = field(default=1000, metadata=_doc("Inference: proposals per image after NMS."))
    nms_iou: float = field(default=0.7, metadata=_doc("IoU of the NMS among proposals."))
    score_threshold: float = field(default=0.0, metadata=_doc("Proposals with a lower objectness probability are dropped."))


@dataclass
class RoIConfig:
    """Mask R-CNN's RoI heads (``model.roi``): torchvision's RoIHeads with mmdetection 2.x's sizes.

    Boxes: RoIAlign to ``box_pool_size`` from the level each proposal's size maps to, two shared
    FCs of ``fc_channels`` (torchvision's TwoMLPHead), a (num_classes + 1)-way classifier
    (background first) and class-specific box regression. Masks: RoIAlign to ``mask_pool_size``,
    ``mask_convs`` 3x3 convolutions, a 2x2 stride-2 deconvolution and 1x1 logits per class.
    """

    box_pool_size: int = field(default=7, metadata=_doc("RoIAlign output side for the box head."))
    mask_pool_size: int = field(default=14, metadata=_doc("RoIAlign output side for the mask head (masks come out at twice it)."))
    sampling_ratio: int = field(
        default=0,
        metadata=_doc("RoIAlign sampling points per bin side; 0 adapts them to the RoI (mmdetection's 0; torchvision's Mask R-CNN: 2)."),
    )
    aligned: bool = field(
        default=True,
        metadata=_doc("RoIAlign's half-pixel alignment (mmdetection's aligned=True; torchvision's poolers: false)."),
    )
    fc_channels: int = field(default=1024, metadata=_doc("Width of the box head's two shared FCs."))
    mask_convs: int = field(default=4, metadata=_doc("3x3 convolution + ReLU layers of the mask head."))
    mask_channels: int = field(default=256, metadata=_doc("Width of those and of the deconvolution."))
    fg_iou: float = field(default=0.5, metadata=_doc("Proposals at this IoU with a box or more are that box's positives."))
    bg_iou: float = field(default=0.5, metadata=_doc("Proposals below this IoU with every box are background."))
    batch_size_per_image: int = field(default=512, metadata=_doc("Proposals sampled per image for the box and mask losses."))
    positive_fraction: float = field(default=0.25, metadata=_doc("Largest share of positives among those."))
    background_outputs: bool = field(
        default=False,
        metadata=_doc(
            """Give the background class its own box regression and mask logits, as torchvision's
            predictors do ((num_classes + 1) x 4 and num_classes + 1 outputs). false: mmdetection's,
            num_classes x 4 and num_classes, which the PVT papers' counts include; torchvision's
            losses and post-processing then read zeros for the background."""
        ),
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

    # --- detection: a detector over the neck's levels (see DetectorConfig) -----------------
    detector: DetectorConfig = field(
        default_factory=DetectorConfig,
        metadata=_doc(
            """A detector (see DetectorConfig): with a type other than 'none' the model is
            torchvision-style (a list of images in, losses or boxes out), its encoder a
            backbone of every stage and model.neck its FPN. features_only=true builds the encoder alone."""
        ),
    )
    anchors: AnchorConfig = field(
        default_factory=AnchorConfig, metadata=_doc("A detector's anchors (see AnchorConfig): RetinaNet's, or the RPN's.")
    )
    rpn: RPNConfig = field(default_factory=RPNConfig, metadata=_doc("Mask R-CNN's region proposal network (see RPNConfig)."))
    roi: RoIConfig = field(default_factory=RoIConfig, metadata=_doc("Mask R-CNN's RoI heads (see RoIConfig)."))

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
SECTIONS: dict[str, type] = {
    "neck": NeckConfig,
    "decode_head": DecodeHeadConfig,
    "detector": DetectorConfig,
    "anchors": AnchorConfig,
    "rpn": RPNConfig,
    "roi": RoIConfig,
}
DETECTION_SECTIONS = ("detector", "anchors", "rpn", "roi")


def field_default(f: Any) -> Any:
    """A dataclass field's default, a fresh one for a default_factory (a section's lists)."""
    return f.default_factory() if f.default_factory is not NO_DEFAULT else f.default


def plain_defaults() -> dict[str, Any]:
    """Every field's default as plain data (a section as a dict of its fields'), e.g. for an untyped schema."""
    out = {}
    for f in fields(ModelConfig):
        if f.name in SECTIONS:
            out[f.name] = {g.name: field_default(g) for g in fields(SECTIONS[f.name])}
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
