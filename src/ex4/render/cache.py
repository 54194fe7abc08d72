"""The chapter cache: an executed chapter is reused while nothing it depends on has changed.

What a chapter's *execution* (its executed notebook) depends on, and how each part is checked:

* **Before running it (the entry's name).** A SHA-256 over: the cells the kernel runs, in order — each code
  cell's code (without its `#|` option lines, which only shape the book) and tags, and each Markdown cell's
  inline expressions (without the prose around them); the injected parameters; the Python version and
  platform, the kernel's working folder, the GPU device files, and the environment variables that say where
  things are (`EX4_*` except the per-build log paths, `TORCH_HOME`, `XDG_CACHE_HOME`, `HOME`,
  `CUDA_VISIBLE_DEVICES`); and the source of the renderer modules that shape an executed notebook.
* **What it read (recorded while it ran).** The kernel runs a recorder cell first (`notebook._RECORD_START`): an
  audit hook (PEP 578) notes every file opened for reading and every folder listed, and a wrapped `os.stat`
  notes every path looked up (a weights file that is absent today is a dependency too). A last cell reports the
  notes, the source file of every `ex4` module the chapter imported (analysis, plots, fmt, experiments, and
  through them the training code that enters the store keys) and of any other module outside the libraries (a
  helper beside the chapters), and the version of every installed distribution
  it imported. The renderer then stores, next to the executed notebook: each file's SHA-256 (data files, ex4
  sources), each listed folder's names, each looked-up path's kind (file, folder, absent), each result-store
  entry the chapter touched by key with its checksum (`meta.sha256`, which covers the entry's every file), the
  library versions, and — for a chapter that reads them, like the appendix — the results the build log lists
  so far and which chapters were reused. Library folders, the kernel's own files, `__pycache__`, the derived
  caches under `.ex4/cache` and the temporary build folder are left out.

A chapter is reused when an entry exists under its name and every recorded dependency still holds; content is
compared, never size and modification time alone (`ex4.hashing.file_digest`). A result removed from the store,
replaced under its key, or one whose inputs changed (its key would differ: data, training code, versions,
parameters) all invalidate the chapters that read it; a changed analysis module invalidates exactly the
chapters that imported it.

**A prose-only edit re-runs nothing.** Prose is not part of the entry's name: Markdown without inline code
never enters the kernel, and an inline cell's executed output carries its values apart from its text
(`notebook.INLINE_MIME`). The book is assembled from the cached notebook and the chapter's *current* text:
`outputs.chapter_markdown` matches executed cells to chapter cells by order, refills the inline values into
the new prose and takes captions and other cell options from the current source. So an edited sentence, caption
or heading costs the Markdown assembly, pandoc and typst — no kernel. Wording chosen in code (`#| output:
asis` cells) is code: editing it re-executes that chapter (whose results all come from the store).

**What the recorder cannot see.** A file that native code opens by itself (a compiled library calling the C
`open()`/`fopen()` on a path, not Python's `open`/`os.open`, which raise the audit event), and inputs that are
not files (the network, the clock, a random source without a seed). ex4's chapters read data through the
experiments, whose store keys hold the data's content (a changed file changes the key the chapter recorded), and
the libraries they use (pandas, numpy, PIL, torch, matplotlib) open files through Python; a helper of your own
that reads a file in native code is not tracked: render with `--fresh` after changing such a file.

Entries are stored like results: one file per entry, its first line the SHA-256 of the rest, written to a
temporary file and renamed into place (`ex4.atomic`); one that fails its checksum is deleted and treated as
missing. `ex4 render --fresh` executes every chapter and refreshes the entries. This is ex4's own code: no
notebook library records what a kernel read (Quarto's `freeze` keys on the source alone, quarto-cli#6793).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import importlib.metadata
import json
import os
import platform
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import nbformat

from ex4 import atomic
from ex4.hashing import file_digest, sha256_bytes
from ex4.render.notebook import READS_MIME, RECORD_TAG, executed_cells, inline_expressions
from ex4.render.qmd import Chapter, cell_tags

CACHE_VERSION = 1
KEEP_PER_CHAPTER = 6  # entries kept per chapter (other parameter sets), newest first
# renderer modules whose source shapes an executed notebook (setup, recorder, inline cells, papermill call)
_SHAPING_MODULES = ("notebook.py", "execute.py", "cache.py")
_ENVIRONMENT = ("TORCH_HOME", "XDG_CACHE_HOME", "HOME", "CUDA_VISIBLE_DEVICES")
_PER_BUILD = ("EX4_BUILD_LOG", "EX4_CHAPTER_LOG")  # temporary paths, different in every build


@dataclass
class BuildState:
    """Where this build keeps what chapters may read besides their inputs: the build log (results asked for so
    far), the chapter log (which chapters were reused), the result store; and folders that are not inputs."""

    build_log: Path
    chapter_log: Path
    store_root: Path
    ignored: tuple[Path, ...]  # derived caches, the temporary build folder
    chapters: list[dict[str, Any]] = field(default_factory=list)  # the chapter log, as written so far

    def special(self) -> dict[str, str]:
        """Digests of the build-time files as they are now (a chapter about to run would read these)."""
        chapters = self.chapter_log.read_bytes() if self.chapter_log.is_file() else b""
        return {"build-log": _log_digest(self.build_log), "chapter-log": sha256_bytes(chapters)}

    def note_chapter(self, relative: str, reused: bool, reason: str) -> None:
        self.chapters.append({"chapter": relative, "reused": reused, "reason": reason})
        atomic.write_text(self.chapter_log, json.dumps(self.chapters, indent=1) + "\n")

    def replay(self, records: list[dict[str, Any]]) -> None:
        """Append a reused chapter's results to the build log, as read from the store in this build."""
        with open(self.build_log, "a", encoding="utf-8") as handle:
            for record in records:
                handle.write(json.dumps({**record, "hit": True}) + "\n")

    def log_size(self) -> int:
        return self.build_log.stat().st_size if self.build_log.exists() else 0

    def log_since(self, offset: int) -> list[dict[str, Any]]:
        """Build-log records appended since `offset`, without their timestamps."""
        with open(self.build_log, "rb") as handle:
            handle.seek(offset)
            text = handle.read().decode("utf-8", errors="replace")
        records = []
        for line in text.splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            records.append({name: record.get(name) for name in ("experiment", "key", "hit", "wall_time")})
        return records


def _log_digest(path: Path) -> str:
    """What the appendix reads from the build log: which results, in order, and whether each was stored."""
    if not path.is_file():
        return ""
    lines = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        lines.append([record.get("experiment"), record.get("key"), bool(record.get("hit"))])
    return sha256_bytes(json.dumps(lines).encode())


def _file_or_none(path: Path) -> str | None:
    try:
        return file_digest(path) if path.is_file() else None
    except OSError:
        return None


def _listing(path: Path) -> str | None:
    try:
        names = sorted(os.listdir(path))
    except OSError:
        return None
    return sha256_bytes("\0".join(names).encode("utf-8", errors="surrogateescape"))


def _kind(path: Path) -> str:
    try:
        return "dir" if path.is_dir() else "file" if path.exists() else "absent"
    except OSError:
        return "absent"


def _store_checksum(store_root: Path, key: str) -> str | None:
    try:
        return (store_root / key / "meta.sha256").read_text(encoding="utf-8").strip()
    except OSError:
        return None


def _normal(name: str) -> str:
    return name.lower().replace("_", "-")


_INSTALLED: dict[str, str] | None = None


def installed_versions(refresh: bool = False) -> dict[str, str]:
    """Every installed distribution's version (one scan of the environment per build)."""
    global _INSTALLED
    if _INSTALLED is None or refresh:
        found: dict[str, str] = {}
        for distribution in importlib.metadata.distributions():
            name = distribution.metadata["Name"]
            if name and _normal(name) not in found:
                found[_normal(name)] = distribution.version
        _INSTALLED = found
    return _INSTALLED


# --- the name of an entry -----------------------------------------------------------------------------------


def execution_key(chapter: Chapter, values: Mapping[str, Any], cwd: Path) -> str:
    """SHA-256 of everything known before a chapter runs that its executed notebook depends on."""
    cells = []
    for index in executed_cells(chapter):
        cell = chapter.cells[index]
        if cell.kind == "code":
            cells.append({"code": cell.code_without_options, "tags": cell_tags(cell)})
        else:
            cells.append({"inline": inline_expressions(cell)})
    render_folder = Path(__file__).resolve().parent
    payload = {
        "version": CACHE_VERSION,
        "cells": cells,
        "parameters": json.loads(json.dumps(dict(values), sort_keys=True, default=str)),
        "python": sys.version,
        "platform": platform.platform(),
        "cwd": str(cwd),
        "gpu": sorted(name for name in _names("/dev") if name.startswith("nvidia")),
        "environment": {name: os.environ.get(name) for name in sorted(
            {name for name in os.environ if name.startswith("EX4_") and name not in _PER_BUILD} | set(_ENVIRONMENT))},
        "renderer": {name: file_digest(render_folder / name) for name in _SHAPING_MODULES},
    }
    return sha256_bytes(json.dumps(payload, sort_keys=True).encode())[:32]


def _names(folder: str) -> list[str]:
    try:
        return os.listdir(folder)
    except OSError:
        return []


# --- dependencies recorded while a chapter runs -------------------------------------------------------------


def recorded_reads(executed: nbformat.NotebookNode) -> dict[str, Any] | None:
    """The recorder's report in an executed notebook, or None."""
    for cell in executed.cells:
        if RECORD_TAG not in cell.get("metadata", {}).get("tags", []):
            continue
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if READS_MIME in data:
                return dict(data[READS_MIME])
    return None


def _under(path: Path, folders: Iterable[Path]) -> bool:
    return any(path == folder or folder in path.parents for folder in folders)


def dependencies(reads: Mapping[str, Any], state: BuildState, special_at_start: Mapping[str, str]) -> dict[str, Any]:
    """Turn the recorder's raw notes into checkable dependencies (see the module docstring)."""
    files: dict[str, str | None] = {}
    listings: dict[str, str | None] = {}
    lookups: dict[str, str] = {}
    store: dict[str, str | None] = {}
    special: dict[str, str] = {}
    store_root = state.store_root

    def classify(raw: str) -> tuple[str, Path] | None:
        path = Path(raw)
        if path == state.build_log:
            special["build-log"] = special_at_start["build-log"]
            return None
        if path == state.chapter_log:
            special["chapter-log"] = special_at_start["chapter-log"]
            return None
        if _under(path, state.ignored):
            return None
        if store_root in path.parents:
            key = path.relative_to(store_root).parts[0]
            if not key.startswith("."):
                store[key] = _store_checksum(store_root, key)
                return None
            return None  # the store's locks and staging folder
        return raw, path

    for raw in [*reads.get("opened", []), *reads.get("modules", [])]:
        found = classify(raw)
        if found:
            files[found[0]] = _file_or_none(found[1])
    for raw in reads.get("listed", []):
        found = classify(raw)
        if found:
            listings[found[0]] = _store_listing(found[1]) if found[1] == store_root else _listing(found[1])
    for raw in reads.get("looked", []):
        if raw in files or raw in listings:
            continue
        found = classify(raw)
        if found:
            lookups[found[0]] = _kind(found[1])
    return {"files": files, "listings": listings, "lookups": lookups, "store": store, "special": special,
            "store_root": str(store_root), "versions": {_normal(name): version
                                                        for name, version in reads.get("versions", {}).items()}}


def _store_listing(store_root: Path) -> str | None:
    """The store's entries (its `.locks` and `.tmp` folders come and go with every computation)."""
    try:
        names = sorted(name for name in os.listdir(store_root) if not name.startswith("."))
    except OSError:
        return None
    return sha256_bytes("\0".join(names).encode())


def stale_reason(deps: Mapping[str, Any], state: BuildState, special_now: Mapping[str, str]) -> str | None:
    """None while every dependency holds; else the first one that changed, in words."""
    if Path(deps.get("store_root", "")) != state.store_root:
        return f"the result store is now {state.store_root}"
    for name, digest in deps.get("special", {}).items():
        if special_now.get(name) != digest:
            return {"build-log": "the results listed in the build log changed",
                    "chapter-log": "other chapters were reused or re-executed"}.get(name, name)
    installed = installed_versions()
    for name, version in deps.get("versions", {}).items():
        if installed.get(name) != version:
            return f"{name} {version} -> {installed.get(name, 'not installed')}"
    for key, checksum in deps.get("store", {}).items():
        if _store_checksum(state.store_root, key) != checksum:
            return f"stored result {key} changed or was removed"
    for path, digest in deps.get("files", {}).items():
        if _file_or_none(Path(path)) != digest:
            return f"{_short(path)} changed"
    for path, digest in deps.get("listings", {}).items():
        now = _store_listing(Path(path)) if Path(path) == state.store_root else _listing(Path(path))
        if now != digest:
            return f"the files in {_short(path)} changed"
    for path, kind in deps.get("lookups", {}).items():
        if _kind(Path(path)) != kind:
            return f"{_short(path)} appeared, vanished or changed kind"
    return None


def _short(path: str) -> str:
    try:
        return Path(path).relative_to(Path.cwd()).as_posix()
    except ValueError:
        return path


# --- storage ------------------------------------------------------------------------------------------------


class ChapterCache:
    """Entries under `<folder>/<chapter stem>/<execution key>.json`, each checksummed and written atomically."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        installed_versions(refresh=True)  # a package installed since the last build counts

    def path(self, stem: str, key: str) -> Path:
        return self.folder / stem / f"{key}.json"

    def load(self, stem: str, key: str) -> dict[str, Any] | None:
        """The entry, or None when absent or failing its checksum (a failing one is deleted)."""
        path = self.path(stem, key)
        try:
            data = path.read_bytes()
        except OSError:
            return None
        checksum, _, payload = data.partition(b"\n")
        try:
            if checksum.decode("ascii") != hashlib.sha256(payload).hexdigest():
                raise ValueError("checksum")
            entry = json.loads(payload)
            if entry.get("version") != CACHE_VERSION:
                raise ValueError("version")
        except (UnicodeDecodeError, ValueError):
            path.unlink(missing_ok=True)
            return None
        return entry

    def save(self, stem: str, key: str, chapter: str, executed: nbformat.NotebookNode, deps: dict[str, Any],
             log: list[dict[str, Any]]) -> None:
        entry = {"version": CACHE_VERSION, "chapter": chapter, "key": key,
                 "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                 "deps": deps, "log": log, "notebook": json.loads(nbformat.writes(executed))}
        payload = json.dumps(entry, separators=(",", ":")).encode("utf-8")
        atomic.write_bytes(self.path(stem, key), hashlib.sha256(payload).hexdigest().encode("ascii") + b"\n" + payload)
        self._prune(stem)

    def _prune(self, stem: str) -> None:
        entries = sorted(self.path(stem, "x").parent.glob("*.json"), key=lambda path: path.stat().st_mtime,
                         reverse=True)
        for old in entries[KEEP_PER_CHAPTER:]:
            old.unlink(missing_ok=True)

    @staticmethod
    def notebook(entry: Mapping[str, Any]) -> nbformat.NotebookNode:
        return nbformat.from_dict(entry["notebook"])
