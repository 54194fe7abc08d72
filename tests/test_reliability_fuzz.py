"""Issue 13: generated malformed CSV rows and image files through `ex4 data check` (in process, seeded).

Every case must end in exactly one of two ways: accepted (exit 0), or exit != 0 with exactly one line on
stderr that is ex4's own error line. Never an internal error, a traceback, or a library warning in front.
"""

from __future__ import annotations

import io
import random
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from ex4 import cli

CSV_CASES = 240
IMAGE_CASES = 160

CELLS = ["", " ", "nan", "NaN", "inf", "-inf", "1e400", "-1e400", "1e12", "1000000000000", "9" * 400, "-0", "0.0",
         "1.5", "3.0", "0x10", "010", "1_000", "١٢", "２", "abc", '"', '""', "'", "\\", "\x00", "\t", "\r", "\u2028",
         "1,2", '"1,2"', "-1", "-180.0001", "90.0001", "180", "-90", "1e-320", "+5", "5.", ".5", "1e", "--1", "NULL",
         "None", "n/a", "\ufeff1", "é", "🙂", "1 2", "0b1", "True", "[1]", "{}", "%s", "${x}", "\x1b[31m"]


def _row(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.6:  # right number of cells, one or two of them odd
        cells = [str(rng.randint(0, 99)), f"{rng.uniform(-10, 30):.3f}", f"{rng.uniform(35, 70):.3f}",
                 str(rng.randint(0, 2))]
        for _ in range(rng.randint(1, 2)):
            cells[rng.randrange(4)] = rng.choice(CELLS)
        return ",".join(cells)
    if kind < 0.8:  # wrong number of cells
        return ",".join(rng.choice(CELLS) for _ in range(rng.choice([0, 1, 2, 3, 5, 9])))
    return "".join(rng.choice(CELLS) for _ in range(rng.randint(1, 6)))  # no structure at all


def _csv_case(rng: random.Random, valid: dict[str, str]) -> dict[str, bytes]:
    files = {name: text.encode() for name, text in valid.items()}
    name = rng.choice(sorted(valid))
    lines = valid[name].splitlines()
    action = rng.random()
    if action < 0.7:
        for _ in range(rng.randint(1, 3)):
            lines.insert(rng.randint(1, len(lines)), _row(rng))
    elif action < 0.85:
        lines[0] = rng.choice([",long,lat", "long;lat;country", ",LONG,lat,country", "", ",long,lat,country,extra",
                               ",long,long,country", "\ufeff,long,lat,country", "country,lat,long"])
    else:
        lines = lines[: rng.randint(0, 2)]
    text = "\n".join(lines) + rng.choice(["\n", "", "\r\n", "\n\n\n"])
    data = text.encode("utf-8", errors="surrogatepass")
    if rng.random() < 0.1:  # a stray invalid byte somewhere
        at = rng.randrange(len(data) + 1)
        data = data[:at] + bytes([rng.choice([0x80, 0xff, 0xc3, 0x00])]) + data[at:]
    files[name] = data
    return files


def _run_cli(argv: list[str], capsys) -> tuple[int, str]:
    status = cli.main(argv)
    return status, capsys.readouterr().err


def _assert_accepted_or_one_line(status: int, stderr: str, case: str) -> None:
    if status == 0:
        assert "Traceback" not in stderr and "internal error" not in stderr, (case, stderr)
        return
    lines = stderr.strip().splitlines()
    assert status == cli.EXIT_USER_ERROR, (case, stderr)
    assert len(lines) == 1 and lines[0].startswith("ex4: error: "), (case, stderr)


@pytest.mark.slow
def test_generated_malformed_csv_files(tmp_path, capsys, data_europe_dir):
    rng = random.Random(13)
    names = ("train.csv", "validation.csv", "test.csv", "countries.csv")
    valid = {name: (data_europe_dir / name).read_text() for name in names}
    outcomes = {"accepted": 0, "refused": 0}
    for number in range(CSV_CASES):
        folder = tmp_path / f"csv{number}"
        folder.mkdir()
        for name, data in _csv_case(rng, valid).items():
            (folder / name).write_bytes(data)
        status, stderr = _run_cli(["data", "check", "europe", str(folder)], capsys)
        _assert_accepted_or_one_line(status, stderr, f"case {number}: {folder}")
        outcomes["accepted" if status == 0 else "refused"] += 1
    assert outcomes["refused"] > CSV_CASES // 2 and outcomes["accepted"] > 0, outcomes  # both paths exercised


# --- images -------------------------------------------------------------------------------------------------


def _png_chunk(kind: bytes, payload: bytes, good_crc: bool = True) -> bytes:
    crc = zlib.crc32(kind + payload) if good_crc else 0
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc & 0xFFFFFFFF)


def png_with_header(width: int, height: int, rng: random.Random, good_crc: bool = True) -> bytes:
    """A PNG whose IHDR claims width x height, followed by a little (not matching) image data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, rng.choice([0, 2, 3, 4, 6]), 0, 0, 0)
    data = zlib.compress(bytes(rng.randrange(256) for _ in range(rng.randint(0, 64))))
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr, good_crc) + _png_chunk(b"IDAT", data)
            + _png_chunk(b"IEND", b""))


def _encoded(fmt: str, rng: random.Random) -> bytes:
    size = (rng.randint(1, 40), rng.randint(1, 40))
    pixels = np.random.default_rng(rng.randrange(2**32)).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


def _image_bytes(rng: random.Random) -> bytes:
    kind = rng.random()
    if kind < 0.25:  # a PNG header claiming any size, from empty to a decompression bomb
        width = rng.choice([0, 1, 2, 60000, 70000, 2**31 - 1, 2**32 - 1, rng.randint(1, 20000)])
        height = rng.choice([0, 1, 3, 9000, 12000, rng.randint(1, 20000)])
        return png_with_header(width, height, rng, good_crc=rng.random() < 0.8)
    data = bytearray(_encoded(rng.choice(["PNG", "JPEG", "BMP", "GIF", "WEBP", "TIFF"]), rng))
    if kind < 0.55:  # flip bytes in the header
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(min(len(data), 64))] = rng.randrange(256)
    elif kind < 0.75:  # truncate
        data = data[: rng.randint(0, len(data) - 1)]
    elif kind < 0.9:  # a magic number followed by noise
        magic = rng.choice([b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"BM", b"GIF89a", b"RIFF\x00\x00\x00\x00WEBP",
                            b"II*\x00", b"MM\x00*"])
        data = bytearray(magic + bytes(rng.randrange(256) for _ in range(rng.randint(0, 200))))
    else:  # overwrite a stretch in the middle
        start = rng.randrange(len(data))
        data[start:start + 16] = bytes(rng.randrange(256) for _ in range(16))
    return bytes(data)


@pytest.mark.slow
def test_generated_malformed_image_files(tmp_path, capsys, data_isolated_root, data_faces_tree):
    rng = random.Random(1313)
    root = data_faces_tree(per_class=1)
    targets = sorted(path for path in root.rglob("*.png"))
    outcomes = {"accepted": 0, "refused": 0}
    for number in range(IMAGE_CASES):
        target = rng.choice(targets)
        original = target.read_bytes()
        suffix = rng.choice([".png", ".jpg", ".bmp", ".webp"])
        broken = target.with_suffix(suffix)
        target.unlink()
        broken.write_bytes(_image_bytes(rng))
        try:
            status, stderr = _run_cli(["data", "check", "faces", str(root)], capsys)
            _assert_accepted_or_one_line(status, stderr, f"case {number}: {broken.name}")
            if status != 0:
                assert broken.name in stderr, (number, stderr)
            outcomes["accepted" if status == 0 else "refused"] += 1
        finally:
            broken.unlink()
            target.write_bytes(original)
    assert outcomes["refused"] > IMAGE_CASES // 2 and outcomes["accepted"] > 0, outcomes


@pytest.mark.parametrize("width, height", [(1, 60000), (60000, 1), (30, 1000), (12000, 9000), (70000, 70000)])
def test_oversized_or_elongated_png_header_is_one_line_before_decoding(tmp_path, capsys, data_faces_tree,
                                                                       width, height):
    """The issue's 317-byte 1 x 60000 PNG, and headers past Pillow's bomb limit: one line naming the file and
    the limit, from `data check`; nothing decoded, no Pillow warning on stderr."""
    root = data_faces_tree(per_class=1)
    bad = root / "train" / "real" / "000.png"
    bad.write_bytes(png_with_header(width, height, random.Random(0)))
    status, stderr = _run_cli(["data", "check", "faces", str(root)], capsys)
    assert status == cli.EXIT_USER_ERROR
    (line,) = stderr.strip().splitlines()
    assert line.startswith("ex4: error: ") and "000.png" in line and "limit" in line
    assert "DecompressionBomb" not in stderr
