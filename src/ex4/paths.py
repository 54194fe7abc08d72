"""Where ex4 keeps generated things: bundled data and the result store (both git-ignored)."""

from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path:
    """The project folder: $EX4_ROOT, else the nearest parent of the cwd with ex4's pyproject, else ~/.cache/ex4."""
    if os.environ.get("EX4_ROOT"):
        return Path(os.environ["EX4_ROOT"]).resolve()
    for folder in [Path.cwd(), *Path.cwd().parents]:
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file() and 'name = "ex4"' in pyproject.read_text(encoding="utf-8", errors="replace"):
            return folder
    source_checkout = Path(__file__).resolve().parents[2]
    if (source_checkout / "pyproject.toml").is_file():
        return source_checkout
    return Path.home() / ".cache" / "ex4"


def work_dir() -> Path:
    """Git-ignored folder for everything ex4 generates."""
    return project_root() / ".ex4"


def bundled_data_dir() -> Path:
    return work_dir() / "data"


def default_europe_dir() -> Path:
    return bundled_data_dir() / "europe"


def default_faces_dir() -> Path:
    return bundled_data_dir() / "faces"


def default_store_dir() -> Path:
    return Path(os.environ["EX4_STORE"]).resolve() if os.environ.get("EX4_STORE") else work_dir() / "store"


def cache_dir() -> Path:
    """Decoded-image caches and similar derived files (keyed by content, safe to delete)."""
    return work_dir() / "cache"
