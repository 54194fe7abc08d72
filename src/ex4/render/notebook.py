"""Turn a parsed chapter into a Jupyter notebook that Papermill can parameterize and execute.

Code cells keep their `#|` option lines, so a traceback's "line N" of a cell maps straight back to the .qmd.
Markdown with inline `` `{python} expr` `` becomes a code cell that displays the finished Markdown, so
inline values are computed by the kernel, in order, like every other output. The same display also carries
the values alone (`INLINE_MIME`): the book is assembled from those and the chapter's *current* prose, so an
executed notebook stays valid when only the words around the expressions change (see `ex4.render.cache`).

Reading `.qmd` into cells and inline expressions into code is ex4's own: no library turns Quarto's inline
`{python}` syntax into notebook cells (Quarto does it inside its own TypeScript engine).
"""

from __future__ import annotations

from typing import Any

import nbformat

from ex4.render.qmd import INLINE_CODE, Chapter, Cell, cell_tags

SETUP_TAG = "ex4-setup"
INLINE_TAG = "ex4-inline"
RECORD_TAG = "ex4-record"  # the cells that note what the chapter reads (only when executed for the cache)
INLINE_MIME = "application/vnd.ex4.inline+json"
READS_MIME = "application/vnd.ex4.reads+json"

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


def _ex4_markdown(parts, values=()):
    from IPython.display import display
    display({"text/markdown": "".join(parts), "application/vnd.ex4.inline+json": [parts[i] for i in values]},
            raw=True)


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


def executed_cells(chapter: Chapter) -> list[int]:
    """Indices of the chapter cells the kernel runs, in order: code cells not set to `eval: false`, and
    Markdown with inline expressions. Their executed notebook cells come in the same order."""
    return [index for index, cell in enumerate(chapter.cells)
            if (cell.kind == "code" and cell.options.get("eval", True) is not False) or cell.has_inline_code]


def build_notebook(chapter: Chapter, record: bool = False) -> nbformat.NotebookNode:
    """One notebook cell per chapter cell, plus a hidden setup cell first (before the parameters cell).

    `record=True` adds the chapter cache's recorder: a first cell that starts noting every file the kernel
    reads, lists or looks for, and a last one that displays those notes with the ex4 modules and library
    versions the chapter loaded (`READS_MIME`)."""
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.metadata["language_info"] = {"name": "python"}
    notebook.metadata["ex4"] = {"source": str(chapter.path)}
    setup = nbformat.v4.new_code_cell(_SETUP_SOURCE)
    setup.metadata["tags"] = [SETUP_TAG]
    if record:
        start = nbformat.v4.new_code_cell(_RECORD_START)
        start.metadata["tags"] = [RECORD_TAG]
        notebook.cells.append(start)
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
    if record:
        finish = nbformat.v4.new_code_cell(_RECORD_FINISH)
        finish.metadata["tags"] = [RECORD_TAG]
        notebook.cells.append(finish)
    return notebook


def inline_cell_source(cell: Cell) -> tuple[str, list[int]]:
    """Python that displays the cell's Markdown with each inline expression's value put in place.

    Returns the source and, for every source line, the .qmd line it came from (for error messages).
    """
    text = cell.source
    lines = ["_ex4_markdown(["]
    origin = [cell.line]
    values: list[int] = []
    position = 0
    for match in INLINE_CODE.finditer(text):
        before = text[position:match.start()]
        if before:
            lines.append(f"    {before!r},")
            origin.append(cell.line + text.count("\n", 0, position))
        values.append(len(lines) - 1)
        lines.append(f"    _ex4_inline({match.group('expr').strip()}),")
        origin.append(cell.line + text.count("\n", 0, match.start()))
        position = match.end()
    if position < len(text):
        lines.append(f"    {text[position:]!r},")
        origin.append(cell.line + text.count("\n", 0, position))
    lines.append(f"], {tuple(values)!r})")
    origin.append(origin[-1])
    return "\n".join(lines), origin


def inline_expressions(cell: Cell) -> list[str]:
    """The inline expressions of a Markdown cell, in order (what its executed cell computes)."""
    return [match.group("expr").strip() for match in INLINE_CODE.finditer(cell.source)]


def fill_inline(cell: Cell, values: list[str]) -> str:
    """The cell's current Markdown with each inline expression replaced by its computed value."""
    pieces = INLINE_CODE.split(cell.source)  # text, expr, text, expr, ..., text
    out = []
    for position, piece in enumerate(pieces):
        out.append(piece if position % 2 == 0 else values[position // 2])
    return "".join(out)


# The recorder of the chapter cache. An audit hook (PEP 578) sees every `open` and directory listing in the
# kernel; `os.stat` is wrapped so that a lookup of a file that is absent (weights that may appear later) is
# noted too. Library folders and the kernel's own files are left out; the renderer sorts the rest.
_RECORD_START = '''\
# Added by the ex4 renderer (chapter cache): note what this chapter reads.
def _ex4_recorder():
    import os, site, sys, tempfile
    skip = {os.path.realpath(folder) for folder in (sys.prefix, sys.base_prefix, sys.exec_prefix, *site.getsitepackages(),
            site.getusersitepackages(), "/proc", "/sys", "/dev", "/usr", "/etc", "/lib", "/lib64", "/bin", "/run")}
    try:
        skip.add(os.path.realpath(get_ipython().profile_dir.location))
    except Exception:
        pass
    skip = tuple(folder.rstrip(os.sep) + os.sep for folder in skip)
    notes = {"opened": set(), "listed": set(), "looked": set()}
    recording = [True]

    def note(kind, path):
        try:
            if not recording[0] or isinstance(path, int):
                return
            path = os.path.abspath(os.fsdecode(path))
            if not path.startswith(skip) and "__pycache__" not in path:
                notes[kind].add(path)
        except Exception:
            pass

    importers = ("importlib._bootstrap_external", "_frozen_importlib_external", "zipimport", "importlib.metadata")

    def hook(event, args):
        if event not in ("open", "os.listdir", "os.scandir"):
            return
        try:  # the import system and importlib.metadata list sys.path folders: not the chapter's inputs
            if sys._getframe(1).f_globals.get("__name__") in importers:
                return
        except ValueError:
            pass
        if event == "open":
            path, mode, flags = args
            if mode is None:
                if flags & (os.O_WRONLY | os.O_RDWR):
                    return
            elif any(letter in mode for letter in "wax+"):
                return
            note("opened", path)
        else:
            note("listed", args[0] if args and args[0] is not None else ".")

    real_stat = os.stat

    def stat(path, *args, **kwargs):
        note("looked", path)
        return real_stat(path, *args, **kwargs)

    sys.addaudithook(hook)
    os.stat = stat
    return notes, recording


_ex4_notes = _ex4_recorder()
'''

_RECORD_FINISH = '''\
# Added by the ex4 renderer (chapter cache): what this chapter read, the ex4 modules and libraries it used.
def _ex4_report(notes, recording):
    import importlib.metadata, sys
    from IPython.display import display
    recording[0] = False  # what follows (finding the distributions) is the recorder's own reading
    snapshot = {kind: sorted(paths) for kind, paths in notes.items()}
    import os, site
    libraries = tuple(os.path.realpath(folder).rstrip(os.sep) + os.sep for folder in (
        sys.prefix, sys.base_prefix, sys.exec_prefix, *site.getsitepackages(), site.getusersitepackages()))
    # every ex4 module, and any other Python module of the project (a helper beside the chapters)
    modules = sorted({file for name, module in list(sys.modules.items())
                      for file in [getattr(module, "__file__", None) or ""]
                      if file.endswith(".py") and (name == "ex4" or name.startswith("ex4.")
                                                   or not os.path.realpath(file).startswith(libraries))})
    owners = importlib.metadata.packages_distributions()
    versions = {}
    for top in {name.split(".")[0] for name in list(sys.modules)}:
        for distribution in owners.get(top, []):
            try:
                versions[distribution] = importlib.metadata.version(distribution)
            except importlib.metadata.PackageNotFoundError:
                pass
    display({"''' + READS_MIME + '''": {**snapshot, "modules": modules, "versions": versions}}, raw=True)


_ex4_report(*_ex4_notes)
'''
