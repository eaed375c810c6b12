"""Configs as the only way to define a variant: composition, the schema, YAML-only variants."""

from __future__ import annotations

from dataclasses import fields

import pytest
import torch
from omegaconf import OmegaConf

import lucid_arch
from lucid_arch.config import ConfigError, ModelConfig
from lucid_arch.config.schema import ACT_CHOICES, POOL_CHOICES
from lucid_arch.modeling.registry import ACTIVATIONS, POOLS

from conftest import OFFICIAL_PARAMS, num_params

NEW_VARIANT = """\
# A 3-stage PVT-v2 with linear attention in the first two stages: no Python needed.
defaults: [pvt_v2_b0, _self_]
name: my_tiny_v2
embed_dims: [32, 64, 128]
num_heads: [1, 2, 4]
depths: [1, 2, 1]
mlp_ratios: [4, 4, 4]
sr_ratios: [4, 2, 1]
linear: [true, true, false]
num_classes: 7
"""


def _new_variant_dir(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "my_tiny_v2.yaml").write_text(NEW_VARIANT)
    return tmp_path


def _check_new_variant(model):
    assert model.spec.name == "my_tiny_v2"
    assert [s.dim for s in model.spec.stages] == [32, 64, 128]
    assert [s.linear for s in model.spec.stages] == [True, True, False]
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 3, 96, 96)).shape == (1, 7)


def test_new_variant_from_a_yaml_on_hydras_search_path(tmp_path):
    root = _new_variant_dir(tmp_path)
    cfg = lucid_arch.load_config("my_tiny_v2", [f"hydra.searchpath=[file://{root}]"])
    assert OmegaConf.get_type(cfg.model) is ModelConfig  # composed onto the typed schema
    _check_new_variant(lucid_arch.build_model(cfg))


def test_a_badly_typed_config_leaves_the_typed_schema_for_the_next_one():
    """A type error composes once more untyped (every problem at once); the next composition is typed again."""
    with pytest.raises(ConfigError):
        lucid_arch.load_config("pvt_v2_b0", ["model.num_classes=abc"])
    assert OmegaConf.get_type(lucid_arch.load_config("pvt_v2_b0").model) is ModelConfig


def test_new_variant_from_a_yaml_path(tmp_path):
    path = _new_variant_dir(tmp_path) / "model" / "my_tiny_v2.yaml"
    _check_new_variant(lucid_arch.create_model(str(path)))


def test_invalid_new_variant_file_names_its_key(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text(NEW_VARIANT.replace("num_heads: [1, 2, 4]", "num_heads: [1, 3, 4]"))
    with pytest.raises(ConfigError) as err:
        lucid_arch.create_model(str(path))
    assert [p.key for p in err.value.problems] == ["model.num_heads[1]"]


def test_command_line_overrides_compose_like_hydra():
    cfg = lucid_arch.load_config("pvt_v2_b2", ["model.depths=[3,4,18,3]", "model.num_classes=10"])
    assert list(cfg.model.depths) == [3, 4, 18, 3] and cfg.model.num_classes == 10
    assert cfg.model.mlp_ratios == [8.0, 8.0, 4.0, 4.0]  # inherited from b1 -> _pvt_v2
    with torch.device("meta"):  # b2 with b3's depths is b3, with a 10-class head
        assert num_params(lucid_arch.build_model(cfg)) == OFFICIAL_PARAMS["pvt_v2_b3"] - 513_000 + 512 * 10 + 10


def test_create_model_overrides_and_build_model_inputs_agree():
    from lucid_arch.config.checks import to_plain_dict

    cfg = lucid_arch.load_config("pvt_v2_b0", ["model.num_classes=3"])
    as_dict = to_plain_dict(cfg)
    as_dataclass = ModelConfig(**as_dict)
    with torch.device("meta"):
        counts = {
            num_params(lucid_arch.build_model(cfg)),
            num_params(lucid_arch.build_model(cfg.model)),
            num_params(lucid_arch.build_model(as_dict)),
            num_params(lucid_arch.build_model(as_dataclass)),
            num_params(lucid_arch.create_model("pvt_v2_b0", num_classes=3)),
        }
    assert counts == {OFFICIAL_PARAMS["pvt_v2_b0"] - 257_000 + 256 * 3 + 3}


def test_schema_is_registered_and_rejects_wrong_types_at_composition():
    from hydra.core.config_store import ConfigStore

    lucid_arch.config.register_configs()
    assert "_schema.yaml" in ConfigStore.instance().list("model")
    with pytest.raises(ConfigError, match=r"model.qkv_bias = 'maybe': expected true or false"):
        lucid_arch.load_config("pvt_v2_b0", ["model.qkv_bias=maybe"])


def test_every_schema_field_is_documented():
    for f in fields(ModelConfig):
        assert len(f.metadata.get("help", "")) > 15, f.name


def test_registry_covers_the_schema_vocabulary():
    assert set(POOLS) == set(POOL_CHOICES)
    assert set(ACTIVATIONS) == set(ACT_CHOICES)


def test_yaml_path_that_shadows_a_shipped_name_is_still_the_file(tmp_path):
    path = tmp_path / "pvt_v2_b0.yaml"
    path.write_text("defaults: [pvt_v2_b0, _self_]\nname: edited_b0\ndepths: [1, 1, 1, 1]\n")
    cfg = lucid_arch.load_config(str(path))
    assert cfg.model.name == "edited_b0" and list(cfg.model.depths) == [1, 1, 1, 1]


def test_a_smuggled_target_is_rejected_not_run(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("defaults: [pvt_v2_b0, _self_]\n_target_: os.system\n")
    with pytest.raises(ConfigError) as err:
        lucid_arch.create_model(str(path))
    assert [p.key for p in err.value.problems] == ["model._target_"]


def test_a_yaml_extending_a_missing_variant_names_the_file(tmp_path):
    path = tmp_path / "orphan.yaml"
    path.write_text("defaults: [pvt_v2_b99, _self_]\nname: orphan\n")
    with pytest.raises(ConfigError, match=r"orphan.yaml: .*pvt_v2_b99.*check its defaults list"):
        lucid_arch.load_config(str(path))


def test_a_yaml_without_a_name_is_named_after_its_file(tmp_path):
    path = tmp_path / "wide_b0.yaml"
    path.write_text("defaults: [pvt_v2_b0, _self_]\nembed_dims: [64, 128, 320, 512]\n")
    assert lucid_arch.load_config(str(path)).model.name == "wide_b0"


def test_a_yaml_with_a_syntax_error_is_a_config_error(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("defaults: [pvt_v2_b0, _self_]\ndepths: [1, 2\n")
    with pytest.raises(ConfigError, match="broken.yaml"):
        lucid_arch.load_config(str(path))


def test_a_broken_yaml_on_the_search_path_is_a_config_error(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "bad.yaml").write_text("defaults: [pvt_v2_b0, _self_]\ndepths: [1, 2\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: invalid YAML at line \d+"):
        lucid_arch.load_config("bad", [f"hydra.searchpath=[file://{tmp_path}]"])
