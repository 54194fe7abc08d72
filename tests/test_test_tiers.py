"""The quick test tier that `nox -s report` runs before rendering: one marker expression, used alike by the
noxfile and by the benchmark that measures a warm `nox -s report`, and a tier that leaves out what is slow."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def noxfile_quick_tier() -> str:
    text = (ROOT / "noxfile.py").read_text(encoding="utf-8")
    tree = ast.parse(text)
    report = next(node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "report")
    expressions = []
    for call in ast.walk(report):
        if isinstance(call, ast.Call):
            args = [arg.value for arg in call.args if isinstance(arg, ast.Constant) and isinstance(arg.value, str)]
            if "pytest" in args and "-m" in args[args.index("pytest"):]:
                after = args[args.index("pytest"):]
                expressions.append(after[after.index("-m") + 1])
    quick = [expression for expression in expressions if expression != "book"]
    assert len(quick) == 1, expressions
    return quick[0]


def test_the_report_session_runs_the_quick_tier_before_the_book_checks():
    quick = noxfile_quick_tier()
    assert re.fullmatch(r"not book and not slow", quick), quick


def test_the_render_benchmark_measures_the_same_tier():
    text = (ROOT / "benchmarks" / "render.py").read_text(encoding="utf-8")
    constant = next(node for node in ast.parse(text).body
                    if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "QUICK_TESTS")
    assert constant.value.value == noxfile_quick_tier()


def test_the_markers_it_names_are_declared():
    config = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    for marker in re.findall(r"not (\w+)", noxfile_quick_tier()):
        assert f'"{marker}:' in config, marker


def test_every_module_listed_as_slow_exists():
    from conftest import SLOW_MODULES

    missing = sorted(name for name in SLOW_MODULES if not (ROOT / "tests" / name).is_file())
    assert not missing, f"tests/conftest.py lists slow modules that do not exist: {missing}"


def test_the_mark_expression_decides_which_slow_modules_are_not_imported():
    from conftest import excludes_mark

    assert excludes_mark("not book and not slow", "slow")
    assert excludes_mark("not slow", "slow")
    assert not excludes_mark("book", "slow")  # a slow module may hold book tests
    assert not excludes_mark("slow or book", "slow")
    assert not excludes_mark("", "slow")
    assert not excludes_mark("not book", "slow")


def test_the_book_checks_live_in_the_modules_the_report_session_names():
    from conftest import BOOK_MODULES

    holding = sorted(path.name for path in (ROOT / "tests").glob("test_*.py")
                     if re.search(r"pytest\.mark\.book\b", path.read_text(encoding="utf-8")))
    assert holding == sorted(BOOK_MODULES)
    text = (ROOT / "noxfile.py").read_text(encoding="utf-8")
    for name in BOOK_MODULES:
        assert f"tests/{name}" in text, name
    bench = (ROOT / "benchmarks" / "render.py").read_text(encoding="utf-8")
    for name in BOOK_MODULES:
        assert f"tests/{name}" in bench, name


def test_every_module_that_marks_itself_slow_is_listed_so_the_quick_tier_does_not_import_it():
    from conftest import BOOK_MODULES, SLOW_MODULES

    marked = sorted(path.name for path in (ROOT / "tests").glob("test_*.py")
                    if re.search(r"^pytestmark\b.*\bslow\b", path.read_text(encoding="utf-8"), re.M))
    assert [name for name in marked if name not in SLOW_MODULES and name not in BOOK_MODULES] == []
