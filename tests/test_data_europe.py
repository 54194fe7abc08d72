"""The Europe loader: the course CSV format, and one precise error per kind of bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import DATA_EUROPE_NAMES, DATA_EUROPE_ROWS, data_europe_csv
from ex4.data import resolve_europe_dir
from ex4.data.europe import europe_files, load_europe, summarize_europe
from ex4.errors import Ex4Error


def test_loads_course_format(data_europe_dir: Path) -> None:
    data = load_europe(data_europe_dir)
    assert data.n_classes == 3
    assert data.class_names == DATA_EUROPE_NAMES
    assert data.directory == data_europe_dir.resolve()
    assert data.train.x.dtype == np.float32 and data.train.x.shape == (6, 2)
    assert data.train.y.dtype == np.int64
    np.testing.assert_allclose(data.train.x[0], [2.35, 48.85], rtol=1e-6)
    assert data.test.y.tolist() == [0, 1, 2]


def test_accepts_files_without_index_column_and_without_class_names(data_europe_dir: Path) -> None:
    (data_europe_dir / "countries.csv").unlink()
    rows = DATA_EUROPE_ROWS["train"] + [(20.0, 50.0, 4)]
    (data_europe_dir / "train.csv").write_text(data_europe_csv(rows, index_column=False))
    data = load_europe(data_europe_dir)
    assert data.n_classes == 5  # max label + 1 over all splits, even with label 3 unused
    assert data.class_names == [f"class {label}" for label in range(5)]
    assert data.train.y[-1] == 4


def test_europe_files_lists_splits_and_class_names(data_europe_dir: Path) -> None:
    names = [path.name for path in europe_files(data_europe_dir)]
    assert names == ["train.csv", "validation.csv", "test.csv", "countries.csv"]


def test_summary_counts_rows_per_split_and_class(data_europe_dir: Path) -> None:
    summary = summarize_europe(data_europe_dir)
    assert summary["rows"] == {"train": 6, "val": 3, "test": 3}
    assert summary["per_class"]["train"] == [2, 2, 2]
    assert summary["n_classes"] == 3 and summary["class_names"] == DATA_EUROPE_NAMES


def test_trailing_blank_lines_are_ignored(data_europe_dir: Path) -> None:
    path = data_europe_dir / "test.csv"
    path.write_text(path.read_text() + "\n\n")
    assert load_europe(data_europe_dir).test.y.size == 3


BAD_SPLIT_TEXT = [
    # (test id, text of validation.csv, fragments the message must contain)
    ("header only", ",long,lat,country\n", ["validation.csv", "no data rows"]),
    ("missing column", ",long,country\n0,1.0,0\n", ["validation.csv", "missing column 'lat'"]),
    ("empty cell", ",long,lat,country\n0,1.0,2.0,0\n1,,2.0,1\n", ["validation.csv", "row 2 (line 3)", "'long'",
                                                                   "empty cell"]),
    ("short row", ",long,lat,country\n0,1.0,2.0,0\n1,1.0,2.0\n", ["row 2", "'country'", "empty cell"]),
    ("NaN", ",long,lat,country\n0,1.0,NaN,0\n", ["row 1 (line 2)", "'lat'", "missing value 'NaN'"]),
    ("text", ",long,lat,country\n0,1.0,2.0,0\n1,1.0,2.0,0\n2,east,2.0,0\n", ["row 3 (line 4)", "'long'",
                                                                             "'east' is not a number"]),
    ("infinite", ",long,lat,country\n0,inf,2.0,0\n", ["row 1", "'long'", "not a finite number"]),
    ("negative label", ",long,lat,country\n0,1.0,2.0,-1\n", ["row 1", "'country'", "label -1 is negative"]),
    ("fractional label", ",long,lat,country\n0,1.0,2.0,0\n1,1.0,2.0,1.5\n", ["row 2", "'country'",
                                                                             "label 1.5 is not an integer"]),
    ("text label", ",long,lat,country\n0,1.0,2.0,France\n", ["row 1", "'country'", "'France' is not a number"]),
    ("longitude range", ",long,lat,country\n0,1.0,2.0,0\n1,180.5,2.0,0\n", ["row 2 (line 3)", "'long'",
                                                                            "longitude 180.5 is outside [-180, 180]"]),
    ("latitude range", ",long,lat,country\n0,1.0,-95,0\n", ["row 1", "'lat'", "latitude -95 is outside [-90, 90]"]),
    ("extra field", ",long,lat,country\n0,1.0,2.0,0\n1,1.0,2.0,0,9\n", ["validation.csv", "not a valid CSV",
                                                                         "line 3"]),
    ("label beyond countries.csv", ",long,lat,country\n0,1.0,2.0,0\n1,1.0,2.0,7\n",
     ["validation.csv", "row 2 (line 3)", "'country'", "label 7 is out of range 0..2"]),
]


@pytest.mark.parametrize("text, fragments", [case[1:] for case in BAD_SPLIT_TEXT],
                         ids=[case[0] for case in BAD_SPLIT_TEXT])
def test_bad_split_file_names_file_row_and_column(data_europe_dir: Path, text: str, fragments: list[str]) -> None:
    (data_europe_dir / "validation.csv").write_text(text)
    with pytest.raises(Ex4Error) as caught:
        load_europe(data_europe_dir)
    message = str(caught.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message


@pytest.mark.parametrize("content, fragment", [
    (b"", "file is empty (0 bytes)"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary content"),
    (b",long,lat,country\n0,1.0,2.0,0\n1,\xff\xfe,2.0,0\n", "line 3: not UTF-8 text"),
    (b"\n\n", "no header line"),
], ids=["zero bytes", "binary", "undecodable", "blank"])
def test_unreadable_file_is_named(data_europe_dir: Path, content: bytes, fragment: str) -> None:
    (data_europe_dir / "train.csv").write_bytes(content)
    with pytest.raises(Ex4Error, match="train.csv") as caught:
        load_europe(data_europe_dir)
    assert fragment in str(caught.value)


def test_missing_split_file_is_named(data_europe_dir: Path) -> None:
    (data_europe_dir / "test.csv").unlink()
    with pytest.raises(Ex4Error, match=r"test\.csv: test split file not found"):
        europe_files(data_europe_dir)
    with pytest.raises(Ex4Error, match=r"test\.csv"):
        load_europe(data_europe_dir)


def test_missing_or_file_directory(tmp_path: Path) -> None:
    with pytest.raises(Ex4Error, match="nowhere: Europe data directory not found"):
        load_europe(tmp_path / "nowhere")
    (tmp_path / "afile").write_text("x")
    with pytest.raises(Ex4Error, match="must be a directory"):
        load_europe(tmp_path / "afile")


@pytest.mark.parametrize("text, fragment", [
    ("label,iso,name\n0,FR,France\n0,DE,Germany\n2,IT,Italy\n",
     "row 2 (line 3), column 'label': label 0 appears twice"),
    ("label,iso,name\n0,FR,France\n2,IT,Italy\n", "label 1 is missing"),
    ("label,iso,name\n0,FR,France\n1,DE,\n2,IT,Italy\n", "row 2 (line 3), column 'name': empty cell"),
    ("label,iso\n0,FR\n", "missing column 'name'"),
])
def test_bad_class_names_file(data_europe_dir: Path, text: str, fragment: str) -> None:
    (data_europe_dir / "countries.csv").write_text(text)
    with pytest.raises(Ex4Error, match="countries.csv") as caught:
        load_europe(data_europe_dir)
    assert fragment in str(caught.value)


def test_single_class_is_rejected(data_europe_dir: Path) -> None:
    (data_europe_dir / "countries.csv").unlink()
    for name in ("train.csv", "validation.csv", "test.csv"):
        (data_europe_dir / name).write_text(data_europe_csv([(1.0, 2.0, 0)]))
    with pytest.raises(Ex4Error, match="at least 2 classes"):
        load_europe(data_europe_dir)


def test_resolve_europe_dir_checks_a_given_folder(data_europe_dir: Path, tmp_path: Path) -> None:
    assert resolve_europe_dir(str(data_europe_dir)) == data_europe_dir.resolve()
    with pytest.raises(Ex4Error, match="europe_dir"):
        resolve_europe_dir(str(tmp_path / "missing"))
    (data_europe_dir / "train.csv").unlink()
    with pytest.raises(Ex4Error, match=r"train\.csv"):
        resolve_europe_dir(data_europe_dir)
