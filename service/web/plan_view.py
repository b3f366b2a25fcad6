"""The plan section of the page: the plan's header lines, the short list (or every feasible row,
the short list marked) as a table whose rows are numbered like their points in the plot, the
downloads (floss-plan's CSV and JSON) and the plot of every feasible configuration."""

from __future__ import annotations

from html import escape
from typing import Any

from planner.render import fmt_bytes, fmt_seconds
from service.web.cells import density_cell
from service.web.plot import plan_svg


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
            f"<td>{density_cell(r['d_down'])}</td><td>{density_cell(r['d_up'])}</td>{policy}"
            f"<td>{fmt_bytes(r['bytes_per_round'])}</td>"
            f"<td>{fmt_seconds(r['seconds_per_round'])}</td><td>{r['rounds']:,}</td>"
            f"<td>{fmt_bytes(r['total_bytes'])}</td><td class='l why'>{escape(str(r['why']))}</td>"
            "</tr>"
        )
    return f'<table id="plan-table">{head}{"".join(body)}</table>'


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
