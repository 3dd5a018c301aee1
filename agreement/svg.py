"""Inline SVG plots drawn on the server: confusion-matrix heatmaps, IoU histograms and
reliability diagrams. No plotting library; every piece of text goes through
``format_html`` (escaped), so labels from the database cannot inject markup.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

FONT = 'font-family="system-ui, sans-serif" font-size="11"'


def _join(parts: Sequence[SafeString]) -> SafeString:
    return mark_safe("".join(parts))  # every part is already escaped by format_html


def _svg(width: int, height: int, title: str, body: Sequence[SafeString]) -> SafeString:
    return format_html(
        '<svg class="plot" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {} {}" width="{}" height="{}" role="img" '
        'aria-label="{}"><title>{}</title>{}</svg>',
        width, height, width, height, title, title, _join(body),
    )


def _text(x: float, y: float, text: str, *, anchor: str = "middle", rotate: bool = False, fill: str = "#1d2330") -> SafeString:
    transform = format_html(' transform="rotate(-90 {} {})"', f"{x:.1f}", f"{y:.1f}") if rotate else ""
    return format_html('<text x="{}" y="{}" text-anchor="{}" fill="{}" {}{}>{}</text>',
                       f"{x:.1f}", f"{y:.1f}", anchor, fill, mark_safe(FONT), transform, text)


def _rect(x: float, y: float, w: float, h: float, fill: str, tip: str = "") -> SafeString:
    title = format_html("<title>{}</title>", tip) if tip else ""
    return format_html('<rect x="{}" y="{}" width="{}" height="{}" fill="{}">{}</rect>',
                       f"{x:.1f}", f"{y:.1f}", f"{max(w, 0):.1f}", f"{max(h, 0):.1f}", fill, title)


def _blue(share: float) -> str:
    """White (0) to a deep blue (1)."""
    share = min(max(share, 0.0), 1.0)
    r, g, b = (int(255 + (t - 255) * share) for t in (31, 78, 160))
    return f"rgb({r},{g},{b})"


def heatmap(matrix: Sequence[Sequence[int]], labels: Sequence[str], *, row_title: str, col_title: str,
            title: str = "") -> SafeString:
    """A K x K count matrix; cells shaded by their share of the row, counts written in."""
    k, cell, left, top = len(labels), 34, 96, 96
    body = []
    for i, row in enumerate(matrix):
        total = sum(row)
        for j, count in enumerate(row):
            share = count / total if total else 0.0
            x, y = left + j * cell, top + i * cell
            body.append(_rect(x, y, cell - 1, cell - 1, _blue(share), f"{labels[i]} → {labels[j]}: {count}"))
            if count:
                body.append(_text(x + cell / 2, y + cell / 2 + 4, str(count), fill="#fff" if share > 0.55 else "#1d2330"))
    for i, label in enumerate(labels):
        body.append(_text(left - 6, top + i * cell + cell / 2 + 4, label, anchor="end"))
        body.append(_text(left + i * cell + cell / 2 + 4, top - 6, label, anchor="start", rotate=True))
    size = left + k * cell
    body.append(_text(left + k * cell / 2, size + 18, f"columns: {col_title}"))
    body.append(_text(12, top + k * cell / 2, f"rows: {row_title}", rotate=True))
    return _svg(size + 10, size + 26, title or f"Confusion matrix: {row_title} vs {col_title}", body)


def _axes(left: int, top: int, w: int, h: int, x_label: str, y_label: str) -> list[SafeString]:
    parts = [format_html('<path d="M{} {}V{}H{}" stroke="#667085" fill="none"/>', left, top, top + h, left + w)]
    for t in (0.0, 0.5, 1.0):
        parts.append(_text(left + t * w, top + h + 14, f"{t:g}"))
    parts.append(_text(left + w / 2, top + h + 30, x_label))
    parts.append(_text(14, top + h / 2, y_label, rotate=True))
    return parts


def histogram(edges: Sequence[float], counts: Sequence[int], *, x_label: str, title: str) -> SafeString:
    """Bars of ``counts`` over ``edges`` (values in [0, 1])."""
    left, top, w, h = 44, 12, 320, 150
    body = _axes(left, top, w, h, x_label, "pairs")
    peak = max(counts) if counts and max(counts) else 1
    body.append(_text(left - 4, top + 8, str(peak), anchor="end"))
    for lo, hi, count in zip(edges, edges[1:], counts):
        bar = h * count / peak
        body.append(_rect(left + lo * w + 1, top + h - bar, (hi - lo) * w - 2, bar, "#4f6bd8",
                          f"{lo:.1f}–{hi:.1f}: {count}"))
    return _svg(left + w + 16, top + h + 40, title, body)


def reliability_diagram(before: dict, after: dict | None, *, title: str) -> SafeString:
    """Accuracy per confidence bin (bars: before; dots: after scaling) against the diagonal."""
    left, top, w, h = 44, 28, 300, 200  # the legend sits above the plot, not over the bars
    body = _axes(left, top, w, h, "confidence", "accuracy")
    body.append(format_html('<path d="M{} {}L{} {}" stroke="#98a2b3" stroke-dasharray="4 3"/>', left, top + h, left + w, top))
    edges = before["edges"]
    for lo, hi, acc, conf, n in zip(edges, edges[1:], before["accuracy"], before["confidence"], before["counts"]):
        if acc is None:
            continue
        tip = f"{lo:.2f}–{hi:.2f}: {n} answers, accuracy {acc:.2f}, mean confidence {conf:.2f}"
        body.append(_rect(left + lo * w + 1, top + h * (1 - acc), (hi - lo) * w - 2, h * acc, "#4f6bd8", tip))
    if after:
        for acc, conf, n in zip(after["accuracy"], after["confidence"], after["counts"]):
            if acc is not None:
                body.append(format_html('<circle cx="{}" cy="{}" r="4" fill="#e8590c"><title>{}</title></circle>',
                                        f"{left + conf * w:.1f}", f"{top + h * (1 - acc):.1f}",
                                        f"after: {n} answers, accuracy {acc:.2f}, confidence {conf:.2f}"))
    legend = "bars: before" + (" · dots: after temperature" if after else "")
    body.append(_text(left, top - 10, legend, anchor="start", fill="#667085"))
    return _svg(left + w + 16, top + h + 40, title, body)
