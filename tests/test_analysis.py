"""Config analysis without weights: shapes, parameters and FLOPs per stage."""

from __future__ import annotations

import pytest

import lucid_arch
from lucid_arch.perf.analysis import analyze

from conftest import OFFICIAL_PARAMS

# Reference FLOPs (flop_counter on real CPU tensors, which does not see the fused SDPA kernel,
# so they exclude the attention matmuls) and timm's count on the meta device (which includes them).
REFERENCE_GFLOPS_WITHOUT_ATTENTION = {"pvt_v2_b0": 1.06, "pvt_v2_b2": 7.77, "pvt_v2_b2_li": 7.49}
TIMM_META_FLOPS = {"pvt_v2_b0": 1_132_131_328, "pvt_v2_b2": 8_053_469_184, "pvt_v2_b2_li": 7_777_701_888}


@pytest.mark.parametrize("name", sorted(REFERENCE_GFLOPS_WITHOUT_ATTENTION))
def test_flops_match_the_references(name):
    report = analyze(lucid_arch.load_config(name))
    assert report.flops == TIMM_META_FLOPS[name]
    without_attention = (report.flops - report.attention_flops) / 1e9
    assert without_attention == pytest.approx(REFERENCE_GFLOPS_WITHOUT_ATTENTION[name], abs=0.005)


@pytest.mark.parametrize("name", ["pvt_tiny", "pvt_huge", "pvt_v2_b5"])
def test_per_stage_figures_add_up(name):
    report = analyze(lucid_arch.load_config(name))
    assert report.params == OFFICIAL_PARAMS[name]
    assert sum(s.params for s in report.stages) + report.head_params == report.params
    assert sum(s.flops for s in report.stages) + report.head_flops == report.flops
    assert report.logits_shape == (1, 1000)
    assert [s.feature_size for s in report.stages] == [(56, 56), (28, 28), (14, 14), (7, 7)]
    assert [shape[1] for shape in report.feature_shapes] == [s.embed_dim for s in report.stages]


def test_stage_table_of_pvt_v2_b2_li():
    report = analyze(lucid_arch.load_config("pvt_v2_b2_li"))
    first, last = report.stages[0], report.stages[-1]
    assert (first.tokens, first.kv_tokens, first.head_dim, first.linear) == (3136, 49, 64, True)
    assert (last.tokens, last.kv_tokens, last.num_heads, last.depth) == (49, 49, 8, 3)


def test_v1_tokens_count_the_cls_token():
    report = analyze(lucid_arch.load_config("pvt_small"))
    assert [s.tokens for s in report.stages] == [3136, 784, 196, 50]
    assert [s.kv_tokens for s in report.stages] == [49, 49, 49, 50]


def test_img_size_and_batch_scale_the_figures():
    cfg = lucid_arch.load_config("pvt_v2_b0")
    base = analyze(cfg)
    bigger = analyze(cfg, img_size=448, batch_size=2)
    assert bigger.params == base.params
    assert bigger.stages[0].feature_size == (112, 112)
    assert bigger.flops > 2 * 3.9 * base.flops  # ~4x pixels x 2 images, attention superlinear
    assert bigger.logits_shape == (2, 1000)
    assert bigger.to_dict()["stages"][0]["feature_size"] == (112, 112)
