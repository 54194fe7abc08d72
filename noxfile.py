"""Sessions: `tests`, then `report` (tests, then the whole book), `chapter` (one chapter variant), `preview`
(the writing loop), `bench`.

All sessions share one virtual environment in `.nox/ex4` so torch (several GB) is installed once; it is
reinstalled only when `pyproject.toml` changes.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
ENV = ROOT / ".nox" / "ex4"
BIN = ENV / ("Scripts" if sys.platform == "win32" else "bin")
PYTHON = str(BIN / "python")

nox.options.sessions = ["tests"]


def ensure_env(session: nox.Session) -> None:
    """Create the shared environment once; reinstall ex4 (not torch) when its requirements change."""
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    stamp = ENV / ".ex4-requirements"
    if not (BIN / "python").exists():
        session.run(sys.executable, "-m", "venv", str(ENV), external=True)
        session.run(PYTHON, "-m", "pip", "install", "--quiet", "--upgrade", "pip", external=True)
    if not stamp.exists() or stamp.read_text().strip() != wanted:
        session.run(PYTHON, "-m", "pip", "install", "--quiet", "-e", f"{ROOT}[test,dask]", external=True)
        stamp.write_text(wanted + "\n")
    session.env["PATH"] = os.pathsep.join([str(BIN), os.environ.get("PATH", "")])
    session.env["VIRTUAL_ENV"] = str(ENV)


def run_tests(session: nox.Session) -> None:
    session.run(PYTHON, "-m", "pytest", *(session.posargs or ["-q"]), external=True)


@nox.session(venv_backend="none")
def tests(session: nox.Session) -> None:
    """The test suite (pytest); arguments after `--` go to pytest."""
    ensure_env(session)
    run_tests(session)


@nox.session(venv_backend="none")
def report(session: nox.Session) -> None:
    """Quick tests, then the whole book (HTML + PDF) into _book/, then the book checks on what was published.

    The tests run first are the quick tier (`-m "not book and not slow"`): the unit tests of every layer, the
    parameter and chapter-source checks, the wording tests — seconds, so that a warm build after a sentence edit
    stays in the writing loop. The slow tests (training, rendering a smoke book, Dask clusters, the browser
    preview) are the rest of `nox -s tests`, the suite CI runs.

    `-- --params FILE` picks a parameter profile. The book checks (every chapter and figure, no error
    output, no dangling cross-reference, a PDF with the figures, headless Chromium) run on `_book/` itself
    rather than on a throw-away smoke book: the same assertions, on the book people read, and the build
    does not render the book twice.
    """
    ensure_env(session)
    args = list(session.posargs)
    session.run(PYTHON, "-m", "ex4.cli", "data", "build", "--if-missing", external=True)
    # the quick tier: every test that neither trains, renders nor starts a cluster or a browser (seconds); the
    # whole suite is `nox -s tests` (what CI runs), and the book checks below run on the book just written
    session.run(PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not book and not slow",
                external=True)
    session.run(PYTHON, "-m", "ex4.cli", "render", *args, external=True)
    # only the modules that hold book checks (tests/conftest.py: BOOK_MODULES): nothing else is imported
    session.run(PYTHON, "-m", "pytest", "-q", "-m", "book", "tests/test_book_smoke.py", "tests/test_browser.py",
                external=True,
                env={"EX4_BOOK_DIR": str(ROOT / "_book"), "EX4_SCREENSHOT_DIR": str(ROOT / ".ex4" / "screenshots")})


@nox.session(venv_backend="none")
def chapter(session: nox.Session) -> None:
    """One chapter with new parameters: `nox -s chapter -- report/section6-1.qmd -P seed:7`."""
    ensure_env(session)
    if not session.posargs:
        session.error("usage: nox -s chapter -- report/<chapter>.qmd [-P name:value ...] [--params FILE]")
    qmd, *rest = session.posargs
    session.run(PYTHON, "-m", "ex4.cli", "render", "--chapter", qmd, *rest, external=True)


@nox.session(venv_backend="none")
def preview(session: nox.Session) -> None:
    """Serve the book on http://127.0.0.1:4848/ and re-render it on every edit; the open page reloads (Ctrl-C stops).

    Arguments after `--` go to `ex4 preview` (`--params FILE`, `--set NAME=VALUE`, `--port N`)."""
    ensure_env(session)
    session.run(PYTHON, "-m", "ex4.cli", "data", "build", "--if-missing", external=True)
    session.run(PYTHON, "-m", "ex4.cli", "preview", *session.posargs, external=True)


@nox.session(venv_backend="none")
def bench(session: nox.Session) -> None:
    """Speed and memory against the textbook reference loops (prints ratios)."""
    ensure_env(session)
    targets = session.posargs or ["benchmarks/mlp.py", "benchmarks/cnn.py", "benchmarks/section7.py"]
    for target in targets:
        session.run(PYTHON, target, external=True)
