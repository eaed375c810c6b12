"""Hostile configs through every door: the diff tool (files and git revisions), the app and the API.

Every case of tests/hostile_corpus.py is a model file a stranger could put in a pull request.
With three canaries set (an environment secret, a file outside the tree, an importable module),
each must end quickly, as an invalid config (exit 2 / ConfigError) or an inert report, with no
traceback, no canary in any output, nothing imported and nothing created.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import run_main
from hostile_corpus import ENV, NAME_ONLY, VALID, make_canaries, plant_in_checkout, write_model_dir

import lucid_arch
from lucid_arch.diff import render_review
from lucid_arch.diff.cli import main as diff_main
from lucid_arch.diff.review import review

ROOT = Path(__file__).resolve().parent.parent
SECONDS = 10  # per call; each takes well under a second or two on an idle machine


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args], cwd=repo, check=True, capture_output=True)


def outside_code_spans(md: str) -> str:
    """What GitHub would render as markdown: the text with every inline code span removed."""
    return re.sub(r"(`+)(?:(?!\1).)*?\1", "", md)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """A git repository whose conf/model holds the corpus at HEAD, and a working tree that edits two cases.

    Beside the corpus are the shipped files it extends (pvt_v2_b0 and its family base), not every
    shipped variant: those would only be composed and analysed as unchanged rows."""
    root = tmp_path_factory.mktemp("hostile")
    canaries = make_canaries(root / "canaries")
    repo = root / "repo"
    (repo / "conf").mkdir(parents=True)
    (repo / "conf" / "config.yaml").write_text("defaults: [{model: pvt_v2_b0}, _self_]\n")
    model = repo / "conf" / "model"
    model.mkdir()
    for name in ("_pvt_v2.yaml", "pvt_v2_b0.yaml"):
        (model / name).write_bytes((ROOT / "conf" / "model" / name).read_bytes())
    names = write_model_dir(model, canaries)
    plant_in_checkout(repo, canaries)
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "hostile base")
    for case in VALID:  # change the architecture too, so the hostile names are rendered in full
        path = model / f"{case}.yaml"
        path.write_text(path.read_text() + "depths: [2, 2, 3, 2]\n")
    return repo, canaries, names


@pytest.fixture(autouse=True)
def _canaries_set(hostile, monkeypatch):
    repo, canaries, _ = hostile
    monkeypatch.setenv(ENV, canaries.secret)
    monkeypatch.syspath_prepend(str(canaries.module_dir))  # importable, were anything to import it
    monkeypatch.chdir(repo)
    yield
    assert canaries.leaked() == [], "a canary module was imported"


def files_under(path: Path) -> set[Path]:
    return {p for p in path.rglob("*") if ".git" not in p.parts}


def test_review_of_a_hostile_pull_request_on_git_and_files(hostile):
    repo, canaries, names = hostile
    before = files_under(repo.parent)
    start = time.monotonic()
    result = review("HEAD")
    took = time.monotonic() - start
    assert took < 6 * SECONDS, f"the review of {len(names)} hostile variants took {took:.1f} s"
    statuses = {v.name: v.status for v in result.variants}
    for case in names:
        expected = "changed" if case in VALID else "invalid"
        assert statuses[case] == expected, (case, statuses[case])
    assert result.exit_code == 2
    md, js = render_review.render_md(result), render_review.render_json(result)
    import io

    term = io.StringIO()
    render_review.render_term(result, term)
    assert canaries.leaked(md, js, term.getvalue()) == []
    assert len(md) < 65_536
    # the hostile names are shown, but only inside code spans: no HTML, link, mention or control character
    rendered = outside_code_spans(md)
    for bad in ("<img", "</details><img", "@everyone", "](https", "\x1b", "\u202e"):
        assert bad not in rendered
        assert bad not in term.getvalue() or bad in ("@everyone", "](https")  # plain text in a terminal is fine
    assert "\x1b" not in term.getvalue() and "\u202e" not in term.getvalue()
    assert "`" in md and "onerror" in md  # shown, as text
    json.loads(js)
    # each problem names its file; both sides (HEAD from git, the working tree from disk) were read
    report = {v.name: v for v in result.variants}["interp_value"].report
    assert report.old.problems[0]["message"].startswith("HEAD:conf/model/interp_value.yaml")
    assert report.new.problems[0]["message"].startswith("conf/model/interp_value.yaml")
    assert files_under(repo.parent) == before, "the review created files"


ONE_SIDE_CASES = ["interp_value", "escape_link_parent", "package_global", "alias_bomb"]  # the review covers every case


@pytest.mark.parametrize("case", ONE_SIDE_CASES)
def test_one_hostile_side_on_git_and_on_a_lone_file(hostile, case, capsys, tmp_path):
    repo, canaries, _ = hostile
    lone = tmp_path / f"{case}.yaml"  # outside any config tree: mounted onto the shipped variants
    lone.write_bytes((repo / "conf" / "model" / f"{case}.yaml").read_bytes())
    for argv in ([f"HEAD:conf/model/{case}.yaml", "pvt_v2_b0", "--format", "md"], [str(lone), "pvt_v2_b0"]):
        start = time.monotonic()
        code = diff_main(argv)
        assert time.monotonic() - start < SECONDS
        out, err = capsys.readouterr()
        assert code == 2, (argv, out, err)
        assert "Traceback" not in out + err and canaries.leaked(out, err) == []
        assert "invalid" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--", "--output=x:conf/model/pvt_v2_b0.yaml", "pvt_v2_b0"], "not a revision this tool reads"),
        (["HEAD:../../../etc/passwd.yaml", "pvt_v2_b0"], "leaves the repository"),
        (["HEAD:/etc/passwd.yaml", "pvt_v2_b0"], "leaves the repository"),
        (["conf/model/link_out.yaml", "pvt_v2_b0"], "symlink leaving the model directory"),
        (["pvt_v2_b0", "pvt_v2_b0", "--new", "hydra.searchpath=[pkg://lucid_canary_module]"], "model fields only"),
        (["pvt_v2_b0", "pvt_v2_b0", "--new", "model.name=${oc.env:" + ENV + "}"], "interpolation"),
        (["${oc.env:" + ENV + "}", "pvt_v2_b0"], "no such variant"),
        (["--review=-q"], "not a revision"),
    ],
)
def test_hostile_arguments_are_one_clear_error(hostile, argv, message, capsys):
    _, canaries, _ = hostile
    code = diff_main(argv)
    out, err = capsys.readouterr()
    assert code == 2 and message in out + err, out + err
    assert "Traceback" not in err and canaries.leaked(out, err) == []


def test_the_app_composes_model_files_under_the_same_rules(hostile, capsys, tmp_path):
    repo, canaries, names = hostile
    for case in names:
        if case in NAME_ONLY:
            continue
        start = time.monotonic()
        code, out, err = run_main(["-cd", str(repo / "conf"), f"model={case}", f"hydra.run.dir={tmp_path / case}", "format=json"], capsys)
        took = time.monotonic() - start
        assert took < SECONDS, (case, took)
        assert "Traceback" not in err and canaries.leaked(out, err) == [], case
        if case in VALID:
            assert code == 0 and json.loads(out)["name"]
        else:
            assert code == 2, (case, out, err)
            assert err.startswith("lucid-arch: Invalid") and err.count("\n") < 40, (case, err)


def test_the_python_api_refuses_every_hostile_file(hostile):
    repo, canaries, names = hostile
    for case in names:
        if case in NAME_ONLY:
            continue
        path = repo / "conf" / "model" / f"{case}.yaml"
        start = time.monotonic()
        if case in VALID:
            assert lucid_arch.load_config(str(path)).model.name
        else:
            with pytest.raises(lucid_arch.ConfigError) as info:
                lucid_arch.load_config(str(path))
            assert canaries.leaked(str(info.value)) == [], case
        assert time.monotonic() - start < SECONDS, case


def test_a_model_too_large_for_this_machine_is_refused_before_allocation(monkeypatch):
    monkeypatch.setenv("LUCID_ARCH_MEMORY_LIMIT", "64M")
    with pytest.raises(lucid_arch.ConfigError) as info:
        lucid_arch.create_model("pvt_v2_b2")  # ~100 MB of weights
    text = str(info.value)
    assert "model.embed_dims" in text and "GiB" in text and "LUCID_ARCH_MEMORY_LIMIT=off" in text
    with pytest.raises(lucid_arch.ConfigError, match="LUCID_ARCH_MEMORY_LIMIT=off"):
        lucid_arch.models.PVT_V2()  # lucid's class API is checked alike (pvt_v2_b2's values)
    monkeypatch.setenv("LUCID_ARCH_MEMORY_LIMIT", "off")
    assert lucid_arch.create_model("pvt_v2_b0", num_classes=0)  # the explicit override goes on


def test_no_traceback_and_exit_2_when_the_tool_itself_fails(monkeypatch, capsys):
    from lucid_arch.diff import compare

    def broken(*_a, **_k):
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(compare, "compare", broken)
    assert diff_main(["pvt_v2_b0", "pvt_v2_b1"]) == 2
    err = capsys.readouterr().err
    assert "internal error: RuntimeError: simulated bug" in err and "Traceback" not in err


def test_console_script_is_quiet_when_its_reader_leaves(hostile):
    script = Path(sys.executable).parent / "lucid-arch-diff"
    # `true` exits before the tool writes, so its first write meets a closed pipe
    command = f"'{script}' pvt_v2_b0 pvt_v2_b0 --new 'model.depths=[0,1,1,1]' --format md | true; echo ${{PIPESTATUS[0]}}"
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "2" and done.stderr == ""
