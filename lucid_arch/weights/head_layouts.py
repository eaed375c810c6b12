"""Neck and decode-head key layouts of segmentation checkpoints, each a rename table to ours.

A segmentation checkpoint is an encoder (converted by the encoder tables of
:mod:`lucid_arch.weights.layouts`) plus the keys under ``neck.`` and ``decode_head.``; a
:class:`HeadLayout` renames those. Its fields mean what a :class:`~lucid_arch.weights.layouts.Layout`'s
do (``signature``, ``rows`` with ``stage1`` counting from 1, ``ignored``, ``notes``), plus the
neck and decode head it describes in our vocabulary (``model.neck.type`` /
``model.decode_head.type``), and ``unsupported``: a head that looks alike but computes something
else, which no renaming makes ours; converting it is an error saying that. Nothing here runs.

Our names (lucid_arch.modeling.heads): the FPN neck and FPN head use mmsegmentation's names
exactly; the all-MLP head is ``decode_head.linear_c.i.proj`` (Hugging Face's on-disk names),
``decode_head.fuse.conv`` / ``.fuse.bn`` (mmcv's ConvModule) and ``decode_head.conv_seg``
(mmseg's classifier).
"""

from __future__ import annotations

from dataclasses import dataclass

W = r"(?P<param>weight|bias)"
BN = r"(?P<param>weight|bias|running_mean|running_var|num_batches_tracked)"  # a BatchNorm's state


@dataclass(frozen=True)
class HeadLayout:
    name: str
    source: str  # who writes checkpoints this way
    signature: str  # a key (regular expression, whole key) only this layout has
    rows: tuple[tuple[str, str], ...]
    neck: str = "none"  # the model.neck.type it fills
    decode_head: str = "none"  # the model.decode_head.type it fills
    ignored: tuple[str, ...] = ()  # keys no model of ours has: dropped and reported
    notes: tuple[str, ...] = ()
    unsupported: str = ""  # set: an error, naming what the head is and why it does not convert


_IDENTITY = ((r"(?P<key>(?:neck|decode_head)\..+)", "{key}"),)

# SegFormer's all-MLP head: Hugging Face's on-disk names (transformers renames linear_c to
# linear_projections in memory, and back when saving).
HF_SEGFORMER_HEAD = HeadLayout(
    name="hf_segformer_head",
    source="Hugging Face SegformerForSemanticSegmentation's decode head (nvidia/segformer-b*-finetuned-*)",
    signature=r"decode_head\.linear_fuse\.weight",
    decode_head="all_mlp",
    rows=(
        (rf"decode_head\.linear_c\.(?P<stage>\d+)\.proj\.{W}", "decode_head.linear_c.{stage}.proj.{param}"),
        (r"decode_head\.linear_fuse\.weight", "decode_head.fuse.conv.weight"),
        (rf"decode_head\.batch_norm\.{BN}", "decode_head.fuse.bn.{param}"),
        (rf"decode_head\.classifier\.{W}", "decode_head.conv_seg.{param}"),
    ),
)

NVLABS_SEGFORMER_HEAD = HeadLayout(
    name="nvlabs_segformer_head",
    source=(
        "NVlabs SegFormer's SegFormerHead (segformer.b*.*.pth, mmsegmentation 0.x code), over the official "
        "MiT names under backbone."
    ),
    signature=r"decode_head\.linear_fuse\.conv\.weight",
    decode_head="all_mlp",
    rows=(
        (rf"decode_head\.linear_c(?P<stage1>\d)\.proj\.{W}", "decode_head.linear_c.{stage}.proj.{param}"),
        (r"decode_head\.linear_fuse\.conv\.weight", "decode_head.fuse.conv.weight"),
        (rf"decode_head\.linear_fuse\.bn\.{BN}", "decode_head.fuse.bn.{param}"),
        (rf"decode_head\.linear_pred\.{W}", "decode_head.conv_seg.{param}"),
    ),
    ignored=(r"decode_head\.conv_seg\..+",),
    notes=(
        "NVlabs' SegFormerHead classifies with linear_pred; the conv_seg it inherits from mmsegmentation's "
        "decode head is never used and is dropped",
    ),
)

SEGFORMER_HEAD = HeadLayout(
    name="all_mlp",
    source="this project's SegFormer models (segformer_b*: decode_head.fuse, decode_head.conv_seg)",
    signature=r"decode_head\.fuse\.conv\.weight",
    decode_head="all_mlp",
    rows=_IDENTITY,
)

MMSEG_FPN = HeadLayout(
    name="mmseg_fpn",
    source=(
        "mmsegmentation's FPN neck + FPNHead (the PVT papers' Semantic FPN, over the official PVT names or "
        "mmdetection's under backbone.), and this project's fpn_* models (the same names)"
    ),
    signature=r"decode_head\.scale_heads\.0\.0\.conv\.weight",
    neck="fpn",
    decode_head="fpn",
    rows=_IDENTITY,
)

MMSEG_SEGFORMER_HEAD = HeadLayout(
    name="mmseg_segformer_head",
    source="mmsegmentation 1.x's SegformerHead (decode_head.convs.*, decode_head.fusion_conv.*)",
    signature=r"decode_head\.fusion_conv\.conv\.weight",
    rows=(),
    unsupported=(
        "its decode head is mmsegmentation 1.x's SegformerHead (decode_head.convs.*, decode_head.fusion_conv.*), "
        "which is not SegFormer's all-MLP head: each map goes through a 1x1 convolution + BatchNorm + ReLU "
        "(not a Linear) and the maps are concatenated finest first, so no renaming gives model.decode_head."
        "type=all_mlp its function. Load its encoder alone (load_pretrained(..., strict=False) keeps the decode "
        "head's initialisation, or build the encoder, e.g. model=mit_b0), or use NVlabs' or Hugging Face's "
        "SegFormer checkpoints"
    ),
)

# Detection order: the first layout whose signature some key matches.
HEAD_LAYOUTS: dict[str, HeadLayout] = {
    layout.name: layout
    for layout in (HF_SEGFORMER_HEAD, NVLABS_SEGFORMER_HEAD, SEGFORMER_HEAD, MMSEG_FPN, MMSEG_SEGFORMER_HEAD)
}
