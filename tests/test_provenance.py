"""Config provenance: the defaults chain and which source set each model field."""

from __future__ import annotations

from pathlib import Path

import pytest

import lucid_arch

from lucid_arch.config import ConfigError
from lucid_arch.config.provenance import SCHEMA_SOURCE, defaults_chain, provenance, value_sources
from lucid_arch.config.schema import field_names

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch):
    monkeypatch.chdir(ROOT)  # labels are relative to the working directory


def test_chain_runs_schema_base_parents_variant_then_overrides():
    chain = defaults_chain("pvt_v2_b2_li", ["model.depths=[3,4,18,3]"])
    assert chain == [
        SCHEMA_SOURCE,
        "lucid_arch:model/_pvt_v2.yaml",
        "lucid_arch:model/pvt_v2_b1.yaml",
        "lucid_arch:model/pvt_v2_b2.yaml",
        "lucid_arch:model/pvt_v2_b2_li.yaml",
        "override model.depths=[3,4,18,3]",
    ]


def test_value_sources_name_the_last_setter_of_every_field():
    sources = value_sources("pvt_v2_b2_li", ["model.num_classes=10"])
    sections = {"neck", "decode_head"}
    assert {k.split(".")[0] for k in sources} == set(field_names()) and not sections & set(sources)
    assert "decode_head.channels" in sources and sources["neck.type"] == SCHEMA_SOURCE
    assert sources["linear"] == "lucid_arch:model/pvt_v2_b2_li.yaml"  # overrides _pvt_v2's linear: false
    assert sources["depths"] == "lucid_arch:model/pvt_v2_b2.yaml"
    assert sources["embed_dims"] == "lucid_arch:model/pvt_v2_b1.yaml"
    assert sources["sr_ratios"] == "lucid_arch:model/_pvt_v2.yaml"
    assert sources["num_classes"] == "override model.num_classes=10"
    assert sources["drop_rate"] == SCHEMA_SOURCE


def test_a_yaml_path_is_labelled_as_given_and_names_itself(tmp_path):
    path = tmp_path / "wide.yaml"
    path.write_text("defaults: [pvt_v2_b0, _self_]\nembed_dims: [64, 128, 320, 512]\n")  # no name:
    chain = defaults_chain(str(path))
    assert chain[-2:] == ["lucid_arch:model/pvt_v2_b0.yaml", str(path)]
    sources = value_sources(str(path))
    assert sources["embed_dims"] == sources["name"] == str(path)


def test_a_smuggled_key_is_attributed_to_its_file(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("defaults: [pvt_v2_b0, _self_]\n_target_: os.system\n")
    assert value_sources(str(path))["_target_"] == str(path)


def test_an_interpolation_is_refused_before_hydra_reads_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("LUCID_SECRET", "canary-4711")
    path = tmp_path / "env.yaml"
    path.write_text("defaults: [pvt_v2_b0, _self_]\nname: ${oc.env:LUCID_SECRET}\n")
    with pytest.raises(ConfigError) as info:
        provenance(str(path))
    assert "model.name" in str(info.value) and "interpolation" in str(info.value)
    assert "canary-4711" not in str(info.value)


def test_problems_name_the_file_and_line_that_set_them(tmp_path):
    path = tmp_path / "v.yaml"
    path.write_text("defaults: [pvt_v2_b0, _self_]\nname: v\n\nnum_heads: [1, 2, 6, 8]\n")
    with pytest.raises(ConfigError) as info:
        lucid_arch.load_config(str(path), ["model.depths=[2,2,0,2]"])
    by_key = {p.key: p.where for p in info.value.problems}
    assert by_key["model.num_heads[2]"] == f"{path}, line 4"
    assert by_key["model.depths[2]"] == "override model.depths=[2,2,0,2]"


def test_another_config_tree_and_display_root(tmp_path):
    import shutil

    shutil.copytree(ROOT / "conf", tmp_path / "conf")
    (tmp_path / "conf/model/pvt_v2_b2.yaml").write_text("defaults: [pvt_v2_b0, _self_]\nname: pvt_v2_b2\n")
    chain = defaults_chain("pvt_v2_b2", config_root=tmp_path / "conf", display_root="main:conf")
    assert chain == [
        SCHEMA_SOURCE,
        "main:conf/model/_pvt_v2.yaml",
        "main:conf/model/pvt_v2_b0.yaml",
        "main:conf/model/pvt_v2_b2.yaml",
    ]


def test_an_unknown_variant_is_a_config_error():
    with pytest.raises(ConfigError, match="no such model"):
        defaults_chain("pvt_v2_b9")


def test_file_labels_carry_no_machine_path(tmp_path, monkeypatch):
    """Shipped files by their place in the package; others from their repository root, the cwd, or as given."""
    from lucid_arch.config.paths import config_dir, display_path, file_label

    assert display_path(config_dir() / "model" / "pvt_v2_b0.yaml") == "lucid_arch:model/pvt_v2_b0.yaml"
    assert display_path(config_dir() / "model") == "lucid_arch:model"
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "a" / "b").mkdir(parents=True)
    (repo / "a" / "b" / "x.yaml").write_text("name: x\n")
    monkeypatch.chdir(repo / "a")
    assert file_label(repo / "a" / "b" / "x.yaml") == "a/b/x.yaml"  # from the root, not the cwd
    assert file_label("b/x.yaml") == "a/b/x.yaml"
    plain = tmp_path / "plain"
    (plain / "m").mkdir(parents=True)
    monkeypatch.chdir(plain)
    assert file_label(plain / "m" / "y.yaml") == "m/y.yaml"  # no repository: from the cwd
    monkeypatch.chdir(repo)
    assert file_label(plain / "m" / "y.yaml") == (plain / "m" / "y.yaml").as_posix()  # outside both: as given


def test_a_sections_fields_are_traced_one_by_one():
    """model.decode_head.channels and .type can come from different files and overrides."""
    sources = value_sources("segformer_b0", ["model.decode_head.dropout=0.2"])
    assert sources["decode_head.type"] == "lucid_arch:model/_segformer.yaml"
    assert sources["decode_head.channels"] == "lucid_arch:model/segformer_b0.yaml"  # b0 narrows the base's 768
    assert sources["decode_head.dropout"] == "override model.decode_head.dropout=0.2"
    assert sources["decode_head.in_index"] == SCHEMA_SOURCE
    prov = provenance("segformer_b0")
    assert prov.where("model.decode_head.channels") == "lucid_arch:model/segformer_b0.yaml, line 5"  # the field's own line
    whole = value_sources("pvt_v2_b0", ["model.decode_head={type:all_mlp}", "model.num_classes=3"])
    assert whole["decode_head.channels"] == whole["decode_head.type"] == "override model.decode_head={type:all_mlp}"


def test_a_section_given_whole_in_a_file_stands_for_its_fields(tmp_path):
    """``decode_head: null`` (which the schema then rejects) is traced to its file, field by field."""
    path = tmp_path / "whole.yaml"
    path.write_text("defaults: [segformer_b0, _self_]\ndecode_head: null\n")
    sources = value_sources(str(path))
    assert not any(key.endswith(".None") for key in sources)
    assert sources["decode_head.channels"] == sources["decode_head.type"] == str(path)
    assert provenance(str(path)).where("model.decode_head.type") == f"{path}, line 2"
