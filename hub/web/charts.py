"""Small server-rendered SVG charts for the family portal (no JavaScript).

Each chart is an ``<svg role="img">`` with a ``<title>`` and ``<desc>`` that state the data in
words; the pages also show the same numbers as text, so nothing depends on seeing the chart.
Colours meet WCAG non-text contrast (3:1) against white.
"""

from __future__ import annotations

from datetime import date, datetime

from markupsafe import Markup, escape

BAR = "#1f5fa8"
LINE = "#1f5fa8"
AXIS = "#595959"


def weekly_bars(weeks: list[tuple[date, int]], *, label: str, width: int = 600, height: int = 160) -> Markup:
    if not weeks:
        return Markup("")
    top = max(count for _, count in weeks) or 1
    pad_left, pad_bottom, pad_top = 32, 28, 12
    plot_w, plot_h = width - pad_left - 8, height - pad_bottom - pad_top
    step = plot_w / len(weeks)
    desc = "; ".join(f"week of {day.isoformat()}: {count}" for day, count in weeks)
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-labelledby="c-title c-desc" '
        f'preserveAspectRatio="xMinYMin meet">',
        f'<title id="c-title">{escape(label)}</title><desc id="c-desc">{escape(desc)}</desc>',
        f'<line x1="{pad_left}" y1="{pad_top + plot_h}" x2="{width - 8}" y2="{pad_top + plot_h}" stroke="{AXIS}"/>',
        f'<text x="{pad_left - 4}" y="{pad_top + 10}" text-anchor="end" font-size="11" fill="{AXIS}">{top}</text>',
        f'<text x="{pad_left - 4}" y="{pad_top + plot_h}" text-anchor="end" font-size="11" fill="{AXIS}">0</text>',
    ]
    for n, (day, count) in enumerate(weeks):
        h = plot_h * count / top
        x = pad_left + n * step + step * 0.15
        parts.append(f'<rect x="{x:.1f}" y="{pad_top + plot_h - h:.1f}" width="{step * 0.7:.1f}" height="{h:.1f}" '
                     f'fill="{BAR}"><title>week of {day.isoformat()}: {count}</title></rect>')
        if n % max(1, len(weeks) // 6) == 0:
            parts.append(f'<text x="{x:.1f}" y="{height - 8}" font-size="11" fill="{AXIS}">{day.strftime("%d %b")}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def sparkline(points: list[tuple[datetime, float]], *, low: float, high: float, label: str, uid: str,
              width: int = 220, height: int = 60) -> Markup:
    if not points:
        return Markup("")
    span = (high - low) or 1
    pad = 6
    n = len(points)
    coords = []
    for i, (_, value) in enumerate(points):
        x = pad + (width - 2 * pad) * (i / (n - 1) if n > 1 else 0.5)
        y = pad + (height - 2 * pad) * (1 - (min(max(value, low), high) - low) / span)
        coords.append((x, y))
    desc = ", ".join(f"{at.date().isoformat()}: {value:g}" for at, value in points)
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
    dots = "".join(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{LINE}"/>' for x, y in coords)
    return Markup(
        f'<svg class="spark" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-labelledby="{uid}-t {uid}-d"><title id="{uid}-t">{escape(label)}</title>'
        f'<desc id="{uid}-d">{escape(desc)}</desc>'
        f'<rect x="0.5" y="0.5" width="{width - 1}" height="{height - 1}" fill="none" stroke="{AXIS}"/>'
        f'<polyline points="{path}" fill="none" stroke="{LINE}" stroke-width="2"/>{dots}</svg>'
    )
