"""Formatting of report results: a number with its interval, or "undefined (reason)"."""

from __future__ import annotations

from django import template
from django.utils.html import format_html

register = template.Library()


@register.filter
def num(value, digits: int = 3) -> str:
    if value is None or value == "":
        return "—"
    return f"{float(value):.{int(digits)}f}"


@register.filter
def stat(result) -> str:
    """``0.512 [0.301, 0.702]`` or ``undefined (reason)``; escaped HTML."""
    if not result:
        return "—"
    if result.get("value") is None:
        return format_html('<span class="undefined">undefined ({})</span>', result.get("undefined") or "no value")
    if result.get("low") is None:
        return format_html("{}", num(result["value"]))
    return format_html('{} <span class="ci">[{}, {}]</span>', num(result["value"]), num(result["low"]), num(result["high"]))


@register.filter
def percent(value) -> str:
    return "—" if value is None or value == "" else f"{100 * float(value):.1f} %"


@register.filter
def nothing_defined(per_class) -> bool:
    """No class has a specific agreement or a one-vs-rest kappa (no item reviewed twice)."""
    return all(row["specific_agreement"] is None and row["fleiss_kappa"] is None for row in per_class)


@register.filter
def stat_percent(result) -> str:
    """A rate as ``66.7 % [30.0, 90.3]`` or ``undefined (reason)``; escaped HTML."""
    if not result:
        return "—"
    if result.get("value") is None:
        return format_html('<span class="undefined">undefined ({})</span>', result.get("undefined") or "no value")
    if result.get("low") is None:
        return format_html("{}", percent(result["value"]))
    low, high = f"{100 * result['low']:.1f}", f"{100 * result['high']:.1f}"
    return format_html('{} <span class="ci">[{}, {}]</span>', percent(result["value"]), low, high)


@register.filter
def axis_name(key: str, names: dict) -> str:
    """A category or dimension key as its configured name (``all`` for the pooled row)."""
    return "all" if not key else names.get(key, key)
