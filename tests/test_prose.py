"""No hand-typed numbers in the report's prose: every figure the text states is computed.

The checker is tested on synthetic text; then every chapter of the book is checked.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ex4.render.prose import find_typed_numbers, find_typed_numbers_in_file

ROOT = Path(__file__).resolve().parents[1]


def report_chapters() -> list[Path]:
    """Chapters listed in _quarto.yml that exist, plus every report/*.qmd (so none escapes the check)."""
    found = set(ROOT.glob("report/*.qmd"))
    config_path = ROOT / "_quarto.yml"
    if config_path.is_file():
        book = (yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}).get("book") or {}
        for relative in [*(book.get("chapters") or []), *(book.get("appendices") or [])]:
            if isinstance(relative, str) and (ROOT / relative).is_file():
                found.add(ROOT / relative)
    return sorted(found)


CHAPTERS = report_chapters()


def numbers(text: str) -> list[str]:
    return [finding.number for finding in find_typed_numbers(text)]


def test_a_typed_number_in_prose_is_flagged_with_its_position():
    findings = find_typed_numbers("---\ntitle: x\n---\n\nThe best model reached 93.5% accuracy.\n", "ch.qmd")
    assert [(f.path, f.line, f.column, f.number) for f in findings] == [("ch.qmd", 5, 24, "93.5")]
    assert "ch.qmd:5:24: hand-typed number '93.5'" in str(findings[0])


@pytest.mark.parametrize("text", [
    "The best model reached `{python} best_accuracy` accuracy.",
    "---\nseed: 42\n---\nText.",
    "```{python}\n#| label: fig-x\nx = 137\n```",
    "```\nplain code 137\n```",
    "The bound is $\\sum_{i=0}^{2} \\binom{16}{i}$ regions, and\n$$\nx^2 = 4\n$$",
    "See @fig-loss-2 and [-@tbl-3], or [the paper](https://arxiv.org/abs/1512.03385).",
    "As in Section 6.1 and Sections 6.2.1 and 6.2.2, in 2016 and Appendix 2.",
    "## 6.1 Learning rates {#sec-6-1}",
    "1. First item\n2. Second item",
    "ResNet18 on CIFAR-10 with float32 weights in 2D.",
    "<!-- 50 epochs in the seed report -->\n<img src=\"x.png\" width=\"300\">",
    "A footnote.[^1]\n",
])
def test_computed_or_structural_numbers_are_not_flagged(text):
    assert numbers(text) == []


@pytest.mark.parametrize("text, expected", [
    ("Gradients of the 100-layer net vanish.", ["100"]),
    ("We trained for 50 epochs with lr 0.001.", ["50", "0.001"]),
    ("The 2nd model and a 3x3 kernel.", ["2", "3"]),
    ("```{python}\n#| fig-cap: \"Loss over 100 epochs\"\nplot()\n```", ["100"]),
    ("It gives 137 regions, not 1,024.", ["137", "1,024"]),
])
def test_hand_typed_numbers_are_flagged(text, expected):
    assert numbers(text) == expected


def test_the_report_has_chapters():
    assert CHAPTERS, "no chapters found: _quarto.yml's chapters and report/*.qmd are all missing"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=[str(path.relative_to(ROOT)) for path in CHAPTERS])
def test_chapter_prose_has_no_hand_typed_numbers(chapter):
    findings = find_typed_numbers_in_file(chapter)
    assert findings == [], "\n" + "\n".join(str(finding) for finding in findings)
