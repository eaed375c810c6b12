"""The inference path, and the eager model's in-place inference shortcuts and build."""

from __future__ import annotations

import pytest
import torch

import lucid_arch
from lucid_arch.perf.benchmark_suite import inference_agreement
from lucid_arch.perf.inference import InferenceModel, bf16_is_fast, prepare_for_inference

TINY = {"depths": [1, 1, 1, 1], "img_size": 64, "num_classes": 10}


def tiny(**overrides) -> torch.nn.Module:
    torch.manual_seed(0)
    return lucid_arch.create_model("pvt_v2_b0", **{**TINY, **overrides}).eval()


def test_bf16_path_agrees_with_fp32_on_top1():
    model = tiny()
    fast = prepare_for_inference(tiny(), precision="bf16")
    plain = prepare_for_inference(model, precision="fp32")
    assert isinstance(fast, InferenceModel) and fast.dtype == torch.bfloat16 and plain.dtype is None
    agreement = inference_agreement(fast, plain, n=256, img_size=64, device="cpu", chunk=128)
    assert agreement["top1_agreement"] >= 0.99
    assert 0 < agreement["max_abs_diff"] < 0.05


def test_outputs_are_float32_logits_and_options_combine():
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        expected = tiny()(x)
    fast = prepare_for_inference(tiny(), precision="auto", channels_last=True, compile="eager")
    out = fast(x)
    assert out.shape == (3, 10) and out.dtype == torch.float32 and not out.requires_grad
    assert fast.dtype == (torch.bfloat16 if bf16_is_fast("cpu") else None)
    assert fast.model.__class__.__name__ == "OptimizedModule"  # compiled
    assert torch.allclose(out, expected, atol=0.05)
    with pytest.raises(ValueError, match="precision='fp16'"):
        prepare_for_inference(tiny(), precision="fp16")  # type: ignore[arg-type]


@pytest.mark.parametrize("act", ["gelu", "relu", "silu"])
@pytest.mark.parametrize("linear", [False, True])
def test_in_place_inference_matches_autograd_forward_and_spares_the_input(act, linear):
    model = tiny(mlp_act=act, linear=linear)
    block = model.stages[0].blocks[0]
    x = torch.randn(2, 16 * 16, 32)
    with torch.enable_grad():
        expected = block(x, 16, 16)
        logits = model(torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)))
    x_before = x.clone()
    with torch.no_grad():
        got = block(x, 16, 16)
        got_logits = model(torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)))
    assert torch.equal(x, x_before)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(got_logits, logits, rtol=0, atol=1e-6)


def test_build_initialises_every_parameter_once_on_the_default_device():
    v2 = lucid_arch.create_model("pvt_v2_b0")
    assert not any(p.is_meta for p in v2.parameters())
    assert torch.count_nonzero(v2.patch_embed.proj.bias) == 0  # fan_out init zeroes conv biases
    assert v2.head.weight.std().item() == pytest.approx(0.02, rel=0.1)
    v1 = lucid_arch.create_model("pvt_tiny", depths=[1, 1, 1, 1])
    assert torch.count_nonzero(v1.patch_embed.proj.bias) > 0  # v1 keeps PyTorch's default conv init
    assert v1.stages[0].pos_embed.std().item() == pytest.approx(0.02, rel=0.2)
    with torch.device("meta"):
        assert lucid_arch.create_model("pvt_v2_b0").head.weight.is_meta


def test_agreement_reports_the_margins_that_flipped():
    """Logits with top-1 margins 0.01 and 1.0; noise of 0.02 may flip only the near-tie."""
    def plain(x: torch.Tensor) -> torch.Tensor:
        near = torch.tensor([1.0, 0.99, 0.0])
        clear = torch.tensor([2.0, 1.0, 0.0])
        return torch.stack([near if i % 2 == 0 else clear for i in range(x.shape[0])])

    def fast(x: torch.Tensor) -> torch.Tensor:
        return plain(x) + torch.tensor([0.0, 0.02, 0.0])  # flips every near-tie, no clear case

    result = inference_agreement(fast, plain, n=8, img_size=8, device="cpu", chunk=2)  # rows alternate per chunk
    assert result["top1_agreement"] == 0.5
    assert result["largest_flipped_margin"] == pytest.approx(0.01)
    assert result["median_top1_margin"] == pytest.approx(0.01)  # torch's median of four 0.01 and four 1.0
    assert result["max_abs_diff"] == pytest.approx(0.02)


def test_recheck_margin_recomputes_near_ties_in_fp32():
    """With a margin larger than every lead, every row is recomputed: the output is fp32's exactly."""
    x = torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = tiny()(x)
    fast = prepare_for_inference(tiny(), precision="bf16", recheck_margin=1e9)
    assert torch.equal(fast(x), expected)
    assert (fast.rows, fast.rechecked) == (4, 4)
    off = prepare_for_inference(tiny(), precision="bf16")
    assert not torch.equal(off(x), expected) and (off.rows, off.rechecked) == (0, 0)
    assert prepare_for_inference(tiny(), precision="fp32", recheck_margin=1.0).recheck_margin == 0.0  # fp32 needs none
