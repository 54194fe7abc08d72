"""Turn an executed chapter notebook back into Markdown: prose, code (per `echo`), and cell outputs.

Figures become PNG files beside the Markdown; HTML tables (pandas) become Markdown tables so that the same
text feeds both the HTML and the PDF; stderr and warnings are dropped unless a cell sets `warning: true`.
A cell labelled `fig-…`/`tbl-…` is wrapped in a Div carrying its caption, which the cross-reference
filter numbers.

Why not nbconvert's `MarkdownExporter` with `TagRemovePreprocessor` and `ExtractOutputPreprocessor`: they would
give another book. The exporter writes a notebook's cells, but the book is the chapter's *current* text with the
executed values put back (a cached execution serves an edited chapter, see `ex4.render.cache`); Quarto's cell
options (`echo`, `output: asis`, `include`, `warning`, `code-fold`, captions on labelled floats) have no
preprocessor; pandas' HTML tables must become Markdown tables for the PDF; and the image widths come from the
retina metadata. Tag removal here is one line (skip the setup, recorder and injected-parameters cells), so
nbconvert (not otherwise a dependency) would add a package tree and replace almost nothing.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat

from ex4.render.notebook import (INLINE_MIME, RECORD_TAG, SETUP_TAG, effective_options, executed_cells,
                                 fill_inline)
from ex4.render.project import ChapterEntry
from ex4.render.qmd import Chapter

MAX_FIGURE_WIDTH_IN = 6.2  # the PDF's text width; HTML scales figures down with CSS anyway
_STYLE = re.compile(r"<style[^>]*>.*?</style>", re.S | re.I)
_IMAGE_TYPES = {"image/png": "png", "image/svg+xml": "svg", "image/jpeg": "jpg"}


@dataclass
class ChapterMarkdown:
    text: str
    images: list[Path]


def chapter_markdown(chapter: Chapter, executed: nbformat.NotebookNode, entry: ChapterEntry | None,
                     build_dir: Path, book_execute: dict[str, Any] | None = None,
                     book_html: dict[str, Any] | None = None, preamble: str = "") -> ChapterMarkdown:
    """Markdown for one chapter, starting with the chapter marker the cross-reference filter reads."""
    files_dir = build_dir / f"{_stem(chapter, entry)}_files"
    writer = _Writer(files_dir, build_dir)
    title = chapter.front_matter.get("title")
    blocks: list[str] = [_marker(entry), f"# {str(title).strip()}" if title else ""]
    if preamble:
        blocks.append(preamble)
    ran = executed_by_cell(chapter, executed)
    for index, source_cell in enumerate(chapter.cells):
        if source_cell.kind == "markdown":
            if index in ran:
                blocks.append(fill_inline(source_cell, _inline_values(ran[index])))
            else:
                blocks.append(source_cell.source)
            continue
        options = effective_options(chapter, source_cell, book_execute, book_html)
        if options.get("include") is False:
            continue
        code = _code_block(source_cell.code_without_options, options) if options.get("echo") else ""
        produced = [] if index not in ran or options.get("output") is False else writer.outputs(ran[index], options)
        blocks.append(_wrap_float(code, produced, options))
    text = "\n\n".join(block for block in blocks if block and block.strip()) + "\n"
    return ChapterMarkdown(text=text, images=writer.images)


def executed_by_cell(chapter: Chapter, executed: nbformat.NotebookNode) -> dict[int, nbformat.NotebookNode]:
    """Chapter cell index -> its executed notebook cell, matched by order (`notebook.executed_cells`).

    Matching by order, not by the index stored in the notebook, lets a cached notebook serve a chapter whose
    prose gained or lost paragraphs: the cells that ran are the same, in the same order (the cache key says so).
    """
    ran = [cell for cell in executed.cells
           if cell.cell_type == "code" and cell.get("metadata", {}).get("ex4") is not None
           and not {SETUP_TAG, RECORD_TAG, "injected-parameters"} & set(cell.get("metadata", {}).get("tags", []))]
    wanted = executed_cells(chapter)
    if len(ran) != len(wanted):
        raise ValueError(f"{chapter.path}: the executed notebook has {len(ran)} cells that ran, the chapter {len(wanted)}")
    return dict(zip(wanted, ran))


def _inline_values(cell: nbformat.NotebookNode) -> list[str]:
    for output in cell.get("outputs", []):
        data = output.get("data", {})
        if INLINE_MIME in data:
            return [str(value) for value in data[INLINE_MIME]]
    raise ValueError("an inline cell without its values (executed by an older renderer)")


def _stem(chapter: Chapter, entry: ChapterEntry | None) -> str:
    if entry is None:
        return chapter.path.stem
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", entry.relative.rsplit(".", 1)[0])


def _marker(entry: ChapterEntry | None) -> str:
    if entry is None:
        return '::: {.ex4-chapter-start number="" page="index.html" appendix="false"}\n:::'
    appendix = "true" if entry.appendix else "false"
    return (f'::: {{.ex4-chapter-start number="{entry.number}" page="{entry.page}" appendix="{appendix}" '
            f'source="{entry.relative}"}}\n:::')


def _fence(text: str) -> str:
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def _code_block(code: str, options: dict[str, Any]) -> str:
    if not code.strip():
        return ""
    fence = _fence(code)
    block = f"{fence} {{.python .cell-code}}\n{code}\n{fence}"
    fold = options.get("code-fold")
    if fold in (True, "true", "show"):
        summary = str(options.get("code-summary") or "Code").replace('"', '\\"')
        is_open = "true" if fold == "show" else "false"
        return f'::: {{.ex4-fold summary="{summary}" open="{is_open}"}}\n{block}\n:::'
    return block


def _attribute(text: str) -> str:
    return '"' + " ".join(str(text).split()).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _wrap_float(code: str, produced: list[str], options: dict[str, Any]) -> str:
    label = str(options.get("label") or "")
    body = "\n\n".join(part for part in produced if part.strip())
    if label.startswith(("fig-", "tbl-")) and body:
        caption = options.get("fig-cap") if label.startswith("fig-") else options.get("tbl-cap")
        cap = f" ex4-cap={_attribute(caption)}" if caption else ""
        body = f"::: {{#{label}{cap}}}\n{body}\n:::"
    elif options.get("fig-cap") and body:
        body = f"::: {{.ex4-float ex4-kind=\"fig\" ex4-cap={_attribute(options['fig-cap'])}}}\n{body}\n:::"
    elif options.get("tbl-cap") and body:
        body = f"::: {{.ex4-float ex4-kind=\"tbl\" ex4-cap={_attribute(options['tbl-cap'])}}}\n{body}\n:::"
    return "\n\n".join(part for part in (code, body) if part)


def _text(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


class _Writer:
    """Writes a cell's outputs as Markdown, saving images under the chapter's `_files` folder."""

    def __init__(self, files_dir: Path, build_dir: Path):
        self.files_dir = files_dir
        self.build_dir = build_dir
        self.images: list[Path] = []

    def outputs(self, cell: nbformat.NotebookNode, options: dict[str, Any]) -> list[str]:
        asis = options.get("output") == "asis"
        parts: list[str] = []
        streams: dict[str, str] = {}
        for output in cell.get("outputs", []):
            kind = output.get("output_type")
            if kind == "stream":
                name = output.get("name", "stdout")
                if name == "stderr" and not options.get("warning"):
                    continue
                streams[name] = streams.get(name, "") + _text(output.get("text", ""))
                continue
            parts.extend(self._flush_streams(streams, asis))
            if kind in ("display_data", "execute_result"):
                part = self._rich(output, asis)
                if part:
                    parts.append(part)
            # "error" outputs never reach here: a raising cell stops the build
        parts.extend(self._flush_streams(streams, asis))
        return parts

    def _flush_streams(self, streams: dict[str, str], asis: bool) -> list[str]:
        parts = []
        for name in ("stdout", "stderr"):
            text = streams.pop(name, "")
            if not text.strip():
                continue
            if asis and name == "stdout":
                parts.append(text)
            else:
                parts.append(_output_block(text, name))
        return parts

    def _rich(self, output: nbformat.NotebookNode, asis: bool) -> str:
        data = output.get("data", {})
        metadata = output.get("metadata", {})
        if "text/markdown" in data:
            return _text(data["text/markdown"])
        for mime, extension in _IMAGE_TYPES.items():
            if mime in data:
                return self._image(data[mime], mime, extension, metadata.get(mime, {}))
        html = _text(data.get("text/html", ""))
        if "<table" in html.lower():
            return _html_table(html)
        if "text/plain" in data:
            text = _text(data["text/plain"])
            return text if asis else _output_block(text, "result")
        return ""

    def _image(self, payload: Any, mime: str, extension: str, metadata: dict[str, Any]) -> str:
        self.files_dir.mkdir(parents=True, exist_ok=True)
        path = self.files_dir / f"figure-{len(self.images) + 1}.{extension}"
        if mime == "image/svg+xml":
            path.write_text(_text(payload), encoding="utf-8")
        else:
            path.write_bytes(base64.b64decode(_text(payload)))
        self.images.append(path)
        width_in = _display_width_inches(path, metadata)
        size = f"{{width={width_in:.2f}in}}" if width_in else ""
        return f"![]({path.relative_to(self.build_dir).as_posix()}){size}"


def _display_width_inches(path: Path, metadata: dict[str, Any]) -> float | None:
    """Width the figure was meant to be shown at (retina PNGs carry it in metadata), capped to the page."""
    width_px = metadata.get("width")
    if width_px is None and path.suffix == ".png":
        from PIL import Image

        with Image.open(path) as image:
            dpi = image.info.get("dpi", (96, 96))[0] or 96
            width_px = image.width * 96 / float(dpi)
    if not width_px:
        return None
    return min(float(width_px) / 96.0, MAX_FIGURE_WIDTH_IN)


def _output_block(text: str, kind: str) -> str:
    text = text.rstrip("\n")
    fence = _fence(text)
    return f"{fence} {{.ex4-output .{kind}}}\n{text}\n{fence}"


def _html_table(html: str) -> str:
    """An HTML table (pandas' repr) as a Markdown table, via pandoc, so the PDF gets it too."""
    import pypandoc

    cleaned = _STYLE.sub("", html)
    return pypandoc.convert_text(
        cleaned, "markdown-raw_html-raw_attribute-native_divs-native_spans-fenced_divs-bracketed_spans"
        "-simple_tables-multiline_tables-grid_tables",
        format="html", extra_args=["--wrap=none"]).strip()

