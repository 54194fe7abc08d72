"""Real-vs-fake images in an ImageFolder tree, decoded once and cached on disk.

Layout: `<dir>/{train,val,test}/<class>/<image>` (`validation` is accepted for `val`). A class folder's
label comes from the word in its name, never from alphabetical order: `real`, `0_real`, `Real_images` are
real (0); `fake`, `1_fake` are fake (1). Anything else is an error naming the folder, because guessing a
label silently swaps every result.

Every image is converted to RGB (grayscale, RGBA and palette images included, as torchvision's default
loader does), its shorter side resized to `size` with antialiased bilinear filtering and centre-cropped to
size x size, exactly as `torchvision.transforms.Resize(size)` + `CenterCrop(size)` do on PIL images.
Images smaller than `size` are therefore upscaled. Files with other extensions (.DS_Store, notes) and
hidden files are ignored.

Decoding is the slow part, so the decoded arrays of a whole tree are stored in
`paths.cache_dir()/faces/<key>.npz`. The key hashes the folder, every image's relative path, label and
**content** (sha256, the same digest the result store's data fingerprint uses), the target size and the
loader version: editing any image, even in place with its size and mtime restored, starts a fresh decode
(and the outdated entry of that folder and size is deleted), while a rerun on the same files decodes
nothing. Each image is decoded from the very bytes that were hashed; a file that changes between being
hashed and being read is refused with a line naming it. `FacesData.fingerprint` states the content that
was decoded in the store's terms. The cache is safe to delete.

Limits (checked on each image's header before its pixels are decoded, so a decompression bomb or a
1 x 60000 strip fails with one line naming the file, never by exhausting memory): at most `MAX_PIXELS`
pixels and an aspect ratio (long side / short side) of at most `MAX_ASPECT`, in a file of at most
`MAX_IMAGE_BYTES`. Pillow's own
decompression-bomb warning is turned into that same error rather than printed. The decoded arrays of a
tree may take at most `MAX_DECODED_BYTES`.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import struct
import sys
import warnings
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from ex4.atomic import atomic_path
from ex4.data.checks import read_bytes, read_json, require_directory
from ex4.errors import Ex4Error, warn
from ex4.hashing import file_digest, fingerprint_digests, sha256_bytes
from ex4.paths import cache_dir

SPLIT_FOLDERS = {"train": ("train",), "val": ("val", "validation"), "test": ("test",)}
LABELS = {"real": 0, "fake": 1}
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
MANIFEST = "manifest.json"
LOADER_VERSION = 2  # bump when decoding or the cache key changes, so old caches are not reused
# Size limits of one image (generous for photographs: 64 Mpx is 8000 x 8000; panoramas reach ~10:1) and of
# the decoded arrays of a whole tree (2000 images at 224 px take 0.3 GB; 16 GiB is ~110k images at 224 px).
MAX_PIXELS = 64_000_000
MAX_ASPECT = 20.0
MAX_DECODED_BYTES = 16 * 2**30
MAX_IMAGE_BYTES = 256 * 2**20  # one file: a 64 Mpx image stored uncompressed with alpha


@dataclass
class ImageSplit:
    images: np.ndarray  # uint8 [n, S, S, 3]
    labels: np.ndarray  # int64 [n]: real=0, fake=1
    ids: list[str]  # paths relative to the data folder, e.g. "test/fake/0012.png"


@dataclass
class FacesData:
    train: ImageSplit
    val: ImageSplit
    test: ImageSplit
    directory: Path
    is_standin: bool
    description: str
    fingerprint: str = ""  # store-style fingerprint of the image content that was decoded (see module doc)

    def splits(self) -> dict[str, ImageSplit]:
        return {"train": self.train, "val": self.val, "test": self.test}


@dataclass(frozen=True)
class _Image:
    path: Path
    id: str
    label: int


# --- the tree ----------------------------------------------------------------------------------------------


def class_label(folder: Path) -> int:
    """0 for a folder named for real images, 1 for fake ones; Ex4Error for any other name."""
    words = set(re.findall(r"[a-z]+", folder.name.lower()))
    found = [name for name in LABELS if name in words]
    if len(found) != 1:
        raise Ex4Error(f"{folder}: class folder name must contain exactly one of the words 'real' or 'fake' "
                       "(e.g. real, fake, 0_real, 1_fake)")
    return LABELS[found[0]]


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def _split_folder(root: Path, split: str) -> Path:
    children = {child.name.lower(): child for child in root.iterdir() if child.is_dir() and _visible(child)}
    matches = [children[name] for name in SPLIT_FOLDERS[split] if name in children]
    if not matches:
        raise Ex4Error(f"{root}: missing split folder '{SPLIT_FOLDERS[split][0]}' "
                       f"(expected {', '.join(names[0] for names in SPLIT_FOLDERS.values())})")
    if len(matches) > 1:
        raise Ex4Error(f"{root}: both '{matches[0].name}' and '{matches[1].name}' exist; keep one {split} folder")
    return matches[0]


def _image_files(folder: Path) -> list[Path]:
    files = [path for path in folder.rglob("*")
             if path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file()
             and all(_visible(part) for part in path.relative_to(folder).parents if part != Path("."))
             and _visible(path)]
    return sorted(files, key=lambda path: path.relative_to(folder).as_posix())


def _scan(directory: Path) -> dict[str, list[_Image]]:
    """Every image of every split in a fixed order, after checking the folder structure."""
    root = require_directory(directory, "faces data")
    tree: dict[str, list[_Image]] = {}
    for split in SPLIT_FOLDERS:
        split_dir = _split_folder(root, split)
        by_label: dict[int, Path] = {}
        images: list[_Image] = []
        for folder in sorted((child for child in split_dir.iterdir() if child.is_dir() and _visible(child)),
                             key=lambda child: child.name):
            label = class_label(folder)
            if label in by_label:
                raise Ex4Error(f"{split_dir}: both '{by_label[label].name}' and '{folder.name}' are "
                               f"'{_label_name(label)}' folders; keep one")
            by_label[label] = folder
            files = _image_files(folder)
            if not files:
                raise Ex4Error(f"{folder}: class folder has no images ({', '.join(IMAGE_EXTENSIONS)})")
            images += [_Image(path, path.relative_to(root).as_posix(), label) for path in files]
        if len(by_label) < 2:
            present = f"only a '{_label_name(next(iter(by_label)))}' folder" if by_label else "no class folders"
            raise Ex4Error(f"{split_dir}: the {split} split has {present}; it needs both real and fake")
        tree[split] = sorted(images, key=lambda image: (image.label, image.id))
    return tree


def _label_name(label: int) -> str:
    return next(name for name, value in LABELS.items() if value == label)


def faces_files(directory: Path | str) -> list[Path]:
    """The image files of all three splits (train, val, test; real before fake; sorted) after checking the tree."""
    return [image.path for images in _scan(Path(directory)).values() for image in images]


# --- decoding ----------------------------------------------------------------------------------------------


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16-bit grayscale: scale to 8 bits instead of clipping
        values = np.asarray(image, dtype=np.float64) / 257.0
        return Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8)).convert("RGB")
    if image.mode == "P":
        image = image.convert("RGBA")
    return image.convert("RGB")


def resize_and_crop(image: Image.Image, size: int) -> Image.Image:
    """torchvision's Resize(size) then CenterCrop(size), for a PIL image."""
    width, height = image.size
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = size, int(size * long / short)
    new_width, new_height = (new_short, new_long) if width <= height else (new_long, new_short)
    if (new_width, new_height) != (width, height):
        image = image.resize((new_width, new_height), Image.Resampling.BILINEAR)
    top = int(round((new_height - size) / 2.0))
    left = int(round((new_width - size) / 2.0))
    return image.crop((left, top, left + size, top + size))


def _open_checked(path: Path, source: Path | io.BytesIO) -> Image.Image:
    """Image.open with ex4's size limits applied to the header, before any pixel is decoded."""
    # Pillow warns (and only errors at twice its own limit); the warning is turned into an exception here,
    # process-wide, because `warnings.catch_warnings` is not thread-safe and images decode on a thread pool.
    # Re-adding the filter on every call keeps it in place when a test runner resets the filters.
    warnings.filterwarnings("error", category=Image.DecompressionBombWarning)
    try:
        image = Image.open(source)
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise Ex4Error(f"{path}: image has more than {MAX_PIXELS:,} pixels (the limit per image)") from None
    try:
        check_image_size(path, *image.size)
    except Ex4Error:
        image.close()
        raise
    return image


def check_image_size(path: Path, width: int, height: int) -> None:
    """Ex4Error naming the file when an image's pixel count or aspect ratio is over ex4's limits."""
    if width < 1 or height < 1:
        raise Ex4Error(f"{path}: image is {width} x {height} pixels (empty)")
    if width * height > MAX_PIXELS:
        raise Ex4Error(f"{path}: image is {width} x {height} = {width * height:,} pixels; the limit is "
                       f"{MAX_PIXELS:,} pixels per image")
    ratio = max(width, height) / min(width, height)
    if ratio > MAX_ASPECT:
        raise Ex4Error(f"{path}: image is {width} x {height} pixels, an aspect ratio of {ratio:.0f}:1; the limit "
                       f"is {MAX_ASPECT:g}:1 (resizing its short side would make it {ratio:.0f} times as long)")


# what Pillow's format plugins raise on malformed headers or data (struct.error, IndexError and friends come
# from truncated or inconsistent headers; the fuzz test in tests/test_reliability_fuzz.py feeds it such files)
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError, struct.error,
                  IndexError, TypeError, KeyError, ZeroDivisionError)


def _read_bytes(path: Path, digest: str | None) -> bytes:
    data = read_bytes(path, limit=MAX_IMAGE_BYTES)
    if digest is not None and sha256_bytes(data) != digest:
        raise Ex4Error(f"{path}: the file changed while ex4 was reading it (its content no longer matches the "
                       "fingerprint taken moments before); run again once the data stops changing")
    return data


def decode_image(path: Path, size: int, digest: str | None = None) -> np.ndarray:
    """One image as uint8 [size, size, 3]; Ex4Error naming the file when it cannot be decoded or is too large.

    With `digest`, the bytes decoded must have that sha256 (the content the cache key and store key used)."""
    data = _read_bytes(path, digest)
    try:
        with _open_checked(path, io.BytesIO(data)) as image:
            image.load()
            rgb = _to_rgb(image)
        return np.asarray(resize_and_crop(rgb, size), dtype=np.uint8)
    except Ex4Error:
        raise
    except MemoryError:
        raise Ex4Error(f"{path}: not enough memory to decode this image at {size} px") from None
    except _DECODE_ERRORS as error:
        raise Ex4Error(f"{path}: cannot decode image ({_detail(error)})") from None


def _smallest_side(path: Path) -> int:
    try:
        with _open_checked(path, path) as image:
            return min(image.size)
    except Ex4Error:
        raise
    except _DECODE_ERRORS as error:
        raise Ex4Error(f"{path}: cannot read image header ({_detail(error)})") from None


def _detail(error: Exception) -> str:
    if isinstance(error, UnidentifiedImageError):
        return "not an image format Pillow can read"
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__


def _decode_all(images: list[_Image], size: int, digests: dict[str, str] | None = None) -> np.ndarray:
    needed = len(images) * size * size * 3
    if needed > MAX_DECODED_BYTES:
        raise Ex4Error(f"{len(images)} images at {size} x {size} px would take {needed / 2**30:.1f} GiB decoded; "
                       f"the limit is {MAX_DECODED_BYTES / 2**30:.0f} GiB (lower cnn_image_size or use fewer images)")
    try:
        out = np.empty((len(images), size, size, 3), dtype=np.uint8)
    except MemoryError:
        raise Ex4Error(f"not enough memory for {len(images)} images at {size} x {size} px "
                       f"({needed / 2**30:.1f} GiB); lower cnn_image_size or use fewer images") from None
    workers = max(1, min(8, os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        decoded = pool.map(lambda image: decode_image(image.path, size, digests and digests[image.id]), images)
        for index, array in enumerate(tqdm(decoded, total=len(images), desc=f"decoding images at {size}px",
                                           unit="img", file=sys.stderr, disable=not sys.stderr.isatty(),
                                           leave=False)):
            out[index] = array
    return out


# --- the cache ---------------------------------------------------------------------------------------------


def content_digests(tree: dict[str, list[_Image]]) -> dict[str, str]:
    """image id -> sha256 of its content (the digests behind the store's data fingerprint)."""
    return {image.id: file_digest(image.path) for images in tree.values() for image in images}


def cache_key(directory: Path, tree: dict[str, list[_Image]], size: int, digests: dict[str, str]) -> str:
    """`<folder hash>-<size>-<content hash>`: the prefix lets a new entry replace the stale ones of its folder."""
    folder = hashlib.sha256(str(directory).encode()).hexdigest()[:12]
    digest = hashlib.sha256(f"faces-cache v{LOADER_VERSION}\0{directory}\0{size}\n".encode())
    for split, images in tree.items():
        for image in images:
            digest.update(f"{split}\0{image.id}\0{image.label}\0{digests[image.id]}\n".encode())
    return f"{folder}-{size}-{digest.hexdigest()[:24]}"


def _cache_path(key: str) -> Path:
    return cache_dir() / "faces" / f"{key}.npz"


def _remove_stale(path: Path) -> None:
    """Drop older caches of the same folder and size (the files changed since), so the cache does not grow."""
    folder_and_size = path.name.rsplit("-", 1)[0]
    for old in path.parent.glob(f"{folder_and_size}-*.npz"):
        if old != path:
            old.unlink(missing_ok=True)


def _read_cache(path: Path, tree: dict[str, list[_Image]], size: int) -> dict[str, ImageSplit] | None:
    """The cached splits, or None when absent or not matching (a damaged cache is just decoded again)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            splits = {}
            for split, images in tree.items():
                ids = stored[f"{split}_ids"].tolist()
                pixels = stored[f"{split}_images"]
                labels = stored[f"{split}_labels"].astype(np.int64)
                if ids != [image.id for image in images] or pixels.shape != (len(images), size, size, 3):
                    return None
                splits[split] = ImageSplit(images=pixels, labels=labels, ids=ids)
            return splits
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None


def _write_cache(path: Path, splits: dict[str, ImageSplit]) -> None:
    arrays: dict[str, np.ndarray] = {}
    for split, part in splits.items():
        arrays[f"{split}_images"] = part.images
        arrays[f"{split}_labels"] = part.labels
        arrays[f"{split}_ids"] = np.array(part.ids, dtype=str)
    try:
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, **arrays)
        _remove_stale(path)
    except OSError as error:  # a read-only or full cache folder costs time, not correctness
        warn(f"{path}: could not write the image cache ({error.strerror or error}); the images will be decoded "
             "again next time")


# --- public loaders ----------------------------------------------------------------------------------------


def _manifest_labels(directory: Path) -> tuple[bool, str]:
    manifest_path = directory / MANIFEST
    if not manifest_path.is_file():
        return False, f"user data: {directory}"
    manifest = read_json(manifest_path)
    if not isinstance(manifest, dict):
        raise Ex4Error(f"{manifest_path}: expected a JSON object")
    is_standin = manifest.get("standin") is True
    fallback = "stand-in data (not faces)" if is_standin else f"user data: {directory}"
    return is_standin, str(manifest.get("description") or fallback)


def load_faces(directory: Path | str, size: int) -> FacesData:
    """All three splits as uint8 [n, size, size, 3] RGB arrays, decoded once and then read from the cache."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise Ex4Error(f"image size must be a positive integer, got {size!r}")
    root = require_directory(directory, "faces data")
    tree = _scan(root)
    is_standin, description = _manifest_labels(root)
    digests = content_digests(tree)
    path = _cache_path(cache_key(root, tree, size, digests))
    splits = _read_cache(path, tree, size)
    if splits is None:
        every_image = [image for images in tree.values() for image in images]
        pixels = _decode_all(every_image, size, digests)
        splits, start = {}, 0
        for split, images in tree.items():
            splits[split] = ImageSplit(images=pixels[start:start + len(images)],
                                       labels=np.array([image.label for image in images], dtype=np.int64),
                                       ids=[image.id for image in images])
            start += len(images)
        _write_cache(path, splits)
    fingerprint = fingerprint_digests(((image.path, digests[image.id]) for images in tree.values()
                                       for image in images), root)
    return FacesData(**splits, directory=root, is_standin=is_standin, description=description,
                     fingerprint=fingerprint)


def summarize_faces(directory: Path | str, decode: bool = True) -> dict[str, Any]:
    """Images per split and class (and the smallest image side) for `ex4 data check faces DIR`.

    With `decode`, every image is decoded once (at a tiny size, not cached) so a corrupt file fails here.
    """
    root = require_directory(directory, "faces data")
    tree = _scan(root)
    is_standin, description = _manifest_labels(root)
    if decode:
        _decode_all([image for images in tree.values() for image in images], 8)
    smallest = min(_smallest_side(image.path) for images in tree.values() for image in images)
    return {
        "directory": str(root),
        "is_standin": is_standin,
        "description": description,
        "images": {split: {name: sum(image.label == label for image in images) for name, label in LABELS.items()}
                   for split, images in tree.items()},
        "smallest_side": int(smallest),
    }
