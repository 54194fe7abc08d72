"""Content-addressed result store: one folder per key, written atomically, checked on every read.

A key hashes the experiment name, its resolved parameters, a fingerprint of the data files, a fingerprint
of the training code that produced it and the versions of the numeric libraries. Plot, chapter and renderer
code is not part of the key, so editing a sentence never retrains anything.

Layout of an entry `<root>/<key>/`: `result.json` (the experiment's JSON result), optional `tensors.pt`
(loaded with `torch.load(weights_only=True)`), `meta.json` (parameters, fingerprints, environment, wall time,
sha256 of the other files) and `meta.sha256`. An entry is built in `<root>/.tmp/` and renamed into place, so
a killed run leaves no entry; one whose checksums fail is treated as missing and recomputed.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import importlib
import inspect
import json
import math
import os
import platform
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from filelock import FileLock

from ex4.atomic import fsync_dir
from ex4.errors import Ex4Error
from ex4.hashing import file_digest, fingerprint_digests, sha256_bytes, sha256_file
from ex4.versions import package_versions
from ex4.paths import default_store_dir

VERSIONED_LIBRARIES = ("torch", "torchvision", "scikit-learn", "xgboost", "numpy")


@dataclass
class Outcome:
    """What the store hands back: the result, its tensors, and where it came from."""

    experiment: str
    key: str
    result: dict[str, Any]
    tensors: dict[str, Any] = field(default_factory=dict)
    hit: bool = False
    wall_time: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)


def fingerprint_files(paths: Iterable[Path], root: Path | None = None) -> str:
    """Hash of the files' relative names and contents (each content hash memoised by `hashing.file_digest`,
    which never trusts size and mtime alone)."""
    return fingerprint_digests(((Path(path), file_digest(path)) for path in paths), root)


def fingerprint_code(module_names: Iterable[str]) -> str:
    """Hash of the source of the named modules (for packages: every .py file inside them)."""
    digest = hashlib.sha256()
    for name in sorted(set(module_names)):
        module = importlib.import_module(name)
        source_file = Path(inspect.getfile(module))
        files = sorted(source_file.parent.rglob("*.py")) if source_file.name == "__init__.py" else [source_file]
        for path in files:
            digest.update(f"{name}:{path.name}\0".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def library_versions() -> dict[str, str | None]:
    versions = package_versions(*VERSIONED_LIBRARIES)
    if versions.get("xgboost") is None:  # the CPU-only wheel installs the same module under another name
        versions["xgboost"] = package_versions("xgboost-cpu")["xgboost-cpu"]
    return versions


def json_safe(value: Any) -> Any:
    """NaN and infinities become None, so results are standard JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


def environment() -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "versions": library_versions(),
    }
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:  # pragma: no cover - torch is a hard dependency
        pass
    return info


def make_key(experiment: str, params: dict[str, Any], data_fingerprint: str, code_fingerprint: str,
             versions: dict[str, Any] | None = None) -> str:
    payload = {
        "experiment": experiment,
        "params": params,
        "data": data_fingerprint,
        "code": code_fingerprint,
        "versions": library_versions() if versions is None else versions,
    }
    return sha256_bytes(canonical_json(payload).encode())[:24]


class Store:
    """A folder of results keyed by content; safe against crashes, corruption and concurrent writers."""

    def __init__(self, root: Path | str | None = None):
        self.root = Path(root) if root is not None else default_store_dir()

    # ---- the folder itself: every environment fault becomes one line naming the path ------------------------
    def check_folder(self) -> None:
        """Ex4Error when the store path exists but is not a folder (a regular file, a device)."""
        if self.root.exists() and not self.root.is_dir():
            raise Ex4Error(f"{self.root}: the result store must be a directory, but this is a file "
                           "(pick another with --store or EX4_STORE)")

    def _unwritable(self, error: OSError, path: Path | None = None) -> Ex4Error:
        where = error.filename or path or self.root
        return Ex4Error(f"{where}: cannot write to the result store ({error.strerror or error}); pick another "
                        "with --store or EX4_STORE")

    def prepare_for_writing(self) -> None:
        """Create the folder and its lock folder, and check a file can be written there, before any computing."""
        self.check_folder()
        try:
            locks = self.root / ".locks"
            locks.mkdir(parents=True, exist_ok=True)
            probe = Path(tempfile.mkstemp(prefix=".probe.", dir=locks)[1])
            probe.unlink()
        except OSError as error:
            raise self._unwritable(error) from None

    # ---- reading -------------------------------------------------------------------------------------------
    def entry_dir(self, key: str) -> Path:
        return self.root / key

    def load(self, key: str) -> Outcome | None:
        """The stored outcome, or None when absent or failing its checksums."""
        folder = self.entry_dir(key)
        try:
            meta_bytes = (folder / "meta.json").read_bytes()
            if (folder / "meta.sha256").read_text().strip() != sha256_bytes(meta_bytes):
                return None
            meta = json.loads(meta_bytes)
            for name, digest in meta["files"].items():
                if sha256_file(folder / name) != digest:
                    return None
            result = json.loads((folder / "result.json").read_bytes())
            tensors: dict[str, Any] = {}
            if "tensors.pt" in meta["files"]:
                import torch

                tensors = torch.load(folder / "tensors.pt", map_location="cpu", weights_only=True)
        except (OSError, ValueError, KeyError, TypeError, RuntimeError):
            return None
        except Exception as error:  # unpickling errors from a garbled tensors.pt
            if type(error).__name__ in {"UnpicklingError", "EOFError"}:
                return None
            raise
        return Outcome(meta["experiment"], key, result, tensors, hit=True, wall_time=meta.get("wall_time", 0.0),
                       meta=meta)

    def entries(self) -> list[dict[str, Any]]:
        """Metadata of every readable entry (for `ex4 results ls`)."""
        rows = []
        self.check_folder()
        if not self.root.is_dir():
            return rows
        try:
            children = sorted(self.root.iterdir())
        except OSError as error:
            raise Ex4Error(f"{self.root}: cannot read the result store ({error.strerror or error})") from None
        for folder in children:
            if folder.name.startswith(".") or not folder.is_dir():
                continue
            try:
                meta = json.loads((folder / "meta.json").read_bytes())
            except (OSError, ValueError):
                meta = {"experiment": "?", "corrupt": True}
            size = sum(path.stat().st_size for path in folder.iterdir() if path.is_file())
            rows.append({"key": folder.name, "size": size, **meta})
        return rows

    def lookup(self, experiment: str, params: dict[str, Any], data_fingerprint: str,
               code_modules: Iterable[str]) -> Outcome | None:
        """The stored outcome for these inputs, or None: what `get_or_compute` would return without computing
        (lets a caller find which of many pieces are missing and compute those together)."""
        return self.load(self.key_for(experiment, params, data_fingerprint, code_modules))

    def key_for(self, experiment: str, params: dict[str, Any], data_fingerprint: str,
                code_modules: Iterable[str]) -> str:
        """The key `get_or_compute` stores these inputs under."""
        return make_key(experiment, params, data_fingerprint, fingerprint_code(sorted(set(code_modules))))

    # ---- writing -------------------------------------------------------------------------------------------
    def get_or_compute(
        self,
        experiment: str,
        params: dict[str, Any],
        data_fingerprint: str,
        code_modules: Iterable[str],
        compute: Callable[[], tuple[dict[str, Any], dict[str, Any]]],
        extra_meta: dict[str, Any] | None = None,
    ) -> Outcome:
        """Return the stored outcome for these inputs, computing and storing it on a miss.

        `compute()` returns `(result, tensors)`: a JSON-able dict and a (possibly empty) dict of tensors.
        A second process asking for the same key waits on a file lock and then reuses the first one's entry.
        """
        code_modules = sorted(set(code_modules))
        code_fingerprint = fingerprint_code(code_modules)
        versions = library_versions()
        key = make_key(experiment, params, data_fingerprint, code_fingerprint, versions)
        self.check_folder()
        found = self.load(key)
        if found is not None:
            return found
        self.prepare_for_writing()
        try:
            lock = FileLock(str(self.root / ".locks" / f"{key}.lock"))
            lock.acquire()
        except OSError as error:
            raise self._unwritable(error) from None
        try:
            found = self.load(key)
            if found is not None:
                return found
            started = time.perf_counter()
            result, tensors = compute()
            wall_time = time.perf_counter() - started
            meta = {
                "experiment": experiment,
                "key": key,
                "params": params,
                "data_fingerprint": data_fingerprint,
                "code_fingerprint": code_fingerprint,
                "code_modules": code_modules,
                "versions": versions,
                "environment": environment(),
                "wall_time": wall_time,
                "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                **(extra_meta or {}),
            }
            try:
                self._write(key, result, tensors, meta)
            except OSError as error:
                raise self._unwritable(error) from None
        finally:
            lock.release()
        return Outcome(experiment, key, result, tensors, hit=False, wall_time=wall_time, meta=meta)

    def _write(self, key: str, result: dict[str, Any], tensors: dict[str, Any], meta: dict[str, Any]) -> None:
        staging_root = self.root / ".tmp"
        staging_root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f"{key}.", dir=staging_root))
        try:
            files = {"result.json": json.dumps(result, indent=1, sort_keys=True, allow_nan=True).encode()}
            for name, data in files.items():
                (staging / name).write_bytes(data)
            if tensors:
                import torch

                torch.save(tensors, staging / "tensors.pt")
            meta = {**meta, "files": {path.name: sha256_file(path) for path in sorted(staging.iterdir())}}
            meta_bytes = json.dumps(meta, indent=1, sort_keys=True, default=str).encode()
            (staging / "meta.json").write_bytes(meta_bytes)
            (staging / "meta.sha256").write_text(sha256_bytes(meta_bytes) + "\n")
            for path in staging.iterdir():
                with open(path, "rb") as handle:
                    os.fsync(handle.fileno())
            fsync_dir(staging)
            final = self.entry_dir(key)
            if final.exists():  # a corrupt entry: move it aside, then replace it
                shutil.rmtree(final.rename(staging_root / f"{key}.corrupt.{os.getpid()}"), ignore_errors=True)
            os.replace(staging, final)
            fsync_dir(self.root)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)

    # ---- maintenance ---------------------------------------------------------------------------------------
    def resolve_key(self, prefix: str) -> str:
        matches = [row["key"] for row in self.entries() if row["key"].startswith(prefix)] if prefix else []
        if not matches:
            raise Ex4Error(f"{self.root}: no stored result with key '{prefix}'")
        if len(matches) > 1:
            raise Ex4Error(f"{self.root}: key prefix '{prefix}' matches {len(matches)} results; give more characters")
        return matches[0]

    def remove(self, key: str) -> None:
        folder = self.entry_dir(self.resolve_key(key))
        try:
            shutil.rmtree(folder)
        except OSError as error:
            raise Ex4Error(f"{error.filename or folder}: cannot remove ({error.strerror or error})") from None

    def prune(self) -> list[str]:
        """Delete leftovers of killed runs, corrupt entries, and entries made by other code or library versions."""
        removed: list[str] = []
        self.check_folder()
        shutil.rmtree(self.root / ".tmp", ignore_errors=True)
        versions = library_versions()
        for row in self.entries():
            stale = row.get("corrupt") or self.load(row["key"]) is None
            if not stale:
                try:
                    stale = (row["versions"] != versions
                             or row["code_fingerprint"] != fingerprint_code(row["code_modules"]))
                except (ImportError, KeyError):
                    stale = True
            if stale:
                shutil.rmtree(self.entry_dir(row["key"]), ignore_errors=True)
                removed.append(row["key"])
        return removed
