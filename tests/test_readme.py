"""The README's figures and field list stay true to the code."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest

import lucid_arch
from lucid_arch.config import ModelConfig

README = (Path(__file__).parents[1] / "README.md").read_text()
ROW = re.compile(r"^\| (pvt_\w+)\s*\|.*\|\s*([\d,]+)\s*\|\s*([\d.]+) \|$", re.M)


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
