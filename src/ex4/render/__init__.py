"""The report renderer: `.qmd` chapters → executed notebooks → HTML book + PDF, with or without Quarto.

It knows nothing of the machine-learning code: chapters call ex4 themselves; the renderer only runs them.
"""

from ex4.render.book import BookResult, read_book, render_book, render_chapter
from ex4.render.parameters import parse_param_assignment

__all__ = ["BookResult", "parse_param_assignment", "read_book", "render_book", "render_chapter"]
