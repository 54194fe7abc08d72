"""The whole book under params/smoke.yml, rendered by ex4's own renderer: every chapter, every figure, no
error output, no unresolved cross-reference, and a PDF that carries the figures.

`nox -s report` runs these same checks on the book it has just published (EX4_BOOK_DIR=_book)."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.slow, pytest.mark.book]

ROOT = Path(__file__).resolve().parents[1]


def chapters() -> list[Path]:
    book = yaml.safe_load((ROOT / "_quarto.yml").read_text())["book"]
    return [ROOT / entry for entry in (*book["chapters"], *book.get("appendices", []))]


def figure_labels(qmd: Path) -> list[str]:
    return re.findall(r"^#\|\s*label:\s*(fig-[\w-]+)", qmd.read_text(), flags=re.M)


def page_of(book, qmd: Path) -> Path:
    matches = [page for page in book.pages if page.stem == ("index" if qmd.stem == "index" else qmd.stem)]
    assert matches, f"no page for {qmd.name} among {[page.name for page in book.pages]}"
    return matches[0]


def has_image(figure_html: str, page_folder: Path) -> bool:
    """An <img> embedded as a data URI (ex4's renderer) or pointing at a file beside the page (Quarto)."""
    for source in re.findall(r'<img[^>]+src="([^"]+)"', figure_html):
        if source.startswith("data:image/") or (page_folder / source).is_file():
            return True
    return False


def test_every_chapter_has_a_page(smoke_book):
    assert smoke_book.html_index.is_file()
    for qmd in chapters():
        assert page_of(smoke_book, qmd).is_file()


@pytest.mark.parametrize("qmd", chapters(), ids=lambda path: path.stem)
def test_chapter_page_is_complete_and_clean(smoke_book, qmd):
    html = page_of(smoke_book, qmd).read_text(encoding="utf-8")
    for label in figure_labels(qmd):
        match = re.search(rf'id="{label}".*?</figure>', html, flags=re.S)
        assert match, f"{qmd.name}: figure {label} missing"
        assert has_image(match.group(0), page_of(smoke_book, qmd).parent), f"{qmd.name}: {label} has no image"
    text = re.sub(r"<[^>]+>", " ", html)
    for marker in ("Traceback", "Error:", "Exception", "ex4: error", "?@", "??"):
        assert marker not in text, f"{qmd.name}: '{marker}' in the page"
    assert not re.search(r"(?<![\w/])@(fig|tbl|sec|eq)-", text), f"{qmd.name}: unresolved cross-reference"


def test_pdf_has_every_figure(smoke_book):
    from pypdf import PdfReader

    assert smoke_book.pdf is not None and smoke_book.pdf.stat().st_size > 10_000
    reader = PdfReader(str(smoke_book.pdf))
    images = sum(len(page.images) for page in reader.pages)
    expected = sum(len(figure_labels(qmd)) for qmd in chapters())
    assert images >= expected, f"PDF has {images} images, the chapters declare {expected} figures"
    text = "".join(page.extract_text() or "" for page in reader.pages)
    assert "Traceback" not in text and "?@" not in text


def test_book_says_which_renderer_built_it(smoke_book):
    appendix = page_of(smoke_book, ROOT / "report" / "appendix.qmd").read_text(encoding="utf-8")
    text = html.unescape(re.sub(r"<[^>]+>", "", appendix))
    # ex4's pages carry its full name; Quarto's generator tag reads "quarto-1.9.x"
    expected = smoke_book.renderer if smoke_book.renderer.startswith("ex4") else "quarto "
    assert expected in text, f"the appendix does not name {expected!r}"

