"""What the benchmarks time, for any variant and overrides: forward, inference path, training step, build.

Our model is timed side by side with optional *references*: models of the same architecture
built by other code (timm's, when timm is importable; our own in the tests). Every model
shares one set of weights (the first reference's state dict loads strictly into ours), sees
the same inputs, and each configuration checks that outputs agree before timing them
alternately (:mod:`lucid_arch.perf.benchmarking`). The benchmark scripts are thin command lines
over :func:`run_speed_suite` and :func:`run_build_suite`; a command-line task can call them too.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .benchmarking import Timing, compare, environment, top1_agreement
from ..config.geometry import image_hw
from .inference import bf16_is_fast, prepare_for_inference

OURS = "lucid_arch"
INFERENCE_BATCHES = 8  # distinct input batches the inference-path timing cycles through
ModelFactory = Callable[[], nn.Module]
# Outputs of two implementations of one architecture with the same weights differ by rounding
# only; bf16 rounds at 2^-8 relative, on logits of magnitude ~1.
AGREEMENT_ATOL = {"fp32": 1e-4, "bf16": 5e-2}


@dataclass(frozen=True)
class SpeedSettings:
    model: str = "pvt_v2_b2"
    overrides: tuple[str, ...] = ()
    batch_sizes: tuple[int, ...] = (1, 8)
    precisions: tuple[str, ...] = ("fp32",)
    channels_last: bool = False
    compile: bool = False
    device: str = "cpu"
    warmup: int = 2
    repeats: int = 10
    memory: bool = True
    train_batch_size: int = 0  # 0: no training-step benchmark
    inference_batch_size: int = 0  # 0: no inference-path benchmark
    inference_compile: bool = False
    inference_recheck_margin: float = 0.005  # near-ties recomputed in fp32 (lucid_arch.perf.inference); 0: off
    agreement_inputs: int = 256  # random images for the inference path's top-1 check
    img_size: int | None = None  # default: the config's


def build_ours(model: str, overrides: Sequence[str] = ()) -> nn.Module:
    """Compose, validate and build a variant (name or YAML path) with Hydra overrides."""
    from ..modeling.builder import build_model
    from ..config.compose import load_config

    return build_model(load_config(model, list(overrides)))


def timm_reference(model: str) -> ModelFactory | None:
    """A factory of timm's model of that name, or None when timm is not importable or lacks it."""
    try:
        import timm
    except ImportError:
        return None
    if model not in timm.list_models(model):
        return None
    return lambda: timm.create_model(model)


def share_weights(ours: nn.Module, references: Mapping[str, nn.Module]) -> dict[str, str]:
    """Load the first reference's weights into ours and ours into the others (all strict).

    Returns the references that could not take them (another architecture: e.g. overrides that
    timm's preset does not know) with the reason; drop those from the comparison.
    """
    from ..weights import convert_state_dict

    rejected: dict[str, str] = {}
    source = None
    for name, ref in references.items():
        try:
            if source is None:
                ours.load_state_dict(convert_state_dict(ref.state_dict()), strict=True)
                source = name
            else:
                ref.load_state_dict(ours.state_dict(), strict=True)
        except (RuntimeError, ValueError, KeyError) as exc:
            rejected[name] = f"weights do not fit: {str(exc).splitlines()[0]}"
    return rejected


def _inputs(model: nn.Module, batch: int, img_size: int, device: str, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, *image_hw(img_size), generator=gen).to(device)


def _forward_thunk(model: nn.Module, x: torch.Tensor | Sequence[torch.Tensor]) -> Callable[[], torch.Tensor]:
    """One forward per call; given several batches, each call takes the next (round robin)."""
    if isinstance(x, torch.Tensor):
        return lambda: model(x)
    calls = iter(range(1 << 62))
    return lambda: model(x[next(calls) % len(x)])


def _train_thunk(model: nn.Module, x: torch.Tensor, precision: str, device: str) -> Callable[[], torch.Tensor]:
    """One SGD step: forward (under autocast for bf16), cross-entropy, backward, update.

    A segmentation model's loss is per pixel, on its logits upsampled to the labels' (input) size,
    as training computes it.
    """
    from ..modeling.segmentation import upsample_logits

    model.train().requires_grad_(True)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4)
    gen = torch.Generator().manual_seed(1)
    dense = getattr(model, "spec", None) is not None and model.spec.segmentation
    target = torch.randint(0, model.num_classes, (x.shape[0], *(x.shape[2:] if dense else ())), generator=gen).to(device)

    def step() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            out = model(x)
            loss = F.cross_entropy(upsample_logits(out, x.shape[2:]) if dense else out, target)
        loss.backward()
        optimizer.step()
        return loss.detach()

    return step


@dataclass
class SuiteResult:
    environment: dict[str, Any]
    settings: dict[str, Any]
    timings: list[Timing] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    agreement: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "settings": self.settings,
            "timings": [t.to_dict() for t in self.timings],
            "agreement": self.agreement,
            "notes": self.notes,
        }


def run_speed_suite(
    settings: SpeedSettings,
    references: Mapping[str, ModelFactory] | None = None,
    progress: Callable[[str], None] = lambda line: None,
    build: ModelFactory | None = None,
) -> SuiteResult:
    """Forward (per batch size, precision, layout, compile), inference path and training step.

    ``build`` makes our model when the caller already holds its config (the ``lucid-arch``
    app's benchmark task); by default it is composed from ``settings.model`` and its overrides.
    """
    s = settings
    result = SuiteResult(environment(s.device), asdict(s))
    ours = (build or (lambda: build_ours(s.model, s.overrides)))().to(s.device)
    refs = {name: factory().to(s.device) for name, factory in (references or {}).items()}
    for name, why in share_weights(ours, refs).items():
        result.notes.append(f"reference {name} left out: {why}")
        del refs[name]
    if "bf16" in s.precisions and not bf16_is_fast(s.device):
        result.notes.append(f"{s.device} has no native bf16: bf16 figures are for emulated bf16.")
    img_size = s.img_size or ours.spec.img_size
    models = {OURS: ours, **refs}
    reference = next(iter(refs), None)

    def run(config: str, candidates: Mapping[str, Callable[[], Any]], items: int, atol: float | None, ref: str | None,
            statistic: str = "median") -> None:
        progress(f"{config}: {', '.join(candidates)}")
        timings = compare(
            config, candidates, items=items, reference=ref, atol=atol,
            warmup=s.warmup, repeats=s.repeats, device=s.device, memory=s.memory, statistic=statistic,
        )  # fmt: skip
        result.timings.extend(timings)

    for precision in s.precisions:
        for batch in s.batch_sizes:
            x = _inputs(ours, batch, img_size, s.device)
            config = f"forward b{batch} {precision}" + (" channels_last" if s.channels_last else "") + (" compile" if s.compile else "")
            candidates = {}
            for name, model in models.items():
                m = copy.deepcopy(model) if s.channels_last or s.compile else model
                fast = prepare_for_inference(m, precision=precision, channels_last=s.channels_last, compile=s.compile)
                candidates[name] = _forward_thunk(fast, x)
            run(config, candidates, batch, AGREEMENT_ATOL[precision], reference)

    if s.inference_batch_size:
        batch = s.inference_batch_size
        fast = prepare_for_inference(copy.deepcopy(ours), precision="auto", channels_last=s.channels_last,
                                     compile=s.inference_compile, recheck_margin=s.inference_recheck_margin)
        plain = prepare_for_inference(ours, precision="fp32")
        result.agreement = inference_agreement(fast, plain, s.agreement_inputs, img_size, s.device)
        result.agreement["rechecked_fraction"] = fast.rechecked / fast.rows if fast.rows else 0.0
        # Several batches, taken in turn: how many near-ties the fp32 recheck meets depends on the
        # images, so one fixed batch would make the timing a draw of luck.
        x = [_inputs(ours, batch, img_size, s.device, seed=k) for k in range(INFERENCE_BATCHES)]
        precision = "bf16" if fast.dtype == torch.bfloat16 else "fp32"
        recheck = f", fp32 below {s.inference_recheck_margin:g}" if fast.recheck_margin else ""
        label = f"{OURS} inference path ({precision}{', compiled' if s.inference_compile else ''}{recheck})"
        candidates = {label: _forward_thunk(fast, x)}
        for name, model in models.items():
            candidates[f"{name} fp32"] = _forward_thunk(prepare_for_inference(model, precision="fp32"), x)
        ref = f"{reference} fp32" if reference else f"{OURS} fp32"
        run(f"inference b{batch}", candidates, batch, None, ref, statistic="mean")  # rechecks vary by batch

    if s.train_batch_size:
        for precision in s.precisions:
            batch = s.train_batch_size
            x = _inputs(ours, batch, img_size, s.device)
            candidates = {name: _train_thunk(copy.deepcopy(model), x, precision, s.device) for name, model in models.items()}
            run(f"train step b{batch} {precision}", candidates, batch, None, reference)
    return result


def inference_agreement(fast: Callable[[torch.Tensor], torch.Tensor], plain: Callable[[torch.Tensor], torch.Tensor], n: int, img_size: int, device: str, chunk: int = 32) -> dict[str, float]:
    """Top-1 agreement and max abs logit difference of ``fast`` vs ``plain`` on ``n`` random images
    (per pixel for a segmentation model's logits).

    Also the reference's top-1 margins (its best logit minus its second): a prediction can only
    flip where the margin is within the precision's error, so the median margin and the largest
    margin that flipped say whether disagreement is rounding on near-ties or a real fault.
    """
    fast_out, ref_out = [], []
    for start in range(0, n, chunk):
        b = min(chunk, n - start)
        x = torch.randn(b, 3, *image_hw(img_size), generator=torch.Generator().manual_seed(1000 + start)).to(device)
        fast_out.append(fast(x).float().cpu())
        ref_out.append(plain(x).float().cpu())
    a, ref = (_class_rows(torch.cat(out)) for out in (fast_out, ref_out))
    top2 = ref.topk(min(2, ref.shape[-1]), dim=-1).values
    margins = top2[:, 0] - top2[:, -1]
    flipped = a.argmax(-1) != ref.argmax(-1)
    return {
        "inputs": n,
        "top1_agreement": top1_agreement(a, ref),
        "max_abs_diff": (a - ref).abs().max().item(),
        "median_top1_margin": margins.median().item(),
        "largest_flipped_margin": margins[flipped].max().item() if flipped.any() else 0.0,
    }


def _class_rows(logits: torch.Tensor) -> torch.Tensor:
    """(N, K) rows of class scores: a classifier's logits, or a segmentation model's per pixel."""
    return logits.movedim(1, -1).reshape(-1, logits.shape[1]) if logits.ndim == 4 else logits


def run_build_suite(
    model: str,
    overrides: Sequence[str] = (),
    references: Mapping[str, ModelFactory] | None = None,
    warmup: int = 1,
    repeats: int = 5,
) -> list[Timing]:
    """Compose + build + init of a variant against the references' constructors, alternately."""
    candidates: dict[str, Callable[[], Any]] = {f"{OURS} compose+build+init": lambda: build_ours(model, overrides)}
    for name, factory in (references or {}).items():
        candidates[f"{name} create_model"] = factory
    ref = next(iter(list(candidates)[1:]), None)
    return compare(f"build {model}", candidates, items=1, reference=ref, warmup=warmup, repeats=repeats, memory=False)
