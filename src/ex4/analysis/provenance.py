"""What a build used: result keys, parameters, data fingerprints, versions, machine, cache hits.

Read from the build log and the store only; nothing here runs an experiment. The renderer sets
`$EX4_BUILD_LOG`, and every `ex4.experiments.run` of the build appends the key it used and whether that was a
store hit, so reading the log tells the appendix exactly which results the chapters showed, even when each
chapter ran with its own parameters. Without a log (a chapter run by hand) the appendix lists the results in
the store that an experiment run wrote. Each result's metadata (`meta.json`: parameters, data fingerprint,
versions, machine) is read without loading its tensors.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ex4.store import Store, sha256_file

RENDER_PACKAGES = ("papermill", "nbclient", "nbformat", "pypandoc-binary", "typst", "matplotlib", "seaborn",
                   "pandas")
DATA_FILES = ("train.csv", "validation.csv", "test.csv", "countries.csv", "manifest.json")


@dataclass
class BuildRecords:
    entries: list[dict[str, Any]]  # the metadata of each result used, in the order first asked for
    hits: dict[str, bool | None]  # key -> read from the store in this build (None: not known, no log)
    from_log: bool  # True when read from the renderer's build log
    requests: int  # results the chapters asked for (with repeats); without a log, the entries listed
    store: Store | None = None  # where the entries are stored

    def results_of(self, experiment: str) -> list[dict[str, Any]]:
        """The stored results of `experiment` among the entries (unreadable ones left out)."""
        store = self.store or Store()
        found = (store.load(entry["key"]) for entry in self.entries if entry.get("experiment") == experiment)
        return [outcome.result for outcome in found if outcome is not None]

    @property
    def n_hits(self) -> int:
        return sum(bool(self.hits.get(entry["key"])) for entry in self.entries)

    @property
    def n_computed(self) -> int:
        return sum(self.hits.get(entry["key"]) is False for entry in self.entries)

    @property
    def computed_seconds(self) -> float:
        return sum(float(entry.get("wall_time") or 0.0) for entry in self.entries
                   if self.hits.get(entry["key"]) is False)

    def runs_rows(self) -> pd.DataFrame:
        """experiment, key, hit (True/False/None), wall_time (s), created."""
        return pd.DataFrame([{"experiment": entry.get("experiment", "?"), "key": entry["key"],
                              "hit": self.hits.get(entry["key"]), "wall_time": float(entry.get("wall_time") or 0.0),
                              "created": entry.get("created", "")} for entry in self.entries],
                            columns=["experiment", "key", "hit", "wall_time", "created"])

    def params_rows(self) -> pd.DataFrame:
        """experiment, parameter, value: the store-key parameters of every result."""
        rows = [{"experiment": entry.get("experiment", "?"), "parameter": name, "value": value}
                for entry in self.entries for name, value in sorted((entry.get("params") or {}).items())]
        return pd.DataFrame(rows, columns=["experiment", "parameter", "value"])

    def seeds(self) -> dict[str, list[int]]:
        """experiment -> the seeds of its results in this build (several when `seed_repeats` > 1)."""
        out: dict[str, set[int]] = {}
        for entry in self.entries:
            seed = (entry.get("params") or {}).get("seed")
            if seed is not None:
                out.setdefault(entry.get("experiment", "?"), set()).add(int(seed))
        return {name: sorted(seeds) for name, seeds in out.items()}

    def data_rows(self) -> pd.DataFrame:
        """folder, file (None: all files together), sha256 -- each data folder once."""
        rows, seen = [], set()
        for entry in self.entries:
            folder = Path(entry.get("data_dir", ""))
            if folder in seen:
                continue
            seen.add(folder)
            rows.append({"folder": str(folder), "file": None, "sha256": entry.get("data_fingerprint", "")})
            rows += [{"folder": str(folder), "file": name, "sha256": sha256_file(folder / name)}
                     for name in DATA_FILES if (folder / name).is_file()]
        return pd.DataFrame(rows, columns=["folder", "file", "sha256"])

    def environment_rows(self) -> pd.DataFrame:
        """item, value: the machine and libraries that computed the first result, and the renderer's packages."""
        env = self.entries[0].get("environment", {}) if self.entries else {}
        rows = [("python", env.get("python", platform.python_version())),
                ("platform", env.get("platform", platform.platform())),
                ("cpu_count", env.get("cpu_count", os.cpu_count())),
                ("torch_threads", env.get("torch_threads")),
                ("cuda", env.get("cuda"))]
        rows += list((env.get("versions") or {}).items())
        for package in RENDER_PACKAGES:
            try:
                rows.append((package, importlib.metadata.version(package)))
            except importlib.metadata.PackageNotFoundError:
                continue
        return pd.DataFrame(rows, columns=["item", "value"])


def _read_log(path: Path) -> list[dict[str, Any]]:
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records


def build_records(store: Store | None = None, log_path: str | Path | None = None) -> BuildRecords:
    """The results this build used: from the build log (default `$EX4_BUILD_LOG`) when there is one, else every
    result in the store that an experiment run wrote (those carry the data folder they were computed from)."""
    store = store or Store()
    log_path = log_path if log_path is not None else os.environ.get("EX4_BUILD_LOG")
    records = _read_log(Path(log_path)) if log_path and Path(log_path).is_file() else []
    metas = {entry["key"]: entry for entry in store.entries() if not entry.get("corrupt")}
    if records:
        entries, hits = [], {}
        for record in records:
            key = record.get("key")
            if key in hits or key not in metas:
                continue
            hits[key] = bool(record.get("hit"))
            entries.append(metas[key])
        return BuildRecords(entries, hits, True, len(records), store)
    entries = sorted((meta for meta in metas.values() if meta.get("data_dir")),
                     key=lambda meta: (meta.get("experiment", ""), meta.get("created", "")))
    return BuildRecords(entries, {entry["key"]: None for entry in entries}, False, len(entries), store)
