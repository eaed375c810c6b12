"""The GitHub Actions example in examples/ci/: its diff step, run as GitHub would, on a real PR.

A temporary git repository holds conf/ with three variants on its base branch; the "PR" edits a
parent (so a child changes without its file changing), deletes one variant and adds one. The
workflow's own shell script then writes the comment; no network, no GitHub.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
WORKFLOW = REPO / "examples" / "ci" / "lucid-arch-diff.yml"


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args], cwd=repo, check=True, capture_output=True)


def diff_step() -> dict:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    steps = workflow["jobs"]["diff"]["steps"]
    assert steps[0]["with"]["fetch-depth"] == 0  # BASE:path sides need the base branch
    return next(s for s in steps if s.get("name", "").startswith("Diff every variant"))


def test_workflow_triggers_on_model_configs_and_may_comment():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    assert workflow[True]["pull_request"]["paths"] == ["conf/model/**"]  # YAML 1.1 reads `on` as True
    assert workflow["permissions"]["pull-requests"] == "write"


def test_the_diff_step_reports_a_pull_request(tmp_path):
    shutil.copytree(REPO / "conf", tmp_path / "conf")
    keep = {"_pvt_v2.yaml", "pvt_v2_b0.yaml", "pvt_v2_b1.yaml", "pvt_v2_b2.yaml"}
    for f in (tmp_path / "conf" / "model").glob("*.yaml"):
        if f.name not in keep:
            f.unlink()
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "add", "conf")
    git(tmp_path, "commit", "-q", "-m", "base")
    git(tmp_path, "branch", "base")
    model = tmp_path / "conf" / "model"
    (model / "pvt_v2_b1.yaml").write_text((model / "pvt_v2_b1.yaml").read_text().replace("embed_dims: [64, 128, 320, 512]", "embed_dims: [64, 128, 320, 640]"))
    assert "640" in (model / "pvt_v2_b1.yaml").read_text(), "the edit must land; has pvt_v2_b1.yaml changed its layout?"
    (model / "pvt_v2_b0.yaml").unlink()
    (model / "pvt_v2_b9.yaml").write_text("defaults: [pvt_v2_b1, _self_]\nname: pvt_v2_b9\ndepths: [1, 1, 1, 1]\n")
    (model / "pvt_v2_bad.yaml").write_text("defaults: [pvt_v2_b1, _self_]\nname: pvt_v2_bad\nnum_heads: [1, 2, 6, 8]\n")

    env = {**os.environ, "BASE": "base", "GITHUB_ENV": str(tmp_path / "env"), "GITHUB_STEP_SUMMARY": str(tmp_path / "summary"),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(["bash", "-e", "-c", diff_step()["run"]], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    comment = (tmp_path / "comment.md").read_text()
    assert comment.startswith("<!-- lucid-arch-diff -->")
    assert "**`conf/model/pvt_v2_b0.yaml`: deleted.**" in comment
    assert "**`conf/model/pvt_v2_b9.yaml`: new variant.**" in comment
    # b2 inherits b1's embed_dims: its own file is untouched, its architecture is not.
    assert comment.count("model.embed_dims[3]") >= 2  # b1 and b2 both report the change
    assert "512" in comment and "640" in comment
    assert "**`conf/model/pvt_v2_bad.yaml`: new variant.**" in comment and "model.num_heads[2]" in comment
    assert (tmp_path / "env").read_text().strip() == "status=2"  # an invalid config fails the job
    assert (tmp_path / "summary").read_text() == comment
