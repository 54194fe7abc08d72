"""The Quarto features the ex4 renderer implements, written down once so a test can hold the book to them.

A chapter or `_quarto.yml` that uses anything else would render differently under `quarto render` and
`ex4 render`; `tests/test_quarto_parity.py` reads the project's files and fails on the first such use. Values
in `FIXED` are the only ones ex4 implements for that key (its typst template is A4, its HTML uses MathML, its
kernels run in the project folder).
"""

from __future__ import annotations

from ex4.render.notebook import DEFAULT_OPTIONS

# `#|` cell options: the ones `notebook.effective_options` layers, plus those `outputs` reads
CELL_OPTIONS = frozenset(DEFAULT_OPTIONS) | {"label", "fig-cap", "tbl-cap", "tags"}
OUTPUT_VALUES = (True, False, "asis")
# `execute:` keys in `_quarto.yml` or a chapter's front matter (`notebook.effective_options`)
EXECUTE_KEYS = frozenset({"echo", "eval", "output", "include", "warning"})
# cross-reference prefixes (`assets/crossref.lua`, KIND_PREFIXES)
CROSSREF_PREFIXES = frozenset({"fig", "tbl", "sec", "eq"})
# callouts: boxed in HTML (`assets/book.css`) and in typst (`assets/crossref.lua`)
CALLOUTS = frozenset({"note", "tip", "warning", "caution", "important"})
ENGINES = frozenset({"python"})
FRONT_MATTER = frozenset({"title", "execute", "format", "jupyter"})
PROJECT_KEYS = {
    "project": frozenset({"type", "output-dir", "execute-dir"}),
    "book": frozenset({"title", "subtitle", "author", "date", "output-file", "chapters", "appendices"}),
    "execute": EXECUTE_KEYS,
    "format.html": frozenset({"toc", "number-sections", "html-math-method", "code-fold", "code-summary"}),
    "format.typst": frozenset({"toc", "number-sections", "papersize"}),
}
TOP_LEVEL = frozenset({"project", "book", "jupyter", "execute", "format"})
FORMATS = frozenset({"html", "typst"})
FIXED = {"project.type": "book", "project.execute-dir": "project", "jupyter": "python3",
         "format.html.html-math-method": "mathml", "format.typst.papersize": "a4"}
