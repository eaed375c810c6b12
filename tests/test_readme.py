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
