"""Issue 13, class 1: no cache may serve a result computed from stale data.

Every case edits a data file *in place*, keeping its byte size and restoring its modification time (what
`touch -r` does), which defeats any cache keyed on size and mtime alone. The run must then decode the new
content or refuse with a line naming the file; never reuse anything computed from the old bytes.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ex4 import experiments, hashing, params
from ex4.data import faces
from ex4.data.faces import load_faces
from ex4.errors import Ex4Error
from ex4.experiments import Context, Experiment, section7
from ex4.store import Store, fingerprint_files

RED, BLUE, GREEN = (200, 40, 40), (40, 40, 200), (10, 200, 10)


def write_bmp(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (12, 10)) -> Path:
    """An uncompressed BMP: any colour gives the same byte size, so an edit can keep size and mtime."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.zeros((size[1], size[0], 3), dtype=np.uint8)
    pixels[:] = colour
    Image.fromarray(pixels).save(path, format="BMP")
    return path


def bmp_tree(root: Path, per_class: int = 3) -> Path:
    for split in ("train", "val", "test"):
        for folder, colour in (("real", RED), ("fake", BLUE)):
            for number in range(per_class):
                write_bmp(root / split / folder / f"{number:03d}.bmp", colour)
    return root


def edit_in_place(path: Path, rewrite) -> None:
    """Rewrite `path` through `rewrite(path)`, then give it back its old mtime (the size must match already) (`touch -r`)."""
    before = path.stat()
    rewrite(path)
    after = path.stat()
    assert after.st_size == before.st_size, "the edit must keep the size for this test to mean anything"
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_mtime_ns == before.st_mtime_ns


# --- the content digest memo -----------------------------------------------------------------------------------


def test_file_digest_sees_an_edit_that_keeps_size_and_mtime(tmp_path):
    path = tmp_path / "a.bin"
    path.write_bytes(b"0123456789")
    first = hashing.file_digest(path)
    edit_in_place(path, lambda p: p.write_bytes(b"9876543210"))
    assert hashing.file_digest(path) == hashing.sha256_bytes(b"9876543210") != first


def test_file_digest_memo_still_sees_the_edit_when_it_trusts_old_files(tmp_path, monkeypatch):
    """Even with the racy window switched off (every memo entry trusted), the ctime the edit set is seen."""
    if os.name != "posix":
        pytest.skip("the memo is POSIX-only")
    monkeypatch.setattr(hashing, "RACY_SECONDS", -1e9)
    reads = []
    real = hashing.sha256_file
    monkeypatch.setattr(hashing, "sha256_file", lambda p: reads.append(p) or real(p))
    path = tmp_path / "a.bin"
    path.write_bytes(b"aaaa")
    hashing.file_digest(path)
    hashing.file_digest(path)
    assert len(reads) == 1  # the memo works for an unchanged file
    edit_in_place(path, lambda p: p.write_bytes(b"bbbb"))
    assert hashing.file_digest(path) == hashing.sha256_bytes(b"bbbb")
    assert len(reads) == 2


def test_file_digest_does_not_trust_a_file_changed_right_before_hashing(tmp_path, monkeypatch):
    """A file hashed within the clock granularity of its last change is hashed again next time."""
    if os.name != "posix":
        pytest.skip("the memo is POSIX-only")
    reads = []
    real = hashing.sha256_file
    monkeypatch.setattr(hashing, "sha256_file", lambda p: reads.append(p) or real(p))
    path = tmp_path / "fresh.bin"
    path.write_bytes(b"x")
    hashing.file_digest(path)
    hashing.file_digest(path)
    assert len(reads) == 2


def test_store_fingerprint_changes_with_an_in_place_edit(tmp_path):
    data = tmp_path / "train.csv"
    data.write_text(",long,lat,country\n0,1.0,2.0,0\n")
    first = fingerprint_files([data], root=tmp_path)
    edit_in_place(data, lambda p: p.write_text(",long,lat,country\n0,1.0,2.0,1\n"))
    assert fingerprint_files([data], root=tmp_path) != first


# --- the image decode cache ------------------------------------------------------------------------------------


@pytest.mark.parametrize("split, folder, number", [("test", "real", 0), ("train", "fake", 2), ("val", "real", 1)])
def test_decode_cache_decodes_an_image_edited_in_place(data_isolated_root, tmp_path, split, folder, number):
    root = bmp_tree(tmp_path / "faces")
    target = root / split / folder / f"{number:03d}.bmp"
    first = load_faces(root, 8)
    edit_in_place(target, lambda p: write_bmp(p, GREEN))
    second = load_faces(root, 8)
    row = getattr(second, split).ids.index(f"{split}/{folder}/{number:03d}.bmp")
    np.testing.assert_array_equal(getattr(second, split).images[row, 4, 4], GREEN)
    assert second.fingerprint != first.fingerprint
    caches = list((data_isolated_root / ".ex4" / "cache" / "faces").glob("*.npz"))
    assert len(caches) == 1  # the stale entry of the folder was replaced


def test_decode_cache_after_edit_then_restore_serves_the_restored_pixels(data_isolated_root, tmp_path):
    root = bmp_tree(tmp_path / "faces")
    target = root / "test" / "fake" / "000.bmp"
    load_faces(root, 8)
    edit_in_place(target, lambda p: write_bmp(p, GREEN))
    load_faces(root, 8)
    edit_in_place(target, lambda p: write_bmp(p, BLUE))
    back = load_faces(root, 8)
    np.testing.assert_array_equal(back.test.images[back.test.ids.index("test/fake/000.bmp"), 4, 4], BLUE)


def test_fingerprint_of_loaded_faces_is_the_store_fingerprint(data_isolated_root, tmp_path):
    root = bmp_tree(tmp_path / "faces")
    data = load_faces(root, 8)
    assert data.fingerprint == fingerprint_files(faces.faces_files(root), root=root)


def test_image_changed_between_hash_and_read_is_refused_naming_it(data_isolated_root, tmp_path, monkeypatch):
    root = bmp_tree(tmp_path / "faces")
    target = root / "train" / "real" / "001.bmp"
    real_digests = faces.content_digests

    def digests_then_edit(tree):
        found = real_digests(tree)
        write_bmp(target, GREEN)  # the file changes after it was hashed, before it is decoded
        return found

    monkeypatch.setattr(faces, "content_digests", digests_then_edit)
    with pytest.raises(Ex4Error, match=r"001\.bmp: the file changed while ex4 was reading it"):
        load_faces(root, 8)


# --- whole runs ------------------------------------------------------------------------------------------------


@pytest.fixture
def xgb_cnn(monkeypatch, data_isolated_root, tmp_path):
    """`cnn` with only the XGBoost baseline on a tiny tree: no backbone, a few seconds."""
    monkeypatch.setattr(experiments, "registry", lambda: {e.name: e for e in section7.EXPERIMENTS})
    store = Store(tmp_path / "store")

    def run(faces_dir: Path):
        values = params.resolve(("test", {"faces_dir": str(faces_dir), "cnn_baselines": ["xgboost"],
                                          "cnn_xgb_crop": 8, "cnn_mistakes": 1}))
        return experiments.run("cnn", values, store=store)

    run.store = store
    return run


def test_run_cnn_after_an_in_place_edit_decodes_the_new_pixels(xgb_cnn, tmp_path, monkeypatch):
    """The issue's case: overwrite one image keeping its size and mtime; `run cnn` must not reuse old pixels."""
    root = bmp_tree(tmp_path / "faces", per_class=2)
    target = root / "test" / "real" / "000.bmp"
    first = xgb_cnn(root)
    decoded: dict[Path, np.ndarray] = {}
    real_decode = faces.decode_image

    def spy(path, size, digest=None):
        decoded[Path(path)] = array = real_decode(path, size, digest)
        return array

    monkeypatch.setattr(faces, "decode_image", spy)
    edit_in_place(target, lambda p: write_bmp(p, GREEN))
    second = xgb_cnn(root)
    assert not second.hit and second.key != first.key
    assert target in decoded, "the edited image was not decoded again: the decode cache served old pixels"
    np.testing.assert_array_equal(decoded[target][100, 100], GREEN)
    again = xgb_cnn(root)
    assert again.hit and again.key == second.key


def test_data_changed_during_a_run_stores_nothing(tmp_path, monkeypatch, data_europe_dir):
    """A run whose data files change while it computes ends in one line naming the file; nothing is stored."""
    target = data_europe_dir / "test.csv"

    def compute(ctx: Context):
        from ex4.data.europe import load_europe

        load_europe(ctx.data_dir)
        text = target.read_text()
        edit_in_place(target, lambda p: p.write_text(text.replace("1.44", "1.45")))
        return {"ok": True}, {}

    fake = Experiment("edit-during-run", "test", data="europe", params=("seed",), code=(), compute=compute)
    monkeypatch.setattr(experiments, "registry", lambda: {fake.name: fake})
    store = Store(tmp_path / "store")
    values = params.resolve(("test", {"europe_dir": str(data_europe_dir)}))
    with pytest.raises(Ex4Error, match=r"test\.csv: data file changed during the run; nothing was stored"):
        experiments.run(fake.name, values, store=store)
    assert store.entries() == []


def test_section6_refuses_data_read_that_differs_from_the_key(tmp_path, data_europe_dir):
    from ex4.data.europe import europe_files
    from ex4.experiments.section6 import load_splits

    values = params.resolve(("test", {"europe_dir": str(data_europe_dir), "device": "cpu"}))
    stale = fingerprint_files([data_europe_dir / "train.csv"], root=data_europe_dir)  # not the files read
    ctx = Context(params=values, data_dir=data_europe_dir, store=Store(tmp_path / "s"), data_fingerprint=stale)
    with pytest.raises(Ex4Error, match="changed between being fingerprinted"):
        load_splits(ctx)
    ctx.data_fingerprint = fingerprint_files(europe_files(data_europe_dir), root=data_europe_dir)
    splits, header = load_splits(ctx)
    assert header["n_train"] == 6


def test_manifest_edit_changes_the_cnn_key(tmp_path, data_isolated_root):
    """manifest.json's description and held-out digits enter the cnn result, so they enter its key."""
    root = bmp_tree(tmp_path / "faces", per_class=1)
    (root / "manifest.json").write_text('{"description": "first"}')
    values = params.resolve(("test", {"faces_dir": str(root)}))
    _, files = experiments.data_dir_and_files("faces", values)
    first = fingerprint_files(files, root=root)
    edit_in_place(root / "manifest.json", lambda p: p.write_text('{"description": "other"}'))
    assert fingerprint_files(files, root=root) != first


def test_run_cnn_refuses_an_image_corrupted_in_place(xgb_cnn, tmp_path):
    """The issue's exact report: bytes of one image overwritten, mtime restored; `data check` fails on it, and
    `run cnn` must fail on it too (naming it) instead of storing a result decoded from the old pixels."""
    from ex4 import cli

    root = bmp_tree(tmp_path / "faces", per_class=2)
    target = root / "val" / "fake" / "001.bmp"
    xgb_cnn(root)
    stored = {row["key"] for row in xgb_cnn.store.entries()}

    def garble(path: Path) -> None:
        data = bytearray(path.read_bytes())
        data[:16] = b"\xff" * 16  # the BMP header: no longer an image
        path.write_bytes(bytes(data))

    edit_in_place(target, garble)
    assert cli.main(["data", "check", "faces", str(root)]) == cli.EXIT_USER_ERROR
    with pytest.raises(Ex4Error, match=r"val/fake/001\.bmp: cannot decode image"):
        xgb_cnn(root)
    assert {row["key"] for row in xgb_cnn.store.entries()} == stored
