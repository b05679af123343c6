"""Small server-made SVG charts for the chief's dashboard: no script, print- and screen-reader-friendly."""

from markupsafe import Markup, escape

WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 44, 12, 14, 34
PLOT_W, PLOT_H = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
COLOURS = [
    "#1f5f8b",
    "#a15c00",
    "#3d6b3d",
    "#b3261e",
]  # .swatch-N in broker.css, same order


def _top(series: dict[str, list], maximum: float | None) -> float:
    if maximum is not None:
        return maximum
    values = [v for values in series.values() for v in values if v is not None]
    return max(values, default=0) * 1.1 or 1.0


def _x(i: int, n: int) -> float:
    return LEFT + PLOT_W * (i + 0.5) / max(n, 1)


def _y(value: float, top: float) -> float:
    return TOP + PLOT_H - PLOT_H * value / top


def _chart(
    title: str, labels: list[str], series: dict, top: float, marks: list[str]
) -> Markup:
    """Caption, axes with five gridlines, the marks, and a legend."""
    parts = [
        f"<figcaption>{escape(title)}</figcaption>",
        f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}" class="chart">',
    ]
    for i in range(5):
        y = _y(top * i / 4, top)
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" class="axis" text-anchor="end">{top * i / 4:.0f}</text>'
        )
    step = max(1, len(labels) // 8)
    for i, label in enumerate(labels):
        if i % step == 0:
            parts.append(
                f'<text x="{_x(i, len(labels)):.1f}" y="{HEIGHT - 12}" class="axis" '
                f'text-anchor="middle">{escape(label)}</text>'
            )
    parts += marks
    parts.append("</svg>")
    items = "".join(
        f'<li><span class="swatch swatch-{i}"></span>{escape(name)}</li>'
        for i, name in enumerate(series)
    )
    parts.append(f'<ul class="legend">{items}</ul>')
    return Markup("".join(parts))


def line_chart(
    title: str, labels: list[str], series: dict[str, list], maximum: float | None = None
) -> Markup:
    """One line per series over the labels (None leaves a gap)."""
    top = _top(series, maximum)
    marks = []
    for colour, (name, values) in zip(COLOURS, series.items(), strict=False):
        points = [
            (_x(i, len(labels)), _y(v, top))
            for i, v in enumerate(values)
            if v is not None
        ]
        if points:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
            marks.append(
                f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2.5" '
                f'class="series" data-series="{escape(name)}"/>'
            )
            marks += [
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"/>'
                for x, y in points
            ]
    return _chart(title, labels, series, top, marks)


def bar_chart(
    title: str, labels: list[str], series: dict[str, list], maximum: float | None = None
) -> Markup:
    """Grouped bars, one group per label."""
    top = _top(series, maximum)
    group_w = PLOT_W / max(len(labels), 1)
    bar_w = group_w * 0.8 / max(len(series), 1)
    marks = []
    for s, (colour, (name, values)) in enumerate(
        zip(COLOURS, series.items(), strict=False)
    ):
        for i, v in enumerate(values):
            if not v:
                continue
            x = LEFT + group_w * i + group_w * 0.1 + bar_w * s
            marks.append(
                f'<rect x="{x:.1f}" y="{_y(v, top):.1f}" width="{bar_w:.1f}" '
                f'height="{PLOT_H * v / top:.1f}" fill="{colour}" class="series" '
                f'data-series="{escape(name)}"><title>{escape(name)} {escape(labels[i])}: '
                f"{v:g}</title></rect>"
            )
    return _chart(title, labels, series, top, marks)
