"""One source for every parameter: `ex4.params.SCHEMA` holds each default, type, range and help text once.

params/default.yml is generated from it (and must equal the generated text); every chapter's `parameters`
cell must agree with it by value; a chapter that runs an experiment declares every parameter of that
experiment (or a profile could not reach it); the shipped profiles name only known parameters.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from ex4 import params
from ex4.render.parameters import declared_parameters
from ex4.render.qmd import parse_qmd

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted([ROOT / "index.qmd", *ROOT.glob("report/*.qmd")])

def chapter_values(path: Path) -> dict[str, Any]:
    """The values a chapter's parameters cell assigns, read as Python literals (what Papermill would replace)."""
    chapter = parse_qmd(path)
    cell = chapter.parameters_cell
    if cell is None:
        return {}
    values = {}
    for node in ast.parse(cell.code_without_options).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            values[node.targets[0].id] = ast.literal_eval(node.value)
    assert list(values) == declared_parameters(chapter), f"{path.name}: a parameter is not a plain literal"
    return values


def same(a: Any, b: Any) -> bool:
    """Equal by value and kind: 1 is not True, 1e-05 equals 0.00001, lists compare item by item."""
    if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
        return (isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and len(a) == len(b)
                and all(same(x, y) for x, y in zip(a, b)))
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return a == b and (a is None) == (b is None)


def test_same_compares_by_value_and_kind():
    assert same([1e-05, 0.1], [0.00001, 0.1]) and same(None, None) and same(3, 3.0)
    assert not same(True, 1) and not same([1, 2], [1, 2, 3]) and not same(0, None) and not same("auto", "cpu")


def test_default_profile_is_generated_from_the_schema():
    text = (ROOT / "params" / "default.yml").read_text(encoding="utf-8")
    assert text == params.default_profile(), "params/default.yml differs from ex4.params.SCHEMA: regenerate it " \
                                             "with `python -m ex4.params > params/default.yml`"
    profile = yaml.safe_load(text)
    assert list(profile) == list(params.SCHEMA)
    for name, spec in params.SCHEMA.items():
        assert same(profile[name], spec.default), name
        assert f"# {spec.doc}\n{name}:" in text


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda path: str(path.relative_to(ROOT)))
def test_chapter_parameters_agree_with_the_schema(chapter):
    for name, value in chapter_values(chapter).items():
        assert name in params.SCHEMA, f"{chapter.name}: parameter '{name}' is not in ex4.params.SCHEMA"
        assert same(value, params.SCHEMA[name].default), \
            f"{chapter.name}: {name} = {value!r}, but ex4.params.SCHEMA says {params.SCHEMA[name].default!r}"


def test_a_changed_default_would_be_caught(monkeypatch):
    chapter = ROOT / "report" / "section7.qmd"
    monkeypatch.setitem(params.SCHEMA, "cnn_epochs", params.Spec(2, params.int_at_least(1), "epochs"))
    with pytest.raises(AssertionError, match="cnn_epochs"):
        test_chapter_parameters_agree_with_the_schema(chapter)
    with pytest.raises(AssertionError):
        test_default_profile_is_generated_from_the_schema()


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda path: str(path.relative_to(ROOT)))
def test_a_chapter_declares_every_parameter_of_the_experiments_it_runs(chapter):
    from ex4.experiments import registry

    experiments = registry()
    code = "\n".join(cell.source for cell in parse_qmd(chapter).cells)
    declared = set(chapter_values(chapter))
    relative = str(chapter.relative_to(ROOT))
    names = re.findall(r"\brun\(\s*[\"']([\w-]+)[\"']", code)
    for listed in re.findall(r"\brun_seeds\(\s*\[([^\]]*)\]", code):  # run_seeds(["mlp-lr", ...], P)
        names += re.findall(r"[\"']([\w-]+)[\"']", listed)
    every = re.search(r"\brun\(\s*name\b", code) or re.search(r"\brun_seeds\(\s*list\(registry\(\)\)", code)
    if every and "registry()" in code:  # every experiment, e.g. the front page
        names = list(experiments)
    if re.search(r"\brun(_seeds)?\(", code):
        assert names, f"{relative} runs experiments this test cannot name: teach it the new call"
    if "run_seeds(" in code:
        assert "seed_repeats" in declared, f"{relative} runs over seeds but does not declare seed_repeats"
    for name in names:
        missing = [param for param in experiments[name].params if param not in declared]
        assert missing == [], f"{relative} runs '{name}' but does not declare {missing}: a profile could not set them"


def test_every_parameter_is_declared_by_some_chapter():
    declared = {name for chapter in CHAPTERS for name in chapter_values(chapter)}
    assert set(params.SCHEMA) - declared == set()


@pytest.mark.parametrize("profile", sorted((ROOT / "params").glob("*.yml")), ids=lambda path: path.name)
def test_profiles_name_only_known_parameters(profile):
    names = set(params.read_profile(profile))
    assert names <= set(params.SCHEMA), f"{profile.name}: unknown {sorted(names - set(params.SCHEMA))}"
