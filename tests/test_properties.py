"""Property tests: random valid configs build, count the right parameters and run.

The parameter count and the feature-map geometry are recomputed here from the architecture
description alone (``expected_params`` / ``grid_sizes``), without importing the package's own
spec, analysis or model code, so they check the builder rather than restate it.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lucid_arch import build_model

torch.set_num_threads(2)


# --- an independent model of the architecture -------------------------------------------------


def _per_stage_linear(cfg: dict, n: int) -> list[bool]:
    lin = cfg.get("linear", False)
    return [bool(v) for v in lin] if isinstance(lin, (list, tuple)) else [bool(lin)] * n


def _patch_geometry(cfg: dict) -> list[tuple[int, int, int]]:
    """(kernel, stride, padding) of every stage's patch embedding."""
    n = len(cfg["embed_dims"])
    overlapping = cfg.get("patch_embed", "overlapping") == "overlapping"
    kernels = cfg.get("patch_sizes")
    if kernels is None:
        kernels = [7] + [3] * (n - 1) if overlapping else [4] + [2] * (n - 1)
    strides = cfg.get("patch_strides")
    if strides is None:
        strides = [4] + [2] * (n - 1) if overlapping else list(kernels)
    return [(k, s, k // 2 if overlapping else 0) for k, s in zip(kernels, strides)]


def grid_sizes(cfg: dict, height: int, width: int) -> list[tuple[int, int]]:
    """(H_i, W_i) of every stage for a height x width input."""
    out = []
    for k, s, p in _patch_geometry(cfg):
        height = (height + 2 * p - k) // s + 1
        width = (width + 2 * p - k) // s + 1
        out.append((height, width))
    return out


def image_hw(cfg: dict) -> tuple[int, int]:
    img = cfg.get("img_size", 224)
    return (img[0], img[1]) if isinstance(img, (list, tuple)) else (img, img)


def built_stages(cfg: dict) -> tuple[int, list[int] | None]:
    """(stages built, the stages a backbone returns or None): a backbone stops at its last selected stage."""
    n = len(cfg["embed_dims"])
    if not cfg.get("features_only", False):
        return n, None
    picked = sorted({i % n for i in (cfg.get("out_indices") or range(n))})
    return picked[-1] + 1, picked


def expected_params(cfg: dict) -> int:
    """Closed-form parameter count of a PVT config (v1, v2 or any mix; a classifier or a backbone)."""
    n_all = len(cfg["embed_dims"])
    n, picked = built_stages(cfg)
    backbone = picked is not None
    dims = list(cfg["embed_dims"])[:n]
    in_ch = cfg.get("in_channels", 3)
    qkv_bias = cfg.get("qkv_bias", True)
    attn_proj = cfg.get("attn_proj", True)
    dwconv = cfg.get("mlp_dwconv", True)
    norm_each = cfg.get("norm_each_stage", True)
    pos = cfg.get("pos_embed", False)
    cls = cfg.get("cls_token", False) and not backbone  # a class token serves only the classifier
    num_classes = 0 if backbone else cfg.get("num_classes", 1000)
    linear = _per_stage_linear(cfg, n_all)
    geometry = _patch_geometry(cfg)
    grids = grid_sizes(cfg, *image_hw(cfg))

    def layer_norm(d: int) -> int:
        return 2 * d

    def linear_layer(i: int, o: int, bias: bool = True) -> int:
        return i * o + (o if bias else 0)

    def conv(i: int, o: int, k: int, groups: int = 1) -> int:
        return (i // groups) * o * k * k + o

    total = 0
    for i, d in enumerate(dims):
        last = i == n_all - 1  # the configured last stage: a backbone may stop before it
        k = geometry[i][0]
        c_in = in_ch if i == 0 else dims[i - 1]
        total += conv(c_in, d, k) + layer_norm(d)  # patch embedding
        h = int(d * float(cfg["mlp_ratios"][i]))
        sr = cfg["sr_ratios"][i]
        block = 2 * layer_norm(d)
        block += linear_layer(d, d, qkv_bias) + linear_layer(d, 2 * d, qkv_bias)
        if attn_proj:
            block += linear_layer(d, d)
        if linear[i]:
            block += conv(d, d, 1) + layer_norm(d)
        elif sr > 1:
            block += conv(d, d, sr) + layer_norm(d)
        block += linear_layer(d, h) + linear_layer(h, d)
        if dwconv:
            block += conv(h, h, 3, groups=h)
        total += cfg["depths"][i] * block
        if norm_each or (last and not backbone):  # v1's final norm only feeds the head
            total += layer_norm(d)
        if pos:
            gh, gw = grids[i]
            total += (gh * gw + (1 if (cls and last) else 0)) * d
    if cls:
        total += dims[-1]
    if num_classes > 0:
        total += linear_layer(dims[-1], num_classes)
    return total


def count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# --- the formula against the published/known counts ------------------------------------------

KNOWN_COUNTS = [
    ("pvt_v2_b0", {}, 3_666_760),
    ("pvt_v2_b2", {}, 25_362_856),
    ("pvt_v2_b2_li", {}, 22_553_512),
    ("pvt_tiny", {}, 13_229_288),
    ("pvt_small", {}, 24_485_864),
    ("pvt_small", {"attn_proj": False}, 23_003_048),
]


@pytest.fixture(scope="module")
def shipped_configs() -> dict[str, dict]:
    from lucid_arch import load_config
    from lucid_arch.config.checks import to_plain_dict

    return {name: to_plain_dict(load_config(name)) for name in {n for n, _, _ in KNOWN_COUNTS}}


@pytest.mark.parametrize("name,overrides,count", KNOWN_COUNTS, ids=lambda v: str(v))
def test_formula_matches_known_counts(shipped_configs, name, overrides, count):
    cfg = {**shipped_configs[name], **overrides}
    assert expected_params(cfg) == count
    with torch.device("meta"):
        model = build_model(cfg)
    assert count_params(model) == count


# --- random valid configs ---------------------------------------------------------------------

MLP_RATIOS = [1, 2, 4, 2.5]
HEAD_DIMS = [4, 8, 12]


@st.composite
def pvt_configs(draw, max_img: int = 96) -> dict[str, Any]:
    n = draw(st.integers(1, 5), label="stages")
    v1 = draw(st.booleans(), label="v1_like")
    heads = draw(st.lists(st.integers(1, 4), min_size=n, max_size=n), label="heads")
    head_dims = draw(st.lists(st.sampled_from(HEAD_DIMS), min_size=n, max_size=n), label="head_dims")
    cfg: dict[str, Any] = {
        "name": "prop",
        "in_channels": draw(st.sampled_from([1, 3])),
        "num_classes": draw(st.sampled_from([0, 3])),
        "embed_dims": [h * hd for h, hd in zip(heads, head_dims)],
        "num_heads": heads,
        "depths": draw(st.lists(st.integers(1, 2), min_size=n, max_size=n), label="depths"),
        "mlp_ratios": draw(st.lists(st.sampled_from(MLP_RATIOS), min_size=n, max_size=n), label="mlp"),
        "attn_proj": draw(st.booleans()),
        "qkv_bias": draw(st.booleans()),
        "norm_each_stage": draw(st.booleans()),
        "mlp_act": draw(st.sampled_from(["gelu", "relu", "silu"])),
    }
    if v1:
        cfg.update(
            patch_embed="non_overlapping", pos_embed=True, cls_token=True, pool="cls", mlp_dwconv=False, conv_init="default"
        )
    else:
        cfg.update(
            patch_embed="overlapping", pos_embed=False, cls_token=False, pool="mean", mlp_dwconv=True, conv_init="fan_out"
        )
    # Occasionally non-default patch kernels (and, for overlapping, strides).
    if draw(st.booleans(), label="custom_patches"):
        if v1:
            first = draw(st.sampled_from([3, 4, 5]))
            cfg["patch_sizes"] = [first] + draw(st.lists(st.sampled_from([2, 3]), min_size=n - 1, max_size=n - 1))
            if draw(st.booleans()):
                cfg["patch_strides"] = list(cfg["patch_sizes"])
        else:
            cfg["patch_sizes"] = draw(st.lists(st.sampled_from([1, 3, 5, 7]), min_size=n, max_size=n))
            if draw(st.booleans()):
                first = draw(st.sampled_from([3, 4]))  # first stride >= 3 keeps the token count small
                cfg["patch_strides"] = [first] + draw(st.lists(st.sampled_from([1, 2]), min_size=n - 1, max_size=n - 1))
    # Smallest side keeping every stage at >= 1 pixel, then some slack (bounded for speed); half the
    # configs are non-square ([height, width]).
    lowest = next(s for s in range(1, 2049) if min(min(g) for g in grid_sizes(cfg, s, s)) >= 1)
    sides = st.integers(max(lowest, 16), max(lowest, 16) + max_img - 16)
    height = draw(sides, label="height")
    cfg["img_size"] = [height, draw(sides, label="width")] if draw(st.booleans(), label="non_square") else height
    grids = grid_sizes(cfg, *image_hw(cfg))

    if draw(st.booleans(), label="linear_as_list"):
        linear = draw(st.lists(st.booleans(), min_size=n, max_size=n))
        if v1:
            linear[-1] = False
        cfg["linear"] = linear
    else:
        cfg["linear"] = False if v1 else draw(st.booleans())
    lin = _per_stage_linear(cfg, n)
    sr = []
    for i, (gh, gw) in enumerate(grids):
        if v1 and i == n - 1:
            sr.append(1)
        elif lin[i]:
            sr.append(draw(st.integers(1, 8)))  # ignored by linear attention, may exceed the map
        else:
            sr.append(draw(st.integers(1, min(gh, gw, 8))))
    cfg["sr_ratios"] = sr
    if draw(st.booleans(), label="backbone"):
        cfg["features_only"] = True
        cfg["out_indices"] = draw(st.one_of(st.none(), st.lists(st.integers(0, n - 1), min_size=1, max_size=n, unique=True)), label="out_indices")
    return cfg


def _check_forward(model: torch.nn.Module, cfg: dict, height: int, width: int) -> None:
    x = torch.randn(2, cfg["in_channels"], height, width)
    with torch.no_grad():
        out = model(x)
        maps = model.forward_features(x)
    n, picked = built_stages(cfg)
    grids = grid_sizes(cfg, height, width)
    if picked is not None:  # a backbone: the selected maps, from the stages built
        assert len(maps) == n
        assert [tuple(m.shape) for m in out] == [(2, cfg["embed_dims"][i], *grids[i]) for i in picked]
        assert all(torch.equal(o, maps[i]) for o, i in zip(out, picked))
        return
    d_last = cfg["embed_dims"][-1]
    expected_out = (2, cfg["num_classes"]) if cfg["num_classes"] > 0 else (2, d_last)
    assert tuple(out.shape) == expected_out
    assert torch.isfinite(out).all()
    assert len(maps) == len(cfg["embed_dims"])
    for m, d, (gh, gw) in zip(maps, cfg["embed_dims"], grids):
        assert tuple(m.shape) == (2, d, gh, gw)
        assert torch.isfinite(m).all()
    if cfg["pool"] == "mean" and cfg["num_classes"] == 0:
        # Mean pooling reads the last stage's (normalised) tokens, which the last map holds.
        torch.testing.assert_close(out, maps[-1].mean(dim=(2, 3)), rtol=1e-5, atol=1e-5)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cfg=pvt_configs())
def test_random_config_builds_counts_and_runs(cfg):
    model = build_model(cfg).eval()
    assert count_params(model) == expected_params(cfg)
    height, width = image_hw(cfg)
    _check_forward(model, cfg, height, width)
    _check_forward(model, cfg, height, width + 16)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cfg=pvt_configs(max_img=224))
def test_random_config_param_count_on_meta(cfg):
    with torch.device("meta"):
        model = build_model(cfg)
    assert all(p.device.type == "meta" for p in model.parameters())
    assert count_params(model) == expected_params(cfg)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cfg=pvt_configs(max_img=128))
def test_analysis_extrapolated_from_one_block_per_stage_equals_the_full_model(cfg):
    """analyze() counts a one-block-per-stage probe and scales by depth; the full model must agree."""
    from torch.utils.flop_counter import FlopCounterMode

    from lucid_arch.perf.analysis import analyze

    report = analyze(cfg, batch_size=2)
    with torch.device("meta"):
        model = build_model(cfg).eval()
        x = torch.empty(2, cfg["in_channels"], *image_hw(cfg))
    with FlopCounterMode(display=False) as counter:
        logits = model(x)
    maps = model.forward_features(x)
    assert report.params == count_params(model) == expected_params(cfg)
    assert report.flops == counter.get_total_flops()
    assert report.feature_shapes == tuple(tuple(m.shape) for m in maps)
    assert report.input_size == image_hw(cfg)
    if cfg.get("features_only"):
        assert report.logits_shape is None and [report.feature_shapes[i] for i in report.out_indices] == [tuple(o.shape) for o in logits]
    else:
        assert report.logits_shape == tuple(logits.shape)
