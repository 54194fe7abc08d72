"""SHA-256 of bytes and files: the one implementation that data manifests, weights, caches and the store share.

`file_digest` memoises a file's digest within a process, but never trusts size and modification time alone:
both can be restored after an in-place edit (`touch -r`, `os.utime`). The memo also compares the inode
change time (ctime), which the kernel sets on every write or `utime` and no user call can set back, and it
only trusts an entry whose ctime was already older than the moment the file was hashed by more than
`RACY_SECONDS` (the "racily clean" rule git uses for its index: a file changed within the clock's
granularity of being hashed could share its stamp with the old content, so it is hashed again). Where
ctime is not a change time (Windows, where it is the creation time) nothing is memoised.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path
from typing import Iterable

RACY_SECONDS = 2.0  # a file whose ctime is this close to (or after) its hashing time is hashed again next time
_MEMO: dict[str, tuple[tuple[int, int, int, int, int], int, str]] = {}
_MEMO_LOCK = threading.Lock()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path | str) -> str:
    """Hex digest of a file, read in 1 MiB blocks so large image or weight files need no memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _stamp(stat: os.stat_result) -> tuple[int, int, int, int, int]:
    return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)


def file_digest(path: Path | str) -> str:
    """sha256 of the file's content, memoised in this process only while its stamp (device, inode, size,
    mtime, ctime) is unchanged and was not racily close to the time it was hashed (see the module doc)."""
    path = Path(path)
    if os.name != "posix":
        return sha256_file(path)
    key = str(path.resolve())
    stamp = _stamp(path.stat())
    with _MEMO_LOCK:
        known = _MEMO.get(key)
    if known is not None and known[0] == stamp and stamp[4] < known[1] - int(RACY_SECONDS * 1e9):
        return known[2]
    hashed_at = time.time_ns()
    digest = sha256_file(path)
    after = _stamp(path.stat())
    if after == stamp:  # unchanged while it was read: safe to remember
        with _MEMO_LOCK:
            _MEMO[key] = (stamp, hashed_at, digest)
    return digest


def fingerprint_digests(digests: Iterable[tuple[Path | str, str]], root: Path | None = None) -> str:
    """One hash of (file, content sha256) pairs: each file's name (relative to `root`) and content. The
    store's data fingerprint (`store.fingerprint_files`) is this over `file_digest`; a loader that hashed the
    very bytes it decoded states what it read in the same terms."""
    digest = hashlib.sha256()
    for path, content in sorted((Path(p), d) for p, d in digests):
        name = str(path.relative_to(root)) if root is not None else path.name
        digest.update(f"{name}\0{content}\n".encode())
    return digest.hexdigest()


def forget_digests() -> None:
    """Drop the memo (tests; a long-lived process that wants to re-read everything)."""
    with _MEMO_LOCK:
        _MEMO.clear()
