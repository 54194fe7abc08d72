"""End to end on a toy book: execute the chapters, write the HTML pages and the PDF, swap them into `_book/`.

The book renders once per module (two kernels, a few seconds); the other tests read what it produced.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ex4.errors import Ex4Error
from ex4.render import read_book, render_book, render_chapter
from ex4.render.parameters import parameter_hash
from render_toy import tree_digest, write_toy_book


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = write_toy_book(tmp_path_factory.mktemp("toy"))
    profile = root / "params.yml"
    profile.write_text("mlp_lr: 0.02\n", encoding="utf-8")
    result = render_book(root, params_file=profile)
    pages = {page.relative_to(root / "_book").as_posix(): page.read_text(encoding="utf-8") for page in result.pages}
    return root, result, pages


def visible_text(html: str) -> str:
    return re.sub(r"<[^>]+>", " ", html)


def test_every_chapter_becomes_a_page_beside_one_pdf_and_the_build_log(toy):
    root, result, pages = toy
    book = root / "_book"
    assert result.html_index == book / "index.html"
    assert result.pdf == book / "toy-book.pdf"
    assert set(pages) == {"index.html", "report/one.html", "report/two.html"}
    assert list(result.chapter_seconds) == ["index.qmd", "report/one.qmd", "report/two.qmd"]
    assert result.renderer.startswith("ex4 (papermill")
    assert (book / "build-log.jsonl").is_file()
    assert not list(root.glob("._book-*")), "the temporary build folder was left behind"


def test_a_rendered_book_can_be_read_back_for_checking(toy, tmp_path):
    root, result, _ = toy
    again = read_book(root)
    assert (again.html_index, again.pdf, again.pages, again.renderer) == \
        (result.html_index, result.pdf, result.pages, result.renderer)
    with pytest.raises(Ex4Error, match="no rendered book"):
        read_book(root, tmp_path / "empty")


def test_cross_references_resolve_across_pages(toy):
    _, _, pages = toy
    for name, html in pages.items():
        text = visible_text(html)
        assert "?@" not in text and "??" not in text, name
        assert not re.search(r"@(fig|tbl|sec|eq)-", text), name
    assert 'href="report/one.html#fig-sine"' in pages["index.html"]
    two = pages["report/two.html"]
    assert 'href="one.html#fig-sine"' in two and ">Figure 1.1</a>" in two and ">Section 1.1</a>" in two
    assert ">Table 1.1</a>" in two and ">Equation (1.1)</a>" in two
    assert ">Figure A.1</a>" in two  # a reference produced by a Markdown output of a cell


def test_figures_and_tables_are_numbered_captioned_and_embedded(toy):
    _, _, pages = toy
    one, two = pages["report/one.html"], pages["report/two.html"]
    assert "Figure 1.1:</span> A sine wave, shifted by the <em>seed</em>." in one
    assert re.search(r"Table 1\.1:</span> Small squares\.", one)
    assert "<td>9</td>" in one
    assert re.search(r"Figure A\.1:</span> A caption computed in the kernel: seed\s+0\.", two)
    for html in pages.values():
        sources = re.findall(r'<img[^>]*\bsrc="([^"]*)"', html)
        assert all(source.startswith("data:image/") for source in sources)
    assert len(re.findall(r"<img", one)) == 1 and len(re.findall(r"<img", two)) == 1


def test_chapter_and_section_numbers_follow_the_book(toy):
    _, _, pages = toy
    one, two = pages["report/one.html"], pages["report/two.html"]
    assert re.search(r'<h1[^>]*><span class="header-section-number">1</span> First chapter</h1>', one)
    assert '<span class="header-section-number">1.1.1</span> Numbers' in one
    assert re.search(r'<h1[^>]*><span class="header-section-number">A</span> Reproducibility</h1>', two)
    assert "Preface" in pages["index.html"] and "header-section-number" not in pages["index.html"].split(
        "<main")[1].split("</main>")[0]


def test_inline_code_shows_injected_parameters(toy):
    _, _, pages = toy
    assert "The learning rate is 0.02 and the seed is 0." in visible_text(pages["report/one.html"])


def test_outputs_follow_echo_output_and_warning_options(toy):
    _, _, pages = toy
    one = pages["report/one.html"]
    assert "visible stdout line" in one
    assert '<details class="code-fold">' in one and "print" in one  # echo: true + code-fold: true
    assert "np.linspace" not in one  # echo: false (from _quarto.yml)
    for html in pages.values():
        assert "ex4-output stderr" not in html  # the stream, not the echoed code that wrote it
        assert "Traceback" not in html and "Error" not in visible_text(html)


def test_math_is_mathml_and_nothing_is_fetched(toy):
    _, _, pages = toy
    assert "<math" in pages["index.html"] and "<math" in pages["report/one.html"]
    for html in pages.values():
        assert not re.search(r'(src|href)="(https?:)?//', html)


def test_the_book_says_which_renderer_built_it(toy):
    _, _, pages = toy
    assert "Built with <strong>ex4 (papermill" in pages["report/two.html"]
    assert "Built by ex4 (papermill" in pages["index.html"]


def test_pdf_holds_the_figures(toy):
    _, result, _ = toy
    data = result.pdf.read_bytes()
    assert data.startswith(b"%PDF")
    assert len(re.findall(rb"/Subtype\s*/Image", data)) >= 2


def test_a_variant_gets_its_own_folder_and_leaves_the_book_untouched(toy):
    root, _, _ = toy
    before = tree_digest(root / "_book")
    folder = render_chapter(Path("report/one.qmd"), {"seed": 7}, root)
    assert folder == root / "_variants" / f"one-{parameter_hash({'seed': 7})}"
    html = (folder / "one.html").read_text(encoding="utf-8")
    assert "the seed is 7" in visible_text(html)
    assert 'class="ex4-params"' in html and "<code>seed</code>" in html
    assert (folder / "one.pdf").read_bytes().startswith(b"%PDF")
    assert (folder / "parameters.json").read_text(encoding="utf-8").strip() == '{"seed":7}'
    assert tree_digest(root / "_book") == before


def test_a_variant_override_must_be_declared_by_the_chapter(toy):
    root, _, _ = toy
    with pytest.raises(Ex4Error, match=r"report/two\.qmd: parameter 'mlp_lr' is not declared"):
        render_chapter(Path("report/two.qmd"), {"mlp_lr": 0.1}, root)


RAISING = """\
---
title: "First chapter"
---

```{python}
#| tags: [parameters]
seed = 0
```

```{python}
total = 1
total / seed
```
"""


def test_a_raising_chapter_names_file_and_line_and_keeps_the_previous_book(tmp_path):
    root = write_toy_book(tmp_path, {"report/one.qmd": RAISING})
    previous = root / "_book"
    previous.mkdir()
    (previous / "index.html").write_text("the previous book", encoding="utf-8")
    with pytest.raises(Ex4Error) as caught:
        render_book(root)
    assert str(caught.value) == "report/one.qmd:12: ZeroDivisionError: division by zero"
    assert tree_digest(previous) == {"index.html": b"the previous book"}
    assert sorted(path.name for path in root.iterdir()) == ["_book", "_quarto.yml", "index.qmd", "report"]


def test_a_profile_name_that_no_chapter_declares_stops_the_build_before_it_starts(tmp_path):
    root = write_toy_book(tmp_path)
    profile = root / "bad.yml"
    profile.write_text("mlp_epochs: 3\n", encoding="utf-8")
    with pytest.raises(Ex4Error, match=r"bad\.yml: parameter 'mlp_epochs' is not declared in any chapter"):
        render_book(root, params_file=profile)
    assert not (root / "_book").exists()


def test_an_inline_expression_error_names_its_own_line(tmp_path):
    index = "---\ntitle: Preface\n---\n\nFine text.\nA ratio of `{python} 1 / 0` here.\n"
    root = write_toy_book(tmp_path, {"index.qmd": index})
    with pytest.raises(Ex4Error, match=r"^index\.qmd:6: ZeroDivisionError: division by zero$"):
        render_book(root)
