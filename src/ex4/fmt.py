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


def _over_seeds(value: Any) -> bool:
    """A number over several seeds that differs between them (`ex4.analysis.seeds.Spread`); one that is the
    same in every seed is written once."""
    return hasattr(value, "low") and hasattr(value, "high") and not value.single and value.low != value.high


def _mean(value: Any) -> Any:
    return value.mean if hasattr(value, "low") and hasattr(value, "high") else value


def pct(value: Any, digits: int = 1) -> str:
    """0.8123 -> '81.2 %' (a no-break space, so a table cell or line never splits it); missing/NaN -> 'n/a'.
    A number over seeds (a `Spread`) -> its mean and its min–max range: '81.2 % (80.1–82.0)'."""
    if _over_seeds(value):
        return f"{pct(value.mean, digits)} ({100 * value.low:.{digits}f}–{100 * value.high:.{digits}f})"
    value = _mean(value)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{100 * value:.{digits}f}\u00a0%"


def pp(value: Any, digits: int = 1) -> str:
    """A difference of two accuracies in percentage points, signed ("+0.0 pp", never "-0.0 pp"); over seeds
    its mean and min–max range: '+3.1 pp (−0.5 to +6.0)'."""
    if _over_seeds(value):
        low, high = (pp(v, digits).removesuffix("\u00a0pp") for v in (value.low, value.high))
        return f"{pp(value.mean, digits)} ({low} to {high})"
    points = 100 * _mean(value)
    if round(points, digits) == 0:
        points = 0.0
    return f"{points:+.{digits}f}\u00a0pp"


def points(value: Any, digits: int = 1) -> str:
    """The size of a difference of two accuracies in percentage points, without its sign ("4.8 pp"); over seeds
    its mean and min–max range ("4.8 pp (3.9–5.6)"), signed as `pp` writes it when the seeds disagree on the sign
    ("+1.0 pp (−2.0 to +4.0)")."""
    if _over_seeds(value):
        if value.low < 0 < value.high:
            return pp(value, digits)
        low, high = sorted((abs(value.low), abs(value.high)))
        return f"{points(abs(value.mean), digits)} ({100 * low:.{digits}f}–{100 * high:.{digits}f})"
    return pp(abs(_mean(value)), digits).lstrip("+")


def num(value: Any, digits: int = 3) -> str:
    """Compact numbers for prose: integers with thousands separators, floats to `digits` significant digits;
    over seeds the mean and the min–max range: '1.23 (1.2–1.25)'."""
    if _over_seeds(value):
        mean = round(value.mean) if abs(value.mean) >= 10 ** digits else value.mean  # 5,430, not 5.43e+03
        return f"{num(mean, digits)} ({num(value.low, digits)}–{num(value.high, digits)})"
    value = _mean(value)
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


def count(value: int | None) -> str:
    """Counts for tables: thousands separators up to ten million, then mantissa × 10^exponent (6.61 × 10¹²)."""
    if value is None:
        return "n/a"
    if abs(value) < 10_000_000:
        return f"{int(value):,}"
    exponent = int(math.floor(math.log10(abs(value))))
    mantissa = value / 10 ** exponent
    superscript = str(exponent).translate(str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻"))
    return f"{mantissa:.2f} × 10{superscript}"


def sci(value: float, digits: int = 1) -> str:
    """Scientific notation without padded exponents: 2.5e-13, 1e-5, 3.0e+20."""
    return f"{value:.{digits}e}".replace("e-0", "e-").replace("e+0", "e+")


def latex_int(value: int) -> str:
    """An integer for LaTeX math, thin spaces between thousands: 6\\,611\\,856."""
    return f"{int(value):,}".replace(",", r"\,")


def listing(items: Iterable[str], conjunction: str = "and") -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + f" {conjunction} " + items[-1]


def table(frame: pd.DataFrame, note: str = "", index: bool = False, floatfmt: str = ".4g") -> str:
    """A pipe table (Markdown) for Quarto and pandoc alike, with an optional provenance note beneath."""
    text = frame.to_markdown(index=index, floatfmt=floatfmt)
    return text + (f"\n\n<small>{note}</small>\n" if note else "\n")
