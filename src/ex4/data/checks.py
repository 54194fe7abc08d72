"""Small checks shared by the loaders: each turns a bad path or file into a one-line Ex4Error naming it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ex4.errors import Ex4Error


def require_directory(path: Path | str, what: str) -> Path:
    """The resolved directory, or Ex4Error saying it is missing or is a file."""
    path = Path(path).expanduser()
    if not path.exists():
        raise Ex4Error(f"{path}: {what} directory not found")
    if not path.is_dir():
        raise Ex4Error(f"{path}: {what} must be a directory, not a file")
    return path.resolve()


def require_file(path: Path, what: str) -> Path:
    if not path.exists():
        raise Ex4Error(f"{path}: {what} not found")
    if not path.is_file():
        raise Ex4Error(f"{path}: {what} must be a file")
    return path


def read_text(path: Path) -> str:
    """The file's text; Ex4Error for an empty file, binary content or bytes that are not UTF-8."""
    return decode_text(path, read_bytes(path))


def read_bytes(path: Path, limit: int | None = None) -> bytes:
    """The file's bytes; Ex4Error naming it when unreadable or (with `limit`) larger than `limit` bytes."""
    try:
        if limit is not None and path.stat().st_size > limit:
            raise Ex4Error(f"{path}: file is {path.stat().st_size:,} bytes; the limit is {limit:,}")
        return path.read_bytes()
    except OSError as error:
        raise Ex4Error(f"{path}: cannot read ({error.strerror or error})") from None
    except MemoryError:
        raise Ex4Error(f"{path}: not enough memory to read this file") from None


def decode_text(path: Path, data: bytes) -> str:
    """`data` (read from `path`) as text; Ex4Error for empty, binary or non-UTF-8 content."""
    if not data:
        raise Ex4Error(f"{path}: file is empty (0 bytes)")
    if b"\0" in data:
        line = data[: data.index(b"\0")].count(b"\n") + 1
        raise Ex4Error(f"{path}: line {line}: binary content (NUL byte); expected a text CSV file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise Ex4Error(f"{path}: line {line}: not UTF-8 text (byte 0x{data[error.start]:02x}); "
                       "expected a text CSV file") from None


def read_json(path: Path) -> Any:
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as error:
        raise Ex4Error(f"{path}: line {error.lineno}: invalid JSON ({error.msg})") from None
