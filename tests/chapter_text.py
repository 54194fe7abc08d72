"""Execute a chapter's cells in-process against synthetic results and return the Markdown a reader would see.

The wording tests of the literate chapters use this: a chapter chooses its sentences from verdicts computed
on the results it reads, so feeding it two result sets with opposite verdicts and reading the text it
produces shows whether the chosen passage follows the numbers. The chapter is turned into a notebook by the
renderer's own `build_notebook` (so inline `` `{python} expr` `` values are computed exactly as in the book),
then each cell runs in an IPython shell with `ex4.experiments.run` replaced by a lookup in the given results.

What comes back is the chapter's text in order: Markdown cells as written, inline expressions filled in,
`display(Markdown(...))` outputs, the Markdown form of a cell's last expression, and what `#| output: asis`
cells print. Figure cells (label `fig-...`) are skipped unless asked for: they draw, they do not word.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable, Mapping

from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

import ex4.experiments
import ex4.experiments.seeds
from ex4.render.notebook import SETUP_TAG, build_notebook
from ex4.render.qmd import parse_qmd
from ex4.store import Outcome, Store


class ChapterFailed(AssertionError):
    """A cell raised: the message names the chapter and the .qmd line of the cell."""


def _no_computing(self: Store, experiment: str, *args: Any, **kwargs: Any) -> Outcome:
    raise ChapterFailed(f"the chapter tried to compute '{experiment}' instead of reading the synthetic results")


def _markdown_of(value: Any) -> str | None:
    if value is None:
        return None
    if hasattr(value, "_repr_markdown_"):
        text = value._repr_markdown_()
        if isinstance(text, tuple):
            text = text[0]
        return None if text is None else str(text)
    return None


def chapter_text(qmd: Path | str, results: Mapping[str, dict[str, Any]], params: Mapping[str, Any] | None = None,
                 skip: Callable[[dict[str, Any]], bool] | None = None, tensors: Mapping[str, dict] | None = None) -> str:
    """The Markdown text of chapter `qmd` when experiment `name` returns `results[name]`.

    `results[name]` may be a list: one result per seed, the chapter's first seed (`params["seed"]`, else 0)
    first (with `tensors[name]` a list alike, or one mapping for every seed); set `seed_repeats` in `params`. An
    experiment given as a list is asked for once per seed, one given as a single result once (for the first seed),
    whatever `ex4.experiments.seeds.repeated` says.

    `params` overrides values of the chapter's parameters cell (as Papermill would inject them). `skip` gets a
    cell's options and says whether to leave it out (default: figure cells). `tensors` optionally gives an
    experiment's stored tensors.
    """
    chapter = parse_qmd(Path(qmd))
    notebook = build_notebook(chapter)
    skip = skip or (lambda options: str(options.get("label", "")).startswith("fig-"))
    options_by_index = {index: cell.options for index, cell in enumerate(chapter.cells)}

    first_seed = int((params or {}).get("seed", 0))

    def fake_run(name: str, values: Mapping[str, Any], store: Any = None) -> Outcome:
        if name not in results:
            raise AssertionError(f"{Path(qmd).name} asked for experiment '{name}', not among the synthetic results")
        result, stored = results[name], (tensors or {}).get(name, {})
        if isinstance(result, (list, tuple)):  # one result per seed, from the chapter's first seed on
            offset = int(values["seed"]) - first_seed
            result, stored = result[offset], stored[offset] if isinstance(stored, (list, tuple)) else stored
        return Outcome(experiment=name, key=f"synthetic-{name}", result=result,
                       tensors=dict(stored), hit=True, meta={"synthetic": True})

    # IPython installs its own `__main__` (without `__spec__`, which multiprocessing's spawn needs): put it back
    saved_main = sys.modules["__main__"]
    shell = InteractiveShell.instance()
    shell.reset(new_session=True)
    import matplotlib

    matplotlib.use("Agg")
    saved_run, saved_prefetch = ex4.experiments.run, ex4.experiments.seeds.prefetch
    saved_prefetch_cnn, saved_compute = ex4.experiments.seeds.prefetch_cnn, Store.get_or_compute
    saved_repeated = ex4.experiments.seeds.repeated
    ex4.experiments.run = fake_run
    # nothing to train: the results are given (every sweep that trains ahead of `run` is a no-op) ...
    ex4.experiments.seeds.prefetch = lambda *args, **kwargs: 0
    ex4.experiments.seeds.prefetch_cnn = lambda *args, **kwargs: 0
    # ... and a chapter that would compute anything all the same fails at once, instead of training for minutes
    Store.get_or_compute = _no_computing
    ex4.experiments.seeds.repeated = lambda name: isinstance(results.get(name), (list, tuple))
    pieces: list[str] = []
    try:
        for cell in notebook.cells:
            origin = cell.metadata.get("ex4", {})
            if cell.cell_type == "markdown":
                if cell.source:
                    pieces.append(cell.source)
                continue
            index = origin.get("cell")
            options = options_by_index.get(index, {}) if index is not None else {}
            if index is not None and skip(options):
                continue
            source = cell.source
            tags = cell.metadata.get("tags", [])
            if "parameters" in tags and params:
                source = source + "\n" + "\n".join(f"{name} = {value!r}" for name, value in params.items())
            with capture_output(stdout=True, stderr=True, display=True) as captured:
                outcome = shell.run_cell(source, store_history=False, silent=False)
            if not outcome.success:
                error = outcome.error_in_exec or outcome.error_before_exec
                line = origin.get("line", "?")
                raise ChapterFailed(f"{Path(qmd).name}, cell at line {line}: {type(error).__name__}: {error}") from error
            if SETUP_TAG in tags:
                continue
            for output in captured.outputs:
                text = output.data.get("text/markdown")
                if text:
                    pieces.append(text if isinstance(text, str) else "".join(text))
            if options.get("output") == "asis" and captured.stdout:
                pieces.append(captured.stdout)
            shown = _markdown_of(outcome.result)
            if shown:
                pieces.append(shown)
    finally:
        ex4.experiments.run, ex4.experiments.seeds.prefetch = saved_run, saved_prefetch
        ex4.experiments.seeds.prefetch_cnn, Store.get_or_compute = saved_prefetch_cnn, saved_compute
        ex4.experiments.seeds.repeated = saved_repeated
        shell.reset(new_session=True)
        sys.modules["__main__"] = saved_main
    return "\n\n".join(piece.strip("\n") for piece in pieces)
