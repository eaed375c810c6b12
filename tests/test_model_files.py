"""The model-file rules: the bounded reader every model YAML passes before Hydra sees it."""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lucid_arch.config.checks import check_model
from lucid_arch.config.model_files import MAX_FILE_BYTES, parse_model_file, resolve_chain


def parse(text: str | bytes, name: str = "v"):
    raw = text.encode() if isinstance(text, str) else text
    return parse_model_file(raw, name, f"model/{name}.yaml")


def test_a_plain_variant_is_read_with_its_parents_and_lines():
    f = parse("# a comment\ndefaults: [pvt_v2_b0, _self_]\nname: v\ndepths: [1, 2, 3, 4]\n")
    assert f.ok and f.parents == ("pvt_v2_b0", "_self_")
    assert f.data == {"name": "v", "depths": [1, 2, 3, 4]} and f.lines == {"defaults": 2, "name": 3, "depths": 4}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("# @package _global_\nname: x\n", "no @package"),
        ("#@package model\nname: x\n", "no @package"),
        ("a: &x 1\nb: *x\n", "a YAML anchor (&name) is not allowed in a model file; write the value out"),
        ("name: !!python/object/apply:os.system [ls]\n", "an explicit YAML tag"),
        ("name: !custom x\n", "an explicit YAML tag"),
        ("<<: {a: 1}\n", "merge key"),
        ("a: 1\na: 2\n", "the key 'a' twice (first on line 1)"),
        ("1: x\n", "not a string"),
        ("name: " + "[" * 20 + "]" * 20 + "\n", "nesting deeper than"),
        ("name: ${oc.env:HOME}\n", "model.name = '${oc.env:HOME}': a ${...} interpolation"),
        ("depths: [1, '${x}']\n", "model.depths[1]"),
        ("'${oc.env:HOME}': 1\n", "interpolation in a key"),
        ("name: 2024-01-01\n", "not a plain value (a date)"),
        ("- 1\n", "expected a mapping of model fields, got a list"),
        ("name: [\n", "invalid YAML at line"),
        ("defaults: [../x]\n", "not a model file of this directory"),
        ("defaults: ['/abs/x@qk_scale']\n", "not a model file of this directory"),
        ("defaults: [{override hydra/launcher: basic}]\n", "group choices, overrides and optional entries are not allowed"),
        ("defaults: [a, a]\n", "listed twice"),
        ("defaults: a\n", "expected a list"),
    ],
)
def test_every_rule_is_one_named_problem(text, expected):
    f = parse(text)
    assert not f.ok
    assert any(expected in p.message for p in f.problems), [p.message for p in f.problems]
    assert all(p.message.startswith("model/v.yaml") for p in f.problems)


def test_bytes_size_and_names():
    assert "not UTF-8 text (byte 6 is 0xff)" in parse(b"name: \xff\n").problems[0].message
    assert "at most 65,536" in parse(b"#" * (MAX_FILE_BYTES + 1)).problems[0].message
    assert "not a usable model file name" in parse("name: x\n", name="${oc.env:X}").problems[0].message
    assert "not a usable model file name" in parse("name: x\n", name="a..b").problems[0].message


def test_a_control_character_in_a_name_is_escaped_in_messages():
    f = parse("name: x\n", name="a\x1b[2Jb")
    assert "\x1b" not in f.problems[0].message and "\\x1b" in f.problems[0].message


def chain(files: dict[str, str], top: str):
    return resolve_chain(top, lambda n: parse(files[n], n) if n in files else None)


def test_chain_cycles_missing_parents_and_expansion_bombs():
    assert chain({"a": "defaults: [b, _self_]\n", "b": "defaults: [_schema, _self_]\n"}, "a")[1] == []
    _, problems = chain({"a": "defaults: [b]\n", "b": "defaults: [a]\n"}, "a")
    assert "defaults cycle a -> b -> a" in problems[0].message
    _, problems = chain({"a": "defaults: [nope]\n"}, "a")
    assert "model/a.yaml: defaults names 'nope', but there is no model file of that name" in problems[0].message
    bomb = {f"l{i}_{s}": f"defaults: [l{i + 1}_a, l{i + 1}_b]\n" for i in range(30) for s in "ab"}
    bomb.update({"l30_a": "x: 1\n", "l30_b": "x: 1\n", "top": "defaults: [l0_a, l0_b]\n"})
    start = time.monotonic()
    _, problems = chain(bomb, "top")
    assert time.monotonic() - start < 1 and "expand to" in problems[0].message


YAML_ALPHABET = st.sampled_from(list("abcdefgh_0123456789 :-[]{},'\"&*!|>#%@`$\\.\n\t") + ["${", "<<", "!!python/", "---", "...", "\xff", "é"])


@settings(max_examples=300, deadline=1000, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(YAML_ALPHABET, max_size=200).map("".join))
def test_fuzz_the_reader_never_raises_and_stays_fast(text):
    start = time.monotonic()
    f = parse(text.encode("utf-8", errors="surrogatepass"))
    if f.ok:  # what passes the reader must pass the validator without a crash too
        check_model(f.data)
    assert time.monotonic() - start < 0.5


structured = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=30,
)


@settings(max_examples=200, deadline=1000, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(["depths", "embed_dims", "name", "mlp_ratios", "linear", "img_size", "x", "defaults"]), structured))
def test_fuzz_structured_documents_never_crash_the_reader_or_the_validator(doc):
    import yaml

    f = parse(yaml.safe_dump(doc))
    if f.ok:
        check_model(f.data)
