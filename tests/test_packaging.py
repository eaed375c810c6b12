"""Packaging: the wheel ships conf/, an installed (non-editable) copy finds it, the config layer
stays torch-free, and CI runs the test command the README shows.

Everything here works offline: the wheel is built with ``--no-build-isolation`` (hatchling is in
the ``test`` extra) and installed with ``--no-index``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
from conftest import DETECTION_VARIANTS, FPN_PARAMS, MIT_PARAMS, OFFICIAL_PARAMS, SEGFORMER_PARAMS

REPO = Path(__file__).resolve().parent.parent

# Every shipped variant and family base (conftest's tables are the reference figures for each).
VARIANTS = sorted([*OFFICIAL_PARAMS, *MIT_PARAMS, *SEGFORMER_PARAMS, *FPN_PARAMS, *DETECTION_VARIANTS])
BASES = ["_fpn", "_mask_rcnn", "_pvt_v1", "_pvt_v2", "_retinanet", "_segformer"]

# README contract with .ci/run: the quickstart's test command is the one line that ends with
# this comment (the line before it ends with "# main job"). .ci/run extracts and runs that line.
TESTS_MARKER = "# tests"
_MARKER_RE = re.compile(r"\s" + re.escape(TESTS_MARKER) + r"\s*$")


def _run(args: list[str], *, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120):
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (
        f"{' '.join(map(str, args))} exited {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
    )
    return proc


def _python(script: str, *, cwd: Path, pythonpath: Path | str) -> subprocess.CompletedProcess:
    """Run ``script`` in a fresh interpreter (this one), outside the repo, with ``pythonpath`` first."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(pythonpath)
    env.pop("PYTHONSTARTUP", None)
    return _run([sys.executable, "-c", textwrap.dedent(script)], cwd=cwd, env=env)


# --------------------------------------------------------------------------------------- wheel


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-index", "--no-build-isolation",
         "--disable-pip-version-check", "-w", str(out), str(REPO)],
        cwd=out,
        timeout=120,
    )
    wheels = list(out.glob("lucid_arch-*.whl"))
    assert len(wheels) == 1, f"expected one lucid_arch wheel in {out}, found {os.listdir(out)}"
    return wheels[0]


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """The wheel installed (not editable) into a bare --target directory."""
    site = tmp_path_factory.mktemp("install") / "site"
    _run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--disable-pip-version-check",
         "--target", str(site), str(wheel)],
        cwd=site.parent,
        timeout=120,
    )
    return site


def test_wheel_ships_configs(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {"lucid_arch/conf/config.yaml"} | {
        f"lucid_arch/conf/model/{stem}.yaml" for stem in BASES + VARIANTS
    }
    missing = sorted(expected - names)
    assert not missing, f"{wheel.name} lacks {missing}; is force-include 'conf' = 'lucid_arch/conf' intact?"
    shipped = sorted(n for n in names if n.startswith("lucid_arch/conf/model/") and n.endswith(".yaml"))
    assert len(shipped) == len(BASES) + len(VARIANTS), shipped
    assert "lucid_arch/__init__.py" in names
    leaked = sorted(n for n in names if "tests" in n.split("/")[:-1] or n.startswith("tests"))
    assert not leaked, f"tests leaked into the wheel: {leaked}"


@pytest.fixture(scope="module")
def from_installed(installed, tmp_path_factory) -> dict:
    """What the installed copy does, in one interpreter (one torch import for all): every config loaded,
    then the app and lucid-arch-diff called as their console scripts call them, each command's exit
    status, stdout and stderr kept."""
    # PYTHONPATH precedes site-packages, so the --target copy wins over the editable install's .pth;
    # cwd is outside the repo so neither '' nor ../conf can point back at the checkout.
    proc = _python(
        """
        import contextlib, io, json, lucid_arch
        from lucid_arch.config import config_dir, list_models
        names = list_models()
        loaded = {}
        for name in names:
            cfg = lucid_arch.load_config(name)
            loaded[name] = cfg.model.name
        from lucid_arch.cli.app import main as app
        from lucid_arch.diff.cli import main as diff

        def call(main, argv):
            out, err = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    code = main(argv) or 0
                except SystemExit as exc:
                    code = exc.code or 0
            return {"code": code, "stdout": out.getvalue(), "stderr": err.getvalue()}

        commands = {
            "cfg": call(app, ["--cfg", "job", "+experiment=depth_sweep"]),
            "help": call(app, ["--help"]),
            "summary": call(app, ["model=pvt_v2_b0", "format=json"]),
            "summary_v1": call(app, ["model=pvt_tiny", "format=text"]),
            **{f"diff_{fmt}": call(diff, ["pvt_v2_b2", "pvt_v2_b5", "--format", fmt]) for fmt in ("term", "md", "json")},
        }
        print(json.dumps({"file": lucid_arch.__file__, "config_dir": str(config_dir()),
                          "models": names, "loaded": loaded, "commands": commands}))
        """,
        cwd=tmp_path_factory.mktemp("elsewhere"),
        pythonpath=installed,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _ran(report: dict, command: str, code: int = 0) -> str:
    """``command``'s stdout, once its exit status is ``code``."""
    result = report["commands"][command]
    assert result["code"] == code, f"{command} exited {result['code']}\n--- stdout\n{result['stdout']}\n--- stderr\n{result['stderr']}"
    return result["stdout"]


def test_installed_wheel_finds_its_configs(installed, from_installed):
    report = from_installed
    site = installed.resolve()
    assert Path(report["file"]).resolve().is_relative_to(site), report["file"]
    conf = Path(report["config_dir"]).resolve()
    assert conf.is_relative_to(site), f"config_dir() = {conf}, outside the installed copy {site}"
    assert conf == site / "lucid_arch" / "conf"
    assert report["models"] == sorted(VARIANTS)
    assert report["loaded"] == {name: name for name in VARIANTS}


# --------------------------------------------------------------------------------- lazy import


def test_config_layer_does_not_import_torch(tmp_path):
    proc = _python(
        """
        import json, sys
        import lucid_arch
        import lucid_arch.config
        cfg = lucid_arch.load_config("pvt_v2_b2")
        assert cfg.model.name == "pvt_v2_b2", cfg.model.name
        names = lucid_arch.list_models()
        before = "torch" in sys.modules
        lucid_arch.create_model
        after = "torch" in sys.modules
        print(json.dumps({"before": before, "after": after, "models": len(names)}))
        """,
        cwd=tmp_path,
        pythonpath=REPO,
    )
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["before"] is False, "the config layer (load_config/list_models) imported torch"
    assert report["after"] is True, "lucid_arch.create_model did not import torch: is the lazy API wired?"
    assert report["models"] == len(VARIANTS)


# ---------------------------------------------------------------------------- README <-> CI


def _readme_test_lines() -> list[str]:
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if _MARKER_RE.search(line) and not line.lstrip().startswith("#")]


def test_readme_has_one_test_command():
    found = _readme_test_lines()
    assert len(found) == 1, (
        f"README.md must have exactly one command line ending with {TESTS_MARKER!r} "
        f"(.ci/run runs it); found {len(found)}: {found}"
    )
    (command,) = found
    assert not command.startswith("$"), "write the command without a shell prompt: .ci/run runs it verbatim"
    assert "pytest" in command, f"the {TESTS_MARKER!r} line does not run pytest: {command}"

    # It must sit in the quickstart's fenced bash block.
    fence_open = False
    in_bash_block = False
    for line in (REPO / "README.md").read_text(encoding="utf-8").splitlines():
        if line.strip().startswith("```"):
            fence_open = not fence_open
            in_bash_block = fence_open and line.strip()[3:].strip() in ("bash", "sh", "shell", "console")
        elif line.strip() == command:
            assert in_bash_block, f"the {TESTS_MARKER!r} line is not inside a ```bash block"


def test_ci_runs_the_readme_command():
    ci = REPO / ".ci" / "run"
    assert ci.is_file(), ".ci/run is missing"
    assert os.access(ci, os.X_OK), ".ci/run is not executable"
    text = ci.read_text(encoding="utf-8")
    assert TESTS_MARKER in text, f".ci/run does not reference the README marker {TESTS_MARKER!r}"
    found = _readme_test_lines()
    if len(found) != 1:
        pytest.fail(f"README.md has {len(found)} lines ending with {TESTS_MARKER!r}; see test_readme_has_one_test_command")
    # .ci/run --print-command extracts the line with its own (bash) code and exits without a venv.
    proc = _run(["bash", str(ci), "--print-command"], cwd=REPO, timeout=30)
    assert proc.stdout.strip() == found[0]


def test_the_sdist_ships_what_the_tests_read():
    """The suite runs from an unpacked sdist too: test_docs reads the README and docs/, others conf/ and examples/."""
    import tomllib

    include = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["hatch"]["build"]["targets"]["sdist"]["include"]
    assert {"README.md", "docs", "conf", "examples", "tests"} <= set(include)


def test_installed_wheel_runs_the_app(from_installed):
    """The app finds conf/task, conf/hydra and conf/experiment inside the wheel too."""
    shown = _ran(from_installed, "cfg")
    assert "name: summary" in shown and "name: pvt_v2_b2" in shown
    helped = _ran(from_installed, "help")
    assert "depth_sweep, detect_shapes, search_shapes, sr_sweep, train_shapes, v2_family" in helped
    assert json.loads(_ran(from_installed, "summary"))["params"] == 3_666_760


@pytest.mark.parametrize("fmt", ["term", "md", "json"])
def test_installed_wheel_reports_name_shipped_files_without_machine_paths(installed, from_installed, fmt):
    """A CI runner's install path (…/site-packages/lucid_arch/conf/…) never reaches a review or a summary."""
    review = _ran(from_installed, f"diff_{fmt}", code=1)
    assert str(installed) not in review and str(installed.resolve()) not in review
    assert "lucid_arch:model/_pvt_v2.yaml" in review and "lucid_arch:model/pvt_v2_b5.yaml" in review
    if fmt == "term":
        summary = _ran(from_installed, "summary_v1")
        assert "config: schema default -> lucid_arch:model/_pvt_v1.yaml -> lucid_arch:model/pvt_tiny.yaml" in summary
        assert str(installed) not in summary
