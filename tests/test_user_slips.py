"""What a new user trips on, through the console script: each slip gets the fix in one sentence."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_in_terminal, run_main

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = Path(sys.executable).parent / "lucid-arch"


@pytest.mark.parametrize(
    ("argv", "fix"),
    [
        (["model=pvt_v2_b0,pvt_v2_b1"], "add -m to sweep them (lucid-arch -m model=pvt_v2_b0,pvt_v2_b1)"),
        (["model.depths=3,4,18,3"], "quote it with brackets: 'model.depths=[3,4,18,3]'; to sweep the values, add -m"),
        (["depths=[3,4,6,3]"], "did you mean model.depths?"),
        (["epochs=3"], "did you mean task.epochs (with task=train)?"),
        (["task.epochs=1"], "task.epochs: not a setting of task=summary; it belongs to task=train (add task=train)"),
        (["task=train", "task.epoch=1"], "task.epoch: not a setting of task=train (did you mean epochs?)"),
        (["task=benchmark", "task.repeat=3"], "(did you mean repeats?)"),
        (["pvt_v2_b2"], "an override is KEY=VALUE; did you mean model=pvt_v2_b2?"),
        (["train"], "did you mean task=train?"),
        (["model.pretrained=~/w.pth"], """quote the value, 'model.pretrained="~/w.pth"', or let the shell expand it"""),
    ],
)
def test_hydra_level_slips_get_the_fix(argv, fix, capsys):
    code, out, err = run_main(argv, capsys)
    assert code == 2, err
    assert fix in err and err.count("\n") == 1 and "Traceback" not in err
    assert "pvt_v2_b0'" not in err  # a slip of the command line, not of the default model: not named as its problem


def test_the_quoted_home_path_the_hint_gives_works(capsys, tmp_path):
    code, out, err = run_main(["model.pretrained=\"~/w.pth\"", "format=json", f"hydra.run.dir={tmp_path}"], capsys)
    assert code == 0, err  # the summary never opens the file


def test_a_sweep_matching_nothing_is_an_error_naming_the_pattern(capsys, tmp_path):
    code, out, err = run_main(["-m", "model=glob(pvt_v3_*)", f"hydra.sweep.dir={tmp_path}"], capsys)
    assert code == 2, err
    assert "model=glob(pvt_v3_*)" in err and "matches no" in err and "pvt_v2_b0" in err
    assert err.startswith("lucid-arch: Invalid overrides: model=glob")


def complete(line: str) -> list[str]:
    env = {**os.environ, "COMP_LINE": line, "COMP_POINT": str(len(line))}
    done = subprocess.run([str(SCRIPT), "-sc", "query=bash"], env=env, capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_tab_completion_offers_what_help_lists_and_user_directories(tmp_path):
    assert complete("lucid-arch task=") == ["task=benchmark", "task=eval", "task=export", "task=predict", "task=summary", "task=train"]
    models = complete("lucid-arch model=")
    assert "model=pvt_v2_b2" in models and not any(m.startswith("model=_") for m in models)
    user = tmp_path / "mine"
    (user / "model").mkdir(parents=True)
    (user / "model" / "tiny9.yaml").write_text("defaults: [pvt_v2_b0, _self_]\nname: tiny9\n")
    (user / "model" / "_base9.yaml").write_text("name: base\n")
    for line in (f"lucid-arch -cd {user} model=", f"lucid-arch hydra.searchpath=[file://{user}] model="):
        offered = complete(line)
        assert "model=tiny9" in offered and "model=_base9" not in offered and "model=pvt_v2_b0" in offered


def test_a_glob_sweep_never_picks_internal_bases(capsys, tmp_path):
    code, out, err = run_main(["-m", "model=glob(*v1*)", "format=json", f"hydra.sweep.dir={tmp_path}"], capsys)
    assert code == 2 and "matches no" in err  # _pvt_v1 is a base, not a variant


def test_bracketed_values_survive_rich_output(tmp_path):
    argv = [str(SCRIPT), "model=pvt_v2_b0", "model.linear=[true,false,false,false]", f"hydra.run.dir={tmp_path}"]
    code, terminal, _ = run_in_terminal(argv, ROOT, "stdout")
    assert code == 0 and "override model.linear=[true,false,false,false]" in terminal
    diff = [str(SCRIPT.parent / "lucid-arch-diff"), "pvt_v2_b0", "pvt_v2_b0", "--new", "model.linear=[true,false,false,false]"]
    code, terminal, _ = run_in_terminal(diff, ROOT, "stdout")
    assert code == 1 and "model.linear" in terminal and "[true, false, false, false]" in terminal


def test_a_pr_comment_always_fits_githubs_limit(capsys):
    from lucid_arch.diff.cli import main

    assert main(["pvt_v2_b0", "pvt_huge", "--format", "md"]) == 1
    out = capsys.readouterr().out
    assert len(out) < 65_536
    assert "- … and " in out  # the 1,000-tensor lists are cut, and say so


def test_training_honours_threads_and_writes_files_colleagues_can_read(capsys, tmp_path, monkeypatch):
    import json

    import torch

    tiny = ["model.embed_dims=[16,32,48,64]", "model.depths=[1,1,1,1]", "model.num_heads=[1,2,3,4]", "model.mlp_ratios=[2,2,2,2]",
            "model.sr_ratios=[4,2,1,1]", "task.data.image_size=32", "task.data.num_train=64", "task.data.num_val=32",
            "task.batch_size=32", "task.epochs=1", "task.precision=fp32", "task.progress=none"]
    monkeypatch.chdir(tmp_path)
    run, threads, umask = tmp_path / "run", torch.get_num_threads(), os.umask(0o022)
    try:
        code, _, err = run_main(["task=train", "model=pvt_v2_b0", "task.threads=1", f"hydra.run.dir={run}", "format=json", *tiny], capsys)
    finally:
        os.umask(umask)
    assert code == 0, err
    assert json.loads((run / "summary.json").read_text())["train"]["threads"] == 1
    assert torch.get_num_threads() == threads  # the run's setting ends with the run
    written = [run / "model.safetensors", *sorted((run / "checkpoints").glob("step_*/model.safetensors"))]
    assert len(written) == 2
    for path in written:
        assert path.stat().st_mode & 0o777 == 0o644, path  # not safetensors' own 0600
    code, _, err = run_main(["task=train", "task.threads=0", "format=json"], capsys)
    assert code == 2 and "task.threads = 0: must be at least 1" in err


def test_a_slip_after_cfg_job_names_the_override_not_the_flags_value(capsys, tmp_path, monkeypatch):
    """`--cfg job` takes a value: 'job' is not an override, and the bad one is named."""
    from conftest import run_main

    monkeypatch.chdir(tmp_path)
    code, _, err = run_main(["--cfg", "job", "model=pvt_v2_b0", "model.dpeths=[1,2]"], capsys)
    assert code == 2 and "model.dpeths: unknown key" in err and "did you mean depths" in err and "job:" not in err
