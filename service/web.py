"""The page at ``/``: server-rendered HTML, no JavaScript.

A plan form (GET, so a plan is a link you can share), the plan's header lines, the short list as
a table and every feasible configuration as an inline SVG scatter (bytes per round against
rounds affordable, log-log, the short list marked); then the studies with their progress and
recommendation, and links to their plots and exports.
"""

from __future__ import annotations

import math
from html import escape
from typing import Any

from planner.render import fmt_bytes, fmt_density, fmt_seconds
from planner.schedule import METHODS

FORM_FIELDS = (
    ("budget", "budget", "50-dense-rounds, 6h, 2GB"),
    ("profile", "network profile", ""),
    ("up_slowdown", "up slowdown S", "uplink = downlink / S"),
    ("down", "down Mbps", "overrides the profile"),
    ("up", "up Mbps", "overrides the profile"),
    ("rtt_ms", "RTT ms", ""),
    ("model", "model profile", ""),
    ("clients_per_round", "clients per round", ""),
    ("method", "method", ""),
)

STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#222;max-width:1200px}
h1{font-size:1.4rem}h2{font-size:1.15rem;margin-top:2rem}
form{display:grid;grid-template-columns:repeat(auto-fill,minmax(190px,1fr));gap:.6rem;
background:#f5f5f7;padding:1rem;border-radius:6px}
label{display:flex;flex-direction:column;font-size:.85rem}
input,select{font:inherit;padding:.25rem}
button{font:inherit;padding:.4rem 1rem;align-self:end}
table{border-collapse:collapse;font-size:.85rem;margin-top:.8rem}
th,td{border-bottom:1px solid #ddd;padding:.25rem .6rem;text-align:right}
th{background:#eee}td.l,th.l{text-align:left}
pre{background:#fafafa;padding:.6rem;font-size:.8rem;white-space:pre-wrap}
.err{color:#a00}.muted{color:#777;font-size:.85rem}
progress{width:140px}
"""


def _options(values: list[str], chosen: str) -> str:
    return "".join(
        f'<option value="{escape(v)}"{" selected" if v == chosen else ""}>{escape(v)}</option>'
        for v in values
    )


def plan_form(values: dict[str, Any], *, networks: list[str], models: list[str]) -> str:
    cells = []
    for name, label, hint in FORM_FIELDS:
        value = "" if values.get(name) is None else str(values[name])
        if name == "profile":
            control = f'<select name="profile" id="f-profile">{_options(networks, value)}</select>'
        elif name == "model":
            control = f'<select name="model" id="f-model">{_options(models, value)}</select>'
        elif name == "method":
            control = (
                f'<select name="method" id="f-method">'
                f"{_options([*METHODS, 'all'], value or 'floss')}</select>"
            )
        else:
            control = (
                f'<input name="{name}" id="f-{name}" value="{escape(value)}" '
                f'placeholder="{escape(hint)}">'
            )
        cells.append(f"<label>{escape(label)}{control}</label>")
    cells.append('<button type="submit" id="plan-submit">plan</button>')
    return f'<form method="get" action="/" id="plan-form">{"".join(cells)}</form>'


def plan_table(rows: list[dict[str, Any]]) -> str:
    head = (
        "<tr><th class=l>method</th><th>rank</th><th>d_down</th><th>d_up</th>"
        "<th>down/client</th><th>up/client</th><th>s/round</th><th>rounds</th><th>total</th>"
        "<th class=l>why</th></tr>"
    )
    body = []
    for r in rows:
        body.append(
            "<tr class=plan-row>"
            f"<td class=l>{escape(r['method'])}</td><td>{r['rank']}</td>"
            f"<td>{fmt_density(r['d_down'])}</td><td>{fmt_density(r['d_up'])}</td>"
            f"<td>{fmt_bytes(r['bytes_down'])} {escape(r['encoding_down'])}</td>"
            f"<td>{fmt_bytes(r['bytes_up'])} {escape(r['encoding_up'])}</td>"
            f"<td>{fmt_seconds(r['seconds_per_round'])}</td><td>{r['rounds']:,}</td>"
            f"<td>{fmt_bytes(r['total_bytes'])}</td><td class=l>{escape(r['why'])}</td></tr>"
        )
    return f'<table id="plan-table">{head}{"".join(body)}</table>'


def plan_svg(rows: list[dict[str, Any]], *, width: int = 720, height: int = 380) -> str:
    """Every feasible configuration: bytes per round (x) against rounds affordable (y), both
    log scale; the short list in orange, labelled."""
    pts = [r for r in rows if r["bytes_per_round"] > 0 and r["rounds"] > 0]
    if not pts:
        return ""
    left, right, top, bottom = 70, 45, 20, 50
    xs = [math.log10(r["bytes_per_round"]) for r in pts]
    ys = [math.log10(r["rounds"]) for r in pts]
    x0, x1 = math.floor(min(xs)), math.ceil(max(xs))
    y0, y1 = math.floor(min(ys)), math.ceil(max(ys))
    x1, y1 = max(x1, x0 + 1), max(y1, y0 + 1)

    def sx(v: float) -> float:
        return left + (v - x0) / (x1 - x0) * (width - left - right)

    def sy(v: float) -> float:
        return height - bottom - (v - y0) / (y1 - y0) * (height - top - bottom)

    parts = [
        f'<svg id="plan-plot" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" role="img" aria-label="rounds affordable against bytes per round">',
        f'<rect x="{left}" y="{top}" width="{width - left - right}" '
        f'height="{height - top - bottom}" fill="#fcfcfc" stroke="#ccc"/>',
    ]
    for e in range(x0, x1 + 1):
        x = sx(e)
        parts.append(
            f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{height - bottom}" stroke="#eee"/>'
            f'<text x="{x:.1f}" y="{height - bottom + 16}" font-size="11" '
            f'text-anchor="middle">{escape(fmt_bytes(10.0**e))}</text>'
        )
    for e in range(y0, y1 + 1):
        y = sy(e)
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#eee"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="11" '
            f'text-anchor="end">{10**e:,}</text>'
        )
    parts.append(
        f'<text x="{(left + width - right) / 2}" y="{height - 12}" font-size="12" '
        'text-anchor="middle">bytes per round, all sampled clients, both directions '
        "(MB = 10^6 B)</text>"
        f'<text x="14" y="{(top + height - bottom) / 2}" font-size="12" text-anchor="middle" '
        f'transform="rotate(-90 14 {(top + height - bottom) / 2})">rounds affordable</text>'
    )
    for r, x, y in zip(pts, xs, ys, strict=True):
        if not r["recommended"]:
            parts.append(
                f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.5" fill="#4a78b5" '
                'fill-opacity="0.45"/>'
            )
    for r, x, y in zip(pts, xs, ys, strict=True):
        if r["recommended"]:
            label = (
                f"{r['method']} r{r['rank']} {fmt_density(r['d_down'])}/{fmt_density(r['d_up'])}"
            )
            parts.append(
                f'<circle class="rec" cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="5" fill="#e07b00">'
                f"<title>{escape(label)}: {escape(r['why'])}</title></circle>"
                f'<text x="{sx(x) + 7:.1f}" y="{sy(y) - 5:.1f}" font-size="9">'
                f"{escape(label)}</text>"
            )
    parts.append("</svg>")
    return "".join(parts)


def errors_html(entries: list[dict[str, str]]) -> str:
    items = "".join(
        f"<li><b>{escape(e['field'])}</b>: {escape(e['message'])}"
        + (
            f" <span class=muted>(accepted: {escape(e['accepted'])})</span>"
            if e["accepted"]
            else ""
        )
        + "</li>"
        for e in entries
    )
    return f'<ul class="err" id="plan-errors">{items}</ul>'


def studies_html(studies: list[dict[str, Any]], *, error: str | None = None) -> str:
    if error:
        return f'<p class="err">studies unavailable: {escape(error)}</p>'
    if not studies:
        return (
            '<p class=muted id="studies-empty">no studies yet: POST /api/studies '
            "(see <a href=/docs>/docs</a>)</p>"
        )
    rows = []
    for s in studies:
        p = s["progress"]
        target = p["target"]
        bar = (
            f'<progress value="{p["finished"]}" max="{target}"></progress> {p["finished"]}/{target}'
            if target
            else f"{p['finished']} finished"
        )
        rec = s["recommendation"]["line"] if s["recommendation"] else "-"
        name = escape(s["name"])
        links = (
            f'<a href="/api/studies/{name}/plot.png">plot</a> '
            f'<a href="/api/studies/{name}/export.zip">export</a> '
            f'<a href="/api/studies/{name}">json</a>'
        )
        err = f'<br><span class="err">{escape(s["error"])}</span>' if s.get("error") else ""
        rows.append(
            f"<tr class=study-row><td class=l>{name}</td><td class=l>{escape(s['state'])}{err}</td>"
            f"<td class=l>{bar}</td><td class=l>{escape(rec)}</td><td class=l>{links}</td></tr>"
        )
    head = (
        "<tr><th class=l>study</th><th class=l>state</th><th class=l>progress</th>"
        "<th class=l>recommendation</th><th class=l></th></tr>"
    )
    return f'<table id="studies-table">{head}{"".join(rows)}</table>'


def page(
    *,
    form: str,
    plan_section: str,
    studies_section: str,
) -> str:
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width,initial-scale=1'>"
        f"<title>floss serve</title><style>{STYLE}</style></head><body>"
        "<h1>floss: communication-budget planner for federated LoRA with sparse communication</h1>"
        "<p class=muted>Mbps = 10^6 bit/s, MB = 10^6 bytes; bytes per client per round. "
        "The JSON API and its schema: <a href=/docs>/docs</a>, "
        "<a href=/openapi.json>/openapi.json</a>.</p>"
        f"<h2>Plan</h2>{form}{plan_section}"
        f'<h2>Studies</h2><p class=muted><a href="/">refresh</a></p>{studies_section}'
        "</body></html>"
    )


def plan_section(payload: dict[str, Any]) -> str:
    rec = [r for r in payload["rows"] if r["recommended"]]
    header = "\n".join(payload["header"])
    return (
        f'<pre id="plan-header">{escape(header)}</pre>'
        f"<p>the short list ({len(rec)} of {payload['feasible']} feasible configurations):</p>"
        f"{plan_table(rec)}"
        f"<p>every feasible configuration:</p>{plan_svg(payload['rows'])}"
    )
