"""Every shipped variant: composes, validates, and has the official parameter count."""

from __future__ import annotations

import pytest
import torch
import yaml

import lucid_arch
from lucid_arch.config import config_dir

from conftest import (
    DETECTION_VARIANTS,
    FPN_PARAMS,
    LUCID_PARAMS,
    MIT_PARAMS,
    MMSEG_FPN_HEAD,
    MMSEG_FPN_NECK,
    OFFICIAL_PARAMS,
    SEGFORMER_PARAMS,
    num_params,
)


def test_list_models_is_every_pvt_mit_segformer_semantic_fpn_and_detector():
    assert lucid_arch.list_models() == sorted([*OFFICIAL_PARAMS, *MIT_PARAMS, *SEGFORMER_PARAMS, *FPN_PARAMS, *DETECTION_VARIANTS])
    assert lucid_arch.list_models("pvt_v2_b2*") == ["pvt_v2_b2", "pvt_v2_b2_li"]


@pytest.mark.parametrize("name", sorted(MIT_PARAMS))
def test_mit_encoders_count_what_hugging_face_segformer_counts(name):
    with torch.device("meta"):
        model = lucid_arch.create_model(name)
    assert num_params(model) == MIT_PARAMS[name]
    pvt = lucid_arch.load_config(name.replace("mit", "pvt_v2")).model
    assert [s.dim for s in model.spec.stages] == pvt.embed_dims and [s.depth for s in model.spec.stages] == pvt.depths
    assert [s.mlp_ratio for s in model.spec.stages] == [4.0] * 4 and model.spec.features_only
    assert _own_keys(name) == {"name", "mlp_ratios", "num_classes", "features_only"}


@pytest.mark.parametrize("name", sorted(SEGFORMER_PARAMS))
def test_segformer_counts_what_hugging_face_counts(name):
    with torch.device("meta"):
        model = lucid_arch.create_model(name)
    assert num_params(model) == SEGFORMER_PARAMS[name]
    assert num_params(model.backbone) == MIT_PARAMS[name.replace("segformer", "mit")]  # the MiT encoder, unchanged
    assert model.decode_head.fuse.conv.out_channels == (256 if name in ("segformer_b0", "segformer_b1") else 768)
    assert _own_keys(name) <= {"name", "decode_head"}  # a few lines over its encoder and the _segformer base


@pytest.mark.parametrize("name", sorted(FPN_PARAMS))
def test_semantic_fpn_counts_mmsegs_neck_and_head_on_the_official_backbone(name):
    encoder = name.removeprefix("fpn_")
    with torch.device("meta"):
        model = lucid_arch.create_model(name)
        backbone = lucid_arch.create_model(encoder, features_only=True, img_size=512,
                                            **({} if encoder.startswith("pvt_v2") else {"pretrain_img_size": 224}))
    neck = MMSEG_FPN_NECK[tuple(s.dim for s in model.spec.stages)]
    assert num_params(model.neck) == neck and num_params(model.decode_head) == MMSEG_FPN_HEAD
    assert num_params(model.backbone) == num_params(backbone)
    assert num_params(model) == FPN_PARAMS[name]
    assert model.spec.stages[0].pos_grid in (None, (56, 56))  # v1 tables at the 224 px they were trained at


@pytest.mark.parametrize("name", sorted(OFFICIAL_PARAMS))
def test_official_parameter_count(name):
    with torch.device("meta"):
        model = lucid_arch.create_model(name)
    assert num_params(model) == OFFICIAL_PARAMS[name]
    assert model.spec.name == name


@pytest.mark.parametrize("name", sorted(OFFICIAL_PARAMS))
def test_headless_count_drops_exactly_the_head(name):
    with torch.device("meta"):
        model = lucid_arch.create_model(name, num_classes=0)
    head = (model.num_features + 1) * 1000
    assert num_params(model) == OFFICIAL_PARAMS[name] - head


@pytest.mark.parametrize("name", sorted(LUCID_PARAMS))
def test_lucid_documented_counts_via_config_switches(name):
    overrides, expected = LUCID_PARAMS[name]
    with torch.device("meta"):
        model = lucid_arch.create_model(name, **overrides)
    assert num_params(model) == expected


def test_lucid_counts_via_command_line_overrides():
    cfg = lucid_arch.load_config("pvt_small", ["model.attn_proj=false"])
    with torch.device("meta"):
        assert num_params(lucid_arch.build_model(cfg)) == 23_003_048
    cfg = lucid_arch.load_config("pvt_v2_b5", ["model.mlp_ratios=[8,8,4,4]"])
    with torch.device("meta"):
        assert num_params(lucid_arch.build_model(cfg)) == 82_882_984


def _own_keys(name: str) -> set[str]:
    text = (config_dir() / "model" / f"{name}.yaml").read_text()
    return set(yaml.safe_load(text)) - {"defaults"}


def test_variant_files_state_only_their_differences():
    """A variant's identity is visible at a glance: b2_li is 'b2 + linear', b2 is 'b1 + depths'."""
    assert _own_keys("pvt_v2_b2_li") == {"name", "linear"}
    assert _own_keys("pvt_v2_b2") == {"name", "depths"}
    assert _own_keys("pvt_v2_b5") == {"name", "depths", "mlp_ratios"}
    assert _own_keys("pvt_small") == {"name", "depths"}
    for name in OFFICIAL_PARAMS:
        defaults = yaml.safe_load((config_dir() / "model" / f"{name}.yaml").read_text())["defaults"]
        assert defaults[-1] == "_self_" and len(defaults) == 2, name


HYDRA_TARGETS = {  # conf/hydra/...: the classes Hydra instantiates, and nothing else
    "default.yaml": ["${lucid_sweeper_class:}", "lucid_arch.cli.tracking_hooks.SweepTracking", "lucid_arch.cli.sweep_report.SweepReport"],
    "sweeper/optuna.yaml": ["hydra_plugins.lucid_arch_sweeps.OptunaSweeper"],
    "sweeper/sampler/tpe.yaml": ["optuna.samplers.TPESampler"],
    "sweeper/sampler/nsgaii.yaml": ["optuna.samplers.NSGAIISampler"],
    "sweeper/sampler/random.yaml": ["optuna.samplers.RandomSampler"],
    "sweeper/pruner/median.yaml": ["optuna.pruners.MedianPruner"],
    "sweeper/pruner/successive_halving.yaml": ["optuna.pruners.SuccessiveHalvingPruner"],
}


def test_no_target_in_model_task_or_experiment_configs():
    """Configs are data. The one exception is Hydra's own plugin wiring in conf/hydra/: the
    sweepers (and the search's Optuna sampler and pruner) and the sweep-report callback, which
    Hydra can only instantiate from a ``_target_``."""
    hydra_dir = config_dir() / "hydra"
    for path in config_dir().rglob("*.yaml"):
        text = path.read_text()
        if hydra_dir in path.parents:
            targets = [line.split(":", 1)[1].strip() for line in text.splitlines() if line.strip().startswith("_target_")]
            targets = [t.split("#")[0].strip() for t in targets]
            assert targets == HYDRA_TARGETS.get(path.relative_to(hydra_dir).as_posix(), []), path
        else:
            assert "_target_" not in text, path


@pytest.mark.parametrize(
    ("name", "family"),
    [("pvt_tiny", "v1"), ("pvt_huge", "v1"), ("pvt_v2_b0", "v2"), ("pvt_v2_b2_li", "v2")],
)
def test_family_switches(name, family):
    model = lucid_arch.load_config(name).model
    v1 = family == "v1"
    assert model.patch_embed == ("non_overlapping" if v1 else "overlapping")
    assert (model.pos_embed, model.cls_token, model.pool == "cls") == (v1, v1, v1)
    assert model.mlp_dwconv is (not v1)
    assert model.norm_each_stage is (not v1)
