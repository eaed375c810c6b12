"""lucid-arch-diff: sides, overrides, reports in every format, exit codes, safety."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import OFFICIAL_PARAMS

from lucid_arch.diff.cli import main

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch):
    monkeypatch.chdir(ROOT)


def run_json(capsys, *argv: str) -> tuple[int, dict]:
    code = main([*argv, "--format", "json"])
    out = capsys.readouterr().out
    report = json.loads(out)
    assert report["exit_code"] == code
    return code, report


def changes(report: dict) -> dict[str, tuple]:
    return {f["key"]: (f["old"], f["new"]) for f in report["fields"]}


def git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args], cwd=repo, check=True, capture_output=True
    )


# --- names, files, git ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def b2_b5():
    from lucid_arch.diff.compare import compare
    from lucid_arch.diff.sides import load_side

    return compare(load_side("old", "pvt_v2_b2"), load_side("new", "pvt_v2_b5"))


def test_name_vs_name(b2_b5):
    report = json.loads(json.dumps(b2_b5.to_dict()))
    assert b2_b5.exit_code == 1
    fields = {f["key"]: f for f in report["fields"]}
    assert (fields["model.depths[2]"]["old"], fields["model.depths[2]"]["new"]) == (6, 40)
    assert fields["model.depths[2]"]["new_source"] == "lucid_arch:model/pvt_v2_b5.yaml"
    assert fields["model.mlp_ratios[0]"]["old_source"] == "lucid_arch:model/_pvt_v2.yaml"  # inherited, named
    assert "model.depths[0]" not in fields and "model.embed_dims" not in fields  # equal values are not noise
    total = report["costs"][-1]
    assert (total["old_params"], total["new_params"]) == (OFFICIAL_PARAMS["pvt_v2_b2"], OFFICIAL_PARAMS["pvt_v2_b5"])
    assert [r["changed"] for r in report["stages"]] == [["mlp_ratio"], ["depth", "mlp_ratio"], ["depth"], []]
    ck = report["checkpoint"]
    assert not ck["strict"] and ck["removed"] == [] and len(ck["added"]) > 0
    assert {"key": "stages.0.blocks.0.mlp.fc1.weight", "old": [512, 64], "new": [256, 64]} in ck["reshaped"]


def test_every_format_of_one_report(b2_b5, capsys):
    from lucid_arch.diff import render_json, render_md, render_term

    md = render_md.render(b2_b5)
    assert "| `model.depths[2]` | `6` | `40` |" in md
    assert "| 2 | 320 | **6 → 40** |" in md
    assert "**total** | 25,362,856 | 81,956,008 | +56,593,152 | +223.1%" in md
    assert "<details><summary>" in md and "✗ OLD's state dict does not load strictly" in md
    assert json.loads(render_json.render(b2_b5))["exit_code"] == 1
    render_term.render(b2_b5, sys.stdout)
    text = capsys.readouterr().out
    assert "\x1b[" not in text  # piped: no colour codes
    assert "6 → 40" in text and "architecture changed" in text and "(first 5 of" in text
    assert all(line == line.rstrip() for line in text.splitlines())


def test_same_config_is_exit_0_and_loads_strictly(capsys):
    code, report = run_json(capsys, "pvt_v2_b0", "conf/model/pvt_v2_b0.yaml")
    assert code == 0 and report["fields"] == []
    assert report["checkpoint"]["strict"] and report["checkpoint"]["kept"] > 0
    assert main(["pvt_v2_b0", "pvt_v2_b0", "--format", "md"]) == 0
    assert "no architectural change (exit 0)" in capsys.readouterr().out


def test_other_pretrained_weights_are_listed_but_no_architectural_change(capsys):
    code, report = run_json(capsys, "pvt_v2_b0", "pvt_v2_b0", "--new", "model.pretrained=/nonexistent/w.pth")
    assert code == 0 and not report["architectural_change"]
    assert changes(report) == {"model.pretrained": (None, "/nonexistent/w.pth")}  # meta builds: the file is never read
    assert report["fields"][0]["new_source"] == "override model.pretrained=/nonexistent/w.pth"


def test_file_vs_file_and_a_rename_only(tmp_path, capsys):
    (tmp_path / "a.yaml").write_text("defaults: [pvt_v2_b0, _self_]\nname: a\n")
    (tmp_path / "b.yaml").write_text("defaults: [pvt_v2_b0, _self_]\nname: b\nlinear: true\n")
    (tmp_path / "c.yaml").write_text("defaults: [pvt_v2_b0, _self_]\nname: c\n")
    code, report = run_json(capsys, str(tmp_path / "a.yaml"), str(tmp_path / "b.yaml"))
    assert code == 1
    assert changes(report)["model.linear"] == (False, True)
    assert report["fields"][-1]["new_source"] == str(tmp_path / "b.yaml")
    reshaped = {r["key"]: (r["old"], r["new"]) for r in report["checkpoint"]["reshaped"]}
    assert reshaped["stages.0.blocks.0.attn.sr.weight"] == ([32, 32, 8, 8], [32, 32, 1, 1])  # 1x1 conv after the pool
    assert any(a["key"] == "stages.3.blocks.0.attn.sr.weight" for a in report["checkpoint"]["added"])
    code, report = run_json(capsys, str(tmp_path / "a.yaml"), str(tmp_path / "c.yaml"))
    assert code == 0 and list(changes(report)) == ["model.name"]  # a name is not architecture


def test_a_file_in_a_config_tree_extends_that_trees_parents(tmp_path, capsys):
    shutil.copytree(ROOT / "conf", tmp_path / "conf")
    (tmp_path / "conf/model/pvt_v2_b1.yaml").write_text(
        "defaults: [_pvt_v2, _self_]\nname: pvt_v2_b1\nembed_dims: [64, 128, 320, 640]\ndepths: [2, 2, 2, 2]\n"
    )
    code, report = run_json(capsys, "pvt_v2_b2", str(tmp_path / "conf/model/pvt_v2_b2.yaml"))
    assert code == 1
    assert changes(report) == {"model.embed_dims[3]": (512, 640)}
    assert report["fields"][0]["new_source"] == str(tmp_path / "conf/model/pvt_v2_b1.yaml")


@pytest.fixture()
def repo(tmp_path, monkeypatch):
    """A git repository holding conf/, committed, then edited in the working tree."""
    shutil.copytree(ROOT / "conf", tmp_path / "conf")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", "conf")
    git(tmp_path, "commit", "-q", "-m", "base")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_git_revision_vs_working_tree(repo, capsys):
    # Edit a parent only: b2's own file is unchanged, its architecture is not.
    (repo / "conf/model/pvt_v2_b1.yaml").write_text(
        (repo / "conf/model/pvt_v2_b1.yaml").read_text().replace("[2, 2, 2, 2]", "[2, 3, 2, 2]")
    )
    (repo / "conf/model/pvt_v2_b2.yaml").write_text("defaults: [pvt_v2_b1, _self_]\nname: pvt_v2_b2\n")  # drops depths
    code, report = run_json(capsys, "HEAD:conf/model/pvt_v2_b2.yaml", "conf/model/pvt_v2_b2.yaml")
    assert code == 1
    assert changes(report) == {
        "model.depths[0]": (3, 2),
        "model.depths[1]": (4, 3),
        "model.depths[2]": (6, 2),
        "model.depths[3]": (3, 2),
    }
    field = report["fields"][1]
    assert (field["old_source"], field["new_source"]) == ("HEAD:conf/model/pvt_v2_b2.yaml", "conf/model/pvt_v2_b1.yaml")
    assert report["old"]["kind"] == "git"
    assert report["old"]["chain"][1:] == [
        "HEAD:conf/model/_pvt_v2.yaml",
        "HEAD:conf/model/pvt_v2_b1.yaml",
        "HEAD:conf/model/pvt_v2_b2.yaml",
    ]


@pytest.mark.parametrize("fmt", ["json", "md", "term"])
def test_reviewed_files_are_named_from_the_repository_root_in_every_format(repo, monkeypatch, capsys, fmt):
    """A PR comment must not show the runner's paths: a reviewed file given by an absolute path,
    from a sub-directory, reads as the repository shows it; shipped files as lucid_arch:model/..."""
    (repo / "conf/model/pvt_v2_b2.yaml").write_text("defaults: [pvt_v2_b1, _self_]\nname: pvt_v2_b2\n")
    (repo / "sub").mkdir()
    monkeypatch.chdir(repo / "sub")
    code = main(["pvt_v2_b2", str(repo / "conf/model/pvt_v2_b2.yaml"), "--format", fmt])
    out = capsys.readouterr().out
    assert code == 1
    assert str(repo) not in out and str(ROOT) not in out and "site-packages" not in out
    assert "conf/model/pvt_v2_b1.yaml" in out and "lucid_arch:model/pvt_v2_b1.yaml" in out
    if fmt == "json":
        report = json.loads(out)
        assert report["new"]["spec"] == "conf/model/pvt_v2_b2.yaml"
        assert report["new"]["chain"][1:] == ["conf/model/_pvt_v2.yaml", "conf/model/pvt_v2_b1.yaml", "conf/model/pvt_v2_b2.yaml"]
        assert report["old"]["chain"][-1] == "lucid_arch:model/pvt_v2_b2.yaml"


def test_git_file_outside_a_config_tree(repo, capsys):
    (repo / "mine").mkdir()
    (repo / "mine/tiny.yaml").write_text("defaults: [pvt_v2_b0, _self_]\nname: tiny\ndepths: [1, 1, 1, 1]\n")
    git(repo, "add", "mine")
    git(repo, "commit", "-q", "-m", "tiny")
    (repo / "mine/tiny.yaml").write_text("defaults: [pvt_v2_b0, _self_]\nname: tiny\ndepths: [1, 1, 2, 1]\n")
    code, report = run_json(capsys, "HEAD:mine/tiny.yaml", "mine/tiny.yaml")
    assert code == 1 and changes(report) == {"model.depths[2]": (1, 2)}
    assert report["fields"][0]["old_source"] == "HEAD:mine/tiny.yaml"


@pytest.mark.parametrize(
    ("old", "message"),
    [
        ("nosuchrev:conf/model/pvt_v2_b2.yaml", "unknown git revision 'nosuchrev'"),
        ("HEAD:conf/model/pvt_v2_b9.yaml", "HEAD has no file conf/model/pvt_v2_b9.yaml"),
        ("missing.yaml", "missing.yaml: no such file"),
    ],
)
def test_a_side_that_names_nothing_is_one_clear_error(repo, capsys, old, message):
    assert main([old, "pvt_v2_b2"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1


def test_a_git_side_outside_a_repository(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    assert main(["HEAD:conf/model/pvt_v2_b2.yaml", "pvt_v2_b2"]) == 2
    assert "not inside a git repository" in capsys.readouterr().err


# --- overrides and stage counts -------------------------------------------------------------------


def test_overrides_per_side_and_for_both(capsys):
    code, report = run_json(
        capsys,
        "pvt_v2_b0",
        "pvt_v2_b0",
        "--old",
        "model.num_classes=10",
        "--new",
        "model.depths=[2,2,3,2]",
        "--both",
        "model.img_size=64",
    )
    assert code == 1
    assert changes(report) == {"model.num_classes": (10, 1000), "model.depths[2]": (2, 3)}
    assert report["fields"][0]["old_source"] == "override model.num_classes=10"
    assert report["old"]["img_size"] == report["new"]["img_size"] == 64
    assert report["old"]["overrides"] == ["model.img_size=64", "model.num_classes=10"]


def test_a_square_model_against_the_same_at_height_and_width(capsys):
    code = main(["pvt_v2_b0", "pvt_v2_b0", "--new", "model.img_size=[512,1024]"])
    out = capsys.readouterr().out
    assert code == 1 and "Stages at 224x224 px → 512x1024 px" in out
    code, report = run_json(capsys, "pvt_v2_b0", "pvt_v2_b0", "--new", "model.img_size=[512,1024]")
    assert changes(report) == {"model.img_size": (224, [512, 1024])}
    total = report["costs"][-1]
    assert total["old_params"] == total["new_params"] and total["new_flops"] > 10 * total["old_flops"]


def test_a_classifier_against_its_backbone(capsys):
    code, report = run_json(capsys, "pvt_tiny", "pvt_tiny", "--new", "model.features_only=true", "--new", "model.out_indices=[0,1]")
    assert code == 1 and len(report["stages"]) == 4 and [s["status"] for s in report["stages"][2:]] == ["removed", "removed"]
    removed = {r["key"] for r in report["checkpoint"]["removed"]}
    assert {"cls_token", "head.weight", "stages.3.norm.weight"} <= removed


STAGE5 = [
    "model.embed_dims=[32,64,160,256,256]",
    "model.depths=[2,2,2,2,1]",
    "model.num_heads=[1,2,5,8,8]",
    "model.mlp_ratios=[8,8,4,4,4]",
    "model.sr_ratios=[8,4,2,1,1]",
]


def test_a_stage_added_and_removed(capsys):
    new = [a for o in STAGE5 for a in ("--new", o)]
    code, report = run_json(capsys, "pvt_v2_b0", "pvt_v2_b0", *new)
    assert code == 1
    assert [s["status"] for s in report["stages"]] == ["same"] * 4 + ["added"]
    assert report["costs"][4]["old_params"] is None and report["costs"][4]["new_params"] > 0
    assert changes(report)["model.embed_dims"] == ([32, 64, 160, 256], [32, 64, 160, 256, 256])
    assert any(k["key"].startswith("stages.4.") for k in report["checkpoint"]["added"])
    old = [a for o in STAGE5 for a in ("--old", o)]
    assert main(["pvt_v2_b0", "pvt_v2_b0", *old, "--format", "md"]) == 1
    assert "| ➖ 4 (removed) | 256 |" in capsys.readouterr().out


# --- safety and invalid sides ---------------------------------------------------------------------


def test_a_smuggled_target_is_reported_not_run(tmp_path, capsys):
    marker = tmp_path / "ran"
    evil = tmp_path / "evil.yaml"
    evil.write_text(f"defaults: [pvt_v2_b0, _self_]\n_target_: pathlib.Path.touch\nself: {marker}\n")
    code, report = run_json(capsys, "pvt_v2_b0", str(evil))
    assert code == 2 and not marker.exists()
    assert report["old"]["valid"] and not report["new"]["valid"]
    problems = {p["key"]: p["source"] for p in report["new"]["problems"]}
    assert problems == {"model._target_": f"{evil}, line 2", "model.self": f"{evil}, line 3"}
    assert report["fields"] == [] and report["checkpoint"] is None


def test_an_interpolation_is_refused_before_it_is_resolved(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("LUCID_SECRET", "hunter2")
    leak = tmp_path / "leak.yaml"
    leak.write_text("defaults: [pvt_v2_b0, _self_]\nname: ${oc.env:LUCID_SECRET}\n")
    assert main([str(leak), "pvt_v2_b0", "--format", "md"]) == 2
    out = capsys.readouterr().out
    assert "hunter2" not in out and "**OLD is invalid**" in out and "model.name = '${oc.env:LUCID_SECRET}': a ${...} interpolation" in out


def test_an_invalid_side_names_side_key_and_source(capsys):
    assert main(["pvt_v2_b0", "pvt_v2_b0", "--new", "model.num_heads=[1,2,3,8]"]) == 2
    out = capsys.readouterr().out
    assert "NEW  pvt_v2_b0 model.num_heads=[1,2,3,8]  (variant) ✗ invalid" in out
    assert "model.num_heads[2] = 3: does not divide embed_dims[2] = 160" in out
    assert "(set in override model.num_heads=[1,2,3,8])" in out
    assert "NEW invalid: cannot compare (exit 2)" in out


def test_bad_arguments_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["pvt_v2_b0"])
    assert exc.value.code == 2


# --- the installed console script -------------------------------------------------------------------


def test_console_script_end_to_end():
    script = Path(sys.executable).parent / "lucid-arch-diff"
    assert script.is_file(), "pip install -e . creates the console script"
    done = subprocess.run(
        [str(script), "pvt_v2_b0", "pvt_v2_b1", "--format", "md"], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert done.returncode == 1, done.stderr
    assert "| `model.embed_dims[0]` | `32` | `64` |" in done.stdout
    assert "| **total** | 3,666,760 | 14,009,000 |" in done.stdout


def test_resolving_sides_imports_no_torch():
    code = (
        "import sys; from lucid_arch.diff.cli import parser; from lucid_arch.diff.sides import load_side; "
        "import lucid_arch.diff.compare, lucid_arch.diff.render_md; load_side('old', 'pvt_v2_b0'); "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
