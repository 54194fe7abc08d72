"""Quarto parity on paper: `_quarto.yml` and every chapter use only Quarto features the ex4 renderer implements
(`ex4.render.features`), so a chapter that would render differently under the two renderers fails here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from ex4.render import features
from ex4.render.project import read_book_config
from ex4.render.qmd import parse_qmd

ROOT = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((ROOT / "_quarto.yml").read_text(encoding="utf-8"))
CHAPTERS = [entry.source for entry in read_book_config(ROOT).chapters]
_CROSSREF = re.compile(r"(?<![\w@`/])-?@([A-Za-z]+)-[\w-]*\w")
_DIV_CLASS = re.compile(r"\{\s*\.(callout-[\w-]+)")
_INLINE_ENGINE = re.compile(r"`\{(\w+)\}")


def test_quarto_yml_uses_only_implemented_keys_and_values():
    assert set(CONFIG) <= features.TOP_LEVEL, set(CONFIG) - features.TOP_LEVEL
    assert set(CONFIG["format"]) <= features.FORMATS
    for where, allowed in features.PROJECT_KEYS.items():
        section = CONFIG
        for part in where.split("."):
            section = section.get(part) or {}
        assert set(section) <= allowed, f"_quarto.yml {where}: {sorted(set(section) - allowed)} not implemented"
    for where, value in features.FIXED.items():
        section = CONFIG
        for part in where.split(".")[:-1]:
            section = section.get(part) or {}
        name = where.split(".")[-1]
        if name in section:
            assert section[name] == value, f"_quarto.yml {where}: ex4 implements only {value!r}"


@pytest.mark.parametrize("qmd", CHAPTERS, ids=lambda path: path.stem)
def test_chapter_uses_only_implemented_cell_options_crossrefs_callouts_and_engines(qmd):
    chapter = parse_qmd(qmd)  # cells in an engine other than {python} are refused here already
    assert set(chapter.front_matter) <= features.FRONT_MATTER
    assert set(chapter.front_matter.get("execute") or {}) <= features.EXECUTE_KEYS
    for cell in chapter.code_cells:
        unknown = set(cell.options) - features.CELL_OPTIONS
        assert not unknown, f"{qmd.name}:{cell.line}: cell options {sorted(unknown)} are not implemented"
        assert cell.options.get("output", True) in features.OUTPUT_VALUES, f"{qmd.name}:{cell.line}"
    text = qmd.read_text(encoding="utf-8")
    prefixes = {match.group(1) for match in _CROSSREF.finditer(text)}
    assert prefixes <= features.CROSSREF_PREFIXES, f"{qmd.name}: cross-references {sorted(prefixes)}"
    callouts = {name.removeprefix("callout-") for name in _DIV_CLASS.findall(text)}
    assert callouts <= features.CALLOUTS, f"{qmd.name}: callouts {sorted(callouts)}"
    prose = "\n".join(cell.source for cell in chapter.cells if cell.kind == "markdown")
    assert set(_INLINE_ENGINE.findall(prose)) <= features.ENGINES, f"{qmd.name}: inline code in another engine"


def test_the_lists_match_what_the_renderer_does():
    lua = (ROOT / "src/ex4/render/assets/crossref.lua").read_text(encoding="utf-8")
    prefixes = re.search(r"KIND_PREFIXES = \{([^}]*)\}", lua).group(1)
    assert set(re.findall(r"(\w+) =", prefixes)) == features.CROSSREF_PREFIXES
    typst = (ROOT / "src/ex4/render/assets/book.typ").read_text(encoding="utf-8")
    assert f'paper: "{features.FIXED["format.typst.papersize"]}"' in typst
    assert 'class:match("^callout")' in lua


def test_the_check_catches_an_unimplemented_option(tmp_path):
    qmd = tmp_path / "x.qmd"
    qmd.write_text("```{python}\n#| fig-width: 4\n1\n```\n\nSee @lst-code.\n", encoding="utf-8")
    with pytest.raises(AssertionError, match="fig-width"):
        test_chapter_uses_only_implemented_cell_options_crossrefs_callouts_and_engines(qmd)
