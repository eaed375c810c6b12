"""lucid-compatible entry points: same names and arguments, hyper-parameters from the YAMLs."""

from __future__ import annotations

import inspect
from functools import partial

import pytest
import torch

import lucid_arch
from lucid_arch import models
from lucid_arch.modeling.lucid_args import LAYER_NORM_DEFAULT_EPS, lucid_arguments

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


def test_lucids_classes_build_as_create_model_does():
    """Same seed, same weights: the classes go through the builder's meta build and initialisation."""
    tiny = dict(embed_dims=[16, 32, 80, 64], depths=[1, 1, 1, 1], num_classes=10)
    torch.manual_seed(0)
    ours = models.PVT_V2(**tiny).state_dict()
    torch.manual_seed(0)
    built = lucid_arch.create_model("pvt_v2_b2", **tiny).state_dict()
    assert list(ours) == list(built) and all(torch.equal(ours[k], built[k]) for k in ours)


def test_class_defaults_are_the_canonical_variants():
    with torch.device("meta"):
        assert num_params(models.PVT()) == OFFICIAL_PARAMS["pvt_small"]
        assert num_params(models.PVT_V2()) == OFFICIAL_PARAMS["pvt_v2_b2"]


def test_unknown_lucid_keyword_is_named():
    with pytest.raises(lucid_arch.ConfigError, match=r"model.norm_layr: unknown key"):
        models.pvt_tiny(norm_layr=None)


def test_num_stages_builds_the_first_stages_of_every_list():
    model = models.pvt_v2_b0(img_size=64, num_classes=3, num_stages=2, linear=[False, True, True, True])
    assert [s.dim for s in model.spec.stages] == [32, 64]
    assert [s.linear for s in model.spec.stages] == [False, True]
    assert model.num_features == 64 and model.head.in_features == 64
    assert model.eval()(torch.randn(1, 3, 64, 64)).shape == (1, 3)


def test_num_stages_beyond_a_list_names_the_short_lists():
    with pytest.raises(lucid_arch.ConfigError) as err:
        models.PVT_V2(num_stages=4, depths=[2, 2, 2], sr_ratios=[8, 4])
    text = str(err.value)
    assert "model.depths has 3 entries, fewer than num_stages = 4" in text
    assert "model.sr_ratios has 2 entries" in text and "embed_dims" not in text
    for bad in (0, 2.5):
        with pytest.raises(lucid_arch.ConfigError, match=r"model.num_stages = .*: expected a whole number of stages"):
            models.pvt_v2_b0(num_stages=bad)


@pytest.mark.parametrize("norm_layer, eps", [(torch.nn.LayerNorm, 1e-5), (partial(torch.nn.LayerNorm, eps=1e-6), 1e-6)])
def test_norm_layer_sets_the_block_and_stage_norm_eps(norm_layer, eps):
    with torch.device("meta"):
        model = models.pvt_v2_b0(norm_layer=norm_layer)
    assert model.spec.norm_eps == eps
    assert model.stages[1].blocks[0].norm2.eps == model.stages[1].norm.eps == eps
    assert lucid_arguments(model.spec)["norm_layer"].eps == eps
    assert torch.nn.LayerNorm(4).eps == LAYER_NORM_DEFAULT_EPS


@pytest.mark.parametrize(
    "norm_layer, shown",
    [
        (torch.nn.BatchNorm2d, "nn.BatchNorm2d"),
        (partial(torch.nn.LayerNorm, eps=1e-6, elementwise_affine=False), "elementwise_affine=False"),
        (None, "None"),
    ],
)
def test_unsupported_norm_layer_is_named_with_what_is_supported(norm_layer, shown):
    with pytest.raises(lucid_arch.ConfigError) as err:
        models.pvt_v2_b0(norm_layer=norm_layer)
    text = str(err.value)
    assert text.startswith("Invalid model config 'pvt_v2_b0': model.norm_layer = ") and shown in text
    assert "only nn.LayerNorm or functools.partial(nn.LayerNorm, eps=...) is supported" in text and "\n" not in text


def test_norm_layer_eps_must_be_positive_and_not_given_twice():
    with pytest.raises(lucid_arch.ConfigError, match=r"model.norm_layer = partial\(nn.LayerNorm, eps=0\): its eps must be a positive"):
        models.pvt_v2_b0(norm_layer=partial(torch.nn.LayerNorm, eps=0))
    with pytest.raises(lucid_arch.ConfigError, match=r"model.norm_layer and model.norm_eps are both given"):
        models.pvt_v2_b0(norm_layer=torch.nn.LayerNorm, norm_eps=1e-6)


def test_integral_floats_are_whole_numbers_from_python():
    kwargs = dict(img_size=224.0, num_classes=10.0, in_channels=3.0, patch_size=7.0, num_stages=4.0, embed_dims=[32.0, 64.0, 160.0, 256.0],
                  num_heads=[1.0, 2.0, 5.0, 8.0], depths=[2.0, 2.0, 2.0, 2.0], sr_ratios=[8.0, 4.0, 2.0, 1.0])  # fmt: skip
    with torch.device("meta"):
        model = models.pvt_v2_b0(**kwargs)
        assert model.spec == models.pvt_v2_b0(num_classes=10).spec
        assert lucid_arch.create_model("pvt_small", sr_ratios=[8.0, 4.0, 2.0, 1.0]).spec.stages[0].sr_ratio == 8
    assert all(type(v) is int for v in lucid_arguments(model.spec)["sr_ratios"])
    with pytest.raises(lucid_arch.ConfigError, match=r"^Invalid model config 'pvt_small': model.sr_ratios\[0\] = 8.5: expected an integer.$"):
        models.pvt_small(sr_ratios=[8.5, 4.0, 2.0, 1.0])
    with pytest.raises(lucid_arch.ConfigError, match=r"model.patch_size = 6.5: expected an integer"):
        models.pvt_v2_b0(patch_size=6.5)


def test_create_model_takes_lucids_arguments_too():
    with torch.device("meta"):
        model = lucid_arch.create_model("pvt_v2_b1", norm_layer=torch.nn.LayerNorm, num_stages=3, patch_size=5)
    assert (model.spec.norm_eps, len(model.stages), model.patch_embed.proj.kernel_size) == (1e-5, 3, (5, 5))


@pytest.mark.parametrize("name", ["pvt_tiny", "pvt_v2_b0", "pvt_v2_b2_li", "PVT_V2"])  # v1, v2, linear, a class
def test_repr_is_the_call_that_rebuilds_the_model_then_the_tree(name):
    namespace = {"nn": torch.nn, "partial": partial, **{n: getattr(models, n) for n in models.__all__}}
    with torch.device("meta"):
        model = getattr(models, name)(drop_path_rate=0.1, qk_scale=0.25, linear=[True, False, False, False] if "v2" in name else False)
        text = repr(model)
        header, tree = text.split(f"\n{type(model).__name__}(\n", 1)
        assert header.startswith(f"{name}(img_size=224, num_classes=1000, patch_size=")
        assert "(patch_embed): PatchEmbed(" in tree
        assert eval(header, namespace).spec == model.spec


def test_repr_of_a_yaml_of_ones_own_is_cheap_and_needs_no_weights():
    import time
    from pathlib import Path

    path = Path(__file__).parents[1] / "examples" / "my_models" / "model" / "tiny3.yaml"
    with torch.device("meta"):
        model = lucid_arch.create_model(str(path), drop_rate=0.1)
    start = time.perf_counter()
    text = repr(model)
    assert time.perf_counter() - start < 0.5
    assert text.startswith("tiny3(img_size=") and "num_stages=3)" in text and "drop_rate=0.1" in text


def test_the_python_api_page_shows_the_repr_as_printed():
    from pathlib import Path

    from lucid_arch.modeling.lucid_args import lucid_call

    page = (Path(__file__).parents[1] / "docs" / "python-api.md").read_text()
    with torch.device("meta"):
        header = lucid_call(models.pvt_v2_b1().spec)
    assert "\n".join("  " + line for line in header.splitlines()) + "\n  PyramidVisionTransformer(\n" in page
