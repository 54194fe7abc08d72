"""Issue 13, classes 2-4: sizes bounded at the edge, Section 6 edge shapes refused at load time, and every
environment fault or surprise at the edge of the program as one named line (or a warning line).

In process (`ex4.cli.main` with captured stderr) wherever a subprocess is not needed, to stay fast.
"""

from __future__ import annotations

import errno
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from ex4 import cli, experiments, params
from ex4.data import faces
from ex4.data.europe import MAX_CLASSES, load_europe
from ex4.errors import Ex4Error, Ex4Warning, torch_load_detail
from ex4.store import Store

from conftest import DATA_EUROPE_ROWS, data_europe_csv


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    status = cli.main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def one_error_line(status: int, stderr: str, *fragments: str) -> str:
    assert status == cli.EXIT_USER_ERROR, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ex4: error: "), stderr
    assert "Traceback" not in stderr and "internal error" not in stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def europe_folder(root: Path, rows: dict[str, list[tuple]] | None = None, names: list[str] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    rows = rows or DATA_EUROPE_ROWS
    for split, file in (("train", "train.csv"), ("val", "validation.csv"), ("test", "test.csv")):
        (root / file).write_text(data_europe_csv(rows[split]))
    if names is not None:
        (root / "countries.csv").write_text("label,iso,name\n" + "".join(f"{i},X{i},{n}\n" for i, n in enumerate(names)))
    return root


# --- class 2: sizes --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, value", [
    ("seed", 2**31), ("seed", 2**32), ("seed", 2**64), ("seed", 10**30), ("seed", "1e30"),
    ("mlp_width", 10**6), ("mlp_depth", 10**6), ("mlp_gradient_depth", 1001), ("mlp_gradient_width", 1025),
    ("mlp_batch_size", 10**9), ("mlp_epochs", 10**7), ("mlp_long_epochs", 10_001), ("mlp_shapes_epochs", 10**9),
    ("mlp_region_grid", 10**6), ("mlp_batch_sizes", [16, 10**8]), ("mlp_epochs_per_batch_size", [1, 1, 1, 10**6]),
    ("mlp_shapes", [[6, 16], [10**6, 16]]), ("mlp_shapes", [[6, 10**5]]), ("mlp_gradient_layers", [0, 10**9]),
    ("mlp_learning_rates", [float(i + 1) for i in range(65)]), ("cnn_image_size", 10**5), ("cnn_batch_size", 10**6),
    ("cnn_epochs", 10**6), ("cnn_xgb_crop", 225), ("cnn_mistakes", 10**6), ("mlp_train_subset", 2**40),
])
def test_every_size_parameter_has_an_upper_bound(name, value):
    with pytest.raises(Ex4Error) as caught:
        params.resolve(("profile.yml", {name: value}))
    message = str(caught.value)
    assert f"'{name}'" in message and ("limit" in message), message
    assert "\n" not in message and len(message) < 300


@pytest.mark.parametrize("changes", [
    {"mlp_depth": 1000, "mlp_width": 317}, {"mlp_gradient_depth": 1000, "mlp_gradient_width": 317},
    {"mlp_shapes": [[100, 1024]]},
])
def test_a_network_too_large_in_weights_is_refused(changes):
    with pytest.raises(Ex4Error, match=r"depth x width\^2 = [\d,]+ hidden weights; the limit is 100,000,000"):
        params.resolve(("p", changes))


def test_the_limits_themselves_are_accepted():
    values = params.resolve(("p", {"seed": params.MAX_SEED, "mlp_width": params.MAX_WIDTH, "mlp_depth": 95,
                                   "mlp_region_grid": params.MAX_REGION_GRID, "cnn_xgb_crop": 224,
                                   "mlp_batch_size": params.MAX_MLP_BATCH}))
    assert values["seed"] == 2**31 - 1


def test_the_largest_seed_is_taken_by_every_rng():
    """MAX_SEED is what numpy's legacy and new generators, torch, scikit-learn and XGBoost all accept; one more
    than numpy's legacy limit is not, which is why the limit sits at or below it."""
    from sklearn.utils import check_random_state

    np.random.seed(params.MAX_SEED)
    np.random.default_rng(params.MAX_SEED)
    torch.Generator().manual_seed(params.MAX_SEED)
    check_random_state(params.MAX_SEED)
    import xgboost

    xgboost.XGBClassifier(n_estimators=1, random_state=params.MAX_SEED).fit(np.eye(4), [0, 1, 0, 1])
    with pytest.raises(ValueError):
        np.random.seed(2**32)


def test_an_integer_too_long_to_print_is_one_line(capsys, tmp_path):
    status, _, err = run_cli(capsys, "--store", str(tmp_path / "s"), "run", "mlp-lr", "--set", "seed=" + "9" * 5000)
    one_error_line(status, err, "seed")


@pytest.mark.parametrize("label", ["1000000000000", "1e12", "1e300", str(MAX_CLASSES)])
def test_a_huge_label_is_refused_without_allocating(tmp_path, capsys, label):
    folder = europe_folder(tmp_path / "eu")
    (folder / "train.csv").write_text(",long,lat,country\n0,2.3,48.8,0\n1,13.4,52.5," + label + "\n")
    started = time.perf_counter()
    status, _, err = run_cli(capsys, "data", "check", "europe", str(folder))
    one_error_line(status, err, "train.csv", "row 2", "limit of 9,999")
    assert time.perf_counter() - started < 5


def test_the_largest_label_is_accepted(tmp_path):
    rows = {split: [(1.0, 40.0, 0), (2.0, 41.0, MAX_CLASSES - 1), (3.0, 42.0, 1)] for split in DATA_EUROPE_ROWS}
    with pytest.warns(Ex4Warning, match="no rows in any split"):
        data = load_europe(europe_folder(tmp_path / "eu", rows))
    assert data.n_classes == MAX_CLASSES


def test_decoded_images_over_the_memory_limit_are_refused_before_allocating(data_isolated_root, data_faces_tree,
                                                                             monkeypatch):
    monkeypatch.setattr(faces, "MAX_DECODED_BYTES", 1000)
    with pytest.raises(Ex4Error, match=r"12 images at 64 x 64 px would take .* the limit is .*cnn_image_size"):
        faces.load_faces(data_faces_tree(), 64)


def test_image_pixel_and_aspect_limits(tmp_path):
    faces.check_image_size(tmp_path / "ok.png", 8000, 8000)
    faces.check_image_size(tmp_path / "ok.png", 20, 400)
    for width, height, fragment in [(8001, 8000, "the limit is 64,000,000 pixels"), (20, 401, "the limit is 20:1"),
                                    (0, 5, "empty")]:
        with pytest.raises(Ex4Error, match=fragment):
            faces.check_image_size(tmp_path / "bad.png", width, height)


def test_image_file_over_the_size_limit_is_not_read(data_isolated_root, data_faces_tree, monkeypatch, capsys):
    root = data_faces_tree(per_class=1)
    monkeypatch.setattr(faces, "MAX_IMAGE_BYTES", 10)
    status, _, err = run_cli(capsys, "data", "check", "faces", str(root))
    one_error_line(status, err, ".png: file is", "bytes; the limit is 10")


def test_epochs_times_rows_is_bounded_before_training(tmp_path, monkeypatch, data_europe_dir):
    from ex4.experiments import section6

    monkeypatch.setattr(params, "MAX_ROW_PASSES", 6 * 10)  # the fixture's 6 training rows: 10 epochs at most
    monkeypatch.setattr(experiments, "registry", lambda: {e.name: e for e in section6.EXPERIMENTS})
    trained = []
    monkeypatch.setattr(section6, "train_runs", lambda *a, **k: trained.append(a) or [])
    values = params.resolve(("p", {"europe_dir": str(data_europe_dir), "mlp_epochs": 11, "device": "cpu"}))
    with pytest.raises(Ex4Error, match=r"mlp-lr: run '.*' would train 11 epochs x 6 training rows = 66 row passes; "
                                       r"the limit is 60"):
        experiments.run("mlp-lr", values, store=Store(tmp_path / "store"))
    assert not trained


def test_activations_per_step_are_bounded_before_training(tmp_path, monkeypatch, data_europe_dir):
    from ex4.experiments import section6

    monkeypatch.setattr(params, "MAX_ACTIVATIONS", 6 * 6 * 16 - 1)  # 6 rows x 6 layers x 16 units is one over
    monkeypatch.setattr(experiments, "registry", lambda: {e.name: e for e in section6.EXPERIMENTS})
    trained = []
    monkeypatch.setattr(section6, "train_runs", lambda *a, **k: trained.append(a) or [])
    values = params.resolve(("p", {"europe_dir": str(data_europe_dir), "mlp_epochs": 1, "device": "cpu"}))
    with pytest.raises(Ex4Error, match=r"would hold 6 rows x 6 layers x 16 units = 576 activations per step; the "
                                       r"limit is 575"):
        experiments.run("mlp-lr", values, store=Store(tmp_path / "store"))
    assert not trained


def test_profile_file_over_the_size_limit(tmp_path, capsys):
    profile = tmp_path / "huge.yml"
    profile.write_text("seed: 1\n" + "#" * (params.MAX_PROFILE_BYTES + 1))
    status, _, err = run_cli(capsys, "run", "mlp-lr", "--params", str(profile))
    one_error_line(status, err, "huge.yml", "limit")


# --- class 3: Section 6 edge shapes ------------------------------------------------------------------------------


def test_a_training_split_of_one_row_is_refused_at_load_time(tmp_path, capsys):
    rows = {**DATA_EUROPE_ROWS, "train": [(2.35, 48.85, 0)]}
    status, _, err = run_cli(capsys, "data", "check", "europe", str(europe_folder(tmp_path / "eu", rows)))
    one_error_line(status, err, "train.csv", "1 data row(s)", "at least 2")


@pytest.mark.parametrize("split, file", [("val", "validation.csv"), ("test", "test.csv")])
def test_an_empty_evaluation_split_is_refused(tmp_path, capsys, split, file):
    folder = europe_folder(tmp_path / "eu")
    (folder / file).write_text(",long,lat,country\n")
    status, _, err = run_cli(capsys, "data", "check", "europe", str(folder))
    one_error_line(status, err, file, "no data rows")


def test_the_smallest_splits_train_with_batch_norm_and_the_largest_seed(tmp_path, single_torch_thread):
    """At the boundary (2 training rows, 1 validation and 1 test row) batch norm trains on both engines and the
    metrics are finite: no ZeroDivisionError in the kernel, no overflow from the largest seed."""
    rows = {"train": [(2.35, 48.85, 0), (13.40, 52.52, 1)], "val": [(5.37, 43.30, 0)], "test": [(6.96, 50.94, 1)]}
    folder = europe_folder(tmp_path / "eu", rows)
    store = Store(tmp_path / "store")
    for engine in ("kernel", "torch"):
        values = params.resolve(("p", {"europe_dir": str(folder), "mlp_long_epochs": 2, "seed": params.MAX_SEED,
                                       "mlp_engine": engine, "device": "cpu"}))
        outcome = experiments.run("mlp-batchnorm", values, store=store)
        for run in outcome.result["runs"]:
            assert run["final"]["train_loss"] is not None and np.isfinite(run["final"]["val_loss"]), run["final"]


# --- class 4: the edge of the program ------------------------------------------------------------------------------


def test_store_that_is_a_regular_file(tmp_path, capsys, data_europe_dir):
    store = tmp_path / "store"
    store.write_text("not a folder")
    for argv in (["results", "ls"], ["results", "prune"], ["results", "rm", "abc"],
                 ["run", "mlp-lr", "--set", f"europe_dir={data_europe_dir}"], ["render", "--chapter", "x.qmd"]):
        status, out, err = run_cli(capsys, "--store", str(store), *argv)
        one_error_line(status, err, str(store), "must be a directory")
        assert "no stored results" not in out


def test_unwritable_store_fails_before_computing(tmp_path, monkeypatch, data_europe_dir):
    computed = []

    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "store" / ".locks"))

    store = Store(tmp_path / "store")
    monkeypatch.setattr("ex4.store.tempfile.mkstemp", refuse)
    with pytest.raises(Ex4Error, match=r"store/\.locks: cannot write to the result store \(Permission denied\)"):
        store.get_or_compute("x", {}, "data", [], lambda: computed.append(1) or ({}, {}))
    assert not computed


def test_store_below_a_regular_file(tmp_path, capsys, data_europe_dir):
    (tmp_path / "file").write_text("")
    status, _, err = run_cli(capsys, "--store", str(tmp_path / "file" / "store"), "run", "mlp-lr",
                             "--set", f"europe_dir={data_europe_dir}", "--set", "mlp_epochs=1")
    one_error_line(status, err, str(tmp_path / "file"), "cannot write to the result store", "Not a directory")


def test_disk_full_while_writing_an_entry(tmp_path, monkeypatch):
    store = Store(tmp_path / "store")

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "store" / ".tmp" / "x"))

    monkeypatch.setattr(Store, "_write", full)
    with pytest.raises(Ex4Error, match="cannot write to the result store \\(No space left on device\\)"):
        store.get_or_compute("x", {}, "data", [], lambda: ({}, {}))


@pytest.mark.parametrize("error, fragments", [
    (MemoryError(), ["not enough memory", "cnn_image_size"]),
    (MemoryError("Unable to allocate 7.45 TiB for an array"), ["not enough memory", "7.45 TiB"]),
    (RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: you tried "
                  "to allocate 8000000000000 bytes."), ["not enough memory", "8000000000000 bytes"]),
    (OSError(errno.ENOSPC, "No space left on device", "/data/x.npz"), ["/data/x.npz", "No space left"]),
    (PermissionError(errno.EACCES, "Permission denied", "/data/europe"), ["/data/europe", "Permission denied"]),
])
def test_environment_faults_are_one_line_without_traceback(capsys, monkeypatch, tmp_path, error, fragments):
    import ex4.data.europe

    def fail(folder):
        raise error

    monkeypatch.setattr(ex4.data.europe, "summarize_europe", fail)
    status, _, err = run_cli(capsys, "data", "check", "europe", str(tmp_path))
    one_error_line(status, err, *fragments)


def test_debug_still_shows_the_traceback_of_an_environment_fault(monkeypatch, tmp_path):
    import ex4.data.europe

    monkeypatch.setattr(ex4.data.europe, "summarize_europe", lambda folder: (_ for _ in ()).throw(MemoryError()))
    with pytest.raises(MemoryError):
        cli.main(["--debug", "data", "check", "europe", str(tmp_path)])


@pytest.mark.parametrize("chapter, fragment", [
    ("/etc/passwd", "must be a .qmd file"), ("/tmp", "must be a .qmd file"), ("report", "must be a .qmd file"),
    ("report/nowhere.qmd", "chapter file not found"), ("README.md", "must be a .qmd file"),
])
def test_render_chapter_takes_only_a_qmd_file(capsys, chapter, fragment):
    status, _, err = run_cli(capsys, "render", "--chapter", chapter)
    one_error_line(status, err, chapter, fragment)


def test_render_chapter_refuses_a_folder_named_like_a_chapter(tmp_path, capsys):
    (tmp_path / "trick.qmd").mkdir()
    status, _, err = run_cli(capsys, "render", "--chapter", str(tmp_path / "trick.qmd"))
    one_error_line(status, err, "trick.qmd", "not a directory")


def test_a_qmd_the_user_names_explicitly_is_accepted(tmp_path):
    from ex4.render.book import check_chapter_path

    chapter = tmp_path / "mine.qmd"
    chapter.write_text("# Mine\n")
    assert check_chapter_path(chapter, tmp_path / "elsewhere") == chapter.resolve()
    root = Path(__file__).resolve().parents[1]
    assert check_chapter_path(Path("report/section7.qmd"), root) == root / "report" / "section7.qmd"


def test_library_warnings_never_precede_or_hide_ex4s_line(capsys, monkeypatch, tmp_path):
    import ex4.data.europe

    def warn_then_fail(folder):
        from PIL import Image

        warnings.warn("Image size (100000000 pixels) exceeds limit", Image.DecompressionBombWarning)
        warnings.warn("You are using `torch.load` with `weights_only=False`", FutureWarning)
        raise Ex4Error(f"{folder}: something is wrong")

    monkeypatch.setattr(ex4.data.europe, "summarize_europe", warn_then_fail)
    status, _, err = run_cli(capsys, "data", "check", "europe", str(tmp_path))
    one_error_line(status, err, "something is wrong")


def test_library_warnings_come_after_a_successful_command_one_line_each(capsys, monkeypatch, tmp_path):
    import ex4.data.europe

    def warn_then_succeed(folder):
        warnings.warn("a library\nwarning on two lines", UserWarning)
        warnings.warn("Weights only load failed. Re-running `torch.load` with `weights_only` set to `False` will "
                      "likely succeed", UserWarning)
        return {"ok": True}

    monkeypatch.setattr(ex4.data.europe, "summarize_europe", warn_then_succeed)
    status, out, err = run_cli(capsys, "data", "check", "europe", str(tmp_path))
    assert status == 0 and '"ok": true' in out
    lines = err.strip().splitlines()
    assert lines[0] == "ex4: note: UserWarning from tests: a library warning on two lines"
    assert "weights_only" not in err and "set to `False`" not in err
    assert len(lines) == 2


class Payload:
    """A class a weights-only load refuses (what a pickle that runs code on load would need)."""


def test_torch_weights_only_advice_is_never_passed_on(tmp_path):
    from ex4.models.resnet import read_state_file

    path = tmp_path / "weights.pth"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "extra": Payload()}, path)
    with pytest.raises(Ex4Error) as caught:
        read_state_file(path)
    path_part, message = str(caught.value).split(": ", 1)
    assert path_part == str(path)
    assert "Python objects other than tensors" in message and "Payload" in message
    for advice in ("weights_only", "False", "can still be loaded", "add_safe_globals", "\x1b["):
        assert advice not in message


def test_torch_load_detail_keeps_other_reasons():
    assert torch_load_detail(RuntimeError("PytorchStreamReader failed reading zip archive\nmore")) == \
        "PytorchStreamReader failed reading zip archive"


# --- class 4: silent surprises ---------------------------------------------------------------------------------


def test_label_gaps_are_a_warning_line(tmp_path, capsys):
    rows = {split: [(x, 45.0 + x, label) for x, label in ((1.0, 0), (2.0, 2), (3.0, 0), (4.0, 2))]
            for split in DATA_EUROPE_ROWS}
    status, out, err = run_cli(capsys, "data", "check", "europe", str(europe_folder(tmp_path / "eu", rows)))
    assert status == 0 and '"n_classes": 3' in out
    assert err.strip().splitlines() == [err.strip()]
    assert err.startswith("ex4: warning: ") and "no rows in any split: label 1 (class 1)" in err


def test_a_named_class_with_no_rows_is_a_warning(tmp_path):
    with pytest.warns(Ex4Warning, match=r"label 3 \(Spain\)"):
        load_europe(europe_folder(tmp_path / "eu", names=["France", "Germany", "Italy", "Spain"]))


def test_a_class_missing_from_train_is_a_warning_naming_each_split(tmp_path):
    rows = {**DATA_EUROPE_ROWS, "train": [row for row in DATA_EUROPE_ROWS["train"] if row[2] != 2]}
    with pytest.warns(Ex4Warning) as record:
        load_europe(europe_folder(tmp_path / "eu", rows, names=["France", "Germany", "Italy"]))
    messages = [str(warning.message) for warning in record]
    assert len(messages) == 2
    for message, file in zip(messages, ("validation.csv", "test.csv")):
        assert f"{file}: class(es) 2 (Italy, 1 row(s)) have rows here but none in train.csv" in message


def test_clean_data_give_no_warning(tmp_path, data_europe_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("error", Ex4Warning)
        load_europe(data_europe_dir)


@pytest.mark.parametrize("text, fragment", [
    ("seed: 1\nmlp_lr: 0.1\nseed: 2\n", "line 3: YAML error: key 'seed' appears twice (first on line 1)"),
    ("seed: 010\n", "line 1: YAML error: '010': a leading zero makes YAML 1.1 read an octal number (8)"),
    ("mlp_batch_sizes: [16, 0127]\nmlp_epochs_per_batch_size: [1, 1]\n", "'0127': a leading zero makes YAML 1.1 read an octal number (87)"),
    ("seed: 1:30\n", "base-60"),
    ("cnn_baselines: [xgboost]\ncnn_baselines: [scratch]\n", "'cnn_baselines' appears twice"),
])
def test_yaml_surprises_in_a_profile_are_errors(tmp_path, capsys, text, fragment):
    profile = tmp_path / "mine.yml"
    profile.write_text(text)
    status, _, err = run_cli(capsys, "run", "mlp-lr", "--params", str(profile))
    one_error_line(status, err, "mine.yml", fragment)


def test_yaml_surprises_in_overrides_are_errors():
    with pytest.raises(Ex4Error, match="octal"):
        params.resolve_cli(None, ["seed=010"])
    from ex4.render.parameters import parse_param_assignment

    with pytest.raises(Ex4Error, match="-P seed.*octal"):
        parse_param_assignment("seed:010")
    assert params.resolve_cli(None, ["seed='010'"])["seed"] == 10  # quoted: the decimal the user meant
    assert params.resolve_cli(None, ["seed=0"])["seed"] == 0
    assert params.resolve_cli(None, ["seed=0x10"])["seed"] == 16  # explicit hexadecimal is not a surprise


def test_cnn_epochs_times_images_is_bounded_before_training(tmp_path, monkeypatch, data_isolated_root,
                                                            data_faces_tree):
    from ex4.experiments import section7

    faces_dir = data_faces_tree(per_class=3)  # 6 training images
    monkeypatch.setattr(params, "MAX_CNN_IMAGE_PASSES", 6 * 4)  # 4 epochs at most
    monkeypatch.setattr(experiments, "registry", lambda: {e.name: e for e in section7.EXPERIMENTS})
    trained = []
    monkeypatch.setattr(section7, "run_full_network", lambda *a, **k: trained.append(a) or [])
    values = params.resolve(("p", {"faces_dir": str(faces_dir), "cnn_epochs": 5, "device": "cpu",
                                   "cnn_baselines": ["scratch"], "cnn_learning_rates": [0.01]}))
    with pytest.raises(Ex4Error, match=r"cnn_epochs: 5 epochs x 6 training images = 30 image passes per run; "
                                       r"the limit is 24"):
        experiments.run("cnn", values, store=Store(tmp_path / "store"))
    assert not trained and not Store(tmp_path / "store").entries()
    section7.check_image_passes(4, 6)  # at the limit: accepted
