"""What a config is and costs, per stage, without allocating a single weight.

A *probe* is built on the ``meta`` device (shapes, no storage): the same model with one block
per stage. The blocks of a stage are identical in shape, so each stage's parameters are its
probe count plus (depth - 1) times its block 0's; pvt_v2_b5 (52 blocks) is counted from 4, and
pvt_huge is analysed as fast as b0. Feature-map shapes come from the stage specs the modules
are built from.

FLOPs are counted in closed form from the same specs, by the rules of
``torch.utils.flop_counter.FlopCounterMode`` (a multiply-add is 2; convolutions, linear layers
and attention matmuls count, norms and activations do not). Running the probe under that mode
would give the same numbers (a property test checks it on random configs against a full
model) but costs 0.6 s the first time, importing torch's compiler stack, which is most of a
summary's wait. Attention matmuls are included and also reported apart (``attention_flops``):
counted on real CPU tensors, flop_counter does not see the fused SDPA kernel, which is why
figures published that way (1.06 G for pvt_v2_b0) are lower by exactly that share.

A detector's neck and heads are counted the same way; its RoI heads run once per region, so
their FLOPs are for the most regions inference keeps (``rpn.post_nms_top_n_test`` proposals for
the box head, ``detector.detections_per_image`` detections for the mask head), and its parts
report the anchors on each level at the analysed size.

The command-line summary, the config-diff tool and the benchmarks all read this module.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any, Optional, Sequence, Union

from ..modeling.builder import resolve_spec
from ..config.checks import to_plain_dict
from ..modeling.spec import DecodeHeadSpec, DetectionSpec, ModelSpec, NeckSpec, StageSpec


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
class PartReport:
    """What comes after the stages: a classifier ``head``, a ``neck`` and a ``decode_head``, or a
    detector's parts (``head``, or ``rpn``, ``box_head`` and ``mask_head``)."""

    name: str  # "head", "neck", "decode_head", "rpn", "box_head" or "mask_head"
    kind: str  # "linear" (a classifier), or the registry's name: "fpn", "all_mlp"; a detector's: "retinanet", "mask_rcnn"
    params: int
    flops: int
    output_shapes: tuple[tuple[int, ...], ...]  # what it returns: the logits, a neck's levels, a detector head's per level
    anchors: tuple[int, ...] = ()  # a detector head's or RPN's anchors on each level at the analysed size
    anchors_per_location: int = 0

    @property
    def label(self) -> str:
        """'head' for a classifier; 'neck (fpn)', 'decode head (all_mlp)', 'rpn (mask_rcnn)' after an encoder."""
        return "head" if self.kind == "linear" else f"{self.name.replace('_', ' ')} ({self.kind})"


@dataclass(frozen=True)
class ModelReport:
    name: str
    img_size: Any  # as configured: one side, or (height, width)
    batch_size: int
    stages: tuple[StageReport, ...]
    head_params: int
    head_flops: int
    params: int
    flops: int
    attention_flops: int
    feature_shapes: tuple[tuple[int, ...], ...]  # every built stage's map
    logits_shape: Optional[tuple[int, ...]]  # None for a features_only backbone or a detector
    out_indices: Optional[tuple[int, ...]] = None  # the maps a features_only backbone returns
    input_size: tuple[int, int] = (0, 0)  # (height, width) analysed
    parts: tuple[PartReport, ...] = ()  # after the stages, in order; head_params/head_flops are their sums
    task: str = "classification"  # or "segmentation", "detection" (ModelSpec.task)

    @property
    def gflops(self) -> float:
        return self.flops / 1e9

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for part, row in zip(self.parts, out["parts"]):
            row["label"] = part.label
        return out


def attention_flops(stage: StageSpec, batch_size: int = 1) -> int:
    """q @ k^T and attn @ v of every block: 2 matmuls x 2 FLOPs per multiply-add."""
    return 4 * batch_size * stage.tokens * stage.kv_tokens * stage.dim * stage.depth


def block_flops(stage: StageSpec, spec: ModelSpec, batch_size: int = 1) -> int:
    """One transformer block: q, the key/value reduction, kv, attention, projection, the MLP."""
    n, kv, c, hidden = stage.tokens, stage.kv_tokens, stage.dim, stage.hidden_dim
    flops = 2 * n * c * c + 2 * kv * c * 2 * c + 4 * n * kv * c  # q, kv, q @ k^T and attn @ v
    if stage.linear:  # 1x1 conv on the 7x7 pool
        flops += 2 * kv * c * c
    elif stage.sr_ratio > 1:  # sr x sr conv, stride sr
        flops += 2 * kv * c * c * stage.sr_ratio**2
    if spec.attn_proj:
        flops += 2 * n * c * c
    flops += 2 * 2 * n * c * hidden  # fc1, fc2
    if spec.mlp_dwconv:  # 3x3 depthwise over the map
        flops += 2 * stage.grid[0] * stage.grid[1] * hidden * 9
    return batch_size * flops


def patch_embed_flops(stage: StageSpec, batch_size: int = 1) -> int:
    k = stage.patch.kernel
    return 2 * batch_size * stage.grid[0] * stage.grid[1] * stage.dim * stage.in_dim * k * k


def neck_flops(neck: NeckSpec, batch_size: int = 1) -> int:
    """FPN: a 1x1 lateral and a 3x3 output convolution per input level, and a 3x3 stride-2 convolution per
    extra level it makes by convolution (the top-down sums, ReLUs and pools are free)."""
    flops = sum(2 * lv.grid[0] * lv.grid[1] * neck.channels * (lv.channels + 9 * neck.channels) for lv in neck.inputs)
    extras = neck.outputs[len(neck.inputs):]
    flops += sum(2 * lv.grid[0] * lv.grid[1] * neck.channels * c_in * 9 for lv, c_in in zip(extras, neck.extra_in_channels))
    return batch_size * flops


def _conv_flops(grid: tuple[int, int], c_in: int, c_out: int, kernel: int) -> int:
    return 2 * grid[0] * grid[1] * c_in * c_out * kernel * kernel


def detection_head_flops(det: DetectionSpec, in_channels: int, batch_size: int = 1) -> int:
    """RetinaNet's head on every level: two subnets of head_convs 3x3 convolutions, then the 3x3 class
    and box outputs (A x K and A x 4 channels)."""
    s, a = det.settings, det.anchors_per_location
    width = s.head_channels if s.head_convs else in_channels
    flops = 0
    for lv in det.levels:
        convs = sum(_conv_flops(lv.grid, in_channels if i == 0 else width, width, 3) for i in range(s.head_convs))
        flops += 2 * convs + _conv_flops(lv.grid, width, a * (det.num_classes + 4), 3)
    return batch_size * flops


def rpn_flops(det: DetectionSpec, channels: int, batch_size: int = 1) -> int:
    """The RPN on every level: its 3x3 convolutions, then 1x1 objectness (A) and box (4A) outputs."""
    a = det.anchors_per_location
    return batch_size * sum(det.rpn.convs * _conv_flops(lv.grid, channels, channels, 3) + _conv_flops(lv.grid, channels, 5 * a, 1)
                            for lv in det.levels)


def box_head_flops(det: DetectionSpec, channels: int, batch_size: int = 1) -> int:
    """The two shared FCs and both predictors on every proposal kept at inference (rpn.post_nms_top_n_test:
    an upper bound, the count mmdetection's runs reach on COCO images); RoIAlign is free."""
    roi, k = det.roi, det.num_classes
    fc, rois = roi.fc_channels, det.rpn.post_nms_top_n_test
    per_roi = channels * roi.box_pool_size**2 * fc + fc * fc + fc * (k + 1) + fc * 4 * (k + int(roi.background_outputs))
    return 2 * batch_size * rois * per_roi


def mask_head_flops(det: DetectionSpec, channels: int, batch_size: int = 1) -> int:
    """The mask head on every detection kept (detector.detections_per_image, an upper bound): its 3x3
    convolutions, the 2x2 stride-2 deconvolution and the 1x1 logits at twice the pooled size."""
    roi = det.roi
    m, w = roi.mask_pool_size, roi.mask_channels
    grid, big = (m, m), (2 * m, 2 * m)
    flops = sum(_conv_flops(grid, channels if i == 0 else w, w, 3) for i in range(roi.mask_convs))
    width = w if roi.mask_convs else channels
    flops += _conv_flops(grid, width, w, 2) + _conv_flops(big, w, det.num_classes + int(roi.background_outputs), 1)
    return batch_size * det.settings.detections_per_image * flops


def _detection_parts(spec: ModelSpec, count: Any, batch_size: int) -> list[PartReport]:
    det, channels = spec.detection, spec.neck.channels
    a, k = det.anchors_per_location, det.num_classes
    if det.kind == "retinanet":
        shapes = tuple((batch_size, a * k, *lv.grid) for lv in det.levels)
        return [PartReport("head", det.kind, count("head."), detection_head_flops(det, channels, batch_size), shapes,
                           det.anchors_per_level, a)]
    roi = det.roi
    rois, kept = det.rpn.post_nms_top_n_test * batch_size, det.settings.detections_per_image * batch_size
    m = 2 * roi.mask_pool_size
    return [
        PartReport("rpn", det.kind, count("rpn."), rpn_flops(det, channels, batch_size),
                   tuple((batch_size, a, *lv.grid) for lv in det.levels), det.anchors_per_level, a),
        PartReport("box_head", det.kind, count("roi_heads.box_"), box_head_flops(det, channels, batch_size), ((rois, k + 1),)),
        PartReport("mask_head", det.kind, count("roi_heads.mask_"), mask_head_flops(det, channels, batch_size),
                   ((kept, k + int(roi.background_outputs), m, m),)),
    ]


def decode_head_flops(head: DecodeHeadSpec, batch_size: int = 1) -> int:
    """The head's convolutions and Linears at the sizes they run at; upsampling and norms are free."""
    h0, w0 = head.inputs[0].grid
    ch = head.channels
    flops = 2 * h0 * w0 * ch * head.num_classes  # the 1x1 classifier
    if head.kind == "all_mlp":
        flops += sum(2 * lv.grid[0] * lv.grid[1] * lv.channels * ch for lv in head.inputs)  # a Linear per map
        flops += 2 * h0 * w0 * len(head.inputs) * ch * ch  # the 1x1 fuse over the concatenation
    else:  # fpn: 3x3 conv blocks, each at twice the previous one's size
        for lv in head.inputs:
            steps = round(math.log2(lv.stride / head.inputs[0].stride))
            h, w, c_in = lv.grid[0], lv.grid[1], lv.channels
            for _ in range(max(1, steps)):
                flops += 2 * h * w * c_in * ch * 9
                h, w, c_in = (2 * h, 2 * w, ch) if steps > 0 else (h, w, ch)
    return batch_size * flops


def _parts(spec: ModelSpec, params: dict[str, int], batch_size: int) -> tuple[PartReport, ...]:
    def count(prefix: str) -> int:
        return sum(n for k, n in params.items() if k.startswith(prefix))

    if spec.detection is not None:
        levels = tuple((batch_size, lv.channels, *lv.grid) for lv in spec.neck.outputs)
        neck = PartReport("neck", spec.neck.kind, count("neck."), neck_flops(spec.neck, batch_size), levels)
        return (neck, *_detection_parts(spec, count, batch_size))
    if spec.decode_head is None:
        if spec.features_only:
            return ()
        out = (batch_size, spec.num_classes or spec.num_features)
        return (PartReport("head", "linear", count("head."), 2 * batch_size * spec.num_features * spec.num_classes, (out,)),)
    parts = []
    if spec.neck is not None:
        levels = tuple((batch_size, lv.channels, *lv.grid) for lv in spec.neck.outputs)
        parts.append(PartReport("neck", spec.neck.kind, count("neck."), neck_flops(spec.neck, batch_size), levels))
    logits = spec.decode_head.output
    parts.append(PartReport("decode_head", spec.decode_head.kind, count("decode_head."),
                            decode_head_flops(spec.decode_head, batch_size), ((batch_size, logits.channels, *logits.grid),)))
    return tuple(parts)


def _stage_prefixes(spec: ModelSpec, i: int) -> tuple[str, ...]:
    prefixes: tuple[str, ...] = (f"stages.{i}.",)
    if i == 0:
        prefixes += ("patch_embed.",)  # the first stage's embedding lives at the model's top level
    if spec.stages[i].cls_token:
        prefixes += ("cls_token",)
    return prefixes


def probe_model(spec: ModelSpec) -> Any:
    """The model of ``spec`` with one block per stage, on the meta device (every key and shape, no storage)."""
    import torch

    from ..modeling.assemble import model_from_spec

    with torch.device("meta"):
        return model_from_spec(replace(spec, stages=tuple(replace(s, depth=1, drop_path=s.drop_path[:1]) for s in spec.stages)))


def analyze(cfg: Any, img_size: Optional[Union[int, Sequence[int]]] = None, batch_size: int = 1) -> ModelReport:
    """Per-stage shapes, parameters and FLOPs of any config form (see :func:`build_model`).

    ``img_size`` (one side, or [height, width]) defaults to the config's own.
    """
    raw = to_plain_dict(cfg)
    spec = resolve_spec(raw if img_size is None else {**raw, "img_size": list(img_size) if isinstance(img_size, (list, tuple)) else img_size})
    probe = probe_model(spec)
    params = {name: p.numel() for name, p in probe.named_parameters()}
    dense = spec.task != "classification"  # an encoder under backbone.
    encoder = {k.removeprefix("backbone."): n for k, n in params.items() if not dense or k.startswith("backbone.")}

    def block_params(i: int) -> int:
        return sum(n for k, n in encoder.items() if k.startswith(f"stages.{i}.blocks.0."))

    stages = []
    for i, s in enumerate(spec.stages):
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
                # blocks the probe does not have are each the same as its block 0
                params=sum(n for k, n in encoder.items() if k.startswith(_stage_prefixes(spec, i))) + (s.depth - 1) * block_params(i),
                flops=patch_embed_flops(s, batch_size) + s.depth * block_flops(s, spec, batch_size),
                attention_flops=attention_flops(s, batch_size),
            )
        )
    parts = _parts(spec, params, batch_size)
    head_params = sum(p.params for p in parts)
    head_flops = sum(p.flops for p in parts)
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
        logits_shape=None if spec.features_only or spec.detection is not None else parts[-1].output_shapes[-1],
        out_indices=spec.out_indices if spec.features_only else None,
        input_size=spec.input_size,
        parts=parts,
        task=spec.task,
    )
