"""What a build used: result keys, parameters, data fingerprints, versions, machine, cache hits.

The renderer sets `$EX4_BUILD_LOG`; every `ex4.experiments.run` of the build appends its key and whether
it was a store hit. Reading that log tells the appendix exactly which results the chapters showed, even
when each chapter ran with its own parameters. Without a log (a chapter run by hand) every experiment is
looked up with the parameters given.
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

from ex4.store import Outcome, Store, sha256_file

RENDER_PACKAGES = ("papermill", "nbclient", "nbformat", "pypandoc-binary", "typst", "matplotlib", "seaborn",
                   "pandas")


@dataclass
class BuildRecords:
    outcomes: list[Outcome]
    hits: dict[str, bool]  # key -> read from the store during this build (first time it was asked for)
    source_sentence: str

    @property
    def n_hits(self) -> int:
        return sum(self.hits[outcome.key] for outcome in self.outcomes)

    @property
    def n_computed(self) -> int:
        return len(self.outcomes) - self.n_hits

    @property
    def computed_seconds(self) -> float:
        return sum(outcome.wall_time for outcome in self.outcomes if not self.hits[outcome.key])

    def runs_table(self) -> pd.DataFrame:
        return pd.DataFrame([
            {"experiment": outcome.experiment, "key": f"`{outcome.key}`",
             "this build": "stored" if self.hits[outcome.key] else "computed",
             "training time (s)": outcome.wall_time, "created": outcome.meta.get("created", "")}
            for outcome in self.outcomes
        ])

    def params_table(self) -> pd.DataFrame:
        rows = []
        for outcome in self.outcomes:
            for name, value in sorted(outcome.meta.get("params", {}).items()):
                rows.append({"experiment": outcome.experiment, "parameter": f"`{name}`", "value": f"`{value}`"})
        return pd.DataFrame(rows)

    def data_table(self) -> pd.DataFrame:
        rows, seen = [], set()
        for outcome in self.outcomes:
            folder = Path(outcome.meta.get("data_dir", ""))
            if folder in seen:
                continue
            seen.add(folder)
            rows.append({"data": str(folder), "file": "(all files)",
                         "SHA-256": f"`{outcome.meta.get('data_fingerprint', '')}`"})
            for name in ("train.csv", "validation.csv", "test.csv", "countries.csv", "manifest.json"):
                if (folder / name).is_file():
                    rows.append({"data": str(folder), "file": name, "SHA-256": f"`{sha256_file(folder / name)}`"})
        return pd.DataFrame(rows)

    def environment_table(self) -> pd.DataFrame:
        env = self.outcomes[0].meta.get("environment", {}) if self.outcomes else {}
        rows = [{"item": "python", "value": env.get("python", platform.python_version())},
                {"item": "platform", "value": env.get("platform", platform.platform())},
                {"item": "CPU cores", "value": str(env.get("cpu_count", os.cpu_count()))},
                {"item": "torch threads", "value": str(env.get("torch_threads", ""))},
                {"item": "GPU", "value": env.get("cuda") or "none"}]
        for library, version in (env.get("versions") or {}).items():
            rows.append({"item": library, "value": str(version)})
        for package in RENDER_PACKAGES:
            try:
                rows.append({"item": package, "value": importlib.metadata.version(package)})
            except importlib.metadata.PackageNotFoundError:
                continue
        return pd.DataFrame(rows)


def _read_log(path: Path) -> list[dict[str, Any]]:
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records


def build_records(values: dict[str, Any], store: Store | None = None) -> BuildRecords:
    """The results this build used: from $EX4_BUILD_LOG when the renderer set one, else looked up now."""
    from ex4.experiments import registry, run

    store = store or Store()
    log_path = os.environ.get("EX4_BUILD_LOG")
    records = _read_log(Path(log_path)) if log_path and Path(log_path).is_file() else []
    outcomes: list[Outcome] = []
    hits: dict[str, bool] = {}
    if records:
        for record in records:
            if record["key"] in hits:
                continue
            outcome = store.load(record["key"])
            if outcome is not None:
                hits[record["key"]] = bool(record["hit"])
                outcomes.append(outcome)
        sentence = (f"The chapters of this build asked the store for {len(records)} results "
                    f"({len(outcomes)} distinct), listed below as they were first used.")
    else:
        for name in registry():
            outcome = run(name, values, store)
            hits[outcome.key] = outcome.hit
            outcomes.append(outcome)
        sentence = ("No build log was available (the appendix ran on its own), so each experiment was looked up "
                    "with this chapter's parameters.")
    return BuildRecords(outcomes, hits, sentence)
