"""Read a Quarto `.qmd` chapter into front matter, Markdown chunks and ```` ```{python} ```` cells.

Only the subset of Quarto syntax the report uses is understood; anything that would silently render
wrong (another engine, an unterminated cell) is an Ex4Error naming the file and line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ex4.errors import Ex4Error

_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})\s*(?P<info>.*?)\s*$")
_ENGINE = re.compile(r"^\{\s*(?P<engine>[A-Za-z0-9_-]+)(?P<rest>[^}]*)\}$")
_OPTION = re.compile(r"^\s*#\|\s?(?P<text>.*)$")
INLINE_CODE = re.compile(r"`\{python\}\s+(?P<expr>[^`]+?)`")


@dataclass
class Cell:
    """One piece of a chapter, in source order.

    `line` is the 1-based line in the .qmd of the first source line (the line after the opening fence for code),
    so that an error inside the cell can be reported against the file the author edits.
    """

    kind: str  # "markdown" or "code"
    source: str
    line: int
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def code_without_options(self) -> str:
        lines = self.source.splitlines()
        while lines and _OPTION.match(lines[0]):
            lines.pop(0)
        return "\n".join(lines)

    @property
    def has_inline_code(self) -> bool:
        return self.kind == "markdown" and bool(INLINE_CODE.search(self.source))


@dataclass
class Chapter:
    path: Path
    front_matter: dict[str, Any]
    cells: list[Cell]

    @property
    def code_cells(self) -> list[Cell]:
        return [cell for cell in self.cells if cell.kind == "code"]

    @property
    def parameters_cell(self) -> Cell | None:
        for cell in self.code_cells:
            if "parameters" in cell_tags(cell):
                return cell
        return None

    @property
    def title(self) -> str:
        """Front-matter title, else the first level-1 heading, else the file stem (Quarto's rule)."""
        title = self.front_matter.get("title")
        if isinstance(title, str) and title.strip():
            return re.sub(r"\s*\{[^{}]*\}\s*$", "", title.strip())  # drop a trailing {.unnumbered}
        for cell in self.cells:
            if cell.kind != "markdown":
                continue
            for line in cell.source.splitlines():
                match = re.match(r"^#\s+(.+?)\s*(\{[^}]*\})?\s*$", line)
                if match:
                    return match.group(1)
        return self.path.stem


def cell_tags(cell: Cell) -> list[str]:
    tags = cell.options.get("tags") or []
    return [str(tag) for tag in (tags if isinstance(tags, list) else [tags])]


def parse_qmd(path: Path | str, text: str | None = None) -> Chapter:
    path = Path(path)
    if text is None:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise Ex4Error(f"{path}: chapter file not found") from None
        except UnicodeDecodeError:
            raise Ex4Error(f"{path}: not UTF-8 text") from None
    lines = text.splitlines()
    front_matter, body_start = _front_matter(path, lines)
    cells = _cells(path, lines, body_start)
    return Chapter(path=path, front_matter=front_matter, cells=cells)


def _front_matter(path: Path, lines: list[str]) -> tuple[dict[str, Any], int]:
    if not lines or lines[0].strip() != "---":
        return {}, 0
    for index in range(1, len(lines)):
        if lines[index].strip() in ("---", "..."):
            raw = "\n".join(lines[1:index])
            try:
                loaded = yaml.safe_load(raw) if raw.strip() else {}
            except yaml.YAMLError as error:
                mark = getattr(error, "problem_mark", None)
                where = f":{mark.line + 2}" if mark is not None else ""
                raise Ex4Error(f"{path}{where}: front matter is not valid YAML") from None
            if not isinstance(loaded, dict):
                raise Ex4Error(f"{path}:1: front matter must be a YAML mapping")
            return loaded, index + 1
    raise Ex4Error(f"{path}:1: front matter opened with '---' but never closed")


def _cells(path: Path, lines: list[str], start: int) -> list[Cell]:
    cells: list[Cell] = []
    markdown: list[tuple[int, str]] = []  # (1-based line, text)

    def flush_markdown() -> None:
        while markdown and not markdown[0][1].strip():
            markdown.pop(0)
        while markdown and not markdown[-1][1].strip():
            markdown.pop()
        if markdown:
            cells.append(Cell("markdown", "\n".join(text for _, text in markdown), markdown[0][0]))
        markdown.clear()

    index = start
    while index < len(lines):
        line = lines[index]
        fence = _FENCE.match(line)
        if not fence:
            markdown.append((index + 1, line))
            index += 1
            continue
        closing = _find_closing(lines, index, fence.group("fence"))
        engine = _ENGINE.match(fence.group("info"))
        if engine is None:
            # an ordinary fenced block (```python, ```{=html}): Markdown, copied verbatim
            end = len(lines) if closing is None else closing + 1
            markdown.extend((number + 1, lines[number]) for number in range(index, end))
            index = end
            continue
        name = engine.group("engine")
        if name != "python":
            raise Ex4Error(f"{path}:{index + 1}: code cells in '{{{name}}}' are not supported (only {{python}})")
        if closing is None:
            raise Ex4Error(f"{path}:{index + 1}: code cell is never closed with {fence.group('fence')}")
        flush_markdown()
        source_lines = lines[index + 1:closing]
        options = _options(path, source_lines, index + 2)
        cells.append(Cell("code", "\n".join(source_lines), index + 2, options))
        index = closing + 1
    flush_markdown()
    return cells


def _find_closing(lines: list[str], opening: int, fence: str) -> int | None:
    char, width = fence[0], len(fence)
    for index in range(opening + 1, len(lines)):
        stripped = lines[index].strip()
        if stripped and set(stripped) == {char} and len(stripped) >= width:
            return index
    return None


def _options(path: Path, source_lines: list[str], first_line: int) -> dict[str, Any]:
    option_lines = []
    for line in source_lines:
        match = _OPTION.match(line)
        if not match:
            break
        option_lines.append(match.group("text"))
    if not option_lines:
        return {}
    try:
        loaded = yaml.safe_load("\n".join(option_lines))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = first_line + (mark.line if mark is not None else 0)
        raise Ex4Error(f"{path}:{line}: cell options ('#|' lines) are not valid YAML") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise Ex4Error(f"{path}:{first_line}: cell options ('#|' lines) must be 'key: value' pairs")
    return loaded
