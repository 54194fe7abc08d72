"""The offline builders: byte-identical rebuilds, readable by the same loaders, built once on first use."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits

import ex4.data.bundled as bundled
from ex4.data import resolve_europe_dir, resolve_faces_dir
from ex4.data.countries import EUROPE_WINDOW, EUROPEAN_COUNTRIES
from ex4.data.europe import load_europe
from ex4.data.faces import load_faces
from ex4.errors import Ex4Error

SMALL_COUNTS = {"train": 8, "val": 4, "test": 4}


def _tree_bytes(folder: Path) -> dict[str, bytes]:
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in sorted(folder.rglob("*"))
            if path.is_file()}


@pytest.fixture(scope="module")
def built_europe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return bundled.build_europe(tmp_path_factory.mktemp("bundled") / "europe")


def test_europe_rebuild_is_byte_identical(built_europe: Path, tmp_path: Path) -> None:
    again = bundled.build_europe(tmp_path / "elsewhere")
    assert _tree_bytes(again) == _tree_bytes(built_europe)
    assert not [path.name for path in tmp_path.iterdir() if path.name.startswith(".")]  # no staging left behind


def test_europe_passes_the_loader_with_stratified_splits(built_europe: Path) -> None:
    data = load_europe(built_europe)
    assert data.n_classes == len(EUROPEAN_COUNTRIES) == 34
    assert data.class_names == [name for _, name in EUROPEAN_COUNTRIES]
    per_class = {split: np.bincount(part.y, minlength=data.n_classes) for split, part in data.splits().items()}
    total = sum(per_class.values())
    assert total.min() >= 100
    np.testing.assert_allclose(per_class["train"] / total, 0.8, atol=0.01)
    np.testing.assert_allclose(per_class["test"] / total, 0.1, atol=0.02)
    every_x = np.concatenate([part.x for part in data.splits().values()])
    assert every_x[:, 0].min() >= EUROPE_WINDOW["long"][0] and every_x[:, 0].max() <= EUROPE_WINDOW["long"][1]
    assert every_x[:, 1].min() >= EUROPE_WINDOW["lat"][0]
    first_line = (built_europe / "train.csv").read_text().splitlines()[0]
    assert first_line == ",long,lat,country"


def test_europe_manifest_records_files_and_attribution(built_europe: Path) -> None:
    manifest = json.loads((built_europe / "manifest.json").read_text())
    assert manifest["standin"] is False and "GeoNames" in manifest["attribution"]
    assert set(manifest["files"]) == {"train.csv", "validation.csv", "test.csv", "countries.csv"}
    assert manifest["rows"]["train"] == sum(manifest["rows_per_class"]["train"])
    assert bundled.manifest_matches(built_europe, bundled.europe_recipe())


def test_faces_rebuild_is_byte_identical_and_loads(tmp_path: Path, data_isolated_root: Path) -> None:
    first = bundled.build_faces(tmp_path / "one", counts=SMALL_COUNTS)
    second = bundled.build_faces(tmp_path / "two", counts=SMALL_COUNTS)
    assert _tree_bytes(first) == _tree_bytes(second)
    data = load_faces(first, 32)
    assert data.is_standin is True and "NOT faces" in data.description
    for split, count in SMALL_COUNTS.items():
        part = data.splits()[split]
        assert part.images.shape == (count, 32, 32, 3)
        assert np.bincount(part.labels).tolist() == [count // 2, count // 2]


def test_faces_difficulty_changes_the_fakes_only(tmp_path: Path) -> None:
    easy = bundled.build_faces(tmp_path / "easy", difficulty=0.0, counts=SMALL_COUNTS)
    hard = bundled.build_faces(tmp_path / "hard", difficulty=1.0, counts=SMALL_COUNTS)
    easy_files, hard_files = _tree_bytes(easy), _tree_bytes(hard)
    reals = [name for name in easy_files if "/real/" in name]
    fakes = [name for name in easy_files if "/fake/" in name]
    assert all(easy_files[name] == hard_files[name] for name in reals)
    assert any(easy_files[name] != hard_files[name] for name in fakes)
    assert json.loads(hard_files["manifest.json"])["difficulty"] == 1.0


def test_default_standin_has_balanced_splits_and_disjoint_sources() -> None:
    made = bundled.make_faces_standin()
    for split, count in bundled.FACES_COUNTS.items():
        classes = [class_name for class_name, _, _ in made[split]]
        assert classes.count("real") == classes.count("fake") == count // 2
        assert all(pixels.shape == (bundled.IMAGE_SIDE, bundled.IMAGE_SIDE, 3) == (32, 32, 3) and pixels.dtype == np.uint8 for _, pixels, _ in made[split])
    sources = {split: {value for _, _, origin in items for key, value in origin.items() if key in ("digit", "donor")}
               for split, items in made.items()}
    assert not sources["train"] & (sources["val"] | sources["test"])
    assert not sources["val"] & sources["test"]
    target = load_digits().target  # every splice joins two digits of different classes
    assert all(target[origin["digit"]] != target[origin["donor"]]
               for items in made.values() for name, _, origin in items if name == "fake")


def test_faces_manifest_lists_source_indices(tmp_path: Path) -> None:
    folder = bundled.build_faces(tmp_path / "faces", counts=SMALL_COUNTS)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["standin"] is True
    assert set(manifest["source_indices"]) == {"train", "val", "test"}
    assert not set(manifest["source_indices"]["train"]) & set(manifest["source_indices"]["test"])
    assert len(manifest["files"]) == sum(SMALL_COUNTS.values())
    assert manifest["calibration"]["applies_to_this_build"] is False


def test_bad_builder_arguments(tmp_path: Path) -> None:
    with pytest.raises(Ex4Error, match="difficulty must be a number within"):
        bundled.build_faces(tmp_path / "faces", difficulty=1.5)
    with pytest.raises(Ex4Error, match="difficulty"):
        bundled.make_faces_standin(difficulty=float("nan"))
    with pytest.raises(Ex4Error, match="even"):
        bundled.make_faces_standin(counts={"train": 3, "val": 2, "test": 2})
    assert not (tmp_path / "faces").exists()


def test_ensure_builds_once_even_when_two_threads_ask(data_isolated_root: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    builds: list[Path] = []
    real_build = bundled.build_europe

    def counting_build(dest: Path) -> Path:
        builds.append(dest)
        return real_build(dest)

    monkeypatch.setattr(bundled, "build_europe", counting_build)
    results: list[Path] = []
    start_together = threading.Barrier(2)

    def ask() -> None:
        start_together.wait()  # both find no data before either finishes building
        results.append(resolve_europe_dir(None))

    threads = [threading.Thread(target=ask) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(builds) == 1
    assert results == [data_isolated_root / ".ex4" / "data" / "europe"] * 2
    assert resolve_europe_dir(None) == results[0] and len(builds) == 1  # valid manifest: reused
    (results[0] / "test.csv").write_text("damaged")
    assert resolve_europe_dir(None) == results[0] and len(builds) == 2  # hash mismatch: rebuilt
    assert load_europe(results[0]).n_classes == 34


def test_ensure_faces_builds_the_default_standin(data_isolated_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bundled, "FACES_COUNTS", SMALL_COUNTS)  # keep it small; the recipe follows
    folder = resolve_faces_dir(None)
    assert folder == data_isolated_root / ".ex4" / "data" / "faces"
    built = (folder / "manifest.json").stat().st_mtime_ns
    assert resolve_faces_dir(None) == folder
    assert (folder / "manifest.json").stat().st_mtime_ns == built  # not rebuilt
    assert load_faces(folder, 16).is_standin
    monkeypatch.setattr(bundled, "DEFAULT_DIFFICULTY", 0.9)  # another recipe: the manifest no longer matches
    resolve_faces_dir(None)
    assert json.loads((folder / "manifest.json").read_text())["difficulty"] == 0.9
