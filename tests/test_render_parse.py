"""Reading chapters: front matter, `#|` options, inline code, notebooks, parameters and the book config.

No kernel runs here; these are the fast checks of everything the renderer decides before executing.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from ex4.errors import Ex4Error
from ex4.render import parse_param_assignment
from ex4.render.execute import _line_within_cell
from ex4.render.notebook import (INLINE_TAG, SETUP_TAG, build_notebook, effective_options, fill_inline,
                                 inline_cell_source)
from ex4.render.parameters import (book_parameters, canonical_json, chapter_parameters, declared_parameters,
                                   parameter_hash)
from ex4.render.project import read_book_config
from ex4.render.qmd import parse_qmd
from ex4.render.quarto import summarise_failure

ROOT = Path(__file__).resolve().parents[1]

CHAPTER = '''\
---
title: "Learning rates"
execute:
  echo: true
---

```{python}
#| tags: [parameters]
seed = 0
mlp_lr: float = 0.001
```

Some prose with `{python} mlp_lr * 2` and `{python} "text"`.

```python
# an ordinary fenced block: shown, never run
print("not executed")
```

```{python}
#| label: fig-curve
#| fig-cap: "A curve."
#| echo: false
x = 1
```
'''


def chapter(tmp_path: Path, text: str = CHAPTER, name: str = "chapter.qmd"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return parse_qmd(path)


def test_front_matter_cells_options_and_lines(tmp_path):
    parsed = chapter(tmp_path)
    assert parsed.front_matter["title"] == "Learning rates"
    assert parsed.title == "Learning rates"
    kinds = [cell.kind for cell in parsed.cells]
    assert kinds == ["code", "markdown", "code"]
    parameters, prose, figure = parsed.cells
    assert parameters.options == {"tags": ["parameters"]} and parameters.line == 8
    assert figure.options == {"label": "fig-curve", "fig-cap": "A curve.", "echo": False}
    assert figure.code_without_options == "x = 1"
    assert prose.line == 13 and prose.has_inline_code
    # the plain ```python block stays Markdown, verbatim
    assert 'print("not executed")' in prose.source and "```python" in prose.source


def test_title_falls_back_to_first_heading(tmp_path):
    parsed = chapter(tmp_path, "# Data and splits {#sec-data}\n\nText.\n")
    assert parsed.title == "Data and splits"


@pytest.mark.parametrize("text, fragment", [
    ("```{r}\nx <- 1\n```\n", r"chapter\.qmd:1: code cells in '\{r\}' are not supported"),
    ("Text\n\n```{python}\nx = 1\n", r"chapter\.qmd:3: code cell is never closed"),
    ("```{python}\n#| label: [oops\nx = 1\n```\n", r"chapter\.qmd:2: cell options"),
    ("---\ntitle: [bad\n---\n", r"chapter\.qmd(:\d+)?: front matter is not valid YAML"),
    ("---\ntitle: x\n", r"chapter\.qmd:1: front matter opened"),
])
def test_malformed_chapters_are_named_with_their_line(tmp_path, text, fragment):
    with pytest.raises(Ex4Error, match=fragment):
        chapter(tmp_path, text)


def test_notebook_has_hidden_setup_then_the_chapter_cells(tmp_path):
    notebook = build_notebook(chapter(tmp_path))
    assert SETUP_TAG in notebook.cells[0].metadata["tags"]
    parameters = notebook.cells[1]
    assert parameters.cell_type == "code" and parameters.metadata["tags"] == ["parameters"]
    # option lines stay in the source so "line N" of a traceback maps to the .qmd
    assert parameters.source.startswith("#| tags: [parameters]")
    assert parameters.metadata["ex4"]["lines"] == [8, 9, 10]
    inline = notebook.cells[2]
    assert inline.cell_type == "code" and INLINE_TAG in inline.metadata["tags"]


def test_inline_code_is_evaluated_in_order_and_maps_to_its_line(tmp_path):
    parsed = chapter(tmp_path, "Line one `{python} a + 1`\nline two `{python} b`.\n")
    source, lines = inline_cell_source(parsed.cells[0])
    shown: list[tuple[str, list[str]]] = []
    namespace = {"a": 41, "b": "x", "_ex4_inline": str,
                 "_ex4_markdown": lambda parts, values: shown.append(("".join(parts), [parts[i] for i in values]))}
    exec(source, namespace)
    assert shown == [("Line one 42\nline two x.", ["42", "x"])]  # the text, and the values apart from it
    assert fill_inline(parsed.cells[0], ["1", "2"]) == "Line one 1\nline two 2.\n".rstrip("\n")
    expression_lines = [line for text, line in zip(source.splitlines(), lines) if "_ex4_inline(" in text]
    assert expression_lines == [1, 2]


def test_cell_options_layer_over_book_and_front_matter(tmp_path):
    parsed = chapter(tmp_path)
    parameters, _, figure = parsed.cells
    book = {"echo": False, "warning": False}
    assert effective_options(parsed, parameters, book)["echo"] is True  # front matter beats _quarto.yml
    assert effective_options(parsed, figure, book)["echo"] is False  # the cell beats both
    assert effective_options(parsed, figure, book, {"code-fold": True})["code-fold"] is True


def test_parameters_are_injected_right_after_the_parameters_cell(tmp_path):
    import papermill

    source = tmp_path / "in.ipynb"
    import nbformat

    nbformat.write(build_notebook(chapter(tmp_path)), str(source))
    prepared = papermill.execute_notebook(str(source), str(tmp_path / "out.ipynb"), parameters={"seed": 7},
                                          prepare_only=True, kernel_name="python3", progress_bar=False)
    tags = [cell.metadata.get("tags", []) for cell in prepared.cells]
    position = next(i for i, cell_tags in enumerate(tags) if "parameters" in cell_tags)
    assert "injected-parameters" in tags[position + 1]
    assert "seed = 7" in prepared.cells[position + 1].source


def test_declared_parameters_are_the_assigned_names(tmp_path):
    assert declared_parameters(chapter(tmp_path)) == ["seed", "mlp_lr"]
    assert declared_parameters(chapter(tmp_path, "No code.\n")) == []


@pytest.mark.parametrize("text, expected", [
    ("seed:7", ("seed", 7)),
    ("mlp_lr:1e-3", ("mlp_lr", "1e-3")),  # YAML keeps it a string; ex4.params normalises it later
    ("mlp_learning_rates:[0.1, 0.01]", ("mlp_learning_rates", [0.1, 0.01])),
    ("europe_dir:/data/cities", ("europe_dir", "/data/cities")),
    ("mlp_batch_norm: true", ("mlp_batch_norm", True)),
])
def test_parse_param_assignment_reads_yaml_values(text, expected):
    assert parse_param_assignment(text) == expected


def test_parse_param_assignment_needs_a_colon():
    with pytest.raises(Ex4Error, match="expected NAME:VALUE"):
        parse_param_assignment("seed=7")


def test_book_parameters_split_the_profile_by_declaring_chapter(tmp_path):
    profile = tmp_path / "p.yml"
    profile.write_text("seed: 3\nmlp_lr: 1e-2\n", encoding="utf-8")
    chapters = {Path("a.qmd"): ["seed"], Path("b.qmd"): ["seed", "mlp_lr"], Path("c.qmd"): []}
    values = book_parameters(profile, chapters)
    assert values == {Path("a.qmd"): {"seed": 3}, Path("b.qmd"): {"seed": 3, "mlp_lr": 0.01},
                      Path("c.qmd"): {}}


def test_a_profile_name_no_chapter_declares_is_an_error(tmp_path):
    profile = tmp_path / "p.yml"
    profile.write_text("seed: 3\nmlp_epochs: 5\n", encoding="utf-8")
    with pytest.raises(Ex4Error, match=r"p\.yml: parameter 'mlp_epochs' is not declared in any chapter"):
        book_parameters(profile, {Path("a.qmd"): ["seed"]})


def test_a_profile_with_an_unknown_or_invalid_value_fails_through_ex4_params(tmp_path):
    profile = tmp_path / "p.yml"
    profile.write_text("mlp_lrr: 3\n", encoding="utf-8")
    with pytest.raises(Ex4Error, match="unknown parameter 'mlp_lrr'"):
        book_parameters(profile, {Path("a.qmd"): ["mlp_lr"]})


def test_chapter_overrides_must_be_declared_by_that_chapter():
    with pytest.raises(Ex4Error, match=r"x\.qmd: parameter 'mlp_lr' is not declared in its parameters cell"):
        chapter_parameters(Path("x.qmd"), ["seed"], {"mlp_lr": 0.1})
    assert chapter_parameters(Path("x.qmd"), ["seed", "mlp_lr"], {"mlp_lr": "1e-1"}) == {"mlp_lr": 0.1}


def test_parameter_hash_uses_canonical_json():
    assert canonical_json({"b": 1, "a": [1, 2]}) == '{"a":[1,2],"b":1}'
    assert parameter_hash({"seed": 7, "mlp_lr": 0.1}) == parameter_hash({"mlp_lr": 0.1, "seed": 7})
    assert parameter_hash({"seed": 7}) != parameter_hash({"seed": 8})
    assert re.fullmatch(r"[0-9a-f]{10}", parameter_hash({}))


def write_config(root: Path, chapters: list[str], appendices: list[str] = ()) -> None:
    config = {"project": {"type": "book"}, "book": {"title": "T", "chapters": chapters,
                                                     "appendices": list(appendices)}}
    (root / "_quarto.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    for relative in [*chapters, *appendices]:
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text("# Title\n", encoding="utf-8")


def test_book_numbering_index_chapters_and_lettered_appendices(tmp_path):
    write_config(tmp_path, ["index.qmd", "report/a.qmd", "report/b.qmd"], ["report/z.qmd"])
    (tmp_path / "report/b.qmd").write_text("# Unnumbered {.unnumbered}\n", encoding="utf-8")
    config = read_book_config(tmp_path)
    assert [(entry.relative, entry.number) for entry in config.chapters] == [
        ("index.qmd", ""), ("report/a.qmd", "1"), ("report/b.qmd", ""), ("report/z.qmd", "A")]
    assert config.chapters[1].page == "report/a.html"


def test_book_config_errors_name_the_problem(tmp_path):
    write_config(tmp_path, ["report/a.qmd"])
    with pytest.raises(Ex4Error, match="needs an index.qmd"):
        read_book_config(tmp_path)
    write_config(tmp_path, ["index.qmd"])
    (tmp_path / "_quarto.yml").write_text("book:\n  chapters: [index.qmd, missing.qmd]\n", encoding="utf-8")
    with pytest.raises(Ex4Error, match="chapter 'missing.qmd' not found"):
        read_book_config(tmp_path)


def test_the_projects_quarto_yml_is_a_book_quarto_can_render():
    """Quarto needs index.qmd beside _quarto.yml (it checks `href.startsWith("index.")`), typst for the PDF."""
    config = yaml.safe_load((ROOT / "_quarto.yml").read_text(encoding="utf-8"))
    assert config["project"]["type"] == "book" and config["project"]["output-dir"] == "_book"
    chapters = config["book"]["chapters"]
    assert chapters[0] == "index.qmd"
    assert chapters[1:] == ["report/data.qmd", "report/section6-1.qmd", "report/section6-2.qmd",
                            "report/section7.qmd"]
    assert config["book"]["appendices"] == ["report/appendix.qmd"]
    assert set(config["format"]) == {"html", "typst"}
    assert config["format"]["html"]["html-math-method"] == "mathml"


def test_traceback_line_is_read_from_the_cell_frame():
    traceback = ["\x1b[0;31m---\x1b[0m", "\x1b[0;32mCell In[4], line 3\x1b[0m\n      1 x = 1\n----> 3 f()",
                 "File /lib/x.py:10, in f()\n  raise ValueError"]
    assert _line_within_cell(traceback) == 3


def test_quarto_failure_is_summarised_in_one_line():
    lines = ["[1/6] index.qmd", "[4/6] report/section7.qmd", "Traceback (most recent call last):",
             "ValueError: no such backbone"]
    assert summarise_failure(lines, "quarto render", 1) == "report/section7.qmd: ValueError: no such backbone"
