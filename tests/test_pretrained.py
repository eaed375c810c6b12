"""model.pretrained: every checkpoint layout loads and reproduces its source; adaptations and errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import lucid_arch
from lucid_arch.config.checks import to_plain_dict
from lucid_arch.weights.adapt import resample_position_embedding
from lucid_arch.weights import CheckpointError, load_pretrained, read_checkpoint

TOL = 1e-5
SMALL = {"depths": [1, 1, 1, 1], "img_size": 64}  # pvt_v2_b0's widths, one block per stage
X64 = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))


def _fixture_model(data: dict, **overrides):
    base = "pvt_v2_b0" if data["family"] == "pvt_v2" else "pvt_tiny"
    return lucid_arch.create_model(base, **{**data["hparams"], **overrides}).eval()


def _small(seed: int, **overrides):
    torch.manual_seed(seed)
    return lucid_arch.create_model("pvt_v2_b0", **{**SMALL, **overrides}).eval()


def _assert_same_weights(model, state_dict, skip: str = "head.") -> None:
    own = model.state_dict()
    compared = [k for k in state_dict if not k.startswith(skip)]
    assert compared and all(torch.equal(own[k], state_dict[k]) for k in compared)


def _outputs(model, x):
    with torch.no_grad():
        return model(x), model.forward_features(x)


# --- every layout reproduces its source ------------------------------------------------------


@pytest.mark.parametrize("fixture", ["v2_mini.pt", "v2_mini_linear.pt"])
def test_official_v2_checkpoints_reproduce_the_reference_outputs(fixture_file, fixture, tmp_path):
    data = fixture_file(fixture)
    path = tmp_path / "official.pth"
    torch.save({"model": data["state_dict_official"], "epoch": 300}, path)  # the official trainer's wrapper
    model = _fixture_model(data)
    report = load_pretrained(model, path)
    assert (report.layout, report.loaded, report.head_reinitialized, report.resampled) == (
        "official_v2", len(data["state_dict_official"]), False, ())
    (name, x), = data["inputs"].items()
    logits, maps = _outputs(model, x)
    torch.testing.assert_close(logits, data["outputs"][name]["logits"], atol=TOL, rtol=0)
    for got, want in zip(maps, data["outputs"][name]["stage_maps"], strict=True):
        torch.testing.assert_close(got, want, atol=TOL, rtol=0)


def test_official_v1_checkpoint_through_create_model(fixture_file, tmp_path):
    data = fixture_file("v1_mini.pt")
    path = tmp_path / "pvt_tiny.pth"
    torch.save(data["state_dict_official"], path)
    model = _fixture_model(data, pretrained=str(path))  # same img_size: nothing is resampled
    for name, x in data["inputs"].items():  # x96 also runs the forward's own interpolation
        with torch.no_grad():
            torch.testing.assert_close(model(x), data["outputs"][name]["logits"], atol=TOL, rtol=0)
    assert str(load_pretrained(model, path)) == f"loaded 111 tensors from {path} (official_v1 layout)"


@pytest.mark.parametrize("prefix", ["module.", "_orig_mod.", "module._orig_mod."])
def test_timm_layout_in_a_trainer_wrapper(prefix, tmp_path):
    source = _small(seed=1)
    path = tmp_path / "timm.pth"
    torch.save({"state_dict": {prefix + k: v for k, v in source.state_dict().items()}, "epoch": 3}, path)
    model = _small(seed=2)
    assert not torch.equal(model.head.weight, source.head.weight)
    report = load_pretrained(model, path)
    assert report.layout == "timm" and report.loaded == len(source.state_dict())
    _assert_same_weights(model, source.state_dict(), skip="-")
    assert torch.equal(_outputs(model, X64)[0], _outputs(source, X64)[0])


def test_ours_safetensors_file(tmp_path):
    source = _small(seed=1)
    path = tmp_path / "model.safetensors"
    save_file(source.state_dict(), str(path))
    model = lucid_arch.create_model("pvt_v2_b0", **SMALL, pretrained=path).eval()  # a pathlib.Path works too
    logits, maps = _outputs(model, X64)
    want_logits, want_maps = _outputs(source, X64)
    assert torch.equal(logits, want_logits) and all(torch.equal(a, b) for a, b in zip(maps, want_maps))


def test_run_directory_picks_the_final_weights_else_the_newest_step(tmp_path):
    run = tmp_path / "run"
    steps = {}
    for step, seed in ((20, 2), (10, 1)):  # step 10 written last: newest by mtime, not by step
        d = run / "checkpoints" / f"step_{step:06d}"
        d.mkdir(parents=True)
        steps[step] = _small(seed=seed).state_dict()
        save_file(steps[step], str(d / "model.safetensors"))
    (run / "checkpoints" / "step_000030").mkdir()  # a checkpoint still being written: no weights yet
    model = _small(seed=3)
    report = load_pretrained(model, run)
    assert report.path == str(run / "checkpoints" / "step_000020" / "model.safetensors")
    _assert_same_weights(model, steps[20], skip="-")
    save_file(steps[10], str(run / "model.safetensors"))  # the run finished: its final weights win
    assert read_checkpoint(run).keys() == steps[10].keys()
    assert torch.equal(read_checkpoint(run)["head.weight"], steps[10]["head.weight"])


# --- adaptations: the head, v1 position embeddings -----------------------------------------------


def test_another_class_count_keeps_the_fresh_head(fixture_file, tmp_path):
    data = fixture_file("v2_mini.pt")
    path = tmp_path / "ten_classes.pth"
    torch.save(data["state_dict_timm"], path)
    torch.manual_seed(5)
    fresh = _fixture_model(data, num_classes=7)
    with pytest.raises(CheckpointError, match=r"classifies 10 classes, and the model \(pvt_v2_b0\) has 7: .* random "
                       r"initialisation.*model.num_classes=10.*model.new_head=true \(Python: new_head=True, or reset_head=True\)"):
        _fixture_model(data, num_classes=7, pretrained=str(path))  # never a random head by accident
    torch.manual_seed(5)
    model = _fixture_model(data, num_classes=7, pretrained=str(path), new_head=True)  # same seed: the same initial head
    _assert_same_weights(model, data["state_dict_timm"])
    assert model.head.weight.shape == (7, 64)
    assert torch.equal(model.head.weight, fresh.head.weight) and not model.head.bias.any()
    report = load_pretrained(model, path, new_head=True)
    assert report.head_reinitialized and "10 classes, the model 7" in report.head_reason
    assert report.loaded == len(data["state_dict_timm"]) - 2
    assert "head re-initialised" in str(report)


def test_no_head_either_way(fixture_file, tmp_path):
    data = fixture_file("v2_mini.pt")
    path = tmp_path / "ten_classes.pth"
    torch.save(data["state_dict_timm"], path)
    features = _fixture_model(data, num_classes=0)  # the checkpoint's head is dropped
    assert "num_classes=0" in load_pretrained(features, path).head_reason
    source = _fixture_model(data)
    source.load_state_dict(data["state_dict_timm"])
    (x,) = data["inputs"].values()
    with torch.no_grad():
        torch.testing.assert_close(features(x), source.forward_head(source.forward_features(x)[-1], pre_logits=True))
    headless = tmp_path / "features.pth"
    torch.save(features.state_dict(), headless)  # and a checkpoint without a head into a classifier
    classifier = _fixture_model(data)
    with pytest.raises(CheckpointError, match="has no classifier"):
        load_pretrained(classifier, headless)
    assert "no classifier" in load_pretrained(classifier, headless, new_head=True).head_reason
    _assert_same_weights(classifier, features.state_dict())


def test_v1_position_embeddings_are_resampled_for_another_img_size(fixture_file, tmp_path):
    data = fixture_file("v1_mini.pt")  # built at 64 px: grids 16, 8, 4, 2 (+ a class-token row in the last)
    path = tmp_path / "v1.pth"
    torch.save(data["state_dict_official"], path)
    model = _fixture_model(data, img_size=96)
    report = load_pretrained(model, path)
    assert report.resampled == (
        "stages.0.pos_embed 16x16 -> 24x24",
        "stages.1.pos_embed 8x8 -> 12x12",
        "stages.2.pos_embed 4x4 -> 6x6",
        "stages.3.pos_embed 2x2 -> 3x3",
    )
    table = model.stages[3].pos_embed
    assert table.shape == (1, 1 + 9, 64)
    assert torch.equal(table[:, 0], data["state_dict_official"]["pos_embed4"][:, 0])  # class-token row kept
    assert torch.equal(model.cls_token, data["state_dict_official"]["cls_token"])
    with torch.no_grad():
        logits = model(data["inputs"]["x96"])
    # What the official model computes fed 96 px: it resizes its 64 px tables bilinearly on every forward,
    # and the load did the same once (bicubic at load time used to differ by 4.6e-3).
    torch.testing.assert_close(logits, data["outputs"]["x96"]["logits"], atol=TOL, rtol=0)


def test_a_non_square_v1_checkpoint_keeps_its_aspect(tmp_path):
    small = dict(embed_dims=[16, 32, 48, 64], num_heads=[1, 2, 3, 4], depths=[1, 1, 1, 1], num_classes=10)
    source = lucid_arch.create_model("pvt_tiny", **small, img_size=[32, 64])
    path = tmp_path / "wide.safetensors"
    save_file(source.state_dict(), str(path))
    model = lucid_arch.create_model("pvt_tiny", **small, img_size=[64, 128])
    assert load_pretrained(model, path).resampled == (
        "stages.0.pos_embed 8x16 -> 16x32", "stages.1.pos_embed 4x8 -> 8x16", "stages.2.pos_embed 2x4 -> 4x8", "stages.3.pos_embed 1x2 -> 2x4")


@pytest.mark.parametrize(("old", "new"), [((4, 4), (7, 7)), ((16, 16), (5, 5))])
def test_resampling_keeps_prefix_rows_and_constant_tables(old, new):
    constant = torch.full((1, 1 + old[0] * old[1], 8), 0.25)
    constant[:, 0] = 7.0
    out = resample_position_embedding(constant, 1, old, new)
    assert out.shape == (1, 1 + new[0] * new[1], 8)
    assert torch.equal(out[:, 0], constant[:, 0])
    torch.testing.assert_close(out[:, 1:], torch.full_like(out[:, 1:], 0.25), atol=1e-6, rtol=0)


# --- errors -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def b0_checkpoint(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("b0") / "pvt_v2_b0.safetensors"
    save_file(lucid_arch.create_model("pvt_v2_b0").state_dict(), str(path))
    return path


def test_another_architecture_names_keys_shapes_and_the_matching_variant(b0_checkpoint):
    model = lucid_arch.create_model("pvt_v2_b0", mlp_ratios=[4, 4, 4, 4], num_classes=10)
    with pytest.raises(CheckpointError) as err:
        load_pretrained(model, b0_checkpoint)
    text = str(err.value)
    assert str(b0_checkpoint) in text and "\n" not in text
    assert "stages.0.blocks.0.mlp.fc1.weight is [256, 32] in the checkpoint, [128, 32] in the model" in text
    assert "embed_dims [32, 64, 160, 256], depths [2, 2, 2, 2]" in text
    assert "it matches pvt_v2_b0" in text and "model=pvt_v2_b0" in text


def test_strict_false_loads_what_fits(b0_checkpoint):
    model = lucid_arch.create_model("pvt_v2_b0", mlp_ratios=[4, 4, 4, 4])
    report = load_pretrained(model, b0_checkpoint, strict=False)
    assert report.skipped and all(".mlp.fc" in k or ".mlp.dwconv" in k for k in report.skipped)
    checkpoint = read_checkpoint(b0_checkpoint)
    fits = {k: v for k, v in checkpoint.items() if k not in report.skipped}
    assert report.loaded == len(fits)
    _assert_same_weights(model, fits, skip="-")


def _touch(path: str) -> None:
    Path(path).write_text("code from a checkpoint ran")


class Sneaky:
    """Unpickling this calls _touch: what a malicious checkpoint would do with os.system."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return _touch, (self.marker,)


class ToSystem:
    """Unpickling this would run a shell command (it is only ever pickled here)."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        import os

        return os.system, (self.command,)


def _model_object_of(module_name: str, monkeypatch) -> object:
    """An instance of a class living in ``module_name`` (a training script's __main__, or a module
    that will be gone when the checkpoint is loaded), as torch.save(model) pickles it."""
    import sys
    import types

    cls = type("Net", (), {"__module__": module_name, "__reduce__": lambda self: (type(self), ())})
    module = sys.modules.get(module_name) or types.ModuleType(module_name)
    monkeypatch.setitem(sys.modules, module_name, module)
    monkeypatch.setattr(module, "Net", cls, raising=False)
    return cls()


def _craft(kind: str, tmp_path: Path, monkeypatch) -> tuple[Path, str]:
    """A checkpoint that needs code to load, and the global it names."""
    path = tmp_path / f"{kind}.pth"
    marker = tmp_path / "ran"
    if kind == "reduce_to_function":
        torch.save({"model": Sneaky(marker)}, path)
        return path, "_touch"
    if kind == "os_system":
        torch.save({"state_dict": {"w": torch.zeros(1)}, "hook": ToSystem(f"touch {marker}")}, path)
        return path, "system"
    if kind == "main_class":
        torch.save(_model_object_of("__main__", monkeypatch), path)
        return path, "__main__.Net"
    if kind == "missing_module":
        torch.save({"model": _model_object_of("vanished_project_models", monkeypatch)}, path)
        monkeypatch.delitem(__import__("sys").modules, "vanished_project_models")
        return path, "vanished_project_models.Net"
    if kind == "legacy_format":
        torch.save({"model": Sneaky(marker)}, path, _use_new_zipfile_serialization=False)
        return path, "_touch"
    if kind == "raw_protocol_0":  # a bare pickle, hand-written: GLOBAL os system, then a call
        path.write_bytes(b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR.")
        return path, "os.system"
    raise AssertionError(kind)


NEEDS_CODE = ["reduce_to_function", "os_system", "main_class", "missing_module", "legacy_format", "raw_protocol_0"]


@pytest.mark.parametrize("kind", NEEDS_CODE)
def test_a_pickle_that_needs_code_is_called_that_and_never_run(tmp_path, monkeypatch, kind):
    path, name = _craft(kind, tmp_path, monkeypatch)
    with pytest.raises(CheckpointError, match=r"refused to load.*never runs code.*safetensors.torch.save_file") as err:
        read_checkpoint(path)
    text = str(err.value)
    assert name in text and "truncated or corrupt" not in text and "\n" not in text
    assert not (tmp_path / "ran").exists()


@pytest.mark.parametrize(
    "message",
    [
        "Weights only load failed. Unsupported global: GLOBAL __main__.Net was not an allowed global by default.",
        "Weights only load failed. Re-running `torch.load` with `weights_only` set to `False` will likely succeed. "
        "Original error: Unsupported class __main__.Net",  # torch 2.3's wording
        "Weights only load failed.",  # no name at all
    ],
)
def test_the_verdict_does_not_depend_on_torchs_wording(tmp_path, monkeypatch, message):
    import pickle

    path, _ = _craft("main_class", tmp_path, monkeypatch)

    def refuse(*args, **kwargs):
        raise pickle.UnpicklingError(message)

    monkeypatch.setattr(torch, "load", refuse)
    with pytest.raises(CheckpointError, match=r"refused to load: the pickle needs code to rebuild __main__.Net"):
        read_checkpoint(path)


def test_a_truncated_checkpoint_is_called_that(tmp_path, monkeypatch):
    path, _ = _craft("main_class", tmp_path, monkeypatch)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CheckpointError, match=r"cannot be read as a torch checkpoint.*truncated or corrupt"):
        read_checkpoint(path)


@pytest.mark.parametrize(
    ("name", "content", "error", "message"),
    [
        ("missing.pth", None, FileNotFoundError, r"missing.pth: no such file or directory; check model.pretrained"),
        ("weights.npz", b"x", CheckpointError, r"unknown extension '.npz'; expected .safetensors"),
        ("empty.pt", b"", CheckpointError, r"cannot be read as a torch checkpoint \(EOFError\).*corrupt"),
        ("text.pth", b"not a checkpoint", CheckpointError, r"cannot be read as a torch checkpoint.*corrupt"),
        ("bad.safetensors", b"garbage garbage", CheckpointError, r"cannot be read as safetensors.*corrupt"),
    ],
)
def test_unreadable_files_are_one_paragraph_errors(tmp_path, name, content, error, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(error, match=message) as err:
        read_checkpoint(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_files_that_are_not_pvt_state_dicts(tmp_path):
    (tmp_path / "run").mkdir()
    with pytest.raises(FileNotFoundError, match=r"the directory holds no weights"):
        read_checkpoint(tmp_path / "run")
    torch.save([torch.zeros(1)], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match=r"holds a list, not a state dict"):
        read_checkpoint(tmp_path / "list.pt")
    torch.save({"encoder.weight": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match=r"not a PVT checkpoint: its keys \(encoder.weight, ...\)"):
        load_pretrained(lucid_arch.create_model("pvt_v2_b0", **SMALL), tmp_path / "other.pt")


# --- through the config -----------------------------------------------------------------------


def test_config_end_to_end_with_another_class_count(tmp_path):
    source = _small(seed=1)
    path = tmp_path / "model.safetensors"
    save_file(source.state_dict(), str(path))
    cfg = lucid_arch.load_config(
        "pvt_v2_b0", [f"model.pretrained={path}", "model.num_classes=10", "model.depths=[1,1,1,1]", "model.img_size=64"]
    )
    with pytest.raises(CheckpointError, match="model.new_head=true"):
        lucid_arch.build_model(cfg)
    cfg = lucid_arch.load_config(
        "pvt_v2_b0", [f"model.pretrained={path}", "model.num_classes=10", "model.depths=[1,1,1,1]", "model.img_size=64",
                      "model.new_head=true"]
    )
    model = lucid_arch.build_model(cfg).eval()
    assert model.head.weight.shape == (10, 256)
    _assert_same_weights(model, source.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(_outputs(model, X64)[1], _outputs(source, X64)[1]))


def test_meta_builds_and_analysis_never_read_the_file():
    cfg = lucid_arch.load_config("pvt_v2_b0", ["model.pretrained=/nonexistent/pvt_v2_b0.pth"])
    with torch.device("meta"):
        model = lucid_arch.build_model(cfg)
    assert model.head.weight.is_meta
    assert lucid_arch.analyze(cfg).params == 3_666_760
    with pytest.raises(FileNotFoundError, match=r"/nonexistent/pvt_v2_b0.pth: no such file"):
        lucid_arch.build_model(cfg)


def test_validation_checks_only_the_type():
    cfg = lucid_arch.load_config("pvt_v2_b0", ["model.pretrained=/elsewhere/weights.pth"])  # need not exist here
    assert cfg.model.pretrained == "/elsewhere/weights.pth"
    with pytest.raises(lucid_arch.ConfigError, match=r"model.pretrained = True: expected the path of a checkpoint"):
        lucid_arch.create_model("pvt_v2_b0", pretrained=True)  # timm's habit: nothing is downloaded
    raw = {**to_plain_dict(lucid_arch.load_config("pvt_v2_b0")), "pretrained": Path("w.pth")}  # from Python
    assert lucid_arch.validate_model(raw).pretrained == "w.pth"


def test_lucid_classes_take_pretrained_too(tmp_path):
    source = lucid_arch.models.PVT_V2(**SMALL, embed_dims=[32, 64, 160, 256]).eval()
    path = tmp_path / "w.safetensors"
    save_file(source.state_dict(), str(path))
    model = lucid_arch.models.PVT_V2(**SMALL, embed_dims=[32, 64, 160, 256], pretrained=str(path)).eval()
    assert torch.equal(_outputs(model, X64)[0], _outputs(source, X64)[0])


def test_a_home_relative_path_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    save_file({"patch_embed.proj.weight": torch.ones(2)}, str(tmp_path / "w.safetensors"))
    assert torch.equal(read_checkpoint("~/w.safetensors")["patch_embed.proj.weight"], torch.ones(2))
