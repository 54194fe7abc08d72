"""Pandoc and Typst steps: chapter Markdown → one book AST → numbered and cross-referenced → HTML pages + PDF.

The whole book goes through the cross-reference filter at once, so figure numbers and `@fig-…` links agree
across chapters; the result is then split into one self-contained HTML page per chapter.

What pandoc does itself: the table of contents of each page (`--toc`), section wrappers, MathML, embedding
CSS and images (`--embed-resources`), the typst writer; numbering and cross-references are a Lua filter
(`assets/crossref.lua`), not Python. The page split is kept in Python: pandoc's `chunkedhtml` writer (and
`--split-level`) names pages after section ids and writes its own navigation, but the book's pages must be
named after their sources as Quarto names them (`report/section6-1.html`), links must cross pages by the
labels the filter numbered, and every page is a standalone file with the book's sidebar. The typst book
template (`assets/book.typ`) is ex4's own: no library ships a Quarto-like typst book.
"""

from __future__ import annotations

import html
import json
import os
import subprocess
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ex4.errors import Ex4Error

READER = "markdown"


def asset(name: str) -> Path:
    return Path(str(resources.files("ex4.render") / "assets" / name))


def pandoc_binary() -> str:
    import pypandoc

    return pypandoc.get_pandoc_path()


def pandoc_version() -> str:
    import pypandoc

    return pypandoc.get_pandoc_version()


def typst_version() -> str:
    from importlib.metadata import version

    return version("typst")


def run_pandoc(args: list[str], stdin: str | None = None, cwd: Path | None = None,
               warnings: list[str] | None = None) -> str:
    result = subprocess.run([pandoc_binary(), *args], input=stdin, capture_output=True, text=True,
                            cwd=str(cwd) if cwd else None)
    if result.returncode != 0:
        detail = " ".join(result.stderr.split())[:400]
        raise Ex4Error(f"pandoc failed ({' '.join(args[:4])} ...): {detail}")
    if warnings is not None:
        warnings.extend(line for line in result.stderr.splitlines() if line.strip())
    return result.stdout


def markdown_ast(text: str, cwd: Path) -> dict[str, Any]:
    return json.loads(run_pandoc(["-f", READER, "-t", "json"], stdin=text, cwd=cwd))


def join_asts(asts: list[dict[str, Any]]) -> dict[str, Any]:
    """One document holding every chapter's blocks in order (each starts with its chapter marker)."""
    blocks: list[Any] = []
    for ast in asts:
        blocks.extend(ast["blocks"])
    return {"pandoc-api-version": asts[0]["pandoc-api-version"], "meta": {}, "blocks": blocks}


def crossref(ast: dict[str, Any], target: str, cwd: Path, registry_out: Path | None = None,
             registry_in: Path | None = None, warnings: list[str] | None = None) -> dict[str, Any]:
    """Number the book and resolve `@fig-`/`@tbl-`/`@sec-`/`@eq-` references for `target` (html or typst)."""
    args = ["-f", "json", "-t", "json", "--lua-filter", str(asset("crossref.lua")), "-M", f"ex4-target={target}"]
    if registry_out is not None:
        args += ["-M", f"ex4-registry-out={registry_out}"]
    if registry_in is not None and registry_in.is_file():
        args += ["-M", f"ex4-registry-in={registry_in}"]
    return json.loads(run_pandoc(args, stdin=json.dumps(ast), cwd=cwd, warnings=warnings))


def is_chapter_marker(block: dict[str, Any]) -> bool:
    return block.get("t") == "Div" and "ex4-chapter-start" in block["c"][0][1]


def marker_attributes(block: dict[str, Any]) -> dict[str, str]:
    return dict(block["c"][0][2])


def split_chapters(ast: dict[str, Any]) -> list[tuple[dict[str, str], list[Any]]]:
    """The book AST cut at its chapter markers: (marker attributes, blocks) per chapter."""
    chapters: list[tuple[dict[str, str], list[Any]]] = []
    for block in ast["blocks"]:
        if is_chapter_marker(block):
            chapters.append((marker_attributes(block), []))
        elif chapters:
            chapters[-1][1].append(block)
    return chapters


@dataclass
class PageLink:
    page: str  # path inside the output folder
    label: str  # plain text, e.g. "3  Section 6.1" or "Preface"
    number: str
    appendix: bool


def relative(page: str, from_page: str) -> str:
    return os.path.relpath(page, os.path.dirname(from_page) or ".").replace(os.sep, "/")


def sidebar_html(book_title: str, pages: list[PageLink], current: str, pdf_name: str | None,
                 renderer: str) -> str:
    home = relative(pages[0].page, current)
    items = []
    appendix_open = False
    for link in pages:
        if link.appendix and not appendix_open:
            items.append('<li class="part">Appendices</li>')
            appendix_open = True
        number = f'<span class="chapter-number">{html.escape(link.number)}</span> ' if link.number else ""
        active = ' class="active" aria-current="page"' if link.page == current else ""
        items.append(f'<li><a href="{html.escape(relative(link.page, current))}"{active}>{number}'
                     f'<span class="chapter-title">{html.escape(link.label)}</span></a></li>')
    pdf = (f'<p class="download"><a href="{html.escape(relative(pdf_name, current))}">Download PDF</a></p>'
           if pdf_name else "")
    return (f'<p class="book-title"><a href="{html.escape(home)}">{html.escape(book_title)}</a></p>'
            f'<ul class="chapters">{"".join(items)}</ul>{pdf}'
            f'<p class="renderer">Built by {html.escape(renderer)}</p>')


def pagenav_html(pages: list[PageLink], current: str) -> str:
    index = next(i for i, link in enumerate(pages) if link.page == current)
    parts = []
    if index > 0:
        previous = pages[index - 1]
        parts.append(f'<a class="prev" rel="prev" href="{html.escape(relative(previous.page, current))}">'
                     f'← {html.escape(_label(previous))}</a>')
    if index + 1 < len(pages):
        following = pages[index + 1]
        parts.append(f'<a class="next" rel="next" href="{html.escape(relative(following.page, current))}">'
                     f'{html.escape(_label(following))} →</a>')
    return f'<nav class="page-navigation">{"".join(parts)}</nav>'


def _label(link: PageLink) -> str:
    return f"{link.number}  {link.label}" if link.number else link.label


def title_block_html(title: str, subtitle: str | None, authors: list[str], date: str | None) -> str:
    parts = [f'<h1 class="title">{html.escape(title)}</h1>']
    if subtitle:
        parts.append(f'<p class="subtitle">{html.escape(subtitle)}</p>')
    if authors:
        parts.append(f'<p class="author">{html.escape(", ".join(authors))}</p>')
    if date:
        parts.append(f'<p class="date">{html.escape(date)}</p>')
    return f'<header id="title-block-header">{"".join(parts)}</header>'


def write_html_page(api_version: Any, blocks: list[Any], out_path: Path, cwd: Path, page_title: str,
                    variables: dict[str, str]) -> None:
    """A standalone page: CSS, images and math all inside the file (no request leaves the machine)."""
    document = {"pandoc-api-version": api_version, "meta": {}, "blocks": blocks}
    out_path.parent.mkdir(parents=True, exist_ok=True)
    args = ["-f", "json", "-t", "html5", "--standalone", "--embed-resources", "--mathml",
            "--template", str(asset("page.html")), "--css", str(asset("book.css")),
            "--toc", "--toc-depth=3", "--section-divs", "--wrap=none", "-M", f"pagetitle={page_title}", "-o", str(out_path)]
    for name, value in variables.items():
        args += ["-V", f"{name}={value}"]
    run_pandoc(args, stdin=json.dumps(document), cwd=cwd)


def write_pdf(ast: dict[str, Any], out_pdf: Path, cwd: Path, metadata: dict[str, Any]) -> None:
    """Typst source via pandoc's typst writer, compiled by the `typst` wheel (no TeX, no network)."""
    import typst

    typ_path = cwd / (out_pdf.stem + ".typ")
    meta_path = cwd / (out_pdf.stem + ".meta.json")
    meta_path.write_text(json.dumps(metadata), encoding="utf-8")
    run_pandoc(["-f", "json", "-t", "typst", "--standalone", "--template", str(asset("book.typ")),
                "--metadata-file", str(meta_path), "-o", str(typ_path)], stdin=json.dumps(ast), cwd=cwd)
    out_pdf.parent.mkdir(parents=True, exist_ok=True)
    try:
        typst.compile(str(typ_path), output=str(out_pdf), root=str(cwd))
    except Exception as error:  # typst raises its own error type with the source location
        detail = " ".join(str(error).split())[:400]
        raise Ex4Error(f"typst could not compile the PDF ({typ_path.name}): {detail}") from None
