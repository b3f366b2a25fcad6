"""Render a plan as a rich table, JSON, CSV or YAML. Units: Mbps = 10^6 bit/s, MB = 10^6 bytes."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from planner.json_text import dumps_indented, json_lines
from planner.method_spec import MASK_METHODS, SRD_METHODS
from planner.parse import fmt_density
from planner.plan_types import Plan, PlanRow, PlanSettings
from planner.srd import EXPECTED_KURTOSIS

if TYPE_CHECKING:  # planner.fleet is imported only when a fleet is planned
    from planner.fleet import TierEstimate
    from planner.fleet_plan import FleetPlan, FleetRow

FORMATS = ("table", "json", "csv", "yaml")


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
        forced = (
            " (dense fp32 values, whatever --encoding/--precision)"
            if (s.encoding, s.precision) not in (("auto", "fp32"), ("dense", "fp32"))
            else ""
        )
        lines.append(
            f"budget   {budget}; a dense round at rank {s.ref_rank} takes {d.seconds_per_round:.4g} s "
            f"and moves {fmt_bytes(d.bytes_per_round)}{forced}"
        )
    compute = (
        f"compute  {s.compute_seconds:g} s per round included (given)"
        if s.compute_seconds
        else "compute  0 s: round time counts communication only, as the thesis does (--compute-seconds adds it)"
    )
    lines.append(compute)
    lines.append(
        f"units    Mbps = 10^6 bit/s, MB = 10^6 bytes; down/up bytes are per client per round, "
        f"{_values_text(s)} values, encoding {s.encoding}; total = all clients, both directions"
    )
    schedule = [m for m in s.methods if m in MASK_METHODS]
    if schedule:
        lth = (
            f"; adapterlth keeps {s.keep_rate:g} of its mask per round, "
            + ("no floor" if s.floor is None else f"floor {fmt_density(s.floor)}")
            if "adapterlth" in schedule
            else ""
        )
        lines.append(
            f"schedule {', '.join(schedule)}: seeded sampling (seed {s.seed}, "
            f"{s.num_clients} clients), dense round 1, then the shared mask; per-round "
            f"columns are means over the affordable rounds{lth}"
        )
    srd = [m for m in s.methods if m in SRD_METHODS]
    if srd:
        lines.append(
            f"schedule {', '.join(srd)}: seeded sampling (seed {s.seed}, {s.num_clients} "
            f"clients); uploads at the pruning rule's density for score kurtosis "
            f"{EXPECTED_KURTOSIS:.2f} (data-dependent: floss-train records the real sizes), "
            "downloads the deltas a client missed or a dense P (catch-up); columns are means"
        )
    lines.append(
        f"feasible {len(p.rows)} configs of {', '.join(s.methods)} "
        f"({sum(r.recommended for r in p.rows)} on the short list), {p.infeasible} infeasible"
    )
    return lines


def _values_text(s: PlanSettings) -> str:
    """'fp32', or the priced precision pairs 'q8/sr4, fp32/fp32' (download/upload)."""
    pairs = s.precision_pairs
    if pairs == [(s.precision, s.precision)]:
        return s.precision
    return "down/up " + ", ".join(f"{d}/{u}" for d, u in pairs)


def render_table(p: Plan, *, limit: int | None, show_all: bool = False) -> str:
    """The short list (each row with its reason), or with ``show_all`` every feasible row."""
    from rich.console import Console
    from rich.table import Table

    rows = p.rows if show_all else [r for r in p.rows if r.recommended]
    if limit is not None:
        rows = rows[:limit]
    title = (
        "floss plan: every feasible configuration, the short list first"
        if show_all
        else ("floss plan: the short list (--all for every feasible configuration)")
    )
    table = Table(title=title)
    show_precision = p.settings.precision_pairs != [("fp32", "fp32")]
    for col, justify in (
        ("method", "left"),
        ("rank", "right"),
        ("d_down", "right"),
        ("d_up", "right"),
        *((("values down/up", "left"),) if show_precision else ()),
        ("down/client", "right"),
        ("up/client", "right"),
        ("s/round", "right"),
        ("rounds", "right"),
        ("total", "right"),
        ("why", "left"),
    ):
        table.add_column(col, justify=justify)
    for r in rows:
        table.add_row(
            r.method,
            str(r.rank),
            fmt_density(r.d_down),
            fmt_density(r.d_up),
            *((f"{r.precision_down}/{r.precision_up}",) if show_precision else ()),
            f"{fmt_bytes(r.bytes_down)} {r.encoding_down}",
            f"{fmt_bytes(r.bytes_up)} {r.encoding_up}",
            fmt_seconds(r.seconds_per_round),
            f"{r.rounds:,}",
            fmt_bytes(r.total_bytes),
            r.why,
        )
    buf = io.StringIO()
    console = Console(file=buf, width=200, force_terminal=False, color_system=None)
    for line in header_lines(p):
        console.print(line, highlight=False, markup=False, soft_wrap=True)
    console.print(table)
    if len(p.rows) > len(rows):
        console.print(
            f"... {len(p.rows) - len(rows)} more feasible configs: --all, or --format json|csv|yaml",
            highlight=False,
            markup=False,
        )
    return buf.getvalue()


def row_dicts(p: Plan) -> list[dict[str, object]]:
    return [r.to_dict() for r in p.rows]


def render_plan(p: Plan, *, fmt: str, limit: int | None = None, show_all: bool = False) -> str:
    """A table (the short list, or every row with ``show_all``), or every row as JSON/CSV/YAML."""
    if fmt == "table":
        return render_table(p, limit=limit, show_all=show_all)
    rows = row_dicts(p)
    if fmt == "json":
        return dumps_indented(rows, indent=2) + "\n"  # json.dumps(rows, indent=2), by C
    if fmt == "yaml":
        import yaml

        # libyaml writes yaml.safe_dump's text for plan rows (plain ASCII names and numbers);
        # it folds long escaped or non-ASCII strings differently, which plan rows never hold
        dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
        return str(yaml.dump(rows, Dumper=dumper, sort_keys=False))
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(
            buf, fieldnames=list(PlanRow.__dataclass_fields__), lineterminator="\n"
        )
        writer.writeheader()
        writer.writerows(rows)
        return buf.getvalue()
    raise ValueError(f"--format must be one of {', '.join(FORMATS)}, but got {fmt!r}.")


# ---------------------------------------------------------------------------------------------
# floss-plan --fleet


def _percent(x: float) -> str:
    return f"{100 * x:.0f} %" if x == 0 or x >= 0.01 else f"{100 * x:.1g} %"


def fleet_header_lines(p: FleetPlan) -> list[str]:
    s = p.settings
    f = p.fleet
    if f.measured:
        tiers = ", ".join(
            f"{t.name} {_percent(t.weight)} (median {t.down_mbps:g}/{t.up_mbps:g} Mbps, "
            f"{t.rtt_ms:g} ms)"
            for t in f.tiers
        )
        what = f"{len(f.measured):,} measured clients, tiers {tiers}"
    else:
        tiers = ", ".join(
            f"{t.name} {_percent(t.weight)} ({t.down_mbps:g}/{t.up_mbps:g} Mbps, {t.rtt_ms:g} ms"
            + (f", sigma {t.spread_sigma:g}" if t.spread_sigma else "")
            + ")"
            for t in f.tiers
        )
        what = f"tiers {tiers}"
    m = s.clients_per_round
    over = math.ceil(round(m * p.over_selection, 9))
    lines = [
        f"model    {s.model.name}: n(r={s.ref_rank}) = {p.dense_reference_n:,} adapter entries",
        f"fleet    {f.name}: {what}; {s.num_clients:,} clients, each keeps its link for the run "
        f"(drawn once, seed {s.seed})",
        f"rounds   m = {m}: sync samples {min(m, s.num_clients)} and waits for the slowest; "
        f"deadline samples {min(over, s.num_clients)} (over-selection {p.over_selection:g}) and "
        f"keeps the first {m} by the deadline, dropping the others' uploads",
    ]
    budget = s.budget.describe()
    if p.budget_seconds is not None and s.budget.kind == "dense-rounds":
        budget += f" = {p.budget_seconds:,.3f} s"
    dense_bytes = m * 2 * 4 * p.dense_reference_n
    lines.append(
        f"budget   {budget}; the fleet's dense round at rank {s.ref_rank} (sync, uniform, mean of "
        f"its first 100 seeded rounds) takes {p.dense_reference_seconds:.4g} s and moves "
        f"{fmt_bytes(dense_bytes)}"
    )
    if p.rows and p.rows[0].deadline_default:
        q = 100 / p.over_selection
        lines.append(
            f"deadline default: per configuration, the {q:.0f}th percentile of the clients' "
            "seconds at its densities (--deadline sets one)"
        )
    elif p.rows:
        lines.append(f"deadline {p.rows[0].estimate.deadline_seconds:g} s (given)")
    grid = ",".join(fmt_density(d) for d in p.grid)
    lines.append(
        f"bandwidth policy: per client the largest d_up on the grid {grid} (<= the config's "
        "d_up) whose transfer meets the deadline"
        + (", d_down adapted first" if p.adapt_down else "")
    )
    lines.append(
        f"compute  {s.compute_seconds:g} s per round included (given)"
        if s.compute_seconds
        else "compute  0 s: round time counts communication only (--compute-seconds adds it)"
    )
    lines.append(
        f"short    per policy pair; S = {fmt_density(1 / p.up_slowdown) if p.up_slowdown < 1 else f'{p.up_slowdown:g}'}"
        " (the median client's down/up, to a power of 2) for d_up <= d_down/S; deadline rows "
        f"dropping > {100 * p.drop_share:.0f} % of sampled uploads are flagged"
    )
    if p.rows:
        lines.append(
            f"estimate {p.rows[0].estimate.estimate}; '~' marks extrapolated rounds, "
            "+- the standard error of the mean round seconds"
        )
    lines.append(
        "units    Mbps = 10^6 bit/s, MB = 10^6 bytes; bytes/round = all sampled clients, both "
        "directions (dropped uploads not sent); late = sampled clients past the deadline, "
        "dropped = sampled clients not aggregated; tiers = median d_down:d_up (d_up range)"
    )
    return lines


def _tier_text(t: TierEstimate) -> str:
    text = f"{t.tier} {fmt_density(t.d_down)}:{fmt_density(t.d_up)}"
    if t.d_up_min != t.d_up_max:
        text += f" ({fmt_density(t.d_up_min)}-{fmt_density(t.d_up_max)})"
    if t.d_down_min != t.d_down_max:
        text += f" down {fmt_density(t.d_down_min)}-{fmt_density(t.d_down_max)}"
    return text


def fleet_row_dict(r: FleetRow) -> dict[str, Any]:
    e = r.estimate
    out: dict[str, Any] = {
        "method": e.method,
        "rank": r.rank,
        "n": e.n,
        "d_down": e.d_down,
        "d_up": e.d_up,
        "precision_down": r.precision_down,
        "precision_up": r.precision_up,
        "round_policy": e.round_policy,
        "density_policy": e.density_policy,
        "deadline_seconds": e.deadline_seconds,
        "deadline_default": r.deadline_default,
        "clients_per_round": e.clients_per_round,
        "sampled_per_round": e.sampled_per_round,
        "seconds_per_round": e.mean_seconds,
        "seconds_stderr": e.seconds_stderr,
        "bytes_per_round": e.mean_bytes,
        "rounds": e.rounds,
        "rounds_exact": e.exact,
        "total_seconds": e.total_seconds,
        "total_bytes": e.total_bytes,
        "late_fraction": e.late_fraction,
        "dropped_fraction": e.dropped_fraction,
        "empty_rounds": e.empty_rounds,
        "mean_kept": e.mean_kept,
        "rounds_walked": e.rounds_walked,
        "estimate": e.estimate,
        "recommended": r.recommended,
        "why": r.why,
    }
    out["tiers"] = [dict(vars(t)) for t in e.tiers]  # a plain dataclass: its fields, in order
    return out


def fleet_table_rows(p: FleetPlan, *, show_all: bool) -> list[FleetRow]:
    """The table's rows: the short list in its order, then (``show_all``) every other row."""
    first = [p.rows[i] for i in p.short_list]
    if not show_all:
        return first
    listed = set(p.short_list)
    return first + [r for i, r in enumerate(p.rows) if i not in listed]


def render_fleet_table(p: FleetPlan, *, limit: int | None, show_all: bool = False) -> str:
    from rich.console import Console
    from rich.table import Table

    shown = fleet_table_rows(p, show_all=show_all)
    rows = shown if limit is None else shown[:limit]
    title = "every configuration under each policy" if show_all else "the short list per policy"
    table = Table(title=f"floss plan on fleet {p.fleet.name}: {title}")
    show_precision = any((r.precision_down, r.precision_up) != ("fp32", "fp32") for r in p.rows)
    for col, justify in (
        ("method", "left"),
        ("rank", "right"),
        ("d_down", "right"),
        ("d_up", "right"),
        *((("values down/up", "left"),) if show_precision else ()),
        ("rounds", "left"),
        ("densities", "left"),
        ("deadline", "right"),
        ("s/round", "right"),
        ("rounds", "right"),
        ("late", "right"),
        ("dropped", "right"),
        ("bytes/round", "right"),
        ("tiers", "left"),
        ("why", "left"),
    ):
        table.add_column(col, justify=justify)
    for r in rows:
        e = r.estimate
        rel = e.seconds_stderr / e.mean_seconds if e.mean_seconds else 0.0
        table.add_row(
            e.method,
            str(r.rank),
            fmt_density(e.d_down),
            fmt_density(e.d_up),
            *((f"{r.precision_down}/{r.precision_up}",) if show_precision else ()),
            e.round_policy,
            e.density_policy,
            "-" if e.deadline_seconds is None else fmt_seconds(e.deadline_seconds),
            f"{fmt_seconds(e.mean_seconds)} +-{100 * rel:.1f}%",
            f"{'' if e.exact else '~'}{e.rounds:,}",
            _percent(e.late_fraction),
            _percent(e.dropped_fraction),
            fmt_bytes(e.mean_bytes),
            ", ".join(_tier_text(t) for t in e.tiers),
            r.why,
        )
    buf = io.StringIO()
    console = Console(file=buf, width=220, force_terminal=False, color_system=None)
    for line in fleet_header_lines(p):
        console.print(line, highlight=False, markup=False, soft_wrap=True)
    console.print(table)
    if len(p.rows) > len(rows):
        more = "--limit" if show_all else "--all"
        console.print(
            f"... {len(p.rows) - len(rows)} more rows: {more}, or --format json|csv|yaml",
            highlight=False,
            markup=False,
        )
    return buf.getvalue()


def render_fleet_plan(
    p: FleetPlan, *, fmt: str, limit: int | None = None, show_all: bool = False
) -> str:
    """A fleet plan as a table (the short list; ``show_all``: every row), or every row as
    JSON/YAML (tiers a list) or CSV (tiers a cell), each with ``recommended`` and ``why``."""
    if fmt == "table":
        return render_fleet_table(p, limit=limit, show_all=show_all)
    rows = [fleet_row_dict(r) for r in p.rows]
    if fmt == "json":  # one row a line: thousands of rows, and json's C encoder (no indent)
        return json_lines(rows)
    if fmt == "yaml":
        import yaml

        dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml when present
        return str(yaml.dump(rows, Dumper=dumper, sort_keys=False))
    if fmt == "csv":
        for row, r in zip(rows, p.rows, strict=True):
            row["tiers"] = "; ".join(_tier_text(t) for t in r.estimate.tiers)
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else [], lineterminator="\n")
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
