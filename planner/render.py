"""Render a plan as a rich table, JSON, CSV or YAML. Units: Mbps = 10^6 bit/s, MB = 10^6 bytes."""

from __future__ import annotations

import csv
import io
import json
from fractions import Fraction
from pathlib import Path

from planner.plan import Plan, PlanRow

FORMATS = ("table", "json", "csv", "yaml")


def fmt_density(d: float) -> str:
    """1/16 for simple fractions, else a short decimal."""
    f = Fraction(d).limit_denominator(1 << 20)
    if float(f) == d and f.numerator == 1:
        return "1" if f.denominator == 1 else f"1/{f.denominator}"
    return f"{d:.4g}"


def fmt_bytes(n: float) -> str:
    """Decimal units, said explicitly (MB = 10^6 bytes)."""
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:,.2f} {unit}"
    return f"{n:,.0f} B"


def fmt_seconds(s: float) -> str:
    if s >= 3600:
        return f"{s / 3600:,.2f} h"
    if s >= 60:
        return f"{s / 60:,.2f} min"
    if s >= 1:
        return f"{s:,.2f} s"
    return f"{s * 1000:,.1f} ms"


def header_lines(p: Plan) -> list[str]:
    s = p.settings
    net = s.network
    ref_n = p.dense_round.n if p.dense_round else 0
    spread = (
        f"lognormal spread sigma={net.spread_sigma:g}, slowest of {s.clients_per_round} sets the pace"
        if net.spread_sigma
        else "identical clients"
    )
    lines = [
        f"model    {s.model.name}: n(r={s.ref_rank}) = {ref_n:,} adapter entries"
        + (
            f" (incl. head of {ref_n - s.model.adapter_params(s.ref_rank):,})"
            if s.num_labels or s.head_params
            else ""
        ),
        f"network  {net.name}: down {net.down_mbps:g} Mbps, up {net.up_mbps:g} Mbps (S = {net.up_slowdown:g}), "
        f"RTT {net.rtt_ms:g} ms, {spread}; {s.clients_per_round} clients per round",
    ]
    if p.dense_round is not None:
        d = p.dense_round
        budget = s.budget.describe()
        if p.budget_seconds is not None and s.budget.kind == "dense-rounds":
            budget += f" = {p.budget_seconds:,.3f} s"
        lines.append(
            f"budget   {budget}; a dense round at rank {s.ref_rank} takes {d.seconds_per_round:.4g} s "
            f"and moves {fmt_bytes(d.bytes_per_round)}"
        )
    compute = (
        f"compute  {s.compute_seconds:g} s per round included (given)"
        if s.compute_seconds
        else "compute  0 s: round time counts communication only, as the thesis does (--compute-seconds adds it)"
    )
    lines.append(compute)
    lines.append(
        f"units    Mbps = 10^6 bit/s, MB = 10^6 bytes; down/up bytes are per client per round, "
        f"{s.precision} values, encoding {s.encoding}; total = all clients, both directions"
    )
    lines.append(
        f"feasible {len(p.rows)} configs ({sum(r.pareto for r in p.rows)} on the Pareto frontier, "
        f"{sum(r.recommended for r in p.rows)} recommended), {p.infeasible} infeasible"
    )
    return lines


def render_table(p: Plan, *, limit: int | None) -> str:
    from rich.console import Console
    from rich.table import Table

    rows = p.rows if limit is None else p.rows[: max(limit, sum(r.recommended for r in p.rows))]
    table = Table(title="floss plan: recommended first (★), then the Pareto frontier (P)")
    for col, justify in (
        ("", "left"),
        ("rank", "right"),
        ("d_down", "right"),
        ("d_up", "right"),
        ("down/client", "right"),
        ("up/client", "right"),
        ("s/round", "right"),
        ("rounds", "right"),
        ("total", "right"),
        ("why", "left"),
    ):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for r in rows:
        mark = "★" if r.recommended else ("P" if r.pareto else "")
        table.add_row(
            mark,
            str(r.rank),
            fmt_density(r.d_down),
            fmt_density(r.d_up),
            f"{fmt_bytes(r.bytes_down)} {r.encoding_down}",
            f"{fmt_bytes(r.bytes_up)} {r.encoding_up}",
            fmt_seconds(r.seconds_per_round),
            f"{r.rounds:,}",
            fmt_bytes(r.total_bytes),
            r.why,
        )
    buf = io.StringIO()
    console = Console(file=buf, width=140, force_terminal=False, color_system=None)
    for line in header_lines(p):
        console.print(line, highlight=False, markup=False, soft_wrap=True)
    console.print(table)
    if limit is not None and len(p.rows) > len(rows):
        console.print(
            f"... {len(p.rows) - len(rows)} more feasible configs: --all, or --format json|csv|yaml",
            highlight=False,
            markup=False,
        )
    return buf.getvalue()


def row_dicts(p: Plan) -> list[dict[str, object]]:
    return [r.to_dict() for r in p.rows]


def render_plan(p: Plan, *, fmt: str, limit: int | None = 20) -> str:
    if fmt == "table":
        return render_table(p, limit=limit)
    rows = row_dicts(p)
    if fmt == "json":
        return json.dumps(rows, indent=2) + "\n"
    if fmt == "yaml":
        import yaml

        return str(yaml.safe_dump(rows, sort_keys=False))
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(
            buf, fieldnames=list(PlanRow.__dataclass_fields__), lineterminator="\n"
        )
        writer.writeheader()
        writer.writerows(rows)
        return buf.getvalue()
    raise ValueError(f"--format must be one of {', '.join(FORMATS)}, but got {fmt!r}.")


def write_output(text: str, output: Path | None) -> None:
    if output is None:
        import sys

        sys.stdout.write(text)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot write --output {str(output)!r}: {exc.strerror or exc}.") from None
