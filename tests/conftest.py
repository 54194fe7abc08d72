"""Shared fixtures. Data-layer fixtures (tiny generated data trees) are prefixed `data_`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

# --- test tiers ------------------------------------------------------------------------------------------------

# Modules whose every test trains a network, executes a chapter, renders or runs the CLI in a subprocess: the
# `slow` tier (single slow tests elsewhere carry `@pytest.mark.slow`). `nox -s report` runs the rest, the quick
# tier (`-m "not book and not slow"`), before rendering; `nox -s tests` runs everything.
SLOW_MODULES = frozenset({
    "test_cli.py", "test_cnn_experiment.py", "test_cnn_gpu.py", "test_cnn_probe.py", "test_cnn_setup.py",
    "test_cnn_textbook.py", "test_render_book.py", "test_section7_seeds.py", "test_section7_wording.py",
    "test_seed_repeats.py", "test_seed_wording.py", "test_wording_section6_front.py",
    "test_executor.py", "test_preview.py", "test_render_cache.py", "test_benchmarks.py",  # these mark themselves slow too
})


# The book checks (`-m book`): `nox -s report` names these modules so that its check of `_book/` imports nothing
# else (tests/test_test_tiers.py checks that every book test lives here and that the noxfile names them all).
BOOK_MODULES = ("test_book_smoke.py", "test_browser.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """A slow module is not even imported when the marker expression (`-m`) leaves out every slow test: the quick
    tier then skips their imports (torchvision, Dask, ...), most of its collection time; deselecting after
    importing would give the same tests, later."""
    if collection_path.name in SLOW_MODULES and excludes_mark(config.getoption("markexpr", ""), "slow"):
        return True
    return None


def excludes_mark(expression: str, mark: str) -> bool:
    """Whether `-m expression` deselects every test that carries `mark`, whatever other marks it has."""
    import itertools
    import re

    if not expression.strip():
        return False
    try:
        from _pytest.mark.expression import Expression  # pytest's own parser of `-m`

        compiled = Expression.compile(expression)
    except Exception:  # another pytest: collect as usual (only slower)
        return False
    names = sorted(set(re.findall(r"[A-Za-z_][\w.\-]*", expression)) - {"and", "or", "not", mark})
    for values in itertools.product((False, True), repeat=len(names)):
        marks = {mark, *(name for name, on in zip(names, values) if on)}
        if compiled.evaluate(lambda name, **_: name in marks):
            return False
    return True

# --- data layer --------------------------------------------------------------------------------------------

DATA_EUROPE_ROWS = {
    # split -> rows of (long, lat, country); three classes, every split holds each class
    "train": [(2.35, 48.85, 0), (13.40, 52.52, 1), (12.49, 41.89, 2), (4.83, 45.76, 0), (11.58, 48.14, 1),
              (9.19, 45.46, 2)],
    "val": [(5.37, 43.30, 0), (9.99, 53.55, 1), (14.27, 40.85, 2)],
    "test": [(1.44, 43.60, 0), (6.96, 50.94, 1), (7.69, 45.07, 2)],
}
DATA_EUROPE_NAMES = ["France", "Germany", "Italy"]


def data_europe_csv(rows: list[tuple], index_column: bool = True) -> str:
    """Course-format CSV text for `rows` of (long, lat, country)."""
    lines = [",long,lat,country" if index_column else "long,lat,country"]
    for number, (long, lat, country) in enumerate(rows):
        cells = f"{long},{lat},{country}"
        lines.append(f"{number},{cells}" if index_column else cells)
    return "\n".join(lines) + "\n"


@pytest.fixture(autouse=True)
def cpu_flags_as_they_are(monkeypatch: pytest.MonkeyPatch):
    """Every test sees the CPU's own flags: an `EX4_IGNORE_CPU_FLAGS` set for a build (benchmarks/cold_report.py
    --without-bf16) must not reach the tests, nor the processes they start."""
    monkeypatch.delenv("EX4_IGNORE_CPU_FLAGS", raising=False)
    device = sys.modules.get("ex4.train.device")
    if device is not None:
        device.cpu_flags.cache_clear()
    yield


@pytest.fixture
def data_isolated_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Points ex4's project root (bundled data, caches) at a fresh temp folder."""
    root = tmp_path / "ex4-root"
    root.mkdir()
    monkeypatch.setenv("EX4_ROOT", str(root))
    return root


@pytest.fixture
def data_europe_dir(tmp_path: Path) -> Path:
    """A valid tiny Europe folder: three splits with a row-index column, plus countries.csv."""
    from ex4.data.europe import SPLIT_FILES

    folder = tmp_path / "europe"
    folder.mkdir()
    for split, name in SPLIT_FILES.items():
        (folder / name).write_text(data_europe_csv(DATA_EUROPE_ROWS[split]), encoding="utf-8")
    names = "label,iso,name\n" + "".join(f"{label},X{label},{name}\n" for label, name in enumerate(DATA_EUROPE_NAMES))
    (folder / "countries.csv").write_text(names, encoding="utf-8")
    return folder


def data_write_image(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (12, 10),
                     mode: str = "RGB") -> Path:
    """A small image of one flat colour (converted to `mode`), with a marker pixel so files differ."""
    from PIL import Image

    pixels = np.zeros((size[1], size[0], 3), dtype=np.uint8)
    pixels[:] = colour
    pixels[0, 0] = (len(path.name) * 7 % 256, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(pixels)
    # an adaptive palette keeps the colours exact (the default web palette would dither them)
    image = image.convert("P", palette=Image.Palette.ADAPTIVE) if mode == "P" else image.convert(mode)
    image.save(path)
    return path


DATA_REAL_COLOUR = (200, 40, 40)
DATA_FAKE_COLOUR = (40, 40, 200)


@pytest.fixture
def data_faces_tree(tmp_path: Path) -> Callable[..., Path]:
    """Factory for a tiny ImageFolder tree: real images are red, fake ones blue.

    `classes` maps label name ("real"/"fake") to the folder name used; `per_class` images in each.
    """

    def make(classes: dict[str, str] | None = None, splits: tuple[str, ...] = ("train", "val", "test"),
             per_class: int = 2, name: str = "faces", size: tuple[int, int] = (12, 10)) -> Path:
        classes = classes or {"real": "real", "fake": "fake"}
        root = tmp_path / name
        for split in splits:
            for label_name, folder in classes.items():
                colour = DATA_REAL_COLOUR if label_name == "real" else DATA_FAKE_COLOUR
                for number in range(per_class):
                    data_write_image(root / split / folder / f"{number:03d}.png", colour, size)
        return root

    return make


# --- training -------------------------------------------------------------------------------------------------


def small_surrogate(monkeypatch: pytest.MonkeyPatch, digits: int = 48) -> None:
    """A surrogate backbone pretrained for one epoch on the first `digits` allowed digits (seconds, not minutes):
    for tests whose runs depend on a pretrained backbone without testing the pretraining itself."""
    from ex4.train import surrogate

    monkeypatch.setattr(surrogate, "EPOCHS", 1)
    full_source = surrogate.source_digits
    monkeypatch.setattr(surrogate, "source_digits",
                        lambda exclude=(): tuple(part[:digits] for part in full_source(exclude)))


@pytest.fixture
def single_torch_thread():
    """Tiny tensors gain nothing from intra-op threads, and lose a lot when other processes share the cores."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --- the whole book under the smoke profile (rendered once per test session) -----------------------------------

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def smoke_book(tmp_path_factory):
    """The real book rendered by ex4's own renderer under params/smoke.yml into a temp folder (not _book/).

    With EX4_BOOK_DIR set (`nox -s report` does, after rendering), the book already in that folder is
    checked instead: the published book gets the same checks as the smoke one."""
    import os

    from ex4.render import read_book, render_book

    given = os.environ.get("EX4_BOOK_DIR")
    if given:
        return read_book(PROJECT_ROOT, Path(given))
    return render_book(PROJECT_ROOT, params_file=PROJECT_ROOT / "params" / "smoke.yml",
                       out_dir=tmp_path_factory.mktemp("smoke") / "book", renderer="ex4")
