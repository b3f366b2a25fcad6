"""The page at ``/``: server-rendered HTML; one small script only refreshes the studies.

A plan form (GET, so a plan is a link you can share), the plan's header lines, the short list
(or every feasible row, the short list marked) as a table whose rows are numbered like their
points in the plot, downloads of the plan (floss-plan's CSV and JSON), and every feasible
configuration as an inline SVG (bytes per round against rounds affordable, log-log, a legend,
the short list numbered with labels placed so they do not overlap). Then the studies: a form
to submit one (the API's checks), each study's state, progress, running trial, recommendation,
stop and resume buttons, and its trials with the recommended one marked. The studies section is
also served alone (``/page/studies``); the page's script fetches it every few seconds, so
progress refreshes itself; without the script the page works the same, refreshed by hand.
"""

from __future__ import annotations

import math
import time
from html import escape
from typing import Any

from planner.method_spec import METHODS
from planner.parse import fmt_density
from planner.render import fmt_bytes, fmt_seconds

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
    ("fleet", "fleet (optional)", ""),
    ("rows", "table rows", ""),
)

# the study form: (field, label, hint); base.* fields go into the base run config
STUDY_FIELDS = (
    ("name", "study name", "letters, digits, . _ -"),
    ("base.model", "model", "tiny-random-bert, a profile or a hub id"),
    ("base.data", "data", "synthetic, csv, debian-packages, ..."),
    ("base.data_path", "data path", "a file under --data-root"),
    ("base.fleet", "fleet (optional)", "mixed-mobile, or a file"),
    ("budget", "budget", "50-dense-rounds"),
    ("n_trials", "trials", "20"),
    ("budget_scale", "budget scale", "1 (a trial's share of the budget)"),
    ("methods", "methods", "floss, dense, ffa, ..."),
    ("ranks", "ranks", "1,2,4,8,16,32,64"),
    ("d_down", "d_down grid", "1,1/2,...,1/256"),
    ("d_up", "d_up grid", "1,1/2,...,1/256"),
    ("round_policies", "fleet round policies", "e.g. sync,deadline"),
    ("density_policies", "fleet density policies", "e.g. uniform,tiered,bandwidth"),
    ("deadlines", "fleet deadlines, s", "e.g. 0.5,1,2"),
    ("metric", "metric", "val_accuracy (val_loss for lm)"),
    ("search", "search", "halving (default) or optuna"),
    ("pruner", "pruner (optuna search)", "sha, none, ..."),
    ("levels", "fidelity levels", "4"),
    ("seed", "seed", ""),
    ("base_extra", "more of the base run config (JSON object)", 'e.g. {"num_clients": 20}'),
)

STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#222;max-width:1200px}
h1{font-size:1.4rem}h2{font-size:1.15rem;margin-top:2rem}
form.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(190px,1fr));gap:.6rem;
background:#f5f5f7;padding:1rem;border-radius:6px}
form.inline{display:inline;margin:0}
label{display:flex;flex-direction:column;font-size:.85rem}
label.wide{grid-column:1/-1}
input,select,textarea{font:inherit;padding:.25rem}
button{font:inherit;padding:.4rem 1rem;align-self:end}
form.inline button{padding:.1rem .5rem;font-size:.8rem}
table{border-collapse:collapse;font-size:.85rem;margin-top:.8rem}
th,td{border-bottom:1px solid #ddd;padding:.25rem .6rem;text-align:right;white-space:nowrap}
td.why,td.wrap{white-space:normal}td.wrap{min-width:16em;max-width:34em}
th{background:#eee}td.l,th.l{text-align:left}
tr.rec td{background:#fff4e5}tr.rec td.mark{color:#e07b00;font-weight:bold}
tr.best td{background:#fff4e5;font-weight:bold}
pre{background:#fafafa;padding:.6rem;font-size:.8rem;white-space:pre-wrap}
.err{color:#a00}.muted{color:#777;font-size:.85rem}.ok{color:#070}
progress{width:140px}
"""

SCRIPT = """
(function () {
  var box = document.getElementById('studies');
  if (!box || !window.fetch) return;
  function tick() {
    var open = [].map.call(box.querySelectorAll('details[open]'), function (d) { return d.id; });
    fetch('/page/studies', {cache: 'no-store', credentials: 'same-origin'})
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (html !== null) {
          box.innerHTML = html;
          open.forEach(function (id) { var d = document.getElementById(id); if (d) d.open = true; });
        }
      })
      .catch(function () {})
      .then(function () { setTimeout(tick, REFRESH_MS); });
  }
  setTimeout(tick, REFRESH_MS);
})();
"""
REFRESH_SECONDS = 2.0


def _options(values: list[str], chosen: str) -> str:
    return "".join(
        f'<option value="{escape(v)}"{" selected" if v == chosen else ""}>{escape(v)}</option>'
        for v in values
    )


def plan_form(
    values: dict[str, Any], *, networks: list[str], models: list[str], fleets: list[str]
) -> str:
    cells = []
    for name, label, hint in FORM_FIELDS:
        value = "" if values.get(name) is None else str(values[name])
        if name == "profile":
            control = f'<select name="profile" id="f-profile">{_options(networks, value)}</select>'
        elif name == "model":
            control = f'<select name="model" id="f-model">{_options(models, value)}</select>'
        elif name == "fleet":
            control = f'<select name="fleet" id="f-fleet">{_options(["", *fleets], value)}</select>'
        elif name == "rows":
            choice = "every feasible row, short list marked" if value == "all" else ""
            control = (
                '<select name="rows" id="f-rows">'
                f'<option value="recommended"{"" if choice else " selected"}>the short list'
                f'</option><option value="all"{" selected" if choice else ""}>every feasible '
                "row, the short list marked</option></select>"
            )
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
    return f'<form class="grid" method="get" action="/" id="plan-form">{"".join(cells)}</form>'


def _density(value: Any) -> str:
    return "-" if value is None else fmt_density(float(value))


def plan_table(rows: list[tuple[int, dict[str, Any]]], *, numbers: dict[int, int]) -> str:
    """(index, row) pairs; short-list rows marked (a star, a shade) and numbered as their plot
    points (``numbers``: index -> number)."""
    fleet = bool(rows) and "round_policy" in rows[0][1]
    head = (
        "<tr><th class=l>#</th><th class=l>method</th><th>rank</th><th>d_down</th><th>d_up</th>"
        + ("<th class=l>round/density policy</th>" if fleet else "")
        + "<th>bytes/round</th><th>s/round</th><th>rounds</th><th>total</th>"
        "<th class=l>why</th></tr>"
    )
    body = []
    for i, r in rows:
        rec = bool(r["recommended"])
        mark = f"&#9733; {numbers[i]}" if i in numbers else ""
        policy = ""
        if fleet:
            deadline = r.get("deadline_seconds")
            at = "" if deadline is None else f" {fmt_seconds(float(deadline))}"
            policy = (
                f"<td class=l>{escape(str(r['round_policy']))}{escape(at)}/"
                f"{escape(str(r['density_policy']))}</td>"
            )
        body.append(
            f'<tr class="plan-row{" rec" if rec else ""}">'
            f"<td class='l mark'>{mark}</td>"
            f"<td class=l>{escape(str(r['method']))}</td><td>{r['rank']}</td>"
            f"<td>{_density(r['d_down'])}</td><td>{_density(r['d_up'])}</td>{policy}"
            f"<td>{fmt_bytes(r['bytes_per_round'])}</td>"
            f"<td>{fmt_seconds(r['seconds_per_round'])}</td><td>{r['rounds']:,}</td>"
            f"<td>{fmt_bytes(r['total_bytes'])}</td><td class='l why'>{escape(str(r['why']))}</td>"
            "</tr>"
        )
    return f'<table id="plan-table">{head}{"".join(body)}</table>'


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
            f"{no}: {r['method']} rank {r['rank']}, d_down {_density(r['d_down'])}, "
            f"d_up {_density(r['d_up'])}, {r['rounds']:,} rounds: {r['why']}"
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


def errors_html(entries: list[dict[str, str]], *, box_id: str = "plan-errors") -> str:
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
    return f'<ul class="err" id="{box_id}">{items}</ul>'


def study_form(values: dict[str, str], *, message: str = "") -> str:
    cells = []
    for name, label, hint in STUDY_FIELDS:
        value = values.get(name, "")
        fid = "s-" + name.replace(".", "-")
        if name == "base_extra":
            cells.append(
                f'<label class="wide">{escape(label)}<textarea name="{name}" id="{fid}" rows="2" '
                f'placeholder="{escape(hint)}">{escape(value)}</textarea></label>'
            )
            continue
        cells.append(
            f'<label>{escape(label)}<input name="{name}" id="{fid}" value="{escape(value)}" '
            f'placeholder="{escape(hint)}"></label>'
        )
    cells.append('<button type="submit" id="study-submit">submit study</button>')
    return (
        f"{message}<details id=study-form-box{' open' if message else ''}><summary>submit a "
        "study (floss-tune run; empty fields take floss-tune's defaults)</summary>"
        f'<form class="grid" method="post" action="/page/studies" id="study-form">'
        f"{''.join(cells)}</form></details>"
    )


def _action(name: str, action: str, label: str) -> str:
    return (
        f'<form class="inline" method="post" action="/page/studies/{escape(name)}/{action}">'
        f'<button type="submit" class="{action}" data-study="{escape(name)}">{label}</button>'
        "</form>"
    )


def _trial_state(t: dict[str, Any]) -> str:
    """'complete', 'fail: interrupted', 'complete: duplicate': the state, and how it ended
    when that says more."""
    state, end = str(t["state"]).lower(), str(t.get("end") or "")
    return state if end in ("", state) else f"{state}: {end}"


def _trials_table(study: dict[str, Any]) -> str:
    rows = study.get("trials") or []
    if not rows:
        return ""
    head = (
        "<tr><th class=l></th><th>trial</th><th class=l>state</th><th class=l>method</th>"
        "<th>rank</th><th>d_down</th><th>d_up</th><th>value</th><th>bytes</th></tr>"
    )
    body = []
    for t in rows:
        best = bool(t.get("recommended"))
        value = "-" if t.get("value") is None else f"{t['value']:.4g}"
        sent = "-" if t.get("bytes") is None else fmt_bytes(t["bytes"])
        body.append(
            f'<tr class="trial-row{" best" if best else ""}">'
            f"<td class=l>{'&#9733; recommended' if best else ''}</td><td>{t['trial']}</td>"
            f"<td class=l>{escape(_trial_state(t))}</td><td class=l>{escape(str(t.get('method') or '-'))}</td>"
            f"<td>{t.get('rank') if t.get('rank') is not None else '-'}</td>"
            f"<td>{_density(t.get('d_down'))}</td><td>{_density(t.get('d_up'))}</td>"
            f"<td>{value}</td><td>{sent}</td></tr>"
        )
    return f'<table class="trials">{head}{"".join(body)}</table>'


def studies_html(studies: list[dict[str, Any]], *, error: str | None = None) -> str:
    """The studies section (also served alone at /page/studies for the live refresh)."""
    stamp = time.strftime("%H:%M:%S")
    live = any(s["state"] in ("running", "stopping") for s in studies)
    note = (
        f'<p class=muted id="studies-updated">updated {stamp}'
        f"{' (refreshes itself while a study runs)' if live else ''}</p>"
    )
    if error:
        return f'{note}<p class="err">studies unavailable: {escape(error)}</p>'
    if not studies:
        return f'{note}<p class=muted id="studies-empty">no studies yet: submit one above</p>'
    rows = []
    for s in studies:
        p = s["progress"]
        target = p["target"]
        bar = (
            f'<progress value="{p["finished"]}" max="{target}"></progress> {p["finished"]}/{target}'
            if target
            else f"{p['finished']} finished"
        )
        other_failed = (p.get("failed") or 0) - (p.get("interrupted") or 0)  # apart from those
        extra = [f"{p[k]} {k}" for k in ("interrupted", "duplicates") if p.get(k)]
        extra += [f"{other_failed} failed"] if other_failed > 0 else []
        if extra:
            bar += f"<br><span class=muted>{escape(', '.join(extra))}</span>"
        for c in s.get("current") or []:
            step = "no checkpoint yet" if c["last_step"] is None else f"checkpoint {c['last_step']}"
            bar += (
                f'<br><span class="current">trial {c["trial"]} running: {escape(str(c["method"]))}'
                f" rank {c['rank']}, d_down {_density(c['d_down'])}, d_up {_density(c['d_up'])}"
                f" ({escape(step)})</span>"
            )
        if s.get("log_last"):
            bar += f'<br><span class="muted log">{escape(s["log_last"])}</span>'
        rec = s["recommendation"]["line"] if s["recommendation"] else "-"
        name = escape(s["name"])
        links = [f'<a href="/api/studies/{name}">json</a>']
        if s.get("plottable"):
            links.insert(0, f'<a href="/api/studies/{name}/plot.png">plot</a>')
        if s["recommendation"]:
            links.insert(1, f'<a href="/api/studies/{name}/export.zip">export</a>')
        actions = ""
        if s["state"] == "running":
            actions = _action(s["name"], "stop", "stop")
        elif s["resumable"]:
            actions = _action(s["name"], "resume", "resume")
        err = f'<br><span class="err">{escape(s["error"])}</span>' if s.get("error") else ""
        trials = _trials_table(s)
        details = (
            f'<tr class="trials-of"><td class=l colspan=6><details id="trials-{name}"><summary>trials '
            f"of {name}</summary>{trials}</details></td></tr>"
            if trials
            else ""
        )
        rows.append(
            f'<tr class=study-row data-study="{name}"><td class=l>{name}</td>'
            f"<td class='l state'>{escape(s['state'])}{err}</td>"
            f"<td class='l wrap'>{bar}</td><td class='l wrap'>{escape(rec)}</td>"
            f"<td class=l>{' '.join(links)}</td><td class=l>{actions}</td></tr>{details}"
        )
    head = (
        "<tr><th class=l>study</th><th class=l>state</th><th class=l>progress</th>"
        "<th class=l>recommendation</th><th class=l></th><th class=l></th></tr>"
    )
    return f'{note}<table id="studies-table">{head}{"".join(rows)}</table>'


def page(*, form: str, plan_section: str, study_form: str, studies_section: str) -> str:
    script = SCRIPT.replace("REFRESH_MS", str(int(REFRESH_SECONDS * 1000)))
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width,initial-scale=1'>"
        f"<title>floss serve</title><style>{STYLE}</style></head><body>"
        "<h1>floss: communication-budget planner for federated LoRA with sparse communication</h1>"
        "<p class=muted>Mbps = 10^6 bit/s, MB = 10^6 bytes; d_down / d_up: the share of the "
        "adapter's entries sent down / up each round. The JSON API and its schema: "
        "<a href=/docs>/docs</a>, <a href=/openapi.json>/openapi.json</a>.</p>"
        f'<h2>Plan</h2>{form}{plan_section}<h2 id="studies-title">Studies</h2>{study_form}'
        f'<p class=muted><a href="/">refresh</a></p><div id="studies">{studies_section}</div>'
        f"<script>{script}</script></body></html>"
    )


def plan_section(payload: dict[str, Any], *, query: str, show_all: bool) -> str:
    """The plan's header, its table (the short list, or every row with ``show_all``), the
    downloads and the plot of every feasible row (``payload``: every row)."""
    rows = payload["rows"]
    short = [i for i, r in enumerate(rows) if r["recommended"]]
    numbers = {i: n + 1 for n, i in enumerate(short)}
    header = "\n".join(payload["header"])
    if show_all:
        shown = "every feasible configuration, the short list marked &#9733;"
        table_rows = list(enumerate(rows))
    else:
        shown = "the short list (table rows: 'every feasible row' for the rest)"
        table_rows = [(i, rows[i]) for i in short]
    downloads = (
        f'<p id="plan-downloads">download this plan: <a id="plan-csv" '
        f'href="/plan.csv?{escape(query)}" download>CSV</a> <a id="plan-json" '
        f'href="/plan.json?{escape(query)}" download>JSON</a> (every feasible row, as '
        "floss-plan --format csv / json writes them)</p>"
    )
    return (
        f'<pre id="plan-header">{escape(header)}</pre>'
        f"<p>{shown}: {len(short)} on the short list of {payload['feasible']} feasible "
        f"configurations</p>{downloads}{plan_table(table_rows, numbers=numbers)}"
        f"<p>every feasible configuration:</p>{plan_svg(rows, numbers=numbers)}"
    )
