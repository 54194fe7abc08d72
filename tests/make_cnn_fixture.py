"""Write tests/data/cnn_smoke.json: one real Section 7 result under params/smoke.yml, for the chapter's wording
tests (which alter it into results with opposite verdicts).

    EX4_STORE=/tmp/store python tests/make_cnn_fixture.py     # trains on a cold store (minutes), else reads

The fixture keeps the result dict as `ex4 run cnn` stores it and, of its tensors, the test labels and each
run's test probabilities (what the mistakes figure is chosen from), rounded to 6 decimals.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "data" / "cnn_smoke.json"


def fixture_from_outcome(result: dict[str, Any], tensors: dict[str, Any]) -> dict[str, Any]:
    return {"result": result,
            "tensors": {"labels": {"test": [int(value) for value in tensors["labels"]["test"].tolist()]},
                        "probabilities": {"test": {label: [round(float(value), 6) for value in values.tolist()]
                                                   for label, values in tensors["probabilities"]["test"].items()}}}}


def load_fixture(path: Path = FIXTURE) -> tuple[dict[str, Any], dict[str, Any]]:
    """(result, tensors) with the tensors as torch tensors, as `ex4.experiments.run` would return them."""
    import torch

    data = json.loads(path.read_text(encoding="utf-8"))
    tensors = data["tensors"]
    return data["result"], {
        "labels": {"test": torch.tensor(tensors["labels"]["test"], dtype=torch.int64)},
        "probabilities": {"test": {label: torch.tensor(values, dtype=torch.float32)
                                   for label, values in tensors["probabilities"]["test"].items()}}}


def main() -> None:
    from ex4 import params
    from ex4.experiments import run

    values = params.resolve_cli(str(ROOT / "params" / "smoke.yml"))
    outcome = run("cnn", values)
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    FIXTURE.write_text(json.dumps(fixture_from_outcome(outcome.result, outcome.tensors), indent=1) + "\n",
                       encoding="utf-8")
    print(f"{FIXTURE}: result {outcome.key} ({'read from the store' if outcome.hit else 'computed'})")


if __name__ == "__main__":
    main()
