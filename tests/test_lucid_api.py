"""lucid-compatible entry points: same names and arguments, hyper-parameters from the YAMLs."""

from __future__ import annotations

import inspect

import pytest
import torch

import lucid_arch
from lucid_arch import models

from conftest import OFFICIAL_PARAMS, num_params


@pytest.mark.parametrize("name", sorted(OFFICIAL_PARAMS))
def test_entry_point_per_variant_matches_the_yaml(name):
    entry = getattr(models, name)
    params = inspect.signature(entry).parameters
    expected = ["img_size", "num_classes", "in_channels", "kwargs"] if "v2" in name else ["img_size", "num_classes", "kwargs"]
    assert list(params) == expected
    with torch.device("meta"):
        assert num_params(entry()) == OFFICIAL_PARAMS[name]


def test_entry_point_arguments_reach_the_model():
    with torch.device("meta"):
        v2 = models.pvt_v2_b0(img_size=128, num_classes=5, in_channels=1, drop_path_rate=0.1)
        v1 = models.pvt_tiny(img_size=128, num_classes=0)
    assert (v2.spec.img_size, v2.spec.num_classes, v2.spec.in_channels) == (128, 5, 1)
    assert v2.patch_embed.proj.in_channels == 1
    assert v2.stages[-1].blocks[-1].drop_path1.p == pytest.approx(0.1)
    assert v1.stages[0].pos_embed.shape == (1, 32 * 32, 64)  # tables sized from img_size
    assert isinstance(v1.head, torch.nn.Identity)


def test_pvt_and_pvt_v2_classes_take_lucids_keywords():
    kwargs = dict(
        img_size=64, patch_size=4, in_channels=3, num_classes=10, embed_dims=[16, 32, 48, 64],
        num_heads=[1, 2, 3, 4], mlp_ratios=[4, 4, 4, 4], qkv_bias=False, qk_scale=None, drop_rate=0.0,
        attn_drop_rate=0.0, drop_path_rate=0.1, depths=[1, 1, 1, 1], sr_ratios=[8, 4, 2, 1],
    )
    v1 = models.PVT(**kwargs)
    v2 = models.PVT_V2(**kwargs, linear=True)
    assert isinstance(v1, lucid_arch.PyramidVisionTransformer)
    assert v1.patch_embed.proj.kernel_size == (4, 4) and v1.patch_embed.proj.stride == (4, 4)
    assert v2.patch_embed.proj.kernel_size == (4, 4) and v2.patch_embed.proj.stride == (4, 4)
    assert v1.stages[0].blocks[0].attn.q.bias is None
    assert v2.stages[0].blocks[0].attn.pool is not None
    x = torch.randn(1, 3, 64, 64)
    assert v1.eval()(x).shape == v2.eval()(x).shape == (1, 10)


def test_class_defaults_are_the_canonical_variants():
    with torch.device("meta"):
        assert num_params(models.PVT()) == OFFICIAL_PARAMS["pvt_small"]
        assert num_params(models.PVT_V2()) == OFFICIAL_PARAMS["pvt_v2_b2"]


def test_unknown_lucid_keyword_is_named():
    with pytest.raises(lucid_arch.ConfigError, match=r"model.norm_layr: unknown key"):
        models.pvt_tiny(norm_layr=None)
