"""Small helpers that keep chapters thin: their parameters, number formatting, Markdown tables.

Chapters declare their parameters in a Papermill/Quarto `parameters` cell; `chapter_params(globals())`
validates them (and anything Quarto or papermill injected) through `ex4.params` before any work starts.
"""

from __future__ import annotations

import math
import os
from typing import Any, Iterable, Mapping

import pandas as pd

from ex4 import params as _params


def chapter_params(namespace: Mapping[str, Any]) -> dict[str, Any]:
    """All parameters, resolved: defaults overridden by every known name defined in the chapter's namespace."""
    given = {name: namespace[name] for name in _params.SCHEMA if name in namespace}
    return _params.resolve(("chapter parameters", given))


def renderer_name() -> str:
    return os.environ.get("EX4_RENDERER", "unknown (run outside ex4 render / quarto render)")


def pct(value: float | None, digits: int = 1) -> str:
    """0.8123 -> '81.2 %' (a no-break space, so a table cell or line never splits it); missing/NaN -> 'n/a'."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{100 * value:.{digits}f}\u00a0%"


def pp(value: float, digits: int = 1) -> str:
    """A difference of two accuracies in percentage points, signed ("+0.0 pp", never "-0.0 pp")."""
    points = 100 * value
    if round(points, digits) == 0:
        points = 0.0
    return f"{points:+.{digits}f}\u00a0pp"


def num(value: float | int | None, digits: int = 3) -> str:
    """Compact numbers for prose: integers with thousands separators, floats to `digits` significant digits."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) >= 1):
        return f"{int(value):,}"
    return f"{value:.{digits}g}"


def format_lr(lr: float) -> str:
    """0.1, 0.01, 0.001, 1e-4, 1e-5, 3e-4, 0.0005 -> short, unambiguous text (Section 7's rates and run labels)."""
    text = f"{lr:.6g}"
    if lr < 1e-3 and "e" not in text:
        text = f"{lr:.6e}"
    if "e" in text:
        mantissa, exponent = text.split("e")
        mantissa = mantissa.rstrip("0").rstrip(".") if "." in mantissa else mantissa
        text = f"{mantissa}e{int(exponent)}"
    return text


def lr(value: float) -> str:
    """Learning rates as the course writes them: 1, 0.01, 1e-05."""
    return f"{value:g}"


def listing(items: Iterable[str], conjunction: str = "and") -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + f" {conjunction} " + items[-1]


def table(frame: pd.DataFrame, note: str = "", index: bool = False, floatfmt: str = ".4g") -> str:
    """A pipe table (Markdown) for Quarto and pandoc alike, with an optional provenance note beneath."""
    text = frame.to_markdown(index=index, floatfmt=floatfmt)
    return text + (f"\n\n<small>{note}</small>\n" if note else "\n")
