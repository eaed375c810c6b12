"""Config validation: every rule in lucid_arch.config.checks, Hydra composition errors, and
create_model's keyword check.

Each rule is exercised by corrupting one field of a valid config and asserting the offending
key path (``Problem.key``), the value in the message and the gist of the rule. All checks run
on plain dicts except the Hydra tests, which go through ``load_config`` with command-line
override strings.
"""

from __future__ import annotations

import copy
import functools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import lucid_arch
from lucid_arch.config.checks import ConfigError, Problem, check_model, to_plain_dict, validate_model
from lucid_arch.config.schema import ModelConfig, field_names

# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _base_cached(name: str) -> dict:
    return to_plain_dict(lucid_arch.load_config(name))


def base(name: str = "pvt_v2_b0") -> dict:
    """A fresh, valid plain-dict model config (a deep copy, so tests may mutate it)."""
    return copy.deepcopy(_base_cached(name))


def with_(cfg: dict | None = None, **changes) -> dict:
    cfg = base() if cfg is None else copy.deepcopy(cfg)
    cfg.update(changes)
    return cfg


def keys(problems: list[Problem]) -> list[str]:
    return [p.key for p in problems]


def only_problem(cfg: dict) -> Problem:
    """The single problem of ``cfg``; also checks validate_model rejects it with the same one."""
    problems = check_model(cfg)
    assert len(problems) == 1, [(p.key, p.message) for p in problems]
    with pytest.raises(ConfigError) as info:
        validate_model(cfg)
    assert [(p.key, p.message) for p in info.value.problems] == [(p.key, p.message) for p in problems]
    assert problems[0].message in str(info.value)
    return problems[0]


def problem_at(cfg: dict, key: str) -> Problem:
    """The problem naming ``key`` (others may accompany it); validate_model must reject too."""
    problems = check_model(cfg)
    matching = [p for p in problems if p.key == key]
    assert matching, f"no problem at {key}: {[(p.key, p.message) for p in problems]}"
    with pytest.raises(ConfigError) as info:
        validate_model(cfg)
    assert key in keys(info.value.problems)
    return matching[0]


def hydra_problems(name: str, overrides: list[str]) -> list[Problem]:
    with pytest.raises(ConfigError) as info:
        lucid_arch.load_config(name, overrides)
    assert info.value.problems, "ConfigError without problems"
    return info.value.problems


# --------------------------------------------------------------------------------------------
# sanity: the base configs are valid, so each single corruption below is what fails
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["pvt_v2_b0", "pvt_v2_b2", "pvt_tiny", "pvt_v2_b2_li"])
def test_shipped_bases_are_valid(name):
    cfg = base(name)
    assert check_model(cfg) == []
    assert isinstance(validate_model(cfg), ModelConfig)


# --------------------------------------------------------------------------------------------
# 1. one test per rule
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "typo, field",
    [("depth", "depths"), ("num_head", "num_heads"), ("embed_dim", "embed_dims"), ("sr_ratio", "sr_ratios")],
)
def test_unknown_key_suggests_field(typo, field):
    cfg = with_(**{typo: [2, 2, 2, 2]})
    p = only_problem(cfg)
    assert p.key == f"model.{typo}"
    assert "unknown key" in p.message
    assert f"did you mean {field}" in p.message


def test_unknown_key_without_close_match_has_no_suggestion():
    p = only_problem(with_(zzzzqqq=1))
    assert p.key == "model.zzzzqqq"
    assert "unknown key" in p.message
    assert "did you mean" not in p.message


def test_prefix_is_configurable():
    problems = check_model(with_(depth=[1]), prefix="")
    assert keys(problems) == ["depth"]
    problems = check_model(with_(depth=[1]), prefix="net")
    assert keys(problems) == ["net.depth"]


@pytest.mark.parametrize(
    "field, value, expected",
    [
        ("img_size", "224", "expected an integer"),
        ("img_size", 224.0, "expected an integer"),
        ("num_classes", True, "expected an integer"),  # bools are not integers here
        ("in_channels", None, "expected an integer"),
        ("norm_eps", "small", "expected a number"),
        ("drop_rate", False, "expected a number"),
        ("qkv_bias", "yes", "expected true or false"),
        ("pos_embed", 1, "expected true or false"),
        ("name", 3, "expected a string"),
        ("patch_embed", 0, "expected a string"),
        ("qk_scale", "auto", "expected a number"),
    ],
)
def test_wrong_scalar_type(field, value, expected):
    p = only_problem(with_(**{field: value}))
    assert p.key == f"model.{field}"
    assert repr(value) in p.message
    assert expected in p.message


@pytest.mark.parametrize(
    "field, index, value, expected",
    [
        ("depths", 1, "2", "expected an integer"),
        ("embed_dims", 2, 160.0, "expected an integer"),
        ("num_heads", 0, True, "expected an integer"),
        ("sr_ratios", 3, None, "expected an integer"),
        ("mlp_ratios", 1, "x", "expected a number"),
        ("patch_sizes", 0, "7", "expected an integer"),
        ("patch_strides", 3, 2.5, "expected an integer"),
    ],
)
def test_wrong_list_element_type(field, index, value, expected):
    cfg = base()
    if cfg[field] is None:
        cfg[field] = [7, 3, 3, 3] if field == "patch_sizes" else [4, 2, 2, 2]
    cfg[field][index] = value
    p = only_problem(cfg)
    assert p.key == f"model.{field}[{index}]"
    assert repr(value) in p.message
    assert expected in p.message


@pytest.mark.parametrize(
    "field, value",
    [("depths", 2), ("embed_dims", "64"), ("mlp_ratios", 4.0), ("patch_sizes", 7), ("patch_strides", {"a": 1})],
)
def test_list_field_given_non_list(field, value):
    p = only_problem(with_(**{field: value}))
    assert p.key == f"model.{field}"
    assert repr(value) in p.message
    assert "expected a list" in p.message


def test_tuples_are_accepted_as_lists():
    cfg = with_(depths=(2, 2, 2, 2), num_heads=(1, 2, 5, 8))
    assert check_model(cfg) == []
    assert validate_model(cfg).depths == [2, 2, 2, 2]


@pytest.mark.parametrize("field", ["depths", "embed_dims", "num_heads", "mlp_ratios", "sr_ratios"])
def test_required_field_missing(field):
    cfg = base()
    del cfg[field]
    p = only_problem(cfg)
    assert p.key == f"model.{field}"
    assert "required" in p.message


def test_required_field_missing_value_marker():
    cfg = with_(depths="???")
    p = only_problem(cfg)
    assert p.key == "model.depths"
    assert "required" in p.message


def test_required_fields_missing_from_bare_dict():
    with pytest.raises(ConfigError) as info:
        validate_model({"name": "bare"})
    required = {"embed_dims", "depths", "num_heads", "mlp_ratios", "sr_ratios"}
    assert set(keys(info.value.problems)) == {f"model.{f}" for f in required}
    assert all("required" in p.message for p in info.value.problems)
    assert info.value.source == "bare"


_STAGE_LISTS = {
    "depths": [2, 2, 2],
    "num_heads": [1, 2, 5],
    "mlp_ratios": [8, 8, 4, 4, 4],
    "sr_ratios": [8, 4],
    "patch_sizes": [7, 3, 3],
    "patch_strides": [4, 2, 2, 2, 2],
    "linear": [True, False, True],
}


@pytest.mark.parametrize("field", sorted(_STAGE_LISTS))
def test_per_stage_list_length_mismatch(field):
    value = _STAGE_LISTS[field]
    p = only_problem(with_(**{field: value}))
    assert p.key == f"model.{field}"
    assert f"has {len(value)} entries" in p.message
    assert "embed_dims has 4" in p.message
    assert "one entry per stage" in p.message


def test_empty_embed_dims():
    p = only_problem(with_(embed_dims=[]))
    assert p.key == "model.embed_dims"
    assert "empty" in p.message
    assert "at least one stage" in p.message


@pytest.mark.parametrize(
    "field, index",
    [
        ("embed_dims", 1),
        ("depths", 0),
        ("num_heads", 2),
        ("sr_ratios", 0),
        ("patch_sizes", 1),
        ("patch_strides", 3),
    ],
)
@pytest.mark.parametrize("value", [0, -3])
def test_per_stage_minimum(field, index, value):
    cfg = base()
    if cfg[field] is None:
        cfg[field] = [7, 3, 3, 3] if field == "patch_sizes" else [4, 2, 2, 2]
    cfg[field][index] = value
    p = only_problem(cfg)
    assert p.key == f"model.{field}[{index}]"
    assert f"= {value}" in p.message
    assert "must be at least 1" in p.message


@pytest.mark.parametrize("value", [0, 0.0, -1.5])
def test_mlp_ratios_positive(value):
    cfg = base()
    cfg["mlp_ratios"][2] = value
    p = only_problem(cfg)
    assert p.key == "model.mlp_ratios[2]"
    assert f"= {value}" in p.message
    assert "must be a positive, finite number" in p.message


@pytest.mark.parametrize(
    "field, value, low",
    [("img_size", 0, 1), ("img_size", -224, 1), ("in_channels", 0, 1), ("num_classes", -1, 0)],
)
def test_scalar_minimum(field, value, low):
    p = only_problem(with_(**{field: value}))
    assert p.key == f"model.{field}"
    assert f"= {value}" in p.message
    assert f"must be at least {low}" in p.message


def test_num_classes_zero_is_allowed():
    assert check_model(with_(num_classes=0)) == []


@pytest.mark.parametrize("value", [0, 0.0, -1e-6])
def test_norm_eps_positive(value):
    p = only_problem(with_(norm_eps=value))
    assert p.key == "model.norm_eps"
    assert f"= {value}" in p.message
    assert "must be a positive, finite number" in p.message


@pytest.mark.parametrize("value", [0, 0.0, -0.125])
def test_qk_scale_positive(value):
    p = only_problem(with_(qk_scale=value))
    assert p.key == "model.qk_scale"
    assert f"= {value}" in p.message
    assert "must be a positive, finite number" in p.message
    assert "null" in p.message


def test_qk_scale_null_and_positive_are_allowed():
    assert check_model(with_(qk_scale=None)) == []
    assert check_model(with_(qk_scale=0.125)) == []


def test_heads_must_divide_embed_dims():
    cfg = base()  # embed_dims [32, 64, 160, 256]
    cfg["num_heads"][2] = 7
    p = only_problem(cfg)
    assert p.key == "model.num_heads[2]"
    assert "= 7" in p.message
    assert "does not divide" in p.message
    assert "embed_dims[2] = 160" in p.message
    assert "try one of [1, 2, 4, 5, 8, 10, 16]" in p.message


@pytest.mark.parametrize("field", ["drop_rate", "attn_drop_rate", "drop_path_rate"])
@pytest.mark.parametrize("value", [1.0, -0.1, 1.5])
def test_probability_range(field, value):
    p = only_problem(with_(**{field: value}))
    assert p.key == f"model.{field}"
    assert f"= {value}" in p.message
    assert "probability" in p.message
    assert "[0, 1)" in p.message


@pytest.mark.parametrize("field", ["drop_rate", "attn_drop_rate", "drop_path_rate"])
def test_probability_bounds_allowed(field):
    assert check_model(with_(**{field: 0.0})) == []
    assert check_model(with_(**{field: 0.999})) == []


@pytest.mark.parametrize(
    "field, typo, expected",
    [
        ("patch_embed", "overlaping", "overlapping"),
        ("patch_embed", "non-overlapping", "non_overlapping"),
        ("pool", "maen", "mean"),
        ("mlp_act", "gelo", "gelu"),
        ("mlp_act", "selu", "silu"),
        ("conv_init", "fan-out", "fan_out"),
        ("conv_init", "defualt", "default"),
    ],
)
def test_choice_typo_suggests(field, typo, expected):
    p = only_problem(with_(**{field: typo}))
    assert p.key == f"model.{field}"
    assert repr(typo) in p.message
    assert "must be one of" in p.message
    assert f"did you mean {expected}" in p.message


@pytest.mark.parametrize(
    "field, choices",
    [
        ("patch_embed", "overlapping, non_overlapping"),
        ("pool", "mean, cls"),
        ("mlp_act", "gelu, relu, silu"),
        ("conv_init", "fan_out, default"),
    ],
)
def test_choice_lists_all_choices(field, choices):
    p = only_problem(with_(**{field: "xyzzy"}))
    assert p.key == f"model.{field}"
    assert f"must be one of {choices}" in p.message
    assert "did you mean" not in p.message


@pytest.mark.parametrize("value", ["yes", 1, None, 0.5, {"stage": True}])
def test_linear_neither_bool_nor_list(value):
    p = only_problem(with_(linear=value))
    assert p.key == "model.linear"
    assert repr(value) in p.message
    assert "expected true/false or a list" in p.message


@pytest.mark.parametrize("value", [1, "true", None])
def test_linear_list_with_non_bool(value):
    p = only_problem(with_(linear=[True, False, value, False]))
    assert p.key == "model.linear[2]"
    assert repr(value) in p.message
    assert "expected true or false" in p.message


def test_pool_cls_needs_cls_token():
    p = only_problem(with_(pool="cls"))
    assert p.key == "model.pool"
    assert "'cls'" in p.message
    assert "needs cls_token = true" in p.message


def _cls_ok() -> dict:
    """A v2 base with a class token that is otherwise valid."""
    cfg = with_(cls_token=True, pool="cls", mlp_dwconv=False)
    assert check_model(cfg) == []
    return cfg


def test_cls_token_with_spatial_reduction_on_last_stage():
    cfg = _cls_ok()
    cfg["sr_ratios"][-1] = 2
    p = only_problem(cfg)
    assert p.key == "model.sr_ratios[3]"
    assert "= 2" in p.message
    assert "class token" in p.message
    assert "set it to 1" in p.message


@pytest.mark.parametrize("linear", [True, [False, False, False, True]])
def test_cls_token_with_linear_on_last_stage(linear):
    p = only_problem(with_(_cls_ok(), linear=linear))
    assert p.key == ("model.linear" if linear is True else "model.linear[3]")
    assert f"{p.key} = true" in p.message
    assert "class token" in p.message
    assert "linear attention" in p.message


def test_cls_token_with_linear_on_earlier_stages_only_is_fine():
    assert check_model(with_(_cls_ok(), linear=[True, True, True, False])) == []


def test_cls_token_with_mlp_dwconv():
    p = only_problem(with_(_cls_ok(), mlp_dwconv=True))
    assert p.key == "model.mlp_dwconv"
    assert "= true" in p.message
    assert "depthwise convolution" in p.message
    assert "class token" in p.message


def test_non_overlapping_needs_stride_equal_patch_size():
    cfg = with_(patch_embed="non_overlapping", patch_sizes=[4, 2, 2, 2], patch_strides=[4, 2, 1, 2])
    p = only_problem(cfg)
    assert p.key == "model.patch_strides[2]"
    assert "= 1" in p.message
    assert "stride == patch size (2)" in p.message
    assert "non_overlapping" in p.message


def test_non_overlapping_strides_checked_against_default_patch_sizes():
    # patch_sizes null means 4, 2, 2, 2 for non_overlapping; strides [2, 2, 2, 2] make the
    # first stage a 4x4 kernel with stride 2 (overlapping patches), which the rule forbids.
    cfg = with_(patch_embed="non_overlapping", patch_strides=[2, 2, 2, 2])
    p = problem_at(cfg, "model.patch_strides[0]")
    assert "stride == patch size (4)" in p.message


def test_img_size_too_small_for_stages():
    cfg = with_(patch_embed="non_overlapping", img_size=3)  # 4x4/4 first patch: 0x0 map
    p = only_problem(cfg)
    assert p.key == "model.img_size"
    assert "= 3" in p.message
    assert "too small" in p.message
    assert "stage 0" in p.message and "0x0" in p.message


def test_img_size_too_small_at_a_later_stage():
    cfg = with_(patch_embed="non_overlapping", img_size=16, sr_ratios=[1, 1, 1, 1])  # 4, 2, 1, 0
    p = only_problem(cfg)
    assert p.key == "model.img_size"
    assert "stage 3" in p.message and "0x0" in p.message


def test_sr_ratio_larger_than_feature_map():
    cfg = base()  # 224 px: 56, 28, 14, 7
    cfg["sr_ratios"][3] = 8
    p = only_problem(cfg)
    assert p.key == "model.sr_ratios[3]"
    assert "= 8" in p.message
    assert "larger than" in p.message
    assert "7x7" in p.message
    assert "use at most 7" in p.message


def test_sr_ratio_ignored_on_linear_stages():
    cfg = base()
    cfg["sr_ratios"][3] = 8
    cfg["linear"] = [False, False, False, True]
    assert check_model(cfg) == []


@pytest.mark.parametrize(
    "field, value",
    [("norm_eps", math.nan), ("qk_scale", math.nan), ("mlp_ratios", [math.nan] * 4), ("mlp_ratios", [math.inf] * 4)],
)
def test_non_finite_numbers_rejected(field, value):
    # nan passes `v <= 0` checks; nan/inf mlp_ratios crash the builder (int(dim * ratio)).
    problems = check_model(with_(**{field: value}))
    assert any(p.key.startswith(f"model.{field}") for p in problems), problems


# --------------------------------------------------------------------------------------------
# 2. every problem is collected
# --------------------------------------------------------------------------------------------


def test_three_independent_problems_all_reported():
    cfg = base()
    cfg["depht"] = [2, 2, 2, 2]  # unknown key
    cfg["drop_rate"] = 1.5  # probability
    cfg["num_heads"][2] = 7  # does not divide 160
    problems = check_model(cfg)
    assert len(problems) == 3
    assert set(keys(problems)) == {"model.depht", "model.drop_rate", "model.num_heads[2]"}
    with pytest.raises(ConfigError) as info:
        validate_model(cfg, source="mine.yaml")
    err = info.value
    assert len(err.problems) == 3
    text = str(err)
    lines = text.splitlines()
    assert lines[0] == "Invalid model config 'mine.yaml' (3 problems):"
    assert len(lines) == 4
    for p in problems:
        assert f"  - {p.message}" in lines


def test_single_problem_message_is_one_line():
    err = ConfigError([Problem("model.x", "model.x: bad.")], "b0")
    assert str(err) == "Invalid model config 'b0': model.x: bad."
    assert isinstance(err, ValueError)


def test_derived_errors_are_not_piled_on():
    # num_heads has a bad type: the divisibility and length rules must not also fire on it.
    cfg = base()
    cfg["num_heads"] = [1, "two", 5]
    assert keys(check_model(cfg)) == ["model.num_heads[1]"]


# --------------------------------------------------------------------------------------------
# 3. through Hydra
# --------------------------------------------------------------------------------------------


def test_hydra_wrong_type():
    (p,) = hydra_problems("pvt_v2_b2", ["model.depths=abc"])
    assert p.key == "model.depths"
    assert "'abc'" in p.message and "expected a list" in p.message


def test_hydra_wrong_list_element_type():
    (p,) = hydra_problems("pvt_v2_b2", ["model.depths=[3,x,6,3]"])
    assert p.key == "model.depths[1]"
    assert "'x'" in p.message and "expected an integer" in p.message


def test_hydra_list_length():
    (p,) = hydra_problems("pvt_v2_b2", ["model.depths=[3,4,6]"])
    assert p.key == "model.depths"
    assert "has 3 entries but embed_dims has 4" in p.message


def test_hydra_heads_not_dividing():
    (p,) = hydra_problems("pvt_v2_b2", ["model.num_heads=[1,2,7,8]"])
    assert p.key == "model.num_heads[2]"
    assert "= 7" in p.message and "does not divide embed_dims[2] = 320" in p.message


def test_hydra_unknown_key():
    (p,) = hydra_problems("pvt_v2_b2", ["model.depth=[3,4,6,3]"])
    assert p.key == "model.depth"
    assert "unknown key" in p.message
    assert "did you mean depths" in p.message


def test_hydra_unknown_model_name():
    with pytest.raises(ConfigError) as info:
        lucid_arch.load_config("pvt_v2_b9")
    (p,) = info.value.problems
    assert p.key == "model"
    assert "pvt_v2_b9" in p.message and "no such model" in p.message
    assert "did you mean pvt_v2_b5" in p.message
    assert info.value.source == "pvt_v2_b9"


def test_hydra_unparsable_override():
    (p,) = hydra_problems("pvt_v2_b2", ["model.depths=[3,4"])
    assert p.key == "overrides"
    assert "cannot parse override" in p.message
    assert "[3,4" in p.message


def test_hydra_collects_several_errors():
    problems = hydra_problems(
        "pvt_v2_b2", ["model.depths=[3,x,6,3]", "model.qkv_bias=maybe", "model.num_heads=[1,2,7,8]"]
    )
    assert len(problems) == 3
    assert set(keys(problems)) == {"model.depths[1]", "model.qkv_bias", "model.num_heads[2]"}
    assert "'maybe'" in problems[keys(problems).index("model.qkv_bias")].message


def test_hydra_range_error_after_typed_composition():
    (p,) = hydra_problems("pvt_v2_b2", ["model.drop_path_rate=1.0"])
    assert p.key == "model.drop_path_rate"
    assert "[0, 1)" in p.message


@pytest.mark.parametrize("field", ["img_size", "num_classes", "drop_rate"])
def test_hydra_wrong_type_of_field_not_set_in_yaml(field):
    # These fields come only from the schema defaults, not from any YAML in the chain; a
    # wrongly typed override must still be reported as a type error, not as an unknown key.
    problems = hydra_problems("pvt_v2_b2", [f"model.{field}=abc"])
    assert keys(problems) == [f"model.{field}"]
    assert "unknown key" not in problems[0].message
    assert "'abc'" in problems[0].message


def test_hydra_missing_yaml_file(tmp_path):
    missing = tmp_path / "nowhere" / "my_model.yaml"
    with pytest.raises(ConfigError) as info:
        lucid_arch.load_config(str(missing))
    (p,) = info.value.problems
    assert p.key == "model"
    assert str(missing) in p.message
    assert "not found" in p.message


def test_hydra_yaml_file_errors_are_checked(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("defaults: [pvt_v2_b0, _self_]\nnum_heads: [1, 2, 7, 8]\n")
    (p,) = hydra_problems(str(path), [])
    assert p.key == "model.num_heads[2]"


def test_hydra_valid_override_passes():
    cfg = lucid_arch.load_config("pvt_v2_b2", ["model.depths=[3,4,18,3]", "model.num_classes=10"])
    assert list(cfg.model.depths) == [3, 4, 18, 3]
    assert cfg.model.num_classes == 10


# --------------------------------------------------------------------------------------------
# 4. create_model keywords
# --------------------------------------------------------------------------------------------


def test_create_model_unknown_keyword():
    with pytest.raises(ConfigError) as info, torch.device("meta"):
        lucid_arch.create_model("pvt_v2_b0", num_clases=10)
    (p,) = info.value.problems
    assert p.key == "model.num_clases"
    assert "did you mean num_classes" in p.message
    assert info.value.source == "pvt_v2_b0"


def test_create_model_bad_value_collected():
    with pytest.raises(ConfigError) as info, torch.device("meta"):
        lucid_arch.create_model("pvt_v2_b0", depths=[2, 2, 2], drop_rate=2.0)
    assert set(keys(info.value.problems)) == {"model.depths", "model.drop_rate"}


def test_create_model_known_keyword_builds():
    with torch.device("meta"):
        model = lucid_arch.create_model("pvt_v2_b0", num_classes=10)
    assert model.head.out_features == 10


# --------------------------------------------------------------------------------------------
# 5. valid edge cases
# --------------------------------------------------------------------------------------------

_EDGE_CASES = {
    "one_stage": dict(embed_dims=[32], depths=[1], num_heads=[1], mlp_ratios=[4], sr_ratios=[8]),
    "three_stages": dict(
        embed_dims=[32, 64, 160], depths=[1, 2, 1], num_heads=[1, 2, 5], mlp_ratios=[8, 8, 4], sr_ratios=[8, 4, 2]
    ),
    "five_stages": dict(
        embed_dims=[16, 32, 64, 128, 256],
        depths=[1, 1, 1, 1, 1],
        num_heads=[1, 2, 4, 8, 8],
        mlp_ratios=[4, 4, 4, 4, 4],
        sr_ratios=[8, 4, 2, 1, 1],
    ),
    "linear_per_stage": dict(linear=[True, False, True, False]),
    "v2_non_overlapping": dict(patch_embed="non_overlapping"),
    "v2_non_overlapping_explicit": dict(patch_embed="non_overlapping", patch_sizes=[4, 2, 2, 2], patch_strides=[4, 2, 2, 2]),
}


@pytest.mark.parametrize("case", sorted(_EDGE_CASES))
def test_valid_edge_cases_accepted_and_build(case):
    cfg = with_(**_EDGE_CASES[case])
    assert check_model(cfg) == []
    validated = validate_model(cfg)
    n = len(cfg["embed_dims"])
    assert len(validated.depths) == n
    with torch.device("meta"):
        model = lucid_arch.build_model(cfg)
    assert len(model.stages) == n
    assert model.num_features == cfg["embed_dims"][-1]


def test_non_overlapping_v2_hybrid_through_hydra():
    cfg = lucid_arch.load_config("pvt_v2_b2", ["model.patch_embed=non_overlapping"])
    assert cfg.model.patch_embed == "non_overlapping"
    assert cfg.model.mlp_dwconv is True


def test_linear_list_through_hydra():
    cfg = lucid_arch.load_config("pvt_v2_b2", ["model.linear=[true,false,true,false]"])
    assert list(cfg.model.linear) == [True, False, True, False]


# --------------------------------------------------------------------------------------------
# 6. property test: random single corruptions are rejected at the right key
# --------------------------------------------------------------------------------------------

_INT_STAGE_LISTS = ("embed_dims", "depths", "num_heads", "sr_ratios")
_ALL_STAGE_LISTS = ("depths", "num_heads", "mlp_ratios", "sr_ratios", "linear")
_SCALARS = {  # field -> strategy of values of the wrong type
    "img_size": st.one_of(st.text(max_size=4), st.booleans(), st.floats(allow_nan=False)),
    "in_channels": st.one_of(st.text(max_size=4), st.booleans()),
    "num_classes": st.one_of(st.text(max_size=4), st.booleans(), st.lists(st.integers(), max_size=2)),
    "norm_eps": st.one_of(st.text(max_size=4), st.booleans()),
    "drop_rate": st.one_of(st.text(max_size=4), st.booleans()),
    "qkv_bias": st.one_of(st.text(max_size=4), st.integers()),
    "cls_token": st.one_of(st.text(max_size=4), st.integers(), st.none()),
    "name": st.one_of(st.integers(), st.booleans(), st.floats(allow_nan=False)),
}
_FEATURE_SIDES = (56, 28, 14, 7)  # pvt_v2_b0 at 224 px


@st.composite
def corrupted(draw) -> tuple[dict, str]:
    cfg = base()
    kind = draw(
        st.sampled_from(
            [
                "unknown",
                "scalar_type",
                "element_type",
                "not_list",
                "length",
                "minimum",
                "mlp_ratio",
                "probability",
                "choice",
                "heads",
                "sr_too_large",
                "linear_bad",
                "missing",
            ]
        )
    )
    if kind == "unknown":
        key = draw(st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12).filter(lambda k: k not in field_names()))
        cfg[key] = draw(st.integers())
        return cfg, f"model.{key}"
    if kind == "scalar_type":
        field = draw(st.sampled_from(sorted(_SCALARS)))
        cfg[field] = draw(_SCALARS[field])
        return cfg, f"model.{field}"
    if kind == "element_type":
        field = draw(st.sampled_from(_INT_STAGE_LISTS + ("mlp_ratios",)))
        i = draw(st.integers(0, 3))
        cfg[field][i] = draw(st.one_of(st.text(max_size=3), st.booleans(), st.none()))
        return cfg, f"model.{field}[{i}]"
    if kind == "not_list":
        field = draw(st.sampled_from(_INT_STAGE_LISTS + ("mlp_ratios", "patch_sizes", "patch_strides")))
        cfg[field] = draw(st.one_of(st.integers(), st.text(max_size=3), st.floats(allow_nan=False)))
        return cfg, f"model.{field}"
    if kind == "length":
        field = draw(st.sampled_from(_ALL_STAGE_LISTS + ("patch_sizes", "patch_strides")))
        n = draw(st.integers(0, 7).filter(lambda k: k != 4))
        cfg[field] = [True] * n if field == "linear" else [1] * n
        return cfg, f"model.{field}"
    if kind == "minimum":
        field = draw(st.sampled_from(_INT_STAGE_LISTS + ("patch_sizes", "patch_strides")))
        if cfg[field] is None:
            cfg[field] = [7, 3, 3, 3] if field == "patch_sizes" else [4, 2, 2, 2]
        i = draw(st.integers(0, 3))
        cfg[field][i] = draw(st.integers(-100, 0))
        return cfg, f"model.{field}[{i}]"
    if kind == "mlp_ratio":
        i = draw(st.integers(0, 3))
        cfg["mlp_ratios"][i] = draw(st.one_of(st.integers(-10, 0), st.floats(-10, 0)))
        return cfg, f"model.mlp_ratios[{i}]"
    if kind == "probability":
        field = draw(st.sampled_from(["drop_rate", "attn_drop_rate", "drop_path_rate"]))
        cfg[field] = draw(st.one_of(st.floats(1.0, 100.0), st.floats(-100.0, -1e-9)))
        return cfg, f"model.{field}"
    if kind == "choice":
        field = draw(st.sampled_from(["patch_embed", "pool", "mlp_act", "conv_init"]))
        choices = {"patch_embed": ("overlapping", "non_overlapping"), "pool": ("mean", "cls"),
                   "mlp_act": ("gelu", "relu", "silu"), "conv_init": ("fan_out", "default")}[field]
        cfg[field] = draw(st.text(max_size=10).filter(lambda v: v not in choices))
        return cfg, f"model.{field}"
    if kind == "heads":
        i = draw(st.integers(0, 3))
        d = cfg["embed_dims"][i]
        cfg["num_heads"][i] = draw(st.integers(1, 2 * d).filter(lambda h: d % h))
        return cfg, f"model.num_heads[{i}]"
    if kind == "sr_too_large":
        i = draw(st.integers(0, 3))
        cfg["sr_ratios"][i] = draw(st.integers(_FEATURE_SIDES[i] + 1, 1000))
        return cfg, f"model.sr_ratios[{i}]"
    if kind == "linear_bad":
        if draw(st.booleans()):
            cfg["linear"] = draw(st.one_of(st.integers(), st.text(max_size=3), st.none()))
            return cfg, "model.linear"
        i = draw(st.integers(0, 3))
        cfg["linear"] = [False] * 4
        cfg["linear"][i] = draw(st.one_of(st.integers(), st.text(max_size=3), st.none()))
        return cfg, f"model.linear[{i}]"
    assert kind == "missing"
    field = draw(st.sampled_from(("embed_dims",) + _ALL_STAGE_LISTS[:-1]))
    if draw(st.booleans()):
        del cfg[field]
    else:
        cfg[field] = "???"
    return cfg, f"model.{field}"


@settings(max_examples=60, deadline=None)
@given(corrupted())
def test_random_corruption_is_rejected_at_its_key(case):
    cfg, key = case
    problems = check_model(cfg)
    assert key in keys(problems), (key, [(p.key, p.message) for p in problems])
    assert all(p.message for p in problems)
    with pytest.raises(ConfigError) as info:
        validate_model(cfg)
    assert key in keys(info.value.problems)


# --------------------------------------------------------------------------------------------
# non-square img_size, and a backbone's out_indices
# --------------------------------------------------------------------------------------------


def test_img_size_as_height_and_width():
    assert check_model(with_(img_size=[512, 1024])) == []
    assert validate_model(with_(img_size=(96, 160))).img_size == [96, 160]


@pytest.mark.parametrize("value", [[224], [224, 224, 3], [224.0, 224], ["512", 1024], [True, 224], {"h": 1}])
def test_img_size_neither_a_side_nor_height_and_width(value):
    p = only_problem(with_(img_size=value))
    assert p.key == "model.img_size" and "expected an integer (a square input's side) or [height, width]" in p.message


def test_img_size_sides_at_least_one_pixel():
    p = only_problem(with_(img_size=[0, 64]))
    assert p.key == "model.img_size[0]" and "img_size[0] = 0: must be at least 1" in p.message
    p = only_problem(with_(img_size=[64, 99999]))
    assert p.key == "model.img_size[1]" and "must be at most 16,384" in p.message


def test_a_thin_input_names_the_stage_and_its_map():
    p = only_problem(with_(patch_embed="non_overlapping", img_size=[32, 256], sr_ratios=[16, 1, 1, 1]))
    assert p.key == "model.sr_ratios[0]" and "stage 0's 8x64 feature map at img_size=[32, 256]; use at most 8" in p.message


def test_out_indices_select_stages_of_a_backbone():
    assert check_model(with_(features_only=True, out_indices=[1, 2, -1])) == []
    assert check_model(with_(features_only=True)) == []  # null: every stage


@pytest.mark.parametrize(
    ("changes", "key", "gist"),
    [
        ({"out_indices": [1, 2]}, "model.out_indices", "set features_only=true, or out_indices=null"),
        ({"features_only": True, "out_indices": [1, 4]}, "model.out_indices[1]", "the model has 4 stages; use 0..3 (or -4..-1"),
        ({"features_only": True, "out_indices": [3, -1]}, "model.out_indices[1]", "stage 3 is selected twice"),
        ({"features_only": True, "out_indices": []}, "model.out_indices", "select at least one stage"),
        ({"features_only": True, "out_indices": [1.5]}, "model.out_indices[0]", "expected an integer"),
        ({"features_only": "yes"}, "model.features_only", "expected true or false"),
    ],
)
def test_out_indices_problems(changes, key, gist):
    p = only_problem(with_(**changes))
    assert p.key == key and gist in p.message
