"""Hand freed heap memory back to the operating system between large computations.

Why by hand: no library does it. glibc's malloc keeps memory that a program has freed in its heaps (one arena
per thread) for later allocations, and gives back only the top of a heap. After a computation that made many
mid-sized allocations (XGBoost's quantile sketch of 12,288 pixel columns, a ResNet18 run on a worker thread)
that memory stays resident although nothing uses it, and it adds to the peak of whatever runs next. glibc's own
`malloc_trim(0)` returns the free pages of every arena; Dask's documentation recommends the same call for the
same symptom on its workers ("Memory not released back to the OS"). It changes where memory lives, never a
computed number. On other C libraries (macOS, Windows, musl) there is nothing to call and it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys


@functools.lru_cache(maxsize=1)
def _malloc_trim():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim  # glibc only
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


def release_freed_memory() -> bool:
    """Return the free pages of every malloc arena to the OS; True when the C library could do it."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
