"""European cities in the course's CSV format: (longitude, latitude) -> integer country label.

A data folder holds `train.csv`, `validation.csv` and `test.csv` with the header `,long,lat,country`
(a leading unnamed row-index column, as pandas writes it) or just `long,lat,country`, and optionally
`countries.csv` (`label,iso,name`) naming the classes. Every cell is checked here, at the edge, so a bad
file fails with one line naming the file, the row (1-based data row and its line in the file) and the
column, instead of a NaN loss twenty minutes into training.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ex4.data.checks import decode_text, read_bytes, read_json, require_directory, require_file
from ex4.errors import Ex4Error, warn
from ex4.hashing import fingerprint_digests, sha256_bytes

SPLIT_FILES = {"train": "train.csv", "val": "validation.csv", "test": "test.csv"}
COUNTRIES_FILE = "countries.csv"
COORDINATE_RANGES = {"long": (-180.0, 180.0), "lat": (-90.0, 90.0)}
_MISSING_WORDS = {"nan", "na", "n/a", "null", "none"}
# Limits and minimum sizes (README "Limits"). Labels index the model's outputs, so a label of 10**12 would
# ask for 10**12 output units: labels stop at MAX_CLASSES - 1 (the world has ~250 countries). A training
# split needs MIN_TRAIN_ROWS rows: batch norm normalises over a batch, and even a one-batch epoch of a single
# row has no variance (the kernel divides by rows - 1); validation and test need one row each (their loss
# and accuracy are means over their rows).
MAX_CLASSES = 10_000
MAX_CSV_BYTES = 512 * 2**20  # one split file: ~10 M rows (the course's train.csv is 4 MB)
MIN_ROWS = {"train": 2, "val": 1, "test": 1}


@dataclass
class Split:
    x: np.ndarray  # float32 [n, 2]: longitude, latitude in degrees
    y: np.ndarray  # int64 [n]: country label 0..K-1


@dataclass
class EuropeData:
    train: Split
    val: Split
    test: Split
    n_classes: int
    class_names: list[str]
    directory: Path
    fingerprint: str = ""  # store-style fingerprint of the bytes that were read (ex4.hashing.fingerprint_digests)

    def splits(self) -> dict[str, Split]:
        return {"train": self.train, "val": self.val, "test": self.test}


def europe_files(directory: Path | str) -> list[Path]:
    """The three split files (and countries.csv when present) after checking they exist."""
    folder = require_directory(directory, "Europe data")
    files = [require_file(folder / name, f"{split} split file") for split, name in SPLIT_FILES.items()]
    if (folder / COUNTRIES_FILE).exists():
        files.append(require_file(folder / COUNTRIES_FILE, "class names file"))
    return files


def load_europe(directory: Path | str) -> EuropeData:
    """Read and validate the three splits; class names from countries.csv, else "class 0", "class 1", ..."""
    folder = require_directory(directory, "Europe data")
    europe_files(folder)
    digests: dict[Path, str] = {}
    columns = {split: _read_split(folder / name, digests) for split, name in SPLIT_FILES.items()}
    names_file = folder / COUNTRIES_FILE
    if names_file.exists():
        class_names = _read_class_names(names_file, digests)
        n_classes = len(class_names)
    else:
        n_classes = 1 + max(int(labels.max()) for _, labels, _ in columns.values())
        class_names = [f"class {label}" for label in range(n_classes)]
    if n_classes < 2:
        raise Ex4Error(f"{folder}: every row has label 0; classification needs at least 2 classes")
    for split, (_, labels, path) in columns.items():
        if labels.size < MIN_ROWS[split]:
            raise Ex4Error(f"{path}: {labels.size} data row(s); the {split} split needs at least {MIN_ROWS[split]} "
                           "(batch norm cannot normalise a batch of one row)" if split == "train" else
                           f"{path}: no data rows; the {split} split needs at least {MIN_ROWS[split]}")
    for split, (_, labels, path) in columns.items():
        outside = np.flatnonzero(labels >= n_classes)
        if outside.size:
            row = int(outside[0]) + 1
            raise Ex4Error(f"{path}: row {row} (line {row + 1}), column 'country': label {labels[outside[0]]} "
                           f"is out of range 0..{n_classes - 1} ({names_file.name} lists {n_classes} classes)")
    _warn_about_classes(folder, columns, class_names)
    splits = {split: Split(x=x, y=labels) for split, (x, labels, _) in columns.items()}
    return EuropeData(**splits, n_classes=n_classes, class_names=class_names, directory=folder,
                      fingerprint=fingerprint_digests(digests.items(), root=folder))


def _warn_about_classes(folder: Path, columns: dict[str, tuple[np.ndarray, np.ndarray, Path]],
                        class_names: list[str]) -> None:
    """Ex4Warning (not an error: the data are usable) for classes with no rows at all (label gaps) and for
    classes that validation or test hold but training never shows."""
    counts = {split: np.bincount(labels, minlength=len(class_names)) for split, (_, labels, _) in columns.items()}
    empty = np.flatnonzero(sum(counts.values()) == 0)
    if empty.size:
        listed = ", ".join(f"{label} ({class_names[label]})" for label in empty[:5].tolist())
        more = f" and {empty.size - 5} more" if empty.size > 5 else ""
        message = f"{folder}: {empty.size} class(es) have no rows in any split: label {listed}{more}; " \
                        "the labels have gaps, so the model keeps outputs that are never the answer"
        warn(message)
    train_path = columns["train"][2]
    for split in ("val", "test"):
        unseen = np.flatnonzero((counts["train"] == 0) & (counts[split] > 0))
        if unseen.size:
            listed = ", ".join(f"{label} ({class_names[label]}, {counts[split][label]} row(s))"
                               for label in unseen[:5].tolist())
            more = f" and {unseen.size - 5} more" if unseen.size > 5 else ""
            warn(f"{columns[split][2]}: class(es) {listed}{more} have rows here but none in {train_path.name}; "
                 "the model can never predict them")


def summarize_europe(directory: Path | str) -> dict[str, Any]:
    """Rows per split and per class, for `ex4 data check europe DIR` (raises Ex4Error on bad input)."""
    data = load_europe(directory)
    manifest_path = data.directory / "manifest.json"
    manifest = read_json(manifest_path) if manifest_path.is_file() else {}
    splits = data.splits()
    return {
        "directory": str(data.directory),
        "source": manifest.get("source", "user data") if isinstance(manifest, dict) else "user data",
        "n_classes": data.n_classes,
        "class_names": data.class_names,
        "rows": {split: int(part.y.size) for split, part in splits.items()},
        "per_class": {split: np.bincount(part.y, minlength=data.n_classes).tolist() for split, part in splits.items()},
    }


# --- reading one file --------------------------------------------------------------------------------------


def _read_table(path: Path, digests: dict[Path, str] | None = None) -> pd.DataFrame:
    """All cells as stripped strings, blank lines kept (so data row N sits on line N + 1); the sha256 of the
    bytes read goes into `digests`."""
    data = read_bytes(path, limit=MAX_CSV_BYTES)
    if digests is not None:
        digests[path] = sha256_bytes(data)
    text = decode_text(path, data)
    try:
        table = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, na_filter=False,
                            skip_blank_lines=False)
    except pd.errors.EmptyDataError:
        raise Ex4Error(f"{path}: no header line (file is blank)") from None
    except pd.errors.ParserError as error:
        detail = str(error).replace("Error tokenizing data. C error: ", "").strip()
        raise Ex4Error(f"{path}: not a valid CSV file: {detail}") from None
    table.columns = [str(name).strip() for name in table.columns]
    table = table.apply(lambda column: column.str.strip())
    blank = (table == "").all(axis=1).to_numpy()
    last = len(blank) - int(np.argmin(blank[::-1])) if not blank.all() else 0  # drop trailing blank lines
    return table.iloc[:last]


def _split_columns(table: pd.DataFrame, path: Path, required: tuple[str, ...]) -> None:
    missing = [name for name in required if name not in table.columns]
    if missing:
        found = ", ".join("(unnamed)" if name.startswith("Unnamed: ") else repr(name)
                          for name in table.columns) or "nothing"
        raise Ex4Error(f"{path}: header: missing column {missing[0]!r} (expected {', '.join(required)}; "
                       f"found {found})")
    if table.empty:
        raise Ex4Error(f"{path}: no data rows (header only)")


def _numbers(table: pd.DataFrame, column: str, path: Path) -> np.ndarray:
    """The column as float64, or Ex4Error at the first empty, missing, non-numeric or infinite cell."""
    text = table[column]
    values = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        index = int(bad[0])
        cell = text.iloc[index]
        if cell == "":
            problem = "empty cell"
        elif cell.lower() in _MISSING_WORDS:
            problem = f"missing value {cell!r}"
        elif np.isinf(values[index]):
            problem = f"{cell!r} is not a finite number"
        else:
            problem = f"{cell!r} is not a number"
        raise Ex4Error(f"{path}: row {index + 1} (line {index + 2}), column {column!r}: {problem}")
    return values


def _first_row(mask: np.ndarray) -> int | None:
    hits = np.flatnonzero(mask)
    return int(hits[0]) if hits.size else None


def _integer_labels(table: pd.DataFrame, column: str, path: Path) -> np.ndarray:
    values = _numbers(table, column, path)
    for mask, problem in ((values < 0, "is negative"), (values != np.round(values), "is not an integer"),
                          (values >= MAX_CLASSES, f"is over the limit of {MAX_CLASSES - 1:,} ({MAX_CLASSES:,} classes)")):
        index = _first_row(mask)
        if index is not None:
            raise Ex4Error(f"{path}: row {index + 1} (line {index + 2}), column {column!r}: label "
                           f"{table[column].iloc[index]} {problem}; labels must be integers 0..K-1")
    return values.astype(np.int64)


def _read_split(path: Path, digests: dict[Path, str] | None = None) -> tuple[np.ndarray, np.ndarray, Path]:
    table = _read_table(path, digests)
    _split_columns(table, path, ("long", "lat", "country"))
    coordinates = []
    for column, (low, high) in COORDINATE_RANGES.items():
        values = _numbers(table, column, path)
        index = _first_row((values < low) | (values > high))
        if index is not None:
            name = "longitude" if column == "long" else "latitude"
            raise Ex4Error(f"{path}: row {index + 1} (line {index + 2}), column {column!r}: {name} "
                           f"{table[column].iloc[index]} is outside [{low:g}, {high:g}]")
        coordinates.append(values)
    labels = _integer_labels(table, "country", path)
    return np.stack(coordinates, axis=1).astype(np.float32), labels, path


def _read_class_names(path: Path, digests: dict[Path, str] | None = None) -> list[str]:
    """countries.csv: one row per label 0..K-1 (any order), each with a non-empty name."""
    table = _read_table(path, digests)
    _split_columns(table, path, ("label", "name"))
    labels = _integer_labels(table, "label", path)
    names: dict[int, str] = {}
    for index, (label, name) in enumerate(zip(labels.tolist(), table["name"])):
        where = f"{path}: row {index + 1} (line {index + 2})"
        if not name:
            raise Ex4Error(f"{where}, column 'name': empty cell")
        if label in names:
            raise Ex4Error(f"{where}, column 'label': label {label} appears twice")
        names[label] = name
    gaps = sorted(set(range(len(names))) - set(names))
    if gaps:
        raise Ex4Error(f"{path}: labels must be 0..{len(names) - 1} without gaps; label {gaps[0]} is missing")
    return [names[label] for label in range(len(names))]
