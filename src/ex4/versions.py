"""Installed package versions, for data manifests and result-store keys alike."""

from __future__ import annotations

import importlib.metadata


def package_versions(*packages: str) -> dict[str, str | None]:
    """Version of each installed distribution, None where it is not installed."""
    found: dict[str, str | None] = {}
    for package in packages:
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = None
    return found
