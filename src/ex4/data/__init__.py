"""The two data sets: European cities (Section 6) and real-vs-fake images (Section 7).

`resolve_*_dir` turns the `europe_dir` / `faces_dir` parameter into a checked folder; None means the
bundled default, built offline on first use. Heavy imports (pandas, PIL, scikit-learn) happen inside the
loaders, so importing this package stays cheap.
"""

from __future__ import annotations

from pathlib import Path

from ex4.data.checks import require_directory


def resolve_europe_dir(value: str | Path | None) -> Path:
    """None -> the bundled GeoNames set (built on first use); otherwise an existing folder with the three splits."""
    if value is None or value == "":
        from ex4.data.bundled import ensure_bundled_europe

        return ensure_bundled_europe()
    from ex4.data.europe import europe_files

    folder = require_directory(value, "europe_dir: Europe data")
    europe_files(folder)
    return folder


def resolve_faces_dir(value: str | Path | None) -> Path:
    """None -> the bundled digits stand-in (built on first use); otherwise a checked real/fake ImageFolder tree."""
    if value is None or value == "":
        from ex4.data.bundled import ensure_bundled_faces

        return ensure_bundled_faces()
    from ex4.data.faces import faces_files

    folder = require_directory(value, "faces_dir: faces data")
    faces_files(folder)
    return folder
