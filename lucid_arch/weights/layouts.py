"""Checkpoint key layouts, each a rename table from another codebase's names to ours (timm's).

A :class:`Layout` is data: a ``signature`` (a key only that layout has, to detect it), rename
``rows`` (a regular expression on the whole key -> our key), the names of a block's
sub-modules (``parts``), keys that belong to something other than the encoder (``ignored``)
and what a load report should say about it (``notes``). :mod:`lucid_arch.weights.convert`
applies a table; nothing here runs. The tables cover encoders: an encoder-decoder's encoder
is found under ``backbone.`` first (convert.split_encoder), and its neck and decode head have
tables of their own (:mod:`lucid_arch.weights.head_layouts`).

Conventions of the rows:
- named groups fill the template: ``stage`` and ``block`` count from 0, ``stage1`` and
  ``block1`` from 1 (they become ``stage`` and ``block``); ``part`` is looked up in ``parts``;
- ``{last}`` is the checkpoint's last stage (PVT v1's single final LayerNorm closes it);
- the first stage's embedding may be written ``stages.0.downsample``: ours is ``patch_embed``;
- attention projections may be written ``attn.k`` + ``attn.v`` (separate key and value
  Linears, Hugging Face) or ``attn.qkv`` (``nn.MultiheadAttention``'s packed ``in_proj``,
  mmcv); conversion concatenates or splits them into our ``attn.q`` and ``attn.kv``. An MLP
  Linear stored as a 1x1 convolution (mmcv) is flattened.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

W = r"(?P<param>weight|bias)"  # a parameter of a Linear, Conv2d or LayerNorm


@dataclass(frozen=True)
class Layout:
    name: str
    source: str  # who writes checkpoints this way
    signature: str  # a key (regular expression, whole key) only this layout has
    rows: tuple[tuple[str, str], ...]
    parts: Mapping[str, str] = field(default_factory=dict)
    prefix: str = ""  # an outer prefix some of its checkpoints carry (stripped when present)
    ignored: tuple[str, ...] = ()  # keys that are not the encoder: dropped and reported
    notes: tuple[str, ...] = ()
    # v1: the last position table starts with a class-token row even where the checkpoint has no
    # cls_token (the official detection and segmentation backbones keep the row and drop the token)
    class_token_row: bool = False


# --- the official code (whai362/PVT; NVlabs/SegFormer's mix_transformer has the v2 names) ----------

_OFFICIAL_PARTS = {
    "norm1": "norm1",
    "attn.q": "attn.q",
    "attn.kv": "attn.kv",
    "attn.proj": "attn.proj",
    "attn.sr": "attn.sr",
    "attn.norm": "attn.norm",
    "norm2": "norm2",
    "mlp.fc1": "mlp.fc1",
    "mlp.dwconv.dwconv": "mlp.dwconv",
    "mlp.fc2": "mlp.fc2",
}
_OFFICIAL_ROWS = (
    (rf"patch_embed(?P<stage1>\d+)\.(?P<m>proj|norm)\.{W}", "stages.{stage}.downsample.{m}.{param}"),
    (rf"block(?P<stage1>\d+)\.(?P<block>\d+)\.(?P<part>.+)\.{W}", "stages.{stage}.blocks.{block}.{part}.{param}"),
    (rf"norm(?P<stage1>\d+)\.{W}", "stages.{stage}.norm.{param}"),
    (rf"head\.{W}", "head.{param}"),
)

OFFICIAL_V2 = Layout(
    name="official_v2",
    source="the official PVT v2 code (whai362/PVT pvt_v2.py) and SegFormer's MiT encoders (NVlabs mit_b*.pth)",
    signature=r"patch_embed1\.proj\.weight",
    rows=_OFFICIAL_ROWS,
    parts=_OFFICIAL_PARTS,
)

OFFICIAL_V1 = Layout(
    name="official_v1",
    source="the official PVT v1 code (whai362/PVT pvt.py)",
    signature=r"pos_embed1",
    rows=_OFFICIAL_ROWS
    + (
        (r"pos_embed(?P<stage1>\d+)", "stages.{stage}.pos_embed"),
        (r"cls_token", "cls_token"),
        (rf"norm\.{W}", "stages.{last}.norm.{param}"),
    ),
    parts=_OFFICIAL_PARTS,
    class_token_row=True,
)

# --- timm's pvt_v2, and ours (the same names) -------------------------------------------------

TIMM = Layout(
    name="timm",
    source="timm's pvt_v2, and this project (timm's names)",
    signature=r"patch_embed\.proj\.weight",
    rows=((r"(?P<key>.+)", "{key}"),),
)

# --- Hugging Face transformers, as its conversion scripts and save_pretrained write them ------------

_HF_EPS_NOTE = (
    "Hugging Face's PVT code sets LayerNorm eps 1e-6 on the patch-embedding and spatial-reduction "
    "norms, where the official code these weights were trained with uses 1e-5; the model keeps the official eps"
)

HF_PVT_V2 = Layout(
    name="hf_pvt_v2",
    source="Hugging Face PvtV2ForImageClassification / PvtV2Model / PvtV2Backbone (OpenGVLab/pvt_v2_*)",
    signature=r"(?:pvt_v2\.)?encoder\.layers\.0\.patch_embedding\.proj\.weight",
    prefix="pvt_v2.",
    rows=(
        (rf"encoder\.layers\.(?P<stage>\d+)\.patch_embedding\.proj\.{W}", "stages.{stage}.downsample.proj.{param}"),
        (rf"encoder\.layers\.(?P<stage>\d+)\.patch_embedding\.layer_norm\.{W}", "stages.{stage}.downsample.norm.{param}"),
        (rf"encoder\.layers\.(?P<stage>\d+)\.blocks\.(?P<block>\d+)\.(?P<part>.+)\.{W}", "stages.{stage}.blocks.{block}.{part}.{param}"),
        (rf"encoder\.layers\.(?P<stage>\d+)\.layer_norm\.{W}", "stages.{stage}.norm.{param}"),
        (rf"classifier\.{W}", "head.{param}"),
    ),
    parts={
        "layer_norm_1": "norm1",
        "attention.query": "attn.q",
        "attention.key": "attn.k",
        "attention.value": "attn.v",
        "attention.proj": "attn.proj",
        "attention.spatial_reduction": "attn.sr",
        "attention.layer_norm": "attn.norm",
        "layer_norm_2": "norm2",
        "mlp.dense1": "mlp.fc1",
        "mlp.dwconv.dwconv": "mlp.dwconv",
        "mlp.dense2": "mlp.fc2",
    },
    notes=(_HF_EPS_NOTE,),
)

# Hugging Face's Pvt and Segformer share BERT-style block names (attention.self.*, attention.output.*).
_HF_ENCODER_BLOCK = {
    "layer_norm_1": "norm1",
    "attention.self.query": "attn.q",
    "attention.self.key": "attn.k",
    "attention.self.value": "attn.v",
    "attention.self.layer_norm": "attn.norm",
    "attention.output.dense": "attn.proj",
    "layer_norm_2": "norm2",
    "mlp.dense1": "mlp.fc1",
    "mlp.dense2": "mlp.fc2",
}
_HF_BLOCK_ROW = (
    rf"encoder\.block\.(?P<stage>\d+)\.(?P<block>\d+)\.(?P<part>.+)\.{W}",
    "stages.{stage}.blocks.{block}.{part}.{param}",
)
_HF_CLASSIFIER_ROW = (rf"classifier\.{W}", "head.{param}")

HF_PVT = Layout(
    name="hf_pvt",
    source="Hugging Face PvtForImageClassification / PvtModel (Zetatech/pvt-*)",
    signature=r"(?:pvt\.)?encoder\.patch_embeddings\.0\.projection\.weight",
    prefix="pvt.",
    rows=(
        (rf"encoder\.patch_embeddings\.(?P<stage>\d+)\.projection\.{W}", "stages.{stage}.downsample.proj.{param}"),
        (rf"encoder\.patch_embeddings\.(?P<stage>\d+)\.layer_norm\.{W}", "stages.{stage}.downsample.norm.{param}"),
        (r"encoder\.patch_embeddings\.(?P<stage>\d+)\.position_embeddings", "stages.{stage}.pos_embed"),
        (r"encoder\.patch_embeddings\.\d+\.cls_token", "cls_token"),
        _HF_BLOCK_ROW,
        (rf"encoder\.layer_norm\.{W}", "stages.{last}.norm.{param}"),
        _HF_CLASSIFIER_ROW,
    ),
    parts={**_HF_ENCODER_BLOCK, "attention.self.sequence_reduction": "attn.sr"},
    notes=(_HF_EPS_NOTE,),
)

HF_SEGFORMER = Layout(
    name="hf_segformer",
    source="Hugging Face SegformerModel / SegformerForSemanticSegmentation / SegformerForImageClassification (nvidia/mit-b*)",
    signature=r"(?:segformer\.)?encoder\.patch_embeddings\.0\.proj\.weight",
    prefix="segformer.",
    rows=(
        (rf"encoder\.patch_embeddings\.(?P<stage>\d+)\.proj\.{W}", "stages.{stage}.downsample.proj.{param}"),
        (rf"encoder\.patch_embeddings\.(?P<stage>\d+)\.layer_norm\.{W}", "stages.{stage}.downsample.norm.{param}"),
        _HF_BLOCK_ROW,
        (rf"encoder\.layer_norm\.(?P<stage>\d+)\.{W}", "stages.{stage}.norm.{param}"),
        _HF_CLASSIFIER_ROW,
    ),
    parts={**_HF_ENCODER_BLOCK, "attention.self.sr": "attn.sr", "mlp.dwconv.dwconv": "mlp.dwconv"},
    notes=(
        "Hugging Face's Segformer code sets LayerNorm eps 1e-5 on the block and stage norms, where the "
        "official SegFormer code uses 1e-6; the model keeps the official eps (model.norm_eps)",
    ),
)

# --- mmdetection / mmsegmentation backbones (mmcv modules) --------------------------------------

_MM_PARTS = {
    "norm1": "norm1",
    "attn.attn.out_proj": "attn.proj",
    "attn.sr": "attn.sr",
    "attn.norm": "attn.norm",
    "norm2": "norm2",
}
_MM_NOTE = (
    "mmdetection's PVT sets LayerNorm eps 1e-6 on every norm, the patch-embedding and reduction norms "
    "included, where the official code uses 1e-5 there; the model keeps the official eps"
)
_MM_EMBED_ROWS = (
    (rf"layers\.(?P<stage>\d+)\.0\.projection\.{W}", "stages.{stage}.downsample.proj.{param}"),
    (rf"layers\.(?P<stage>\d+)\.0\.norm\.{W}", "stages.{stage}.downsample.norm.{param}"),
    (rf"layers\.(?P<stage>\d+)\.2\.{W}", "stages.{stage}.norm.{param}"),
)

MMDET_PVT_V2 = Layout(
    name="mmdet_pvt_v2",
    source=(
        "mmdetection's PyramidVisionTransformerV2 and mmsegmentation's MixVisionTransformer (SegFormer) "
        "backbones (backbone.layers.*), which share their module names"
    ),
    signature=r"layers\.0\.0\.projection\.weight",
    rows=_MM_EMBED_ROWS
    + (
        (rf"layers\.(?P<stage>\d+)\.1\.(?P<block>\d+)\.attn\.attn\.in_proj_{W}", "stages.{stage}.blocks.{block}.attn.qkv.{param}"),
        (rf"layers\.(?P<stage>\d+)\.1\.(?P<block>\d+)\.(?P<part>.+)\.{W}", "stages.{stage}.blocks.{block}.{part}.{param}"),
    ),
    parts={**_MM_PARTS, "ffn.layers.0": "mlp.fc1", "ffn.layers.1": "mlp.dwconv", "ffn.layers.4": "mlp.fc2"},
    notes=(_MM_NOTE,),
)

MMDET_PVT = Layout(
    name="mmdet_pvt",
    source="mmdetection's PyramidVisionTransformer (v1) backbones (backbone.layers.*)",
    signature=r"layers\.0\.1\.0\.pos_embed",
    rows=_MM_EMBED_ROWS
    + (
        (r"layers\.(?P<stage>\d+)\.1\.0\.pos_embed", "stages.{stage}.pos_embed"),
        # block j follows the position embedding: layers.i.1.(j + 1)
        (rf"layers\.(?P<stage>\d+)\.1\.(?P<block1>\d+)\.attn\.attn\.in_proj_{W}", "stages.{stage}.blocks.{block}.attn.qkv.{param}"),
        (rf"layers\.(?P<stage>\d+)\.1\.(?P<block1>\d+)\.(?P<part>.+)\.{W}", "stages.{stage}.blocks.{block}.{part}.{param}"),
    ),
    parts={**_MM_PARTS, "ffn.layers.0": "mlp.fc1", "ffn.layers.3": "mlp.fc2"},
    notes=(_MM_NOTE,),
)

# Detection order: the first layout whose signature some key matches.
LAYOUTS: dict[str, Layout] = {
    layout.name: layout
    for layout in (TIMM, OFFICIAL_V1, OFFICIAL_V2, HF_PVT_V2, HF_PVT, HF_SEGFORMER, MMDET_PVT, MMDET_PVT_V2)
}
