"""The studies section of the page: each study's state, progress, running trial,
recommendation, links, stop and resume buttons, and its trials with the recommended one marked.
Also served alone (``/page/studies``) for the page's live refresh."""

from __future__ import annotations

import time
from html import escape
from typing import Any

from planner.render import fmt_bytes
from service.web.cells import density_cell


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
            f"<td>{density_cell(t.get('d_down'))}</td><td>{density_cell(t.get('d_up'))}</td>"
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
                f" rank {c['rank']}, d_down {density_cell(c['d_down'])}, d_up {density_cell(c['d_up'])}"
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
