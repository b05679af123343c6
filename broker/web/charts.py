"""The chief's dashboard charts, drawn by pygal (a maintained SVG charting library).

Each chart is an SVG image in a `data:` URI: no script, and the CSP (`img-src
'self' data:`) allows it while it forbids the inline styles an inline SVG of
pygal's would need. Counts get whole-number ticks; with a single week of data the
lines become bars with their values printed, as one dot on a line says nothing.
"""

import math
from collections.abc import Sequence

import pygal
from markupsafe import Markup, escape
from pygal.style import Style

# The stylesheet's accent, urgent, routine and stat colours.
COLOURS = ("#1f5f8b", "#a15c00", "#3d6b3d", "#b3261e")
STYLE = Style(
    background="#ffffff",
    plot_background="#ffffff",
    foreground="#1d2733",
    foreground_strong="#1d2733",
    foreground_subtle="#d8dee6",
    colors=COLOURS,
    font_family="system-ui, -apple-system, 'Segoe UI', Roboto, Arial, sans-serif",
    label_font_size=13,
    major_label_font_size=13,
    legend_font_size=14,
    value_font_size=13,
    tooltip_font_size=13,
)


def whole_ticks(largest: float) -> list[int]:
    """Whole-number ticks from 0 that cover `largest`: at most about six, evenly spaced."""
    top = max(1, math.ceil(largest))
    magnitude = 1
    while True:
        step = next(
            (m * magnitude for m in (1, 2, 5) if top / (m * magnitude) <= 5), None
        )
        if step:
            break
        magnitude *= 10
    return list(range(0, math.ceil(top / step) * step + 1, step))


def chart(
    kind: str,
    title: str,
    labels: Sequence[str],
    series: dict[str, list],
    ticks: list[float] | None = None,
) -> Markup:
    """A captioned line ("line") or grouped-bar ("bar") chart over `labels`.

    `ticks`: the y axis's labels (its range is their first to last); pygal's own
    when None. A value of None leaves a gap.
    """
    one_week = len(labels) <= 1
    made = (pygal.Bar if kind == "bar" or one_week else pygal.Line)(
        style=STYLE,
        width=640,
        height=300,
        js=(),
        legend_at_bottom=True,
        legend_at_bottom_columns=len(series),
        print_values=one_week,
        show_minor_x_labels=False,
        x_labels_major_every=max(1, math.ceil(len(labels) / 8)),
        x_labels_major_count=None,
        truncate_label=-1,
        allow_interruptions=True,
        margin=12,
        dots_size=3,
        stroke_style={"width": 2.5},
    )
    made.x_labels = list(labels)
    if ticks is not None:
        made.y_labels = list(ticks)
        made.range = (ticks[0], ticks[-1])
    for name, values in series.items():
        made.add(name, list(values))
    alt = f"{title}. The numbers are in the By week table below."
    return Markup(
        f"<figcaption>{escape(title)}</figcaption>"
        f'<img class="chart" src="{made.render_data_uri()}" alt="{escape(alt)}" '
        'width="640" height="300">'
    )
