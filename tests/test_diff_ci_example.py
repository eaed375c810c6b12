"""The GitHub Actions example in examples/ci/: its structure, and its review step run as GitHub would.

The review step's own shell script runs in a temporary "pull request" checkout (a git repository
whose HEAD~ is the base branch): once for an honest PR (a parent edited, a variant deleted, one
added), once for a hostile one (tests/hostile_corpus.py). No network, no GitHub.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hostile_corpus import ENV, make_canaries, plant_in_checkout, write_model_dir

REPO = Path(__file__).resolve().parent.parent
REVIEW = REPO / "examples" / "ci" / "lucid-arch-diff.yml"
COMMENT = REPO / "examples" / "ci" / "lucid-arch-diff-comment.yml"


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args], cwd=repo, check=True, capture_output=True, text=True)
    return done.stdout.strip()


def workflow(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def review_step() -> dict:
    steps = workflow(REVIEW)["jobs"]["review"]["steps"]
    return next(s for s in steps if s.get("name", "").startswith("Review every variant"))


def test_the_review_workflow_runs_no_code_from_the_pull_request_and_holds_no_token():
    wf = workflow(REVIEW)
    assert wf[True]["pull_request"]["paths"] == ["conf/**"]  # YAML 1.1 reads `on` as True
    assert wf["permissions"] == {"contents": "read"}
    steps = wf["jobs"]["review"]["steps"]
    checkouts = [s for s in steps if s.get("uses", "").startswith("actions/checkout")]
    assert [c["with"]["path"] for c in checkouts] == ["tool", "pr"]
    assert all(c["with"]["persist-credentials"] is False for c in checkouts)
    assert checkouts[0]["with"]["ref"] == "${{ github.event.pull_request.base.sha }}"  # the code that runs
    install = next(s for s in steps if s.get("name", "").startswith("Install"))["run"]
    assert "pip install ./tool" in install and "./pr" not in install and "-e ." not in install
    assert review_step()["working-directory"] == "pr"
    text = REVIEW.read_text()
    assert "secrets." not in text and "github.token" not in text and "GH_TOKEN" not in text


def test_the_comment_workflow_never_touches_the_pull_requests_files():
    wf = workflow(COMMENT)
    assert wf[True]["workflow_run"] == {"workflows": ["lucid-arch-diff"], "types": ["completed"]}
    assert wf["permissions"] == {}
    job = wf["jobs"]["comment"]
    assert job["permissions"] == {"actions": "read", "pull-requests": "write"}
    assert not any(s.get("uses", "").startswith("actions/checkout") for s in job["steps"])
    post = job["steps"][-1]["run"]
    assert "tr -cd '0-9'" in post and "head.sha" in post and "read(65000)" in post


def pull_request(tmp_path: Path) -> Path:
    """A checkout whose HEAD is the base branch, with conf/ holding four variants."""
    pr = tmp_path / "pr"
    shutil.copytree(REPO / "conf", pr / "conf")
    keep = {"_pvt_v2.yaml", "pvt_v2_b0.yaml", "pvt_v2_b1.yaml", "pvt_v2_b2.yaml"}
    for f in (pr / "conf" / "model").glob("*.yaml"):
        if f.name not in keep:
            f.unlink()
    git(pr, "init", "-q", "-b", "main")
    git(pr, "add", "conf")
    git(pr, "commit", "-q", "-m", "base")
    return pr


def run_review_step(pr: Path, env: dict) -> tuple[subprocess.CompletedProcess, str, str]:
    base = git(pr, "rev-parse", "HEAD")
    env = {**env, "BASE": base, "PR_NUMBER": "17", "GITHUB_STEP_SUMMARY": str(pr.parent / "summary"),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(["bash", "-e", "-c", review_step()["run"]], cwd=pr, env=env, capture_output=True, text=True, timeout=240)
    review = pr.parent / "review"
    assert (review / "pr-number").read_text() == "17\n"
    return proc, (review / "comment.md").read_text(), (review / "exit-status").read_text().strip()


def test_the_review_step_reports_an_honest_pull_request(tmp_path):
    pr = pull_request(tmp_path)
    model = pr / "conf" / "model"
    b1 = (model / "pvt_v2_b1.yaml").read_text()
    (model / "pvt_v2_b1.yaml").write_text(b1.replace("embed_dims: [64, 128, 320, 512]", "embed_dims: [64, 128, 320, 640]"))
    assert "640" in (model / "pvt_v2_b1.yaml").read_text(), "the edit must land; has pvt_v2_b1.yaml changed its layout?"
    (model / "pvt_v2_b0.yaml").unlink()
    (model / "pvt_v2_b9.yaml").write_text("defaults: [pvt_v2_b1, _self_]\nname: pvt_v2_b9\ndepths: [1, 1, 1, 1]\n")
    proc, comment, status = run_review_step(pr, dict(os.environ))
    assert proc.returncode == 0, proc.stderr  # exit 1, "changed", is for the reviewer; the job stays green
    assert status == "1"
    assert comment.startswith("## Architecture review")
    assert "| `pvt_v2_b0` | ➖ deleted |" in comment and "| `pvt_v2_b9` | ➕ new |" in comment
    # b2 inherits b1's embed_dims: its own file is untouched, its architecture is not.
    assert "| `pvt_v2_b1` | ✎ changed |" in comment and "| `pvt_v2_b2` | ✎ changed |" in comment
    assert comment.count("`model.embed_dims[3]`") == 2 and "`512`" in comment and "`640`" in comment
    assert (pr.parent / "summary").read_text().startswith(comment)


def test_the_review_step_fails_a_hostile_pull_request_without_leaking(tmp_path):
    pr = pull_request(tmp_path)
    canaries = make_canaries(tmp_path / "canaries")
    cases = write_model_dir(pr / "conf" / "model", canaries)
    plant_in_checkout(pr, canaries)
    env = {**canaries.env(), ENV: canaries.secret}
    proc, comment, status = run_review_step(pr, env)
    assert proc.returncode == 1 and status == "2"  # the job fails: a variant is invalid
    assert "exited 2" in proc.stderr and "Traceback" not in proc.stderr
    assert canaries.leaked(comment, proc.stdout, proc.stderr) == []
    assert len(comment) < 65_536
    for case in cases:
        assert f"`{case}`" in comment or case.startswith("$"), case  # every hostile variant has its row


@pytest.mark.parametrize("path", [REVIEW, COMMENT])
def test_example_workflows_are_valid_yaml_with_names(path):
    wf = workflow(path)
    assert wf["name"] and wf["jobs"]
