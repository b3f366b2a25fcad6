"""The plan's plot as inline SVG: bytes per round against rounds affordable, log-log, with a
legend and the short list numbered, its labels placed so they do not overlap."""

from __future__ import annotations

import math
from html import escape
from typing import Any

from planner.render import fmt_bytes
from service.web.cells import density_cell

Box = tuple[float, float, float, float]  # x0, y0, x1, y1


def _overlaps(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def place_labels(
    points: list[tuple[float, float]],
    *,
    size: tuple[float, float],
    bounds: Box,
    others: list[tuple[float, float]] | None = None,
) -> list[tuple[float, float]]:
    """A top-left corner for each point's label (``size`` = width, height) such that no two
    labels overlap, no label covers a point (``points`` or ``others``), and each stays inside
    ``bounds``: the first free spot on rings of growing radius around its point (a leader line
    joins it). Deterministic: points are placed in the order given."""
    w, h = size
    placed: list[Box] = []
    dots = [(x - 4, y - 4, x + 4, y + 4) for x, y in [*points, *(others or [])]]
    out: list[tuple[float, float]] = []
    for x, y in points:
        choice: tuple[float, float] | None = None
        for radius in range(14, 400, 6):
            for k in range(16):
                angle = math.pi / 4 + k * math.pi / 8
                cx, cy = x + radius * math.cos(angle), y - radius * math.sin(angle)
                box = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
                if (
                    box[0] < bounds[0]
                    or box[1] < bounds[1]
                    or box[2] > bounds[2]
                    or box[3] > bounds[3]
                    or any(_overlaps(box, b) for b in placed)
                    or any(_overlaps(box, d) for d in dots)
                ):
                    continue
                choice = (box[0], box[1])
                break
            if choice is not None:
                break
        if choice is None:  # a crowd no ring clears: beside its point (the table has it too)
            choice = (x + 4, y - h)
        placed.append((choice[0], choice[1], choice[0] + w, choice[1] + h))
        out.append(choice)
    return out


def plan_svg(
    rows: list[dict[str, Any]], *, numbers: dict[int, int], width: int = 900, height: int = 440
) -> str:
    """Every feasible configuration: bytes per round (x) against rounds affordable (y), both
    log scale; the short list in orange, numbered as in the table; a legend."""
    pts = [(i, r) for i, r in enumerate(rows) if r["bytes_per_round"] > 0 and r["rounds"] > 0]
    if not pts:
        return ""
    left, right, top, bottom = 80, 240, 20, 56
    xs = [math.log10(r["bytes_per_round"]) for _, r in pts]
    ys = [math.log10(r["rounds"]) for _, r in pts]
    x0, x1 = math.floor(min(xs)), math.ceil(max(xs))
    y0, y1 = math.floor(min(ys)), math.ceil(max(ys))
    x1, y1 = max(x1, x0 + 1), max(y1, y0 + 1)
    plot_right = width - right

    def sx(v: float) -> float:
        return left + (v - x0) / (x1 - x0) * (plot_right - left)

    def sy(v: float) -> float:
        return height - bottom - (v - y0) / (y1 - y0) * (height - top - bottom)

    parts = [
        f'<svg id="plan-plot" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" role="img" aria-label="rounds affordable against bytes per round" '
        'font-family="system-ui,sans-serif">',
        f'<rect x="{left}" y="{top}" width="{plot_right - left}" '
        f'height="{height - top - bottom}" fill="#fcfcfc" stroke="#ccc"/>',
    ]
    for e in range(x0, x1 + 1):
        x = sx(e)
        parts.append(
            f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{height - bottom}" stroke="#eee"/>'
            f'<text x="{x:.1f}" y="{height - bottom + 16}" font-size="12" '
            f'text-anchor="middle">{escape(fmt_bytes(10.0**e))}</text>'
        )
    for e in range(y0, y1 + 1):
        y = sy(e)
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{plot_right}" y2="{y:.1f}" stroke="#eee"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="12" '
            f'text-anchor="end">{10**e:,}</text>'
        )
    mid_y = (top + height - bottom) / 2
    parts.append(
        f'<text x="{(left + plot_right) / 2}" y="{height - 14}" font-size="13" '
        'text-anchor="middle">bytes per round: all sampled clients, both directions '
        "(log; MB = 10^6 B)</text>"
        f'<text x="18" y="{mid_y}" font-size="13" text-anchor="middle" '
        f'transform="rotate(-90 18 {mid_y})">rounds affordable under the budget (log)</text>'
    )
    for (i, _r), x, y in zip(pts, xs, ys, strict=True):
        if i not in numbers:
            parts.append(
                f'<circle class="pt" cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.5" fill="#4a78b5" '
                'fill-opacity="0.45"/>'
            )
    marked = [(i, r, sx(x), sy(y)) for (i, r), x, y in zip(pts, xs, ys, strict=True)
              if i in numbers]  # fmt: skip
    label_w, label_h = 22.0, 15.0
    spots = place_labels(
        [(px, py) for _, _, px, py in marked],
        size=(label_w, label_h),
        bounds=(left + 2, top + 2, plot_right - 2, height - bottom - 2),
        others=[
            (sx(x), sy(y)) for (i, _r), x, y in zip(pts, xs, ys, strict=True) if i not in numbers
        ],
    )
    for (i, r, px, py), (lx, ly) in zip(marked, spots, strict=True):
        no = numbers[i]
        title = (
            f"{no}: {r['method']} rank {r['rank']}, d_down {density_cell(r['d_down'])}, "
            f"d_up {density_cell(r['d_up'])}, {r['rounds']:,} rounds: {r['why']}"
        )
        cx, cy = lx + label_w / 2, ly + label_h / 2
        parts.append(
            f'<line x1="{px:.1f}" y1="{py:.1f}" x2="{cx:.1f}" y2="{cy:.1f}" stroke="#e07b00" '
            'stroke-width="0.8"/>'
            f'<circle class="rec" cx="{px:.1f}" cy="{py:.1f}" r="5" fill="#e07b00">'
            f"<title>{escape(title)}</title></circle>"
            f'<rect class="label" x="{lx:.1f}" y="{ly:.1f}" width="{label_w}" height="{label_h}" '
            'rx="3" fill="#fff" stroke="#e07b00"/>'
            f'<text x="{cx:.1f}" y="{ly + 11.5:.1f}" font-size="11" text-anchor="middle">'
            f"{no}</text>"
        )
    lx = plot_right + 16
    parts.append(
        f'<g id="plan-legend"><text x="{lx}" y="{top + 12}" font-size="13" '
        'font-weight="bold">legend</text>'
        f'<circle cx="{lx + 6}" cy="{top + 32}" r="5" fill="#e07b00"/>'
        f'<text x="{lx + 18}" y="{top + 36}" font-size="12">short list, # as in the '
        "table</text>"
        f'<circle cx="{lx + 6}" cy="{top + 54}" r="2.5" fill="#4a78b5" fill-opacity="0.45"/>'
        f'<text x="{lx + 18}" y="{top + 58}" font-size="12">another feasible '
        "configuration</text>"
        f'<text x="{lx}" y="{top + 86}" font-size="12">up and to the left: more rounds</text>'
        f'<text x="{lx}" y="{top + 102}" font-size="12">for fewer bytes.</text>'
        f'<text x="{lx}" y="{top + 126}" font-size="12">d_down: download density,</text>'
        f'<text x="{lx}" y="{top + 142}" font-size="12">d_up: upload density</text>'
        f'<text x="{lx}" y="{top + 158}" font-size="12">(share of entries sent).</text></g>'
    )
    parts.append("</svg>")
    return "".join(parts)
