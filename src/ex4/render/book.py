"""Render the whole book, or one chapter with new parameters, and put the result in place atomically.

Everything is built in a temporary folder beside the destination and swapped in with renames at the
end, so a chapter that raises leaves the previous `_book/` (or variant folder) exactly as it was.
"""

from __future__ import annotations

import html as html_lib
import json
import os
import re
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from ex4.errors import Ex4Error
from ex4.render import pandoc
from ex4.render.cache import BuildState, ChapterCache, dependencies, execution_key, recorded_reads, stale_reason
from ex4.render.execute import ensure_kernel, environment, execute_notebook
from ex4.render.notebook import build_notebook
from ex4.render.outputs import chapter_markdown
from ex4.render.parameters import (book_parameters, canonical_json, chapter_parameters, declared_parameters,
                                   parameter_hash, parse_param_assignment)
from ex4.render.project import BookConfig, ChapterEntry, read_book_config
from ex4.render.qmd import Chapter, parse_qmd
from ex4.render.quarto import quarto_version, run_quarto

__all__ = ["BookResult", "parse_param_assignment", "read_book", "render_book", "render_chapter"]

RENDERERS = ("auto", "quarto", "ex4")
XREF_FILE = "ex4-xref.json"
BUILD_LOG = "build-log.jsonl"
CHAPTER_LOG = "chapter-log.json"  # which chapters were reused from the chapter cache (the appendix reads it)
FORMATS = ("html", "pdf")


@dataclass
class BookResult:
    html_index: Path
    pdf: Path | None
    renderer: str
    chapter_seconds: dict[str, float] = field(default_factory=dict)
    total_seconds: float = 0.0
    pages: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # chapter -> True (reused from the chapter cache), False (executed), None (nothing to execute)
    reused: dict[str, bool | None] = field(default_factory=dict)

    @property
    def html(self) -> Path:
        """The book's home page (same as `html_index`)."""
        return self.html_index


def _log(message: str) -> None:
    print(f"ex4 render: {message}", file=sys.stderr, flush=True)


def ex4_renderer_name() -> str:
    from importlib.metadata import version

    return (f"ex4 (papermill {version('papermill')} + pandoc {pandoc.pandoc_version()} + "
            f"typst {pandoc.typst_version()})")


def choose_renderer(renderer: str) -> tuple[str, str]:
    """('quarto'|'ex4', human-readable name with versions)."""
    if renderer not in RENDERERS:
        raise Ex4Error(f"renderer '{renderer}': expected one of {', '.join(RENDERERS)}")
    if renderer in ("auto", "quarto"):
        version = quarto_version()
        if version:
            return "quarto", f"quarto {version}"
        if renderer == "quarto":
            raise Ex4Error("renderer 'quarto' asked for, but no quarto >= 1.9 is on PATH")
    return "ex4", ex4_renderer_name()


# --- building blocks shared by the book and the chapter variants ----------------------------------------------


def _temporary_beside(target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{target.name}-build-", dir=target.parent))


def swap_into_place(new: Path, target: Path) -> None:
    """Replace `target` by `new` with two renames; the old folder is deleted only after the new one is in."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}-old-{uuid.uuid4().hex[:8]}")
        os.rename(target, old)
    os.rename(new, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _kernel_environment(renderer_name: str, build_log: Path, project_root: Path) -> dict[str, str]:
    build_log.touch()
    values = {"EX4_RENDERER": renderer_name, "EX4_BUILD_LOG": str(build_log),
              "EX4_CHAPTER_LOG": str(build_log.with_name(CHAPTER_LOG))}
    if not os.environ.get("EX4_ROOT"):
        values["EX4_ROOT"] = str(project_root)
    return values


@dataclass
class _Runs:
    """How this build executes chapters: the chapter cache, the build's logs, and whether to ignore the cache."""

    cache: ChapterCache
    state: BuildState
    fresh: bool = False
    reused: dict[str, bool | None] = field(default_factory=dict)

    @classmethod
    def start(cls, temporary: Path, fresh: bool) -> "_Runs":
        """Inside the kernel environment (EX4_ROOT, EX4_STORE and the log paths as the chapters will see them)."""
        from ex4.paths import cache_dir, default_store_dir

        build_log = Path(os.environ["EX4_BUILD_LOG"])
        chapter_log = Path(os.environ["EX4_CHAPTER_LOG"])
        chapter_log.write_text("[]\n", encoding="utf-8")
        state = BuildState(build_log=build_log, chapter_log=chapter_log, store_root=default_store_dir().resolve(),
                           ignored=(cache_dir().resolve(), temporary.resolve()))
        return cls(ChapterCache(cache_dir() / "chapters"), state, fresh)


def _execute_chapter(chapter: Chapter, entry: ChapterEntry, display: str, values: Mapping[str, Any],
                     config: BookConfig | None, build: Path, project_root: Path, runs: _Runs,
                     preamble: str = "") -> dict[str, Any]:
    """Execute one chapter (or reuse its cached execution) and return its pandoc AST (chapter marker first)."""
    stem = entry.relative.rsplit(".", 1)[0].replace("/", "-")
    if any(cell.kind == "code" or cell.has_inline_code for cell in chapter.cells):
        executed = _executed(chapter, stem, display, values, build, project_root, runs)
    else:
        executed = build_notebook(chapter)  # prose only: nothing to run, no kernel to start
        runs.reused[display] = None
        runs.state.note_chapter(display, False, "nothing to execute")
    markdown = chapter_markdown(chapter, executed, entry, build, config.execute if config else None,
                                config.html if config else None, preamble=preamble)
    (build / f"{stem}.md").write_text(markdown.text, encoding="utf-8")
    return pandoc.markdown_ast(markdown.text, cwd=build)


def _executed(chapter: Chapter, stem: str, display: str, values: Mapping[str, Any], build: Path,
              project_root: Path, runs: _Runs) -> Any:
    """The executed notebook: from the chapter cache while nothing it depends on changed, else run now."""
    key = execution_key(chapter, values, project_root)
    special = runs.state.special()
    cached = None if runs.fresh else runs.cache.load(stem, key)
    if runs.fresh:
        reason = "--fresh"
    elif cached is None:
        reason = "its code, inline expressions or parameters are new"
    else:
        reason = stale_reason(cached["deps"], runs.state, special)
    if cached is not None and reason is None:
        runs.state.replay(cached["log"])
        runs.reused[display] = True
        runs.state.note_chapter(display, True, "nothing it depends on changed")
        return ChapterCache.notebook(cached)
    _log(f"{display}: executing ({reason})")
    offset = runs.state.log_size()
    executed = execute_notebook(build_notebook(chapter, record=True), Path(display), build / f"{stem}.ipynb", values,
                                cwd=project_root)
    reads = recorded_reads(executed)
    if reads is not None:
        runs.cache.save(stem, key, display, executed, dependencies(reads, runs.state, special),
                        runs.state.log_since(offset))
    runs.reused[display] = False
    runs.state.note_chapter(display, False, reason)
    return executed


def check_chapter_path(qmd: Path, project_root: Path) -> Path:
    """The resolved chapter file: a `.qmd` of the book or one the user names explicitly, that exists and is a
    regular file; Ex4Error naming it otherwise (so `--chapter /etc/passwd` or a folder renders nothing)."""
    given = qmd
    qmd = (qmd if qmd.is_absolute() else project_root / qmd).resolve()
    if qmd.suffix.lower() != ".qmd":
        raise Ex4Error(f"{given}: a chapter must be a .qmd file (e.g. report/section6-1.qmd)")
    if not qmd.exists():
        raise Ex4Error(f"{given}: chapter file not found")
    if not qmd.is_file():
        raise Ex4Error(f"{given}: a chapter must be a .qmd file, not a directory or a device")
    return qmd


def _display_path(path: Path, project_root: Path) -> str:
    try:
        return path.resolve().relative_to(project_root.resolve()).as_posix()
    except ValueError:
        return str(path)


# --- the whole book --------------------------------------------------------------------------------------------


def render_book(project_root: Path, params_file: Path | None = None, out_dir: Path | None = None,
                renderer: str = "auto", overrides: Mapping[str, Any] | None = None, fresh: bool = False,
                formats: tuple[str, ...] = FORMATS) -> BookResult:
    """Render every chapter of `_quarto.yml` into HTML pages and one PDF in `out_dir` (default `_book/`).

    `overrides` (`ex4 render --set NAME=VALUE`) apply on top of the profile to every chapter that declares them.
    A chapter whose execution is in the chapter cache and still valid is not run again (`ex4.render.cache`);
    `fresh=True` runs every chapter. `formats` may leave out "pdf" (`ex4 preview`)."""
    unknown = [name for name in formats if name not in FORMATS]
    if unknown or "html" not in formats:
        raise Ex4Error(f"formats {list(formats)}: expected html, optionally with pdf")
    project_root = Path(project_root).resolve()
    out_dir = Path(out_dir).resolve() if out_dir else project_root / "_book"
    params_file = Path(params_file) if params_file else None
    config = read_book_config(project_root)
    chapters = {entry.source: parse_qmd(entry.source) for entry in config.chapters}
    declared = {path: declared_parameters(chapter) for path, chapter in chapters.items()}
    values = book_parameters(params_file, declared, overrides)
    kind, name = choose_renderer(renderer)
    _log(f"renderer: {name}; {len(config.chapters)} chapters -> {_display_path(out_dir, project_root)}")
    started = time.perf_counter()
    temporary = _temporary_beside(out_dir)
    try:
        site = temporary / "site"
        build = temporary / "build"
        build.mkdir()
        environment_values = _kernel_environment(name, temporary / BUILD_LOG, project_root)
        if kind == "quarto":
            result = _quarto_book(project_root, config, params_file, values, site, build, environment_values)
        else:
            result = _ex4_book(project_root, config, chapters, values, site, build, environment_values, name,
                               temporary, fresh, formats)
        site.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(temporary / BUILD_LOG, site / BUILD_LOG)
        if (temporary / CHAPTER_LOG).is_file():
            shutil.copyfile(temporary / CHAPTER_LOG, site / CHAPTER_LOG)
        swap_into_place(site, out_dir)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    result.html_index = out_dir / result.html_index.relative_to(site)
    result.pdf = out_dir / result.pdf.relative_to(site) if result.pdf else None
    result.pages = [out_dir / page.relative_to(site) for page in result.pages]
    result.total_seconds = time.perf_counter() - started
    _log(f"done in {result.total_seconds:.1f} s: {_display_path(result.html_index, project_root)}"
         + (f", {_display_path(result.pdf, project_root)}" if result.pdf else ""))
    return result


def read_book(project_root: Path, out_dir: Path | None = None) -> BookResult:
    """A book already rendered into `out_dir` (default `_book/`), described as `render_book` describes a
    fresh one, so the checks that run on the smoke book can run on the published one too."""
    project_root = Path(project_root).resolve()
    out_dir = Path(out_dir).resolve() if out_dir else project_root / "_book"
    config = read_book_config(project_root)
    pages = [out_dir / entry.page for entry in config.chapters]
    missing = [page for page in pages if not page.is_file()]
    if missing:
        raise Ex4Error(f"{out_dir}: no rendered book here ({_display_path(missing[0], project_root)} is missing)")
    match = re.search(r'<meta name="generator" content="([^"]*)"', pages[0].read_text(encoding="utf-8"))
    pdf = out_dir / f"{config.output_stem}.pdf"
    return BookResult(html_index=pages[0], pdf=pdf if pdf.is_file() else None,
                      renderer=html_lib.unescape(match.group(1)) if match else "unknown", pages=pages)


def _ex4_book(project_root: Path, config: BookConfig, chapters: dict[Path, Chapter],
              values: dict[Path, dict[str, Any]], site: Path, build: Path, env: dict[str, str],
              renderer_name: str, temporary: Path, fresh: bool = False,
              formats: tuple[str, ...] = FORMATS) -> BookResult:
    ensure_kernel()
    seconds: dict[str, float] = {}
    asts = []
    with environment(env):
        runs = _Runs.start(temporary, fresh)
        for position, entry in enumerate(config.chapters, start=1):
            began = time.perf_counter()
            asts.append(_execute_chapter(chapters[entry.source], entry, entry.relative, values[entry.source],
                                         config, build, project_root, runs))
            seconds[entry.relative] = time.perf_counter() - began
            how = {True: "reused", False: "executed", None: "prose only"}[runs.reused[entry.relative]]
            _log(f"[{position}/{len(config.chapters)}] {entry.relative}  {seconds[entry.relative]:.1f} s ({how})")
    began = time.perf_counter()
    warnings: list[str] = []
    book = pandoc.join_asts(asts)
    site.mkdir(parents=True)
    html_book = pandoc.crossref(book, "html", cwd=build, registry_out=site / XREF_FILE, warnings=warnings)
    pdf_name = f"{config.output_stem}.pdf"
    links = [pandoc.PageLink(entry.page, chapters[entry.source].title, entry.number, entry.appendix)
             for entry in config.chapters]
    pages = []
    split = pandoc.split_chapters(html_book)
    for entry, (_, blocks) in zip(config.chapters, split):
        title = chapters[entry.source].title
        is_home = entry.page == links[0].page
        variables = {
            "sidebar": pandoc.sidebar_html(config.title, links, entry.page, pdf_name if "pdf" in formats else None,
                                           renderer_name),
            "pagenav": pandoc.pagenav_html(links, entry.page),
            "titleblock": pandoc.title_block_html(config.title, config.subtitle, config.authors, config.date)
            if is_home else "",
            "generator": renderer_name,
        }
        page_title = config.title if is_home else f"{entry.number + '  ' if entry.number else ''}{title} – {config.title}"
        pandoc.write_html_page(html_book["pandoc-api-version"], blocks, site / entry.page, build, page_title,
                               variables)
        pages.append(site / entry.page)
    _log(f"html: {len(pages)} pages  {time.perf_counter() - began:.1f} s")
    pdf = None
    if "pdf" in formats:
        began = time.perf_counter()
        typst_book = pandoc.crossref(book, "typst", cwd=build)
        pdf = site / pdf_name
        pandoc.write_pdf(typst_book, pdf, build, _pdf_metadata(config, renderer_name))
        _log(f"pdf: {pdf_name}  {time.perf_counter() - began:.1f} s")
    for warning in warnings:
        _log(warning)
    return BookResult(html_index=site / links[0].page, pdf=pdf, renderer=renderer_name, chapter_seconds=seconds,
                      pages=pages, warnings=warnings, reused=dict(runs.reused))


def _pdf_metadata(config: BookConfig, renderer_name: str, title: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"title": title or config.title, "author": config.authors, "renderer": renderer_name}
    if config.subtitle:
        meta["subtitle"] = config.subtitle
    if config.date:
        meta["date"] = config.date
    return meta


def _quarto_book(project_root: Path, config: BookConfig, params_file: Path | None,
                 values: dict[Path, dict[str, Any]], site: Path, build: Path, env: dict[str, str]) -> BookResult:
    args = ["render", str(project_root), "--output-dir", str(site)]
    if params_file is not None or any(values.values()):
        # the validated, normalised values (e.g. 1e-3 read as a number), not the raw file
        merged: dict[str, Any] = {}
        for chapter_values in values.values():
            merged.update(chapter_values)
        normalised = build / "execute-params.yml"
        normalised.write_text(yaml.safe_dump(merged, sort_keys=True), encoding="utf-8")
        args += ["--execute-params", str(normalised)]
    began = time.perf_counter()
    with environment({**env, "QUARTO_PYTHON": sys.executable}):
        run_quarto(args, cwd=project_root, what="quarto render")
    pdfs = sorted(site.glob("*.pdf"))
    pages = [site / entry.page for entry in config.chapters]
    return BookResult(html_index=site / "index.html", pdf=pdfs[0] if pdfs else None,
                      renderer=env["EX4_RENDERER"], chapter_seconds={"(quarto, all chapters)":
                                                                     time.perf_counter() - began},
                      pages=[page for page in pages if page.exists()])


# --- one chapter with new parameters ---------------------------------------------------------------------------


def render_chapter(qmd: Path, overrides: Mapping[str, Any], project_root: Path, params_file: Path | None = None,
                   renderer: str = "auto", fresh: bool = False) -> Path:
    """Render one chapter with `overrides` into `_variants/<stem>-<hash>/` (HTML + PDF); `_book/` is not touched."""
    project_root = Path(project_root).resolve()
    qmd = check_chapter_path(Path(qmd), project_root)
    params_file = Path(params_file) if params_file else None
    display = _display_path(qmd, project_root)
    config = read_book_config(project_root) if (project_root / "_quarto.yml").is_file() else None
    chapter = parse_qmd(qmd)
    declared = declared_parameters(chapter)
    in_book = None
    entry = config.entry_for(qmd) if config else None
    if config is not None:
        in_book = set()
        for other in config.chapters:
            in_book.update(declared if other.source == qmd else declared_parameters(parse_qmd(other.source)))
    values = chapter_parameters(Path(display), declared, overrides, params_file, in_book)
    digest = parameter_hash(values)
    target = project_root / "_variants" / f"{qmd.stem}-{digest}"
    kind, name = choose_renderer(renderer)
    _log(f"renderer: {name}; {display} with {canonical_json(values)} -> {_display_path(target, project_root)}")
    page_name = f"{qmd.stem}.html"
    entry = ChapterEntry(source=qmd, relative=display, number=entry.number if entry else "",
                         appendix=entry.appendix if entry else False)
    temporary = _temporary_beside(target)
    started = time.perf_counter()
    try:
        site = temporary / "site"
        build = temporary / "build"
        build.mkdir()
        env = _kernel_environment(name, temporary / BUILD_LOG, project_root)
        box = parameters_box(values, declared, digest)
        if kind == "quarto":
            _quarto_chapter(project_root, qmd, chapter, values, box, site, build, env, config)
        else:
            ensure_kernel()
            with environment(env):
                ast = _execute_chapter(chapter, entry, display, values, config, build, project_root,
                                       _Runs.start(temporary, fresh), preamble=box)
            site.mkdir(parents=True)
            book = pandoc.join_asts([ast])
            registry = project_root / "_book" / XREF_FILE  # read only: labels of the other chapters
            html_doc = pandoc.crossref(_with_page(book, page_name), "html", cwd=build, registry_in=registry)
            title = f"{chapter.title} (variant {digest})"
            pandoc.write_html_page(html_doc["pandoc-api-version"], pandoc.split_chapters(html_doc)[0][1],
                                   site / page_name, build, title, {"generator": name})
            typst_doc = pandoc.crossref(book, "typst", cwd=build, registry_in=registry)
            pandoc.write_pdf(typst_doc, site / f"{qmd.stem}.pdf", build,
                             _pdf_metadata(config, name, title) if config else {"title": title, "renderer": name})
        site.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(temporary / BUILD_LOG, site / BUILD_LOG)
        if (temporary / CHAPTER_LOG).is_file():
            shutil.copyfile(temporary / CHAPTER_LOG, site / CHAPTER_LOG)
        (site / "parameters.json").write_text(canonical_json(values) + "\n", encoding="utf-8")
        swap_into_place(site, target)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    _log(f"done in {time.perf_counter() - started:.1f} s: {_display_path(target, project_root)}")
    return target


def _with_page(ast: dict[str, Any], page: str) -> dict[str, Any]:
    """Point the chapter marker at the variant's own page name (links within the page stay local)."""
    for block in ast["blocks"]:
        if pandoc.is_chapter_marker(block):
            block["c"][0][2] = [[key, page if key == "page" else value] for key, value in block["c"][0][2]]
    return ast


def parameters_box(values: Mapping[str, Any], declared: list[str], digest: str) -> str:
    """Markdown for the box at the top of a variant: which parameters differ from the chapter's defaults."""
    lines = ["::: {.ex4-params}", f"**Variant {digest}** — this chapter rendered with the parameters below; "
             "the book in `_book/` is unchanged.", ""]
    if values:
        lines += ["| Parameter | Value |", "|---|---|"]
        lines += [f"| `{name}` | `{json.dumps(value)}` |" for name, value in values.items()]
    else:
        lines.append("All parameters at the chapter's defaults.")
    others = [name for name in declared if name not in values]
    if others and values:
        lines += ["", "At the chapter's defaults: " + ", ".join(f"`{name}`" for name in others) + "."]
    lines.append(":::")
    return "\n".join(lines)


def _quarto_chapter(project_root: Path, qmd: Path, chapter: Chapter, values: Mapping[str, Any], box: str,
                    site: Path, build: Path, env: dict[str, str], config: BookConfig | None) -> None:
    """A standalone copy of the chapter (box added after the front matter) rendered by Quarto to HTML and PDF."""
    text = qmd.read_text(encoding="utf-8")
    lines = text.splitlines()
    insert_at = 0
    if lines and lines[0].strip() == "---":
        insert_at = next((i + 1 for i in range(1, len(lines)) if lines[i].strip() in ("---", "...")), 0)
    copy = build / qmd.name
    copy.write_text("\n".join(lines[:insert_at] + ["", box, ""] + lines[insert_at:]) + "\n", encoding="utf-8")
    project = {"project": {"type": "default"},
               "format": {"html": {"embed-resources": True, "toc": True, "number-sections": True,
                                   "html-math-method": "mathml"}, "typst": {"toc": True, "section-numbering": "1.1"}},
               "jupyter": "python3"}
    if config is not None and config.execute:
        project["execute"] = config.execute
    (build / "_quarto.yml").write_text(yaml.safe_dump(project, sort_keys=False), encoding="utf-8")
    args = ["render", str(copy), "--to", "all", "--output-dir", str(site)]
    for name, value in values.items():
        args += ["-P", f"{name}:{json.dumps(value)}"]
    with environment({**env, "QUARTO_PYTHON": sys.executable}):
        run_quarto(args, cwd=build, what=_display_path(qmd, project_root))
