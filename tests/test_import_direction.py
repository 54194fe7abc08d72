"""Imports point down the flow (ARCHITECTURE.md): read every module of src/ex4 with `ast`, including imports made
inside functions, and check each layer against the layers it must not import.

    data -> experiments -> (train, models) ;  store -> analysis -> plots -> chapters ;  render knows no ML
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "ex4"
ML_LIBRARIES = ("torch", "torchvision", "numba", "sklearn", "xgboost")

# layer (a package or module of ex4) -> what it must never import
FORBIDDEN = {
    "ex4.analysis": ("ex4.experiments", "ex4.train", "ex4.plots", "ex4.render", "ex4.cli"),
    "ex4.experiments": ("ex4.analysis", "ex4.plots", "ex4.render", "ex4.cli"),
    "ex4.models": ("ex4.experiments", "ex4.analysis", "ex4.plots", "ex4.cli", "ex4.render", "ex4.train"),
    "ex4.train": ("ex4.experiments", "ex4.analysis", "ex4.plots", "ex4.cli", "ex4.render"),
    "ex4.plots": ("ex4.train", "ex4.experiments", "ex4.render", "ex4.cli"),
    "ex4.render": ("ex4.models", "ex4.train", "ex4.experiments", "ex4.analysis", "ex4.plots", *ML_LIBRARIES),
}

# Known exceptions, each with the change that removes it.
ALLOWED = {
    # removed when models/regions.py lands (the Section 6 half of issue 11 moves region counting out of analysis)
    ("ex4.experiments.section6", "ex4.analysis.regions"),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every module `path` imports, anywhere in the file; `from ex4 import fmt` counts as `ex4.fmt`."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def violations() -> list[tuple[str, str]]:
    found = []
    for path in sorted(SRC.rglob("*.py")):
        module = module_name(path)
        for layer, banned in FORBIDDEN.items():
            if not within(module, layer):
                continue
            for imported in sorted(imports_of(path)):
                allowed = any(module == source and within(imported, target) for source, target in ALLOWED)
                if any(within(imported, target) for target in banned) and not allowed:
                    found.append((module, imported))
    return found


def test_the_checker_sees_imports_inside_functions_and_relative_ones(tmp_path):
    source = tmp_path / "ex4" / "analysis" / "x.py"
    source.parent.mkdir(parents=True)
    source.write_text("def f():\n    from ex4.experiments import run\n    from ..train import cnn\n")
    global SRC
    saved, SRC = SRC, tmp_path / "ex4"
    try:
        assert {"ex4.experiments.run", "ex4.train.cnn"} <= imports_of(source)
        assert ("ex4.analysis.x", "ex4.experiments") in violations()
    finally:
        SRC = saved


def test_imports_point_down_the_flow():
    found = violations()
    assert found == [], "imports against the flow:\n" + "\n".join(f"{module} imports {name}" for module, name in found)


@pytest.mark.parametrize("module, imported", sorted(ALLOWED))
def test_each_allowed_exception_still_exists(module, imported):
    """An exception that the code no longer needs must leave the list (so the list cannot hide a new one)."""
    path = SRC / Path(*module.split(".")[1:]).with_suffix(".py")
    assert any(within(name, imported) for name in imports_of(path)), f"{module} no longer imports {imported}: " \
                                                                      "remove it from ALLOWED"
