"""The cross-reference filter on small Markdown books: numbering per chapter, links across pages, typst output.

Pandoc only (no kernel), so these run in well under a second each.
"""

from __future__ import annotations

import json
from pathlib import Path

from ex4.render import pandoc

CHAPTER_ONE = """\
::: {.ex4-chapter-start number="1" page="report/one.html" appendix="false"}
:::

# First {#sec-first}

## Method {#sec-method}

::: {#fig-a ex4-cap="Curve *a*."}
![](a.png)
:::

| x | y |
|---|---|
| 1 | 2 |

: Values {#tbl-v}

$$ a^2 + b^2 = c^2 $$ {#eq-pythagoras}

See @fig-b.
"""

CHAPTER_TWO = """\
::: {.ex4-chapter-start number="A" page="report/two.html" appendix="true"}
:::

# Appendix

::: {#fig-b}
![](b.png)

Second figure's caption.
:::

Refs: @fig-a, @tbl-v, @sec-method, @sec-first, @eq-pythagoras, [-@fig-b] and @fig-missing.
"""


def book(tmp_path: Path, target: str, registry: Path | None = None, warnings: list[str] | None = None):
    asts = [pandoc.markdown_ast(text, tmp_path) for text in (CHAPTER_ONE, CHAPTER_TWO)]
    return pandoc.crossref(pandoc.join_asts(asts), target, cwd=tmp_path, registry_out=registry, warnings=warnings)


def html_of(tmp_path: Path, blocks) -> str:
    document = {"pandoc-api-version": [1, 23, 1], "meta": {}, "blocks": blocks}
    return pandoc.run_pandoc(["-f", "json", "-t", "html5", "--wrap=none"], stdin=json.dumps(document), cwd=tmp_path)


def test_floats_and_sections_are_numbered_per_chapter(tmp_path):
    registry = tmp_path / "xref.json"
    book(tmp_path, "html", registry)
    labels = json.loads(registry.read_text())["labels"]
    assert {name: (entry["number"], entry["page"]) for name, entry in labels.items()} == {
        "sec-first": ("1", "report/one.html"), "sec-method": ("1.1", "report/one.html"),
        "fig-a": ("1.1", "report/one.html"), "tbl-v": ("1.1", "report/one.html"),
        "eq-pythagoras": ("1.1", "report/one.html"), "fig-b": ("A.1", "report/two.html")}


def test_references_become_links_across_pages_and_unresolved_ones_are_flagged(tmp_path):
    warnings: list[str] = []
    document = book(tmp_path, "html", warnings=warnings)
    one, two = pandoc.split_chapters(document)
    one_html, two_html = html_of(tmp_path, one[1]), html_of(tmp_path, two[1])
    assert one[0]["page"] == "report/one.html" and two[0]["appendix"] == "true"
    assert 'href="two.html#fig-b"' in one_html and ">Figure A.1</a>" in one_html
    assert 'href="one.html#fig-a"' in two_html and ">Figure 1.1</a>" in two_html
    assert ">Table 1.1</a>" in two_html and ">Section 1.1</a>" in two_html and ">Chapter 1</a>" in two_html
    assert ">Equation (1.1)</a>" in two_html and ">A.1</a>" in two_html
    assert "Figure 1.1:</span> Curve <em>a</em>." in one_html
    assert "Figure A.1:</span> Second figure’s caption." in two_html
    assert "Table 1.1:</span> Values" in one_html
    assert "?@fig-missing" in two_html and any("fig-missing" in line for line in warnings)


def test_typst_output_carries_numbered_captions_and_label_links(tmp_path):
    document = book(tmp_path, "typst")
    typst = pandoc.run_pandoc(["-f", "json", "-t", "typst"], stdin=json.dumps(document), cwd=tmp_path)
    assert "Figure 1.1:" in typst and "<fig-a>" in typst
    assert "#link(<fig-a>)[Figure 1.1]" in typst
    assert "1.1#h(0.6em)Method" in typst.replace(" ", "")
    assert '"(1.1)"' in typst and "<eq-pythagoras>" in typst


def test_a_variant_resolves_other_chapters_from_the_books_registry_without_links(tmp_path):
    registry = tmp_path / "xref.json"
    book(tmp_path, "html", registry)
    alone = pandoc.markdown_ast(CHAPTER_TWO.replace("@fig-missing", "the end"), tmp_path)
    resolved = pandoc.crossref(alone, "html", cwd=tmp_path, registry_in=registry)
    html = html_of(tmp_path, pandoc.split_chapters(resolved)[0][1])
    assert "Figure 1.1" in html and "one.html#fig-a" not in html and "?@" not in html
