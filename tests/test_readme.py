"""The README's figures and field list stay true to the code."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest

import lucid_arch
from lucid_arch.config import ModelConfig

README = (Path(__file__).parents[1] / "README.md").read_text()
ROW = re.compile(r"^\| ((?:pvt|mit)_\w+)\s*\|.*\|\s*([\d,]+)\s*\|\s*([\d.]+) \|$", re.M)


def test_variant_table_lists_every_model_with_its_analysed_figures():
    rows = {name: (int(params.replace(",", "")), float(gflops)) for name, params, gflops in ROW.findall(README)}
    assert sorted(rows) == lucid_arch.list_models()
    for name, (params, gflops) in rows.items():
        report = lucid_arch.analyze(lucid_arch.load_config(name))
        assert params == report.params, name
        assert gflops == pytest.approx(report.gflops, abs=0.005), name


def test_every_schema_field_is_documented_in_the_readme():
    undocumented = [f.name for f in fields(ModelConfig) if f"`{f.name}`" not in README]
    assert undocumented == []


def test_every_training_setting_is_documented_in_the_readme():
    from lucid_arch.config.train_schema import field_help

    assert [key for key in field_help() if key != "name" and f"`{key}`" not in README] == []


def test_the_readmes_new_variant_example_builds_both_ways():
    import torch

    root = Path(__file__).parents[1] / "examples" / "my_models"
    text = (root / "model" / "tiny3.yaml").read_text()
    assert text.split("\n", 1)[1] in README  # the README shows this very file
    by_path = lucid_arch.create_model(str(root / "model" / "tiny3.yaml"))
    by_name = lucid_arch.build_model(lucid_arch.load_config("tiny3", [f"hydra.searchpath=[file://{root}]"]))
    for model in (by_path, by_name):
        assert model.spec.name == "tiny3" and len(model.stages) == 3
        with torch.no_grad():
            assert model.eval()(torch.randn(1, 3, 96, 96)).shape == (1, 1000)


def test_the_training_example_is_what_its_experiment_left():
    import csv

    import yaml

    root = Path(__file__).parents[1]
    experiment = yaml.safe_load((root / "conf/experiment/train_shapes.yaml").read_text())
    models = experiment["hydra"]["sweeper"]["params"]["model"].split(",")
    example = root / "examples/train_shapes"
    rows = list(csv.DictReader((example / "run/sweep.csv").open()))
    assert [r["model"] for r in rows] == models and {r["status"] for r in rows} == {"ok"}
    text = (example / "README.md").read_text()
    for r in rows:
        assert f"{float(r['val_acc']):.1%}" in text, r["model"]
        trained = lucid_arch.load_config(r["model"], ["model.num_classes=10", "model.img_size=64"])
        assert int(r["params"]) == lucid_arch.analyze(trained).params
        assert f"{int(r['params']):,}" in text
    assert (example / "run/sweep.png").read_bytes()[:4] == b"\x89PNG"


def _section(title: str) -> str:
    start = README.index(f"## {title}\n")
    return README[start : README.index("\n## ", start + 1)]


def test_the_backbone_example_prints_what_its_comments_say(capsys):
    block = re.search(r"```python\n(.*?)```", _section("Backbones and checkpoints"), re.S).group(1)
    exec(compile(block, "README.md", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    promised = [line.split("# ", 1)[1] for line in block.splitlines() if line.startswith("print(")]
    assert printed == promised


def test_the_non_square_backbone_summary_is_what_the_app_prints(capsys, tmp_path, monkeypatch):
    from conftest import run_main

    console = re.search(r"```console\n\$ lucid-arch (.*?)\n(.*?)```", _section("Backbones and checkpoints"), re.S)
    argv = [a.strip("'") for a in console.group(1).split()]
    monkeypatch.chdir(tmp_path)
    code, out, err = run_main([*argv, "format=text"], capsys)
    assert code == 0, err
    assert out == console.group(2)
    wide = lucid_arch.analyze(lucid_arch.load_config("pvt_v2_b0", ["model.img_size=[512,1024]"]))
    assert f"512×1024 ({wide.gflops:.3f} GFLOPs)" in README


def test_the_layout_table_lists_every_layout():
    from lucid_arch.weights.layouts import LAYOUTS

    table = re.findall(r"^\| `(\w+)`(?:, `(\w+)`)? \|", _section("Backbones and checkpoints"), re.M)
    assert sorted(name for row in table for name in row if name) == sorted(LAYOUTS)
