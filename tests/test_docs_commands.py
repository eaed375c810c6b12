"""The README's and docs' command lines: every one is accepted, none runs a task.

Every ``lucid-arch`` command line of a bash block composes (``--cfg job``) and passes the checks
a job makes before its task; a sweep is composed one value at a time. Every ``lucid-arch-diff``
command runs, in a git repository with an ``origin/main``. Every ``$ lucid-arch`` of a console
block prints what the page shows under it.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from doc_pages import ROOT, Block, blocks, text

from lucid_arch.config import ConfigError


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
    return [first] + [[v if j == i else a for j, a in enumerate(first)] for i in values for v in values[i][1:]]


def printed_config_problem(printed: str) -> str | None:
    """What a job would refuse in the config ``--cfg job`` printed (it checks types only): the model's and training's rules."""
    from omegaconf import OmegaConf

    from lucid_arch.config.checks import validate_model
    from lucid_arch.config.eval_schema import check_eval
    from lucid_arch.config.export_schema import check_export
    from lucid_arch.config.predict_schema import check_predict
    from lucid_arch.config.train_schema import check_train

    checks = {"train": check_train, "eval": check_eval, "predict": check_predict, "export": check_export}
    from lucid_arch.config.logger_schema import LoggerConfig, check_logger

    cfg = OmegaConf.create(printed)
    try:
        validate_model(cfg)
        if cfg.task.name in checks:
            checks[cfg.task.name](cfg.task)
        check_logger(OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(LoggerConfig), cfg.get("logger") or {})))
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
    failed, seen = [], set()
    for where, args in found:
        for single in one_job_per_value(args):
            if tuple(single) in seen:  # the same command line shown again elsewhere composes the same
                continue
            seen.add(tuple(single))
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
