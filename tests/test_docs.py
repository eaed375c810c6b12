"""The README and docs/: figures and examples true to the code, links that lead somewhere, Python that runs.

The pages' figures and examples are checked against what the code computes and prints. Two
rules hold for every page: a relative link names a file that exists and an anchor a heading it
has; every Python block compiles, and those that need nothing they do not define run. The
command lines are test_docs_commands.py's.
"""

from __future__ import annotations

import builtins
import re
import symtable
from dataclasses import fields

import pytest
from doc_pages import ROOT, anchors, blocks, links, pages, section, split, text

import lucid_arch
from lucid_arch.config import ConfigError, ModelConfig

VARIANTS = text("variants.md")
DENSE = text("dense-prediction.md")
DETECTION = text("detection.md")
ROW = re.compile(r"^\| ((?:pvt|mit|segformer|fpn|retinanet|mask_rcnn)_\w+)\s*\|.*\|\s*([\d,]+)\s*\|\s*([\d.]+) \|$", re.M)


def test_variant_tables_list_every_model_with_its_analysed_figures():
    rows = {name: (int(params.replace(",", "")), float(gflops)) for name, params, gflops in ROW.findall(VARIANTS + DENSE + DETECTION)}
    assert sorted(rows) == lucid_arch.list_models()
    for name, (params, gflops) in rows.items():
        report = lucid_arch.analyze(lucid_arch.load_config(name))
        assert params == report.params, name
        assert gflops == pytest.approx(report.gflops, abs=0.005), name


def test_every_schema_field_is_documented():
    fields_table = section("variants.md", "## Schema fields")
    undocumented = [f.name for f in fields(ModelConfig) if f"`{f.name}`" not in fields_table]
    assert undocumented == []


def test_every_section_field_is_documented():
    from lucid_arch.config.schema import SECTIONS

    table = section("dense-prediction.md", "## The sections") + section("detection.md", "## The sections")
    keys = [f"{name}.{f.name}" for name, cls in SECTIONS.items() for f in fields(cls)]
    assert [key for key in keys if f"`{key}`" not in table] == []


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
