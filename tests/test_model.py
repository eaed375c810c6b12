"""Model behaviour: outputs, feature maps, input sizes, SDPA, init, regularisation, compile."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import lucid_arch

SMALL_V2 = dict(embed_dims=[16, 32, 48, 64], num_heads=[1, 2, 3, 4], depths=[1, 2, 1, 1], num_classes=10, img_size=64)
SMALL_V1 = dict(SMALL_V2)


def small(family: str = "v2", **overrides):
    torch.manual_seed(0)
    base = "pvt_v2_b0" if family == "v2" else "pvt_tiny"
    return lucid_arch.create_model(base, **{**SMALL_V2, **overrides}).eval()


@pytest.mark.parametrize("family", ["v1", "v2"])
def test_logits_and_headless_features(family):
    x = torch.randn(2, 3, 64, 64)
    assert small(family)(x).shape == (2, 10)
    headless = small(family, num_classes=0)
    assert headless(x).shape == (2, 64)
    assert isinstance(headless.head, torch.nn.Identity)


def test_v2_feature_maps_after_each_stage_norm():
    model = small("v2")
    x = torch.randn(2, 3, 64, 96)
    maps = model.forward_features(x)
    assert [tuple(m.shape) for m in maps] == [(2, 16, 16, 24), (2, 32, 8, 12), (2, 48, 4, 6), (2, 64, 2, 3)]
    # Each map is LayerNorm output over channels: per-position mean ~0 before the affine (identity at init).
    assert maps[1].mean(dim=1).abs().max() < 1e-5


def test_v1_last_feature_map_excludes_the_cls_token():
    model = small("v1")
    maps = model.forward_features(torch.randn(2, 3, 64, 64))
    assert [tuple(m.shape) for m in maps] == [(2, 16, 16, 16), (2, 32, 8, 8), (2, 48, 4, 4), (2, 64, 2, 2)]


@pytest.mark.parametrize(("family", "size"), [("v2", (65, 97)), ("v2", (224, 160)), ("v1", (96, 128)), ("v1", (32, 48))])
def test_any_input_height_and_width(family, size):
    model = small(family)
    with torch.no_grad():
        out = model(torch.randn(1, 3, *size))
    assert out.shape == (1, 10) and torch.isfinite(out).all()


def test_v1_position_embedding_is_resized_bilinearly_keeping_the_cls_row():
    model = small("v1")
    last = model.stages[-1]
    table = last.position_embedding(4, 6)
    assert table.shape == (1, 1 + 24, 64)
    assert torch.equal(table[:, :1], last.pos_embed[:, :1])
    assert last.position_embedding(2, 2) is last.pos_embed  # nominal size: used as is


def test_forward_head_accepts_the_last_feature_map_for_mean_pooling():
    model = small("v2")
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model.forward_head(model.forward_features(x)[-1]), model(x))
    with pytest.raises(ValueError, match="class token"):
        small("v1").forward_head(torch.randn(2, 64, 2, 2))


def test_attention_goes_through_scaled_dot_product_attention(monkeypatch):
    calls = []
    real = F.scaled_dot_product_attention

    def spy(*args, **kwargs):
        calls.append(kwargs.get("scale"))
        return real(*args, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", spy)
    small("v2", qk_scale=0.25)(torch.randn(1, 3, 64, 64))
    assert len(calls) == 5  # one per block
    assert set(calls) == {0.25}


def test_official_initialisation():
    model = small("v2", num_classes=1000, embed_dims=[64, 128, 320, 512], num_heads=[1, 2, 5, 8])
    head = model.head.weight
    assert abs(head.std().item() - 0.02) < 0.002 and head.abs().max() <= 2.0
    assert torch.count_nonzero(model.head.bias) == 0
    conv = model.patch_embed.proj.weight  # v2: normal(0, sqrt(2 / fan_out))
    fan_out = 7 * 7 * 64
    assert abs(conv.std().item() - math.sqrt(2 / fan_out)) < 0.01 * math.sqrt(2 / fan_out) * 10
    norm = model.stages[0].norm
    assert torch.equal(norm.weight, torch.ones_like(norm.weight)) and torch.count_nonzero(norm.bias) == 0
    v1 = small("v1")
    assert abs(v1.stages[0].pos_embed.std().item() - 0.02) < 0.004
    assert abs(v1.cls_token.std().item() - 0.02) < 0.02
    # v1 keeps PyTorch's default conv init (kaiming-uniform bound 1/sqrt(fan_in) for the weights).
    fan_in = 3 * 4 * 4
    assert v1.patch_embed.proj.weight.abs().max() <= 1 / math.sqrt(fan_in) + 1e-6


def test_stochastic_depth_rises_linearly_to_drop_path_rate():
    model = small("v2", drop_path_rate=0.3)
    rates = [b.drop_path1.p for s in model.stages for b in s.blocks]
    assert rates == pytest.approx([0.0, 0.075, 0.15, 0.225, 0.3])


@pytest.mark.parametrize("field", ["drop_rate", "attn_drop_rate", "drop_path_rate"])
def test_regularisation_is_active_in_training_and_off_in_eval(field):
    model = small("v2", **{field: 0.5})
    x = torch.randn(4, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model.eval()(x), model(x))
        model.train()
        torch.manual_seed(1)
        a = model(x)
        torch.manual_seed(2)
        b = model(x)
    assert not torch.allclose(a, b)


def test_training_step_backpropagates_to_every_parameter():
    model = small("v1").train()
    loss = model(torch.randn(2, 3, 64, 64)).logsumexp(dim=1).mean()
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert missing == []


def test_no_weight_decay_lists_position_embeddings_and_cls_token():
    assert small("v1").no_weight_decay() == {"cls_token"} | {f"stages.{i}.pos_embed" for i in range(4)}
    assert small("v2").no_weight_decay() == set()


def test_reset_classifier():
    model = small("v2")
    model.reset_classifier(3)
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 3)
    model.reset_classifier(0)
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 64)


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param(dict(patch_embed="overlapping", patch_sizes=[7, 3, 3, 3], patch_strides=[4, 2, 2, 2]), id="v1-overlapping-patches"),
        pytest.param(dict(embed_dims=[16, 32, 48], num_heads=[1, 2, 3], depths=[1, 1, 1], mlp_ratios=[8, 8, 4], sr_ratios=[4, 2, 1]), id="3-stage"),
        pytest.param(dict(linear=[True, True, False, False]), id="linear-first-two-stages"),
    ],
)
def test_hybrids_are_configs_only(overrides):
    family = "v1" if "patch_embed" in overrides else "v2"
    model = small(family, **overrides)
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 10)
    if "linear" in overrides:
        assert [b.attn.pool is not None for b in (s.blocks[0] for s in model.stages)] == [True, True, False, False]


def test_torch_compile_matches_eager():
    model = small("v2", embed_dims=[16, 32], num_heads=[1, 2], depths=[1, 1], mlp_ratios=[2, 2], sr_ratios=[2, 1])
    x = torch.randn(2, 3, 64, 64)
    compiled = torch.compile(model, fullgraph=True)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), atol=1e-5, rtol=1e-5)


def test_input_too_small_for_spatial_reduction_is_a_clear_error():
    with pytest.raises(ValueError, match=r"stage 0's feature map is 4x4, smaller than its sr_ratio 8"):
        small("v2")(torch.randn(1, 3, 16, 16))


def test_initialisation_follows_the_seed_whatever_the_thread_count():
    """Weights are drawn on several threads, one generator per tensor, seeded from the global one."""
    from lucid_arch import build_model, load_config

    cfg = load_config("pvt_v2_b0", ["model.depths=[1,1,1,1]"])
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        torch.manual_seed(3)
        a = build_model(cfg)
        torch.set_num_threads(1)
        torch.manual_seed(3)
        b = build_model(cfg)
    finally:
        torch.set_num_threads(threads)
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(x, y), name
    torch.manual_seed(4)
    c = build_model(cfg)
    assert not torch.equal(a.head.weight, c.head.weight)
    fc1 = a.stages[0].blocks[0].mlp.fc1.weight
    assert abs(fc1.std().item() - 0.02) < 0.002 and a.stages[0].blocks[0].mlp.fc1.bias.abs().max() == 0
    dw = a.stages[1].blocks[0].mlp.dwconv.weight  # fan_out normal: std sqrt(2 / (3*3*out/groups))
    assert abs(dw.std().item() - (2 / 9) ** 0.5) < 0.05
