"""The one way numbers are written for a reader: ``fmt``, ``pct`` and ``decimal`` format every number a person reads
(terminal, sweep.md, experiments/README.md, report.html); ``markdown_table`` writes every Markdown table."""

from __future__ import annotations

import math


def number(value) -> float:
    """A logged value as a float: None (not measured) is nan."""
    return math.nan if value is None else float(value)


def fmt(value, digits: int = 2) -> str:
    """Numbers as a reader wants them: 0.93, 1.2e-12, 45%; '-' for missing."""
    value = number(value) if not isinstance(value, str) else value
    if isinstance(value, str):
        return value
    if math.isnan(value):
        return "-"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value == 0 or 1e-2 <= abs(value) < 1e4:
        return f"{value:.{digits}g}" if abs(value) >= 1 else f"{value:.{digits}f}"
    return f"{value:.1e}"


def fmt_log10(log10_value, digits: int = 2) -> str:
    """A positive number given by its log10, in ``fmt``'s style, also beyond float64's range: 4.2e-400, 1.0e+400."""
    if log10_value is None or not math.isfinite(log10_value):
        return fmt(0.0 if log10_value == -math.inf else log10_value, digits)
    if abs(log10_value) < 300:
        return fmt(10.0**log10_value, digits)
    exponent = math.floor(log10_value)
    mantissa = round(10.0 ** (log10_value - exponent), 1)
    mantissa, exponent = (mantissa / 10, exponent + 1) if mantissa >= 10 else (mantissa, exponent)
    return f"{mantissa:.1f}e{exponent:+d}"


def decimal(value, digits: int = 1) -> str:
    """A fixed-point number with ``digits`` decimals, never a negative zero (-0.04 is "0.0", not "-0.0")."""
    text = f"{number(value):.{digits}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def pct(value) -> str:
    """A fraction as a percentage with one decimal ('-' when missing)."""
    value = number(value)
    return "-" if math.isnan(value) else f"{100 * value:.1f}%"


def markdown_table(headers: list[str], rows: list[list]) -> str:
    """A Markdown table: a header row, the separator, one line per row (cells as ``str``)."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
