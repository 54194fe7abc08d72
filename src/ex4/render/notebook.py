"""Turn a parsed chapter into a Jupyter notebook that Papermill can parameterize and execute.

Code cells keep their `#|` option lines, so a traceback's "line N" of a cell maps straight back to the .qmd.
Markdown with inline `` `{python} expr` `` becomes a code cell that displays the finished Markdown, so
inline values are computed by the kernel, in order, like every other output.
"""

from __future__ import annotations

from typing import Any

import nbformat

from ex4.render.qmd import INLINE_CODE, Chapter, Cell, cell_tags

SETUP_TAG = "ex4-setup"
INLINE_TAG = "ex4-inline"

# Quarto defaults, except `warning`: stderr and warnings stay out of the book unless a cell asks for them.
DEFAULT_OPTIONS: dict[str, Any] = {"echo": True, "eval": True, "output": True, "include": True,
                                   "warning": False, "code-fold": False, "code-summary": "Code"}

_SETUP_SOURCE = '''\
# Added by the ex4 renderer: helpers for inline `{python}` expressions and crisp figures.
def _ex4_inline(value):
    """Text of an inline expression: its Markdown form when it has one, else str()."""
    if hasattr(value, "_repr_markdown_"):
        text = value._repr_markdown_()
        if isinstance(text, tuple):
            text = text[0]
        if text is not None:
            return str(text)
    return str(value)


def _ex4_markdown(parts):
    from IPython.display import Markdown, display
    display(Markdown("".join(parts)))


try:
    get_ipython().run_line_magic("config", "InlineBackend.figure_formats = ['retina']")
except Exception:
    pass
'''


def effective_options(chapter: Chapter, cell: Cell, book_execute: dict[str, Any] | None = None,
                      book_html: dict[str, Any] | None = None) -> dict[str, Any]:
    """Cell options after defaults, _quarto.yml `execute:`/`format: html:`, and the chapter's front matter."""
    front = chapter.front_matter
    options = dict(DEFAULT_OPTIONS)
    layers = (book_execute, _html_format(book_html), front.get("execute"), _html_format(_front_matter_html(chapter)),
              _html_format(front))
    for layer in layers:
        if isinstance(layer, dict):
            options.update({key: value for key, value in layer.items() if key in DEFAULT_OPTIONS})
    options.update(cell.options)
    return options


def _front_matter_html(chapter: Chapter) -> dict[str, Any]:
    formats = chapter.front_matter.get("format")
    if isinstance(formats, dict) and isinstance(formats.get("html"), dict):
        return formats["html"]
    return {}


def _html_format(html: dict[str, Any] | None) -> dict[str, Any]:
    html = html or {}
    return {key: html[key] for key in ("code-fold", "code-summary") if key in html}


def build_notebook(chapter: Chapter) -> nbformat.NotebookNode:
    """One notebook cell per chapter cell, plus a hidden setup cell first (before the parameters cell)."""
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.metadata["language_info"] = {"name": "python"}
    notebook.metadata["ex4"] = {"source": str(chapter.path)}
    setup = nbformat.v4.new_code_cell(_SETUP_SOURCE)
    setup.metadata["tags"] = [SETUP_TAG]
    notebook.cells.append(setup)
    for index, cell in enumerate(chapter.cells):
        if cell.kind == "code":
            if cell.options.get("eval", True) is False:
                new = nbformat.v4.new_markdown_cell("")
                new.metadata["ex4"] = {"cell": index, "line": cell.line, "not_evaluated": True}
            else:
                new = nbformat.v4.new_code_cell(cell.source)
                new.metadata["tags"] = cell_tags(cell)
                lines = list(range(cell.line, cell.line + max(1, len(cell.source.splitlines()))))
                new.metadata["ex4"] = {"cell": index, "line": cell.line, "lines": lines}
        elif cell.has_inline_code:
            source, lines = inline_cell_source(cell)
            new = nbformat.v4.new_code_cell(source)
            new.metadata["tags"] = [INLINE_TAG]
            new.metadata["ex4"] = {"cell": index, "line": cell.line, "lines": lines}
        else:
            new = nbformat.v4.new_markdown_cell(cell.source)
            new.metadata["ex4"] = {"cell": index, "line": cell.line}
        notebook.cells.append(new)
    return notebook


def inline_cell_source(cell: Cell) -> tuple[str, list[int]]:
    """Python that displays the cell's Markdown with each inline expression's value put in place.

    Returns the source and, for every source line, the .qmd line it came from (for error messages).
    """
    text = cell.source
    lines = ["_ex4_markdown(["]
    origin = [cell.line]
    position = 0
    for match in INLINE_CODE.finditer(text):
        before = text[position:match.start()]
        if before:
            lines.append(f"    {before!r},")
            origin.append(cell.line + text.count("\n", 0, position))
        lines.append(f"    _ex4_inline({match.group('expr').strip()}),")
        origin.append(cell.line + text.count("\n", 0, match.start()))
        position = match.end()
    if position < len(text):
        lines.append(f"    {text[position:]!r},")
        origin.append(cell.line + text.count("\n", 0, position))
    lines.append("])")
    origin.append(origin[-1])
    return "\n".join(lines), origin
