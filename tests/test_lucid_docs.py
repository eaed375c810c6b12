"""lucid's five documentation pages, argument for argument, against ``lucid_arch.models``.

Each page's signature is held here as data (argument names, types and defaults, and the
parameter count it states), not as the pages' text. Every entry point is called with every
documented argument at its documented default, and must mean by it what the page does.
"""

from __future__ import annotations

import ast
import inspect
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import pytest
import torch
from torch import nn

from lucid_arch import models
from lucid_arch.modeling.lucid_args import lucid_arguments

from conftest import LUCID_PARAMS, num_params

LN6 = partial(nn.LayerNorm, eps=1e-6)
V1_LISTS = (list[float], [8.0, 8.0, 4.0, 4.0], [8.0, 4.0, 2.0, 1.0])  # the v1 pages type these as floats
V2_LISTS = (list[int], [8, 8, 4, 4], [8, 4, 2, 1])


@dataclass(frozen=True)
class Page:
    """One page: its explicit parameters, the keyword arguments it documents, its parameter count."""

    entry: str
    signature: tuple  # (name, type, default) of the explicit parameters, in order
    kwargs: tuple = ()  # (name, type, default) documented under **kwargs
    params: typing.Optional[int] = None
    switches: dict = field(default_factory=dict)  # config switches that reproduce the count (docs/variants.md's table)

    @property
    def arguments(self) -> dict:
        return {name: default for name, _, default in self.signature + self.kwargs}


def _variant_page(entry: str, depths: list[int], params: int) -> Page:
    """A function page: v2's also list in_channels, qkv_bias and norm_layer, and type the ratios as ints."""
    v2 = entry.startswith("pvt_v2")
    kind, mlp, sr = V2_LISTS if v2 else V1_LISTS
    kwargs = (
        ("embed_dims", list[int], [64, 128, 320, 512]),
        ("depths", list[int], depths),
        ("num_heads", list[int], [1, 2, 5, 8]),
        ("mlp_ratios", kind, mlp),
        ("sr_ratios", kind, sr),
    )
    return Page(
        entry,
        signature=(("img_size", int, 224), ("num_classes", int, 1000)) + ((("in_channels", int, 3),) if v2 else ()),
        kwargs=kwargs + ((("qkv_bias", bool, True), ("norm_layer", Callable, LN6)) if v2 else ()),
        params=params,
        switches={} if v2 else {"attn_proj": False},  # lucid's v1 attention has no output projection
    )


PAGES = {
    "PVT_V2": Page(
        "PVT_V2",
        signature=(
            ("img_size", int, 224),
            ("patch_size", int, 7),
            ("in_channels", int, 3),
            ("num_classes", int, 1000),
            ("embed_dims", list[int], [64, 128, 256, 512]),
            ("num_heads", list[int], [1, 2, 4, 8]),
            ("mlp_ratios", list[int], [4, 4, 4, 4]),
            ("qkv_bias", bool, False),
            ("qk_scale", float | None, None),
            ("drop_rate", float, 0.0),
            ("attn_drop_rate", float, 0.0),
            ("drop_path_rate", float, 0.0),
            ("norm_layer", type[nn.Module], nn.LayerNorm),
            ("depths", list[int], [3, 4, 6, 3]),
            ("sr_ratios", list[int], [8, 4, 2, 1]),
            ("num_stages", int, 4),
            ("linear", bool, False),
        ),
    ),
    "pvt_v2_b1": _variant_page("pvt_v2_b1", [2, 2, 2, 2], 14_009_000),
    "pvt_v2_b2": _variant_page("pvt_v2_b2", [3, 4, 6, 3], 25_362_856),
    "pvt_small": _variant_page("pvt_small", [3, 4, 6, 3], 23_003_048),
    "pvt_medium": _variant_page("pvt_medium", [3, 4, 18, 3], 41_492_648),
}

# The arguments lucid's documented print(model) opens with, in its order (pvt_v2_b1, pvt_v2_b2).
PRINTED = ("img_size", "num_classes", "patch_size", "embed_dims", "num_heads", "depths", "sr_ratios", "linear")


def conforms(value, kind) -> bool:
    """``value`` is of the documented type (``list[float]`` holds floats, ``float | None``, ...)."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        return any(conforms(value, a) for a in args)
    if kind is type(None):
        return value is None
    if origin is list:
        return isinstance(value, list) and all(conforms(v, args[0]) for v in value)
    if origin is type:
        return isinstance(value, type) and issubclass(value, args[0])
    return isinstance(value, kind) and not (kind is int and isinstance(value, bool))


def norm_eps(norm_layer) -> float:
    """The eps lucid's ``norm_layer`` gives its norms."""
    return norm_layer(8).eps


_BUILT: dict = {}


def build(page: Page, **extra):
    """The page's entry point called with every documented default (and ``extra``), on the meta device; built once."""
    key = (page.entry, tuple(sorted(extra.items())))
    if key not in _BUILT:
        with torch.device("meta"):
            _BUILT[key] = getattr(models, page.entry)(**page.arguments, **extra)
    return _BUILT[key]


def same_argument(name, got, documented) -> bool:
    if name == "norm_layer":
        return norm_eps(got) == norm_eps(documented)
    return got == documented


@pytest.mark.parametrize("page", PAGES.values(), ids=list(PAGES))
def test_entry_point_takes_every_documented_argument_at_its_default(page):
    assert all(conforms(default, kind) for _, kind, default in page.signature + page.kwargs)  # the data itself
    model = build(page)
    got = lucid_arguments(model.spec)
    for name, default in page.arguments.items():
        if name == "norm_layer":  # the block and stage norms get its eps
            assert got[name].eps == norm_eps(default)
            assert model.stages[0].blocks[0].norm1.eps == model.stages[-1].norm.eps == norm_eps(default)
        else:
            assert got[name] == default, name


@pytest.mark.parametrize("page", [p for p in PAGES.values() if p.kwargs], ids=[n for n, p in PAGES.items() if p.kwargs])
def test_documented_defaults_are_the_variants_own(page):
    """The function pages document their variant's values, so spelling them out changes nothing."""
    with torch.device("meta"):
        assert build(page).spec == getattr(models, page.entry)().spec


@pytest.mark.parametrize("page", PAGES.values(), ids=list(PAGES))
def test_explicit_parameters_are_the_documented_signature(page):
    params = list(inspect.signature(getattr(models, page.entry)).parameters.values())
    *named, rest = params
    assert [p.name for p in named] == [name for name, _, _ in page.signature]
    assert rest.kind is inspect.Parameter.VAR_KEYWORD
    if page.kwargs:  # the functions' defaults are plain values; the class's come from its base YAML
        assert [p.default for p in named] == [default for _, _, default in page.signature]


def test_class_binds_positional_arguments_in_lucids_order():
    page = PAGES["PVT_V2"]
    values = dict(page.arguments, img_size=64, in_channels=1, num_classes=10, depths=[1, 1, 1, 1], num_stages=4)
    with torch.device("meta"):
        model = models.PVT_V2(*values.values())
    assert (model.spec.img_size, model.spec.in_channels, model.spec.num_classes) == (64, 1, 10)
    assert lucid_arguments(model.spec)["depths"] == [1, 1, 1, 1]


@pytest.mark.parametrize("page", [p for p in PAGES.values() if p.params], ids=[n for n, p in PAGES.items() if p.params])
def test_documented_parameter_count(page):
    if page.entry in LUCID_PARAMS:  # docs/variants.md's table of lucid's figures says the same
        assert (page.switches, page.params) == LUCID_PARAMS[page.entry]
    assert num_params(build(page, **page.switches)) == page.params


@pytest.mark.parametrize("page", PAGES.values(), ids=list(PAGES))
def test_repr_opens_with_the_documented_call(page):
    model = build(page)
    text = repr(model)
    call = ast.parse(text.split("\n" + type(model).__name__ + "(\n")[0], mode="eval").body
    assert call.func.id == page.entry  # the variant; a PVT_V2(...) instance is "PVT_V2"
    rest = [name for name, _, _ in PAGES["PVT_V2"].signature if name not in PRINTED]
    assert [k.arg for k in call.keywords] == list(PRINTED) + rest
    printed = {k.arg: eval(ast.unparse(k.value), {"nn": nn, "partial": partial}) for k in call.keywords}
    for name, documented in page.arguments.items():
        assert same_argument(name, printed[name], documented), name
    assert text.endswith(nn.Module.__repr__(model))  # then the module tree
    if page.kwargs and page.entry.startswith("pvt_v2"):  # these pages show print(model): the same text
        shown = ", ".join(f"{k}={page.arguments.get(k, printed[k])!r}" for k in PRINTED)
        assert " ".join(text.split()).startswith(f"{page.entry}({shown}, ")
