"""Which parameters each chapter declares, and which values it receives.

A chapter declares its parameters by assigning them in the cell tagged `parameters` (Papermill's and
Quarto's convention). Values are validated by `ex4.params` before any chapter runs; each chapter is
given only the names it declares, so a name is never injected where it would be ignored.
"""

from __future__ import annotations

import ast
import hashlib
import json
from pathlib import Path
from typing import Any, Mapping

from ex4 import params as ex4_params
from ex4.errors import Ex4Error
from ex4.render.qmd import Chapter


def declared_parameters(chapter: Chapter) -> list[str]:
    """Names assigned in the chapter's parameters cell, in order, as papermill's own inspection reads them
    (`papermill.inspect_notebook` uses the same translator). The cell is first checked to be valid Python:
    papermill skips what it cannot read, which would silently drop a parameter."""
    import nbformat
    from papermill.translators import papermill_translators

    cell = chapter.parameters_cell
    if cell is None:
        return []
    try:
        ast.parse(cell.code_without_options)
    except SyntaxError as error:
        line = cell.line + (error.lineno or 1) - 1 + _option_line_count(cell.source)
        raise Ex4Error(f"{chapter.path}:{line}: parameters cell is not valid Python ({error.msg})") from None
    translator = papermill_translators.find_translator("python3", "python")
    found = translator.inspect(nbformat.v4.new_code_cell(cell.code_without_options))
    return list(dict.fromkeys(parameter.name for parameter in found))


def _option_line_count(source: str) -> int:
    count = 0
    for line in source.splitlines():
        if not line.lstrip().startswith("#|"):
            break
        count += 1
    return count


def parse_param_assignment(text: str) -> tuple[str, Any]:
    """`name:value` as `quarto render -P` takes it; the value is read as YAML (`[1, 2]` is a list)."""
    if ":" not in text:
        raise Ex4Error(f"-P {text!r}: expected NAME:VALUE")
    name, raw = text.split(":", 1)
    name = name.strip()
    if not name:
        raise Ex4Error(f"-P {text!r}: the parameter name is empty")
    value = ex4_params.load_yaml(raw, f"-P {name}") if raw.strip() else None  # duplicate keys, octal refused
    return name, value


def book_parameters(params_file: Path | None, chapters: Mapping[Path, list[str]],
                    overrides: Mapping[str, Any] | None = None) -> dict[Path, dict[str, Any]]:
    """Validate a profile (and book-wide `--set` overrides on top) and split them into what each chapter declares.

    A name that no chapter declares is an error: it would otherwise be silently ignored.
    """
    overrides = dict(overrides or {})
    if params_file is None and not overrides:
        return {path: {} for path in chapters}
    layers: list[tuple[str, Mapping[str, Any]]] = []
    given: dict[str, str] = {}
    if params_file is not None:
        profile = ex4_params.read_profile(params_file)
        layers.append((str(params_file), profile))
        given.update({name: str(params_file) for name in profile})
    if overrides:
        layers.append(("--set", overrides))
        given.update({name: "--set" for name in overrides})
    resolved = ex4_params.resolve(*layers)
    declared_anywhere = {name for names in chapters.values() for name in names}
    for name, source in given.items():
        if name not in declared_anywhere:
            raise Ex4Error(f"{source}: parameter '{name}' is not declared in any chapter's parameters cell")
    return {path: {name: resolved[name] for name in given if name in names} for path, names in chapters.items()}


def chapter_parameters(qmd: Path, declared: list[str], overrides: Mapping[str, Any],
                       params_file: Path | None = None,
                       declared_in_book: set[str] | None = None) -> dict[str, Any]:
    """Validated values for one chapter: its share of the profile, then the overrides (which it must declare)."""
    layers: list[tuple[str, Mapping[str, Any]]] = []
    profile: dict[str, Any] = {}
    if params_file is not None:
        profile = ex4_params.read_profile(params_file)
        layers.append((str(params_file), profile))
        if declared_in_book is not None:
            for name in profile:
                if name not in declared_in_book:
                    raise Ex4Error(f"{params_file}: parameter '{name}' is not declared in any chapter's "
                                   "parameters cell")
    for name in overrides:
        if name not in declared:
            known = ", ".join(declared) or "none"
            raise Ex4Error(f"{qmd}: parameter '{name}' is not declared in its parameters cell (declared: {known})")
    layers.append(("-P", dict(overrides)))
    resolved = ex4_params.resolve(*layers)
    chosen = [name for name in profile if name in declared] + [name for name in overrides if name not in profile]
    return {name: resolved[name] for name in chosen}


def canonical_json(values: Mapping[str, Any]) -> str:
    return json.dumps(values, sort_keys=True, separators=(",", ":"), default=str)


def parameter_hash(values: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_json(values).encode("utf-8")).hexdigest()[:10]
