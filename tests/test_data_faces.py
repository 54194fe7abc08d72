"""The faces loader: labels from folder names, torchvision-equal resizing, the decode-once cache, bad trees."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from PIL import Image

import ex4.data.faces as faces
from conftest import DATA_FAKE_COLOUR, DATA_REAL_COLOUR, data_write_image
from ex4.data import resolve_faces_dir
from ex4.data.faces import faces_files, load_faces, summarize_faces
from ex4.errors import Ex4Error

MakeTree = Callable[..., Path]


def _assert_labels_follow_colour(split: faces.ImageSplit) -> None:
    """Red images (written into the real folder) must be labelled 0, blue (fake) ones 1."""
    centre = split.images[:, split.images.shape[1] // 2, split.images.shape[2] // 2]
    is_red = centre[:, 0] > centre[:, 2]
    assert is_red.any() and (~is_red).any()
    assert split.labels.tolist() == [0 if red else 1 for red in is_red]


@pytest.mark.parametrize("classes", [
    {"real": "real", "fake": "fake"},  # alphabetical order would make fake=0
    {"real": "0_real", "fake": "1_fake"},
    {"real": "Real_Images", "fake": "FAKE"},  # alphabetical order would make FAKE=0
    {"real": "1_real", "fake": "0_fake"},  # a misleading numeric prefix: the word decides
])
def test_labels_come_from_folder_words(data_isolated_root: Path, data_faces_tree: MakeTree,
                                       classes: dict[str, str]) -> None:
    data = load_faces(data_faces_tree(classes), 8)
    for split in data.splits().values():
        _assert_labels_follow_colour(split)
        assert split.images.dtype == np.uint8 and split.images.shape == (4, 8, 8, 3)
        assert split.labels.dtype == np.int64
    assert data.test.ids == [f"test/{classes['real']}/000.png", f"test/{classes['real']}/001.png",
                             f"test/{classes['fake']}/000.png", f"test/{classes['fake']}/001.png"]


def test_validation_folder_name_is_accepted(data_isolated_root: Path, data_faces_tree: MakeTree) -> None:
    data = load_faces(data_faces_tree(splits=("train", "validation", "test")), 8)
    assert data.val.ids[0].startswith("validation/")


def test_matches_torchvision_resize_and_centre_crop(data_isolated_root: Path, data_faces_tree: MakeTree) -> None:
    from torchvision import transforms

    root = data_faces_tree(per_class=1)
    rng = np.random.default_rng(0)
    odd = root / "train" / "real" / "000.png"
    Image.fromarray(rng.integers(0, 256, size=(23, 37, 3), dtype=np.uint8)).save(odd)  # wide, tiny: upscaled
    tall = root / "train" / "fake" / "000.png"
    Image.fromarray(rng.integers(0, 256, size=(301, 97, 3), dtype=np.uint8)).save(tall)  # tall: downscaled
    reference = transforms.Compose([transforms.Resize(48), transforms.CenterCrop(48)])
    data = load_faces(root, 48)
    for index, path in enumerate((odd, tall)):
        expected = np.asarray(reference(Image.open(path).convert("RGB")))
        np.testing.assert_array_equal(data.train.images[index], expected)


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "LA", "I;16"])
def test_other_colour_modes_become_rgb(data_isolated_root: Path, data_faces_tree: MakeTree, mode: str) -> None:
    root = data_faces_tree(per_class=1)
    path = data_write_image(root / "test" / "real" / "000.png", (90, 90, 90), mode=mode)
    expected = Image.open(path).convert("RGB").getpixel((6, 5))  # a palette may round the gray a little
    if mode == "I;16":  # a 16-bit gray image: 90 * 257 must map back to 90, not be clipped to 255
        Image.fromarray(np.full((10, 12), 90 * 257, dtype=np.uint16)).save(path)
        expected = (90, 90, 90)
    assert Image.open(path).mode == mode
    data = load_faces(root, 6)
    assert data.test.images.shape == (2, 6, 6, 3)
    np.testing.assert_array_equal(data.test.images[0, 3, 3], expected)


def test_non_image_and_hidden_files_are_ignored(data_isolated_root: Path, data_faces_tree: MakeTree) -> None:
    root = data_faces_tree(per_class=1)
    (root / "train" / "real" / ".DS_Store").write_bytes(b"\0\1junk")
    (root / "train" / "real" / "notes.txt").write_text("not an image")
    (root / "train" / ".ipynb_checkpoints").mkdir()
    (root / "README.md").write_text("hello")
    data_write_image(root / "train" / "fake" / "extra.JPEG", DATA_FAKE_COLOUR)
    data = load_faces(root, 4)
    assert data.train.ids == ["train/real/000.png", "train/fake/000.png", "train/fake/extra.JPEG"]


def _expect_error(root: Path, *fragments: str) -> None:
    with pytest.raises(Ex4Error) as caught:
        load_faces(root, 8)
    for fragment in fragments:
        assert fragment in str(caught.value)


def test_missing_directory_and_split(data_isolated_root: Path, data_faces_tree: MakeTree, tmp_path: Path) -> None:
    _expect_error(tmp_path / "nowhere", "nowhere: faces data directory not found")
    _expect_error(data_faces_tree(splits=("train", "test")), "missing split folder 'val'")


def test_unknown_class_folder_is_named(data_isolated_root: Path, data_faces_tree: MakeTree) -> None:
    root = data_faces_tree()
    data_write_image(root / "val" / "cats" / "000.png", DATA_REAL_COLOUR)
    _expect_error(root, "val/cats", "'real' or 'fake'")


def test_empty_class_folder_is_named(data_isolated_root: Path, data_faces_tree: MakeTree) -> None:
    root = data_faces_tree()
    for path in (root / "test" / "fake").iterdir():
        path.unlink()
    (root / "test" / "fake" / "readme.txt").write_text("no images here")
    _expect_error(root, "test/fake", "has no images")


def test_split_with_one_class_is_named(data_isolated_root: Path, data_faces_tree: MakeTree) -> None:
    root = data_faces_tree(classes={"real": "0_real"})
    _expect_error(root, "train", "only a 'real' folder", "needs both real and fake")


def test_two_folders_for_one_class_and_two_val_folders(data_isolated_root: Path, data_faces_tree: MakeTree) -> None:
    root = data_faces_tree()
    data_write_image(root / "train" / "0_real" / "000.png", DATA_REAL_COLOUR)
    _expect_error(root, "'0_real' and 'real' are 'real' folders")
    root = data_faces_tree(name="other")
    data_write_image(root / "validation" / "real" / "000.png", DATA_REAL_COLOUR)
    _expect_error(root, "both 'val' and 'validation'")


@pytest.mark.parametrize("content", [b"", b"not a png at all", None], ids=["empty", "garbage", "truncated"])
def test_corrupt_image_is_named(data_isolated_root: Path, data_faces_tree: MakeTree, content: bytes | None) -> None:
    root = data_faces_tree()
    path = root / "val" / "fake" / "001.png"
    if content is None:
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(path)
        content = path.read_bytes()[:300]
    path.write_bytes(content)
    _expect_error(root, "val/fake/001.png", "cannot decode image")


def _count_decodes(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    calls: list[Path] = []
    real_decode = faces.decode_image

    def spy(path: Path, size: int, digest: str | None = None) -> np.ndarray:
        calls.append(path)
        return real_decode(path, size, digest)

    monkeypatch.setattr(faces, "decode_image", spy)
    return calls


def test_second_load_reads_the_cache(data_isolated_root: Path, data_faces_tree: MakeTree,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    root = data_faces_tree()
    calls = _count_decodes(monkeypatch)
    first = load_faces(root, 8)
    assert len(calls) == 12
    assert list((data_isolated_root / ".ex4" / "cache" / "faces").glob("*.npz"))
    second = load_faces(root, 8)
    assert len(calls) == 12  # nothing decoded again
    for name, split in first.splits().items():
        np.testing.assert_array_equal(split.images, second.splits()[name].images)
        np.testing.assert_array_equal(split.labels, second.splits()[name].labels)
        assert split.ids == second.splits()[name].ids
    load_faces(root, 6)  # another size is another cache entry, kept beside the first
    assert len(calls) == 24
    assert len(list((data_isolated_root / ".ex4" / "cache" / "faces").glob("*.npz"))) == 2


def test_changed_image_invalidates_the_cache(data_isolated_root: Path, data_faces_tree: MakeTree,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    root = data_faces_tree()
    calls = _count_decodes(monkeypatch)
    load_faces(root, 8)
    path = data_write_image(root / "test" / "real" / "000.png", (10, 200, 10))
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # a distinct mtime even on coarse clocks
    changed = load_faces(root, 8)
    assert len(calls) == 24
    np.testing.assert_array_equal(changed.test.images[0, 4, 4], [10, 200, 10])
    assert len(list((data_isolated_root / ".ex4" / "cache" / "faces").glob("*.npz"))) == 1  # stale one removed


def test_damaged_cache_is_decoded_again(data_isolated_root: Path, data_faces_tree: MakeTree,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    root = data_faces_tree()
    calls = _count_decodes(monkeypatch)
    load_faces(root, 8)
    for cached in (data_isolated_root / ".ex4" / "cache" / "faces").glob("*.npz"):
        cached.write_bytes(b"garbage")
    data = load_faces(root, 8)
    assert len(calls) == 24
    _assert_labels_follow_colour(data.train)


def test_manifest_marks_a_standin(data_isolated_root: Path, data_faces_tree: MakeTree) -> None:
    root = data_faces_tree()
    user = load_faces(root, 4)
    assert user.is_standin is False and user.description == f"user data: {root.resolve()}"
    (root / "manifest.json").write_text(json.dumps({"standin": True, "description": "digits, not faces"}))
    standin = load_faces(root, 4)
    assert standin.is_standin is True and standin.description == "digits, not faces"
    (root / "manifest.json").write_text("{broken")
    _expect_error(root, "manifest.json", "invalid JSON")


def test_faces_files_and_summary(data_isolated_root: Path, data_faces_tree: MakeTree) -> None:
    root = data_faces_tree(classes={"real": "0_real", "fake": "1_fake"}, per_class=3)
    files = faces_files(root)
    assert len(files) == 18 and files[0] == root.resolve() / "train" / "0_real" / "000.png"
    summary = summarize_faces(root)
    assert summary["images"] == {split: {"real": 3, "fake": 3} for split in ("train", "val", "test")}
    assert summary["smallest_side"] == 10 and summary["is_standin"] is False
    (root / "test" / "1_fake" / "002.png").write_bytes(b"broken")
    with pytest.raises(Ex4Error, match="002.png"):
        summarize_faces(root)


def test_resolve_faces_dir_checks_a_given_folder(data_isolated_root: Path, data_faces_tree: MakeTree) -> None:
    root = data_faces_tree()
    assert resolve_faces_dir(str(root)) == root.resolve()
    with pytest.raises(Ex4Error, match="faces_dir"):
        resolve_faces_dir(str(root / "missing"))


def test_bad_size_is_rejected(data_isolated_root: Path, data_faces_tree: MakeTree) -> None:
    with pytest.raises(Ex4Error, match="image size"):
        load_faces(data_faces_tree(), 0)
