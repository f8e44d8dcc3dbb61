"""Charts as SVG drawn on the node: no script, nothing from a CDN, readable by a screen reader (each bar
has a <title>, each chart a text table beside it in the page)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

PALETTE = ("#1f6fb2", "#c0392b", "#e67e22", "#27ae60", "#8e44ad", "#7f8c8d", "#16a085", "#d35400")


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    note: str = ""


def bar_chart(title: str, bars: Sequence[Bar], *, width: int = 560, unit: str = "") -> str:
    """Horizontal bars, longest = full width; labels left, values right."""
    row, label_w, value_w = 22, 200, 70
    height = max(1, len(bars)) * row + 30
    top = max((b.value for b in bars), default=0) or 1
    span = width - label_w - value_w
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" class="chart" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" aria-label="{escape(title)}"><title>{escape(title)}</title>']
    if not bars:
        parts.append('<text x="10" y="20" class="chart-empty">（无数据）</text>')
    for index, bar in enumerate(bars):
        y = 10 + index * row
        length = max(1.0, span * bar.value / top) if bar.value else 0
        label = bar.label if len(bar.label) <= 14 else bar.label[:13] + "…"
        parts.append(f'<text x="{label_w - 6}" y="{y + 14}" text-anchor="end" class="chart-label">'
                     f'{escape(label)}</text>')
        parts.append(f'<rect x="{label_w}" y="{y + 2}" width="{length:.1f}" height="{row - 6}" '
                     f'fill="{PALETTE[index % len(PALETTE)]}"><title>{escape(bar.label)}: {bar.value:g}{unit}'
                     f'{escape(" — " + bar.note) if bar.note else ""}</title></rect>')
        parts.append(f'<text x="{label_w + length + 4:.1f}" y="{y + 14}" class="chart-value">{bar.value:g}{unit}</text>')
    parts.append("</svg>")
    return "".join(parts)


def stacked_columns(title: str, columns: Sequence[tuple[str, dict[str, int]]], series: Sequence[str], *,
                    width: int = 640, height: int = 220) -> str:
    """Columns over time (one per period), stacked by series (e.g. denial reasons), with a legend."""
    legend_h, axis_h = 18 * ((len(series) + 2) // 3), 24
    chart_h = height - legend_h - axis_h
    top = max((sum(values.values()) for _, values in columns), default=0) or 1
    step = (width - 40) / max(1, len(columns))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" class="chart" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" aria-label="{escape(title)}"><title>{escape(title)}</title>']
    if not columns:
        parts.append('<text x="10" y="20" class="chart-empty">（无数据）</text>')
    for index, (label, values) in enumerate(columns):
        x, y = 30 + index * step, chart_h
        for s_index, name in enumerate(series):
            value = values.get(name, 0)
            if not value:
                continue
            h = chart_h * value / top
            y -= h
            parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(2.0, step * 0.7):.1f}" height="{h:.1f}" '
                         f'fill="{PALETTE[s_index % len(PALETTE)]}"><title>{escape(label)} {escape(name)}: '
                         f'{value}</title></rect>')
        if len(columns) <= 16 or index % max(1, len(columns) // 8) == 0:
            parts.append(f'<text x="{x:.1f}" y="{chart_h + 14}" class="chart-axis">{escape(label)}</text>')
    for s_index, name in enumerate(series):
        lx, ly = 10 + (s_index % 3) * (width // 3), chart_h + axis_h + 4 + (s_index // 3) * 18
        short = name if len(name) <= 28 else name[:27] + "…"
        parts.append(f'<rect x="{lx}" y="{ly}" width="10" height="10" fill="{PALETTE[s_index % len(PALETTE)]}"/>'
                     f'<text x="{lx + 14}" y="{ly + 9}" class="chart-legend">{escape(short)}</text>')
    parts.append("</svg>")
    return "".join(parts)
