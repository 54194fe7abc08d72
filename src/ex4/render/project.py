"""The book as `_quarto.yml` describes it: title, authors, chapter order, appendices, execution defaults.

Both renderers read the same file, so the chapter list lives in one place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ex4.errors import Ex4Error

CONFIG_NAME = "_quarto.yml"


@dataclass(frozen=True)
class ChapterEntry:
    """One page of the book: its source, its place and how it is numbered ("" = unnumbered)."""

    source: Path  # absolute path of the .qmd
    relative: str  # as written in _quarto.yml, forward slashes
    number: str  # "1", "2", ... for chapters, "A", "B", ... for appendices, "" for the index page
    appendix: bool

    @property
    def page(self) -> str:
        """HTML page path inside the output folder (Quarto keeps the source folders)."""
        return re.sub(r"\.(qmd|md|ipynb)$", ".html", self.relative)


@dataclass
class BookConfig:
    root: Path
    title: str
    subtitle: str | None
    authors: list[str]
    date: str | None
    chapters: list[ChapterEntry]
    output_stem: str
    execute: dict[str, Any] = field(default_factory=dict)
    html: dict[str, Any] = field(default_factory=dict)

    def entry_for(self, qmd: Path) -> ChapterEntry | None:
        qmd = qmd.resolve()
        for entry in self.chapters:
            if entry.source == qmd:
                return entry
        return None


def read_book_config(project_root: Path) -> BookConfig:
    project_root = Path(project_root).resolve()
    config_path = project_root / CONFIG_NAME
    if not config_path.is_file():
        raise Ex4Error(f"{config_path}: not found (the book's chapter list lives there)")
    try:
        config = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError:
        raise Ex4Error(f"{config_path}: not valid YAML") from None
    if not isinstance(config, dict) or not isinstance(config.get("book"), dict):
        raise Ex4Error(f"{config_path}: expected a 'book:' section (project type book)")
    book = config["book"]
    chapters = _entries(config_path, project_root, _flatten(book.get("chapters")), appendix=False)
    chapters += _entries(config_path, project_root, _flatten(book.get("appendices")), appendix=True)
    if not chapters:
        raise Ex4Error(f"{config_path}: 'book: chapters:' lists no chapters")
    homes = [entry for entry in chapters if entry.relative.split("/")[-1].startswith("index.") and not entry.appendix]
    if not homes:
        raise Ex4Error(f"{config_path}: the book needs an index.qmd page among its chapters")
    chapters.remove(homes[0])
    chapters.insert(0, homes[0])  # like Quarto: the home page comes first wherever it is listed
    authors = book.get("author") or []
    authors = [authors] if isinstance(authors, (str, dict)) else list(authors)
    formats = config.get("format") if isinstance(config.get("format"), dict) else {}
    html = formats.get("html") if isinstance(formats.get("html"), dict) else {}
    title = str(book.get("title") or project_root.name)
    stem = str(book.get("output-file") or re.sub(r"[^A-Za-z0-9]+", "-", title).strip("-") or "book")
    return BookConfig(
        root=project_root,
        title=title,
        subtitle=book.get("subtitle"),
        authors=[a.get("name", "") if isinstance(a, dict) else str(a) for a in authors],
        date=str(book["date"]) if book.get("date") else None,
        chapters=chapters,
        output_stem=re.sub(r"\.pdf$", "", stem),
        execute=dict(config.get("execute") or {}),
        html=dict(html),
    )


def _flatten(items: Any) -> list[str]:
    """Chapter paths in order; `- part: X / chapters: [...]` groups are flattened (parts are not rendered)."""
    out: list[str] = []
    for item in items or []:
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, dict):
            if "href" in item:
                out.append(str(item["href"]))
            out.extend(_flatten(item.get("chapters")))
    return out


def _entries(config_path: Path, root: Path, paths: list[str], appendix: bool) -> list[ChapterEntry]:
    entries = []
    number = 0
    for relative in paths:
        source = (root / relative).resolve()
        if not source.is_file():
            raise Ex4Error(f"{config_path}: chapter '{relative}' not found")
        is_index = relative.split("/")[-1].startswith("index.") and not appendix
        if is_index or _unnumbered(source):
            label = ""
        else:
            number += 1
            label = chr(ord("A") + number - 1) if appendix else str(number)
        entries.append(ChapterEntry(source=source, relative=relative.replace("\\", "/"), number=label,
                                    appendix=appendix))
    return entries


def _unnumbered(source: Path) -> bool:
    """Quarto's rule: a chapter whose title carries {.unnumbered} (or {-}) gets no number."""
    text = source.read_text(encoding="utf-8", errors="replace")
    head = text[:4000]
    return bool(re.search(r"^(title:.*|#\s.*)\{[^}]*(\.unnumbered|(?<![\w-])-(?![\w-]))[^}]*\}", head, re.M))
