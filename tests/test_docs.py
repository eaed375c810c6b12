"""The README and docs/: figures true to the code, links that lead somewhere, commands and examples that run.

Each page's figures are checked where they are read (variants.md's table here, the layouts of
backbones.md, ...). The rest holds for every page: a relative link names a file that exists and
an anchor a heading it has; every ``lucid-arch`` command line in a bash block composes
(``--cfg job``: the config is built and checked, no task runs); every ``lucid-arch-diff``
command runs; every Python block compiles, and those that need nothing they do not define run.
"""

from __future__ import annotations

import builtins
import re
import shlex
import shutil
import subprocess
import symtable
from dataclasses import fields
from pathlib import Path

import pytest
from doc_pages import ROOT, Block, anchors, blocks, links, pages, section, split, text

import lucid_arch
from lucid_arch.config import ConfigError, ModelConfig

VARIANTS = text("variants.md")
ROW = re.compile(r"^\| ((?:pvt|mit)_\w+)\s*\|.*\|\s*([\d,]+)\s*\|\s*([\d.]+) \|$", re.M)


def test_variant_table_lists_every_model_with_its_analysed_figures():
    rows = {name: (int(params.replace(",", "")), float(gflops)) for name, params, gflops in ROW.findall(VARIANTS)}
    assert sorted(rows) == lucid_arch.list_models()
    for name, (params, gflops) in rows.items():
        report = lucid_arch.analyze(lucid_arch.load_config(name))
        assert params == report.params, name
        assert gflops == pytest.approx(report.gflops, abs=0.005), name


def test_every_schema_field_is_documented():
    fields_table = section("variants.md", "## Schema fields")
    undocumented = [f.name for f in fields(ModelConfig) if f"`{f.name}`" not in fields_table]
    assert undocumented == []


def test_every_training_setting_is_documented():
    from lucid_arch.config.train_schema import field_help

    recipe = section("training.md", "## The recipe")
    assert [key for key in field_help() if key != "name" and f"`{key}`" not in recipe] == []


def test_the_new_variant_example_builds_both_ways():
    import torch

    root = ROOT / "examples" / "my_models"
    yaml_text = (root / "model" / "tiny3.yaml").read_text()
    assert yaml_text.split("\n", 1)[1] in VARIANTS  # the page shows this very file
    by_path = lucid_arch.create_model(str(root / "model" / "tiny3.yaml"))
    by_name = lucid_arch.build_model(lucid_arch.load_config("tiny3", [f"hydra.searchpath=[file://{root}]"]))
    for model in (by_path, by_name):
        assert model.spec.name == "tiny3" and len(model.stages) == 3
        with torch.no_grad():
            assert model.eval()(torch.randn(1, 3, 96, 96)).shape == (1, 1000)


def test_the_training_example_is_what_its_experiment_left():
    import csv

    import yaml

    experiment = yaml.safe_load((ROOT / "conf/experiment/train_shapes.yaml").read_text())
    models = experiment["hydra"]["sweeper"]["params"]["model"].split(",")
    example = ROOT / "examples/train_shapes"
    rows = list(csv.DictReader((example / "run/sweep.csv").open()))
    assert [r["model"] for r in rows] == models and {r["status"] for r in rows} == {"ok"}
    readme = (example / "README.md").read_text()
    for r in rows:
        assert f"{float(r['val_acc']):.1%}" in readme, r["model"]
        trained = lucid_arch.load_config(r["model"], ["model.num_classes=10", "model.img_size=64"])
        assert int(r["params"]) == lucid_arch.analyze(trained).params
        assert f"{int(r['params']):,}" in readme
    assert (example / "run/sweep.png").read_bytes()[:4] == b"\x89PNG"


def test_the_backbone_example_prints_what_its_comments_say(capsys):
    block = re.search(r"```python\n(.*?)```", section("backbones.md", "## Feature extraction: timm's `features_only`"), re.S).group(1)
    exec(compile(block, "docs/backbones.md", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    promised = [line.split("# ", 1)[1] for line in block.splitlines() if line.startswith("print(")]
    assert printed == promised


def test_the_non_square_backbone_summary_is_what_the_app_prints(capsys, tmp_path, monkeypatch):
    from conftest import run_main

    console = re.search(r"```console\n\$ lucid-arch (.*?)\n(.*?)```", section("backbones.md", "## Non-square inputs"), re.S)
    argv = [a.strip("'") for a in console.group(1).split()]
    monkeypatch.chdir(tmp_path)
    code, out, err = run_main([*argv, "format=text"], capsys)
    assert code == 0, err
    assert out == console.group(2)
    wide = lucid_arch.analyze(lucid_arch.load_config("pvt_v2_b0", ["model.img_size=[512,1024]"]))
    assert f"512×1024 ({wide.gflops:.3f} GFLOPs)" in text("backbones.md")


def test_the_layout_table_lists_every_layout():
    from lucid_arch.weights.layouts import LAYOUTS

    table = re.findall(r"^\| `(\w+)`(?:, `(\w+)`)? \|", section("backbones.md", "## Checkpoint layouts"), re.M)
    assert sorted(name for row in table for name in row if name) == sorted(LAYOUTS)


def test_the_readmes_checked_example_is_the_error_it_shows():
    from lucid_arch.config.checks import validate_model

    (shown,) = [b.code for b in split(ROOT / "README.md")[0] if b.code.startswith("Invalid model config")]
    from omegaconf import OmegaConf

    cfg = OmegaConf.to_container(lucid_arch.load_config("pvt_v2_b2").model)
    bad = {**cfg, "depths": [3, "a", 6, 3], "num_heads": [1, 2, 6, 8]}
    with pytest.raises(ConfigError) as error:
        validate_model(bad, source="pvt_v2_b2")
    assert str(error.value) + "\n" == shown


# --------------------------------------------------------------------------- links and anchors


def test_every_relative_link_and_anchor_leads_somewhere():
    broken = []
    for page in pages():
        for target in links(page):
            if re.match(r"[a-z]+:", target):  # https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            if not dest.exists():
                broken.append(f"{page.name}: {target} (no such file)")
            elif anchor and (dest.suffix != ".md" or anchor not in anchors(dest)):
                broken.append(f"{page.name}: {target} (no such heading in {dest.name})")
    assert not broken, "\n".join(broken)


def test_every_docs_page_is_linked_from_the_readme_and_links_back():
    readme_links = set(links(ROOT / "README.md"))
    for page in pages()[1:]:
        assert f"docs/{page.name}" in readme_links, page.name
        assert split(page)[1].startswith("# "), f"{page.name} starts with its title"
        assert "../README.md" in links(page), page.name


# --------------------------------------------------------------------------- commands in bash blocks

# Lines of a bash block run as they stand (with HOME in a temporary folder) before its commands:
# they make the files the commands name, such as the user's copy of the SLURM preset.
SETUP = ("mkdir -p ~/.lucid",)


def command_lines(block: Block) -> list[tuple[str, str]]:
    """A bash block's lines, continuations joined: (page:line, text)."""
    out, pending, start = [], "", 0
    for number, line in enumerate(block.code.splitlines(), block.line + 1):
        start = start or number
        pending += line.rstrip("\\") + " " if line.endswith("\\") else line
        if not line.endswith("\\"):
            if pending.strip():
                out.append((f"{block.page.relative_to(ROOT)}:{start}", pending.strip()))
            pending, start = "", 0
    return out


def invocation(line: str, home: Path) -> tuple[str, list[str]] | None:
    """(program, arguments) of a line that runs lucid-arch, lucid-arch-diff or the app under torchrun; None for others."""
    line = re.sub(r"\$HOME\b", str(home), line)
    line = re.sub(r"\$([A-Z_]+)", r"\1", line)  # $HEAD_NODE, $SLURM_JOB_ID: any word does for composing
    words = shlex.split(line, comments=True)
    if words[:1] in (["lucid-arch"], ["lucid-arch-diff"]):
        return words[0], words[1:]
    if words[:1] == ["torchrun"] and "lucid_arch.cli.app" in words:
        return "lucid-arch", words[words.index("lucid_arch.cli.app") + 1 :]
    return None


def commands(program: str, home: Path) -> list[tuple[str, list[str]]]:
    """Every ``program`` command of the README's and docs' bash blocks: (where, arguments)."""
    found = []
    for block in blocks("bash"):
        for where, line in command_lines(block):
            run = invocation(line, home)
            if run and run[0] == program:
                found.append((where, run[1]))
    return found


def one_job_per_value(args: list[str]) -> list[list[str]]:
    """A multirun's command lines for single runs: each value of each swept key once, the others at their first.

    Hydra 1.3 refuses ``--cfg`` beside ``-m`` ("Only one of --run, --multirun, --cfg ..."), and a
    single run refuses a sweep value, so each job's values are composed one by one.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from lucid_arch.config import config_dir

    if not {"-m", "--multirun"} & set(args):
        return [args]
    args = [a for a in args if a not in ("-m", "--multirun")]
    values = {}
    for i, arg in enumerate(args):
        if arg.startswith("-") or "=" not in arg or (i and args[i - 1] in ("-cd", "--config-dir")):
            continue
        (override,) = OverridesParser.create().parse_overrides([arg])
        if override.value_type.name == "GLOB_CHOICE_SWEEP":
            group = config_dir() / override.key_or_group
            options = sorted(p.stem for p in group.glob("*.yaml") if not p.stem.startswith("_"))
            values[i] = override.value().filter(options)
        elif override.is_sweep_override():
            values[i] = list(override.sweep_string_iterator())
        else:
            continue
        values[i] = [f"{override.get_key_element()}={v}" for v in values[i]]
        assert values[i], f"{arg} sweeps nothing"
    first = [values[i][0] if i in values else a for i, a in enumerate(args)]
    runs = [first] + [[v if j == i else a for j, a in enumerate(first)] for i in values for v in values[i][1:]]
    return runs


def printed_config_problem(printed: str) -> str | None:
    """What a job would refuse in the config ``--cfg job`` printed (it checks types only): the model's and training's rules."""
    from omegaconf import OmegaConf

    from lucid_arch.config.checks import validate_model
    from lucid_arch.config.train_schema import check_train

    cfg = OmegaConf.create(printed)
    try:
        validate_model(cfg)
        if cfg.task.name == "train":
            check_train(cfg.task)
    except ConfigError as error:
        return str(error)
    return None


@pytest.fixture
def docs_cwd(tmp_path, monkeypatch):
    """A working folder where the docs' relative paths resolve (conf/, examples/ as links), and a HOME beside it."""
    cwd, home = tmp_path / "cwd", tmp_path / "home"
    cwd.mkdir()
    home.mkdir()
    for name in ("conf", "examples"):
        (cwd / name).symlink_to(ROOT / name)
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("HOME", str(home))
    return cwd, home


def test_every_lucid_arch_command_composes_and_runs_nothing(docs_cwd, capsys, monkeypatch):
    from conftest import run_main

    from lucid_arch.cli import jobs

    cwd, home = docs_cwd
    for block in blocks("bash"):
        for _, line in command_lines(block):
            if line.startswith(SETUP):
                subprocess.run(["bash", "-c", line], cwd=ROOT, env={"HOME": str(home), "PATH": "/usr/bin:/bin"}, check=True)
    ran = []
    monkeypatch.setattr(jobs, "run_job", lambda cfg: ran.append(cfg))
    found = commands("lucid-arch", home)
    assert len(found) > 20, "the bash blocks' lucid-arch commands were not found"
    failed = []
    for where, args in found:
        for single in one_job_per_value(args):
            code, out, err = run_main([*single, "--cfg=job"], capsys)  # `--cfg job` would read as an override "job" in errors
            problem = f"exit {code}: {err.strip()}" if code else printed_config_problem(out)
            if problem:
                failed.append(f"{where}: lucid-arch {shlex.join(single)}: {problem}")
    assert not failed, "\n".join(failed)
    assert ran == [], "--cfg job ran a task"
    assert sorted(p.name for p in cwd.iterdir()) == ["conf", "examples"], "a command left files behind"


def console_examples() -> list[tuple[str, list[str], str]]:
    """Each ``$ lucid-arch ...`` of the console blocks: (where, arguments, the output shown under it)."""
    found = []
    for block in blocks("console"):
        for number, chunk in enumerate(re.split(r"^\$ ", block.code, flags=re.M)[1:]):
            command, _, shown = chunk.partition("\n")
            if command.startswith("lucid-arch "):
                found.append((f"{block.where} #{number + 1}", shlex.split(command)[1:], shown))
    return found


def test_every_console_example_prints_what_it_shows(tmp_path, monkeypatch, capsys):
    """Shown in full, or up to a closing "...": a summary on stdout, a mistake's paragraph on stderr."""
    from conftest import run_main

    monkeypatch.chdir(tmp_path)
    examples = console_examples()
    assert len(examples) >= 3
    for where, args, shown in examples:
        code, out, err = run_main([*args, "format=text"], capsys)
        printed = out if code == 0 else err
        if shown.rstrip().endswith("..."):
            assert printed.startswith(shown.rstrip()[:-3]), where
        else:
            assert printed == shown, where


@pytest.fixture
def docs_repo(tmp_path, monkeypatch):
    """A git repository holding conf/ and examples/my_models/, with an origin/main ref: where the diff commands run."""
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "conf", repo / "conf")
    shutil.copytree(ROOT / "examples/my_models", repo / "examples/my_models")
    git = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t"]
    for args in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "base"], ["update-ref", "refs/remotes/origin/main", "HEAD"]):
        subprocess.run([*git, *args], cwd=repo, check=True, capture_output=True)
    monkeypatch.chdir(repo)
    return repo


def test_every_lucid_arch_diff_command_runs(docs_repo, capsys):
    from lucid_arch.diff.cli import main

    found = commands("lucid-arch-diff", docs_repo)
    assert any(args[0].startswith("origin/main:") for _, args in found) and any("--review" in args for _, args in found)
    for where, args in found:
        code = main(args)
        out, err = capsys.readouterr()
        assert code in (0, 1) and err == "", f"{where}: lucid-arch-diff {shlex.join(args)}: exit {code}: {err}"
    assert "pvt_v2_b2" in (docs_repo / "comment.md").read_text()  # --review ... --output comment.md


def test_the_diff_example_prints_what_it_shows(capsys):
    from lucid_arch.diff.cli import main

    page = text("diff.md")
    args = shlex.split(re.search(r"^lucid-arch-diff (pvt_v2_b2 pvt_v2_b2 --new .*?)\s+#", page, re.M).group(1))
    shown = re.search(r"The second command prints:\n\n```\n(.*?)```", page, re.S).group(1)
    assert main(args) == 1
    assert capsys.readouterr().out == shown


# --------------------------------------------------------------------------- Python blocks


def undefined_names(code: str, where: str) -> set[str]:
    """The names a block reads at module level but never binds or imports (builtins aside)."""
    table = symtable.symtable(code, where, "exec")
    return {
        s.get_name()
        for s in table.get_symbols()
        if s.is_referenced() and not (s.is_assigned() or s.is_imported()) and not hasattr(builtins, s.get_name())
    }


PYTHON = blocks("python")


@pytest.mark.parametrize("block", PYTHON, ids=[b.where for b in PYTHON])
def test_every_python_block_compiles_and_a_self_contained_one_prints_what_its_comments_say(block, capsys):
    compile(block.code, block.where, "exec")
    if undefined_names(block.code, block.where):  # an excerpt (`images`, a checkpoint file): compiling is all we can do
        return
    exec(compile(block.code, block.where, "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    promised = [line.split("# ", 1)[1] for line in block.code.splitlines() if line.startswith("print(") and "# " in line]
    assert printed == promised


def test_the_readme_and_backbone_examples_are_run():
    runnable = [b.where for b in PYTHON if not undefined_names(b.code, b.where)]
    assert "README.md" in " ".join(runnable) and "docs/backbones.md" in " ".join(runnable)
