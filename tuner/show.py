"""`floss-tune show`: a study as a table that fits 100 columns, its footnote, one trial's details.

Three views of the rows ``tuner.report.trial_rows`` reads back from the storage:

* the default table: one line per trial (no cell ever wraps: a cell too long for the width is
  cut with an ellipsis), compact labels, and a footnote that explains every column it shows;
* ``wide``: every column (test split, fidelity step, client steps, simulated seconds, the full
  run's plan, the full labels), at the terminal's width or more;
* ``trial_details``: everything about one trial, with its rounds.

What a trial really ran comes from its records: a pruned (or interrupted) trial shows the rounds
it trained and the bytes it sent up to where it stopped, beside the rounds it set out to train;
the full run's plan is a plan, shown only for complete trials and in ``wide``. Waiting trials
(enqueued seeds, retries, halving rungs) are listed after the others.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from tuner.candidate import candidate_label, density_label
from tuner.report import TrialRow, _mb, study_metric, test_metric_for, trial_rows
from tuner.trial_attrs import ATTR_RECORDS

if TYPE_CHECKING:
    import optuna
    from rich.console import RenderableType
    from rich.table import Table

DEFAULT_WIDTH = 100  # the default table never needs more
WIDE_WIDTH = 240  # --wide: room for every column's cells on one line
FLEX_MIN_WIDTH = 14  # config and note shrink to this on a narrow terminal (then an ellipsis)
LIMIT = 30  # rows of the default table; --wide shows every trial

ROUND_SHORT = {"sync": "sync", "deadline": "dl"}
DENSITY_SHORT = {"uniform": "uni", "tiered": "tier", "bandwidth": "bw"}


def short_label(r: TrialRow) -> str:
    """A compact config label: 'r16 ↓1/4 ↑1/16 pt q8/fp32 dl 0.5s/bw' (the footnote names the
    abbreviations it uses)."""
    method = r.method or "floss"
    if r.rank is None:
        return "-"
    if method == "floss":
        if r.density_policy == "tiered":
            text = f"r{r.rank} tiers"
        elif r.d_down is None or r.d_up is None:
            text = f"r{r.rank}"
        else:
            text = f"r{r.rank} ↓{density_label(r.d_down)} ↑{density_label(r.d_up)}"
        if r.topk == "per-tensor":
            text += " pt"
    elif method == "sparseadapter" and r.d_up is not None:
        text = f"sparseadapter r{r.rank} ↑{density_label(r.d_up)}"
    else:
        text = candidate_label({"method": method, "rank": r.rank, "keep_rate": r.keep_rate})
    if (r.precision_down, r.precision_up) != ("fp32", "fp32"):
        text += f" {r.precision_down}/{r.precision_up}"
    if r.round_policy:
        deadline = "" if r.deadline is None else f" {r.deadline:g}s"
        rp = ROUND_SHORT.get(r.round_policy, r.round_policy)
        dp = DENSITY_SHORT.get(r.density_policy or "", r.density_policy or "")
        text += f" {rp}{deadline}/{dp}"
    return text


def seed_note(why: str) -> str:
    short = (
        "dense"
        if why.startswith("dense")
        else "d_up=d_down/S"
        if why.startswith("thesis")
        else "tiers"
        if why.startswith("reference rank at the tiers")
        else "link caps"
        if why.startswith("reference rank, each client")
        else why.split(" ")[0]
    )
    return f"seed {short}" + ("~" if why.endswith("nearest on the grid") else "")


def depth(r: TrialRow) -> str:
    """How far a trial trained: its halving fraction, else the last fidelity step reported."""
    if r.fraction is not None:
        return f"{r.fraction:g} of budget"
    return "-" if r.last_step is None else str(r.last_step)


def rounds_cell(r: TrialRow) -> str:
    """'15' for a trial that trained what it set out to; 'trained/planned' for one that stopped
    early (pruned, interrupted, running) or has not started."""
    planned = "-" if r.planned_rounds is None else str(r.planned_rounds)
    if r.trained_rounds is None:
        return "-" if r.state == "COMPLETE" and r.duplicate_of is not None else f"-/{planned}"
    if r.planned_rounds is not None and r.trained_rounds == r.planned_rounds:
        return str(r.trained_rounds)
    return f"{r.trained_rounds}/{planned}"


def notes(r: TrialRow) -> list[str]:
    out = []
    if r.recommended:
        out.append("★")
    if r.pareto:
        out.append("P")
    if r.enqueued and r.why:
        out.append(seed_note(r.why))
    if r.duplicate_of is not None:
        out.append(f"same as {r.duplicate_of}")
    elif r.end not in ("complete", r.state.lower()):
        out.append(r.end)
    if r.rung is not None:
        out.append(f"rung {r.rung}")
    if r.retry_of is not None:
        out.append(f"retry of {r.retry_of}")
    if r.resumed_round is not None:
        out.append(f"resumed at {r.resumed_round + 1}")
    return out


def _sorted(rows: list[TrialRow], *, maximize: bool) -> list[TrialRow]:
    def key(r: TrialRow) -> tuple[int, float, int]:
        group = 0 if r.state == "COMPLETE" else 2 if r.state == "WAITING" else 1
        value = math.inf if r.value is None else (-r.value if maximize else r.value)
        return group, value, r.trial

    return sorted(rows, key=key)


def metric_header(metric: str) -> str:
    """val_accuracy -> 'val acc', val_loss_server -> 'val loss srv'."""
    return metric.replace("accuracy", "acc").replace("_server", " srv").replace("_", " ")


def trials_table(study: optuna.Study, *, wide: bool = False, limit: int | None = LIMIT) -> Table:
    """The trials, best first, then the unfinished, then the waiting (see the module doc)."""
    from rich import box
    from rich.cells import cell_len
    from rich.table import Table

    metric = study_metric(study)
    maximize = study.direction.name == "MAXIMIZE"
    rows = _sorted(trial_rows(study, waiting=True), maximize=maximize)
    shown = rows if (wide or not limit) else rows[:limit]
    counts = _state_counts(rows)
    better = "higher" if maximize else "lower"
    title = f"study {study.study_name!r}: {counts}; {metric}, {better} is better"
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    cols: list[tuple[str, str]] = [("#", "right"), ("config", "left"), ("state", "left")]
    cols += [("rounds", "right"), (metric_header(metric), "right")]
    if wide:
        cols += [(metric_header(test_metric_for(metric)) + "*", "right"), ("at step", "right")]
        cols += [("client steps", "right")]
    cols += [("MB sent", "right")]
    if wide:
        cols += [("sim s", "right"), ("full run (plan)", "right")]
    cols += [("note", "left")]
    body: list[list[str]] = []
    for r in shown:
        cells = [str(r.trial), r.label if wide else short_label(r), r.state.lower()]
        cells += [rounds_cell(r), "-" if r.value is None else f"{r.value:.4f}"]
        if wide:
            test = r.test_value(metric)
            cells += ["-" if test is None else f"{test:.4f}", depth(r), f"{r.client_steps:,}"]
        cells += [_mb(r.bytes)]
        if wide:
            sim = "-" if r.sim_seconds is None else f"{r.sim_seconds:,.4g}"
            full = (
                "-" if r.full_rounds is None else f"{r.full_rounds} rounds, {_mb(r.full_bytes)} MB"
            )
            cells += [sim, full]
        cells += [", ".join(notes(r))]
        body.append(cells)
    for i, (name, justify) in enumerate(cols):
        # numbers and states are never cut: only config and note give way (with an ellipsis)
        need = max([cell_len(row[i]) for row in body] + [cell_len(name)])
        flexible = name in ("config", "note") and not wide
        table.add_column(
            name,
            justify=justify,  # type: ignore[arg-type]
            no_wrap=not wide,
            overflow="ellipsis" if flexible else "fold",
            min_width=min(need, FLEX_MIN_WIDTH) if flexible else need,
        )
    for cells in body:
        table.add_row(*cells)
    if len(shown) < len(rows):
        table.caption = f"the first {len(shown)} of {len(rows)} trials; --wide shows them all"
    return table


def _state_counts(rows: list[TrialRow]) -> str:
    order = ("COMPLETE", "PRUNED", "RUNNING", "WAITING", "FAIL")
    counts = {s: sum(1 for r in rows if r.state == s) for s in order}
    parts = [f"{n} {s.lower()}" for s, n in counts.items() if n]
    trials = "1 trial" if len(rows) == 1 else f"{len(rows)} trials"
    return trials + (f" ({', '.join(parts)})" if parts else "")


def footnote(study: optuna.Study, *, wide: bool) -> str:
    """What each column of the table means (``trials_table``), and the abbreviations."""
    metric = study_metric(study)
    meta: dict[str, Any] = study.user_attrs.get("floss_space") or {}
    levels = int(meta.get("levels", 4) or 4)
    top = 2 ** (levels - 1)
    lines = [
        "rounds: trained, or trained/planned when the trial stopped early (pruned, interrupted, "
        "running) or waits.",
        f"{metric_header(metric)}: {metric} on the validation split: a complete trial's at its "
        "whole trial budget, a pruned one's at its last report.",
        "MB sent: what the trial really sent (10^6 bytes, all clients, both ways), up to where "
        "it stopped.",
        "note: ★ recommended; P on the Pareto front (value vs MB, complete trials of the deepest "
        "fidelity); seed = enqueued first (dense, d_up=d_down/S, ...; ~ nearest on the grid); "
        "rung = successive halving's rung.",
    ]
    if wide:
        lines += [
            f"{metric_header(test_metric_for(metric))}*: the test split, complete trials only: "
            "reported, never used to pick.",
            f"at step: the fidelity step of the value, 1..{top} (step s = s/{top} of the trial "
            "budget), or a halving rung's share of it.",
            "client steps: client optimizer steps the trial trained (a resumed trial: after its "
            "checkpoint).",
            "sim s: simulated network seconds; full run (plan): the planner's rounds and MB of "
            "the full-budget run.",
        ]
    else:
        lines.append(
            "config: r rank, ↓ d_down, ↑ d_up, pt per-tensor top-k, sync|dl (deadline) rounds "
            "/ uni|tier|bw densities. More: --wide; one trial: --trial N."
        )
    return "\n".join(lines)


def trial_details(study: optuna.Study, number: int) -> list[RenderableType]:
    """Everything about one trial: its row's fields in full, its reports and its rounds."""
    from rich.table import Table

    from tuner.settings import TuneError

    rows = {r.trial: r for r in trial_rows(study, waiting=True)}
    if number not in rows:
        have = f"0..{max(rows)}" if rows else "none"
        raise TuneError(
            f"--trial {number}: study {study.study_name!r} has no trial {number} (trials: {have})."
        )
    r = rows[number]
    t = next(t for t in study.get_trials(deepcopy=False) if t.number == number)
    metric = study_metric(study)
    test = r.test_value(metric)
    facts: list[tuple[str, str]] = [
        ("config", r.label if r.label != "-" else short_label(r)),
        ("state", r.state.lower() + ("" if r.end == r.state.lower() else f" ({r.end})")),
        ("rounds", f"{r.trained_rounds or 0} trained of {r.planned_rounds or '-'} planned"),
        (metric, "-" if r.value is None else f"{r.value:.6g} (at step {depth(r)})"),
        (test_metric_for(metric), "-" if test is None else f"{test:.6g} (reported only)"),
        ("MB sent", "-" if r.bytes is None else f"{_mb(r.bytes)} MB ({r.bytes:,} bytes)"),
        ("client steps", f"{r.client_steps:,}"),
        ("sim seconds", "-" if r.sim_seconds is None else f"{r.sim_seconds:,.6g}"),
        ("full run (plan)",
         "-" if r.full_rounds is None else f"{r.full_rounds} rounds, {_mb(r.full_bytes)} MB"),
        ("reports", ", ".join(f"{s}: {v:.4f}" for s, v in sorted(t.intermediate_values.items()))
         or "-"),
        ("notes", ", ".join(notes(r)) or "-"),
    ]  # fmt: skip
    if r.why:
        facts.append(("why", r.why))
    out: list[RenderableType] = [f"trial {number} of study {study.study_name!r}"]
    out += [f"  {name}: {value}" for name, value in facts]
    records = t.user_attrs.get(ATTR_RECORDS) or []
    if records:
        table = Table(title=f"its {len(records)} rounds", box=None, pad_edge=False)
        for name in ("round", "train loss", metric_header(metric), "MB (total)", "sim s"):
            table.add_column(name, justify="right")
        for rec in records:
            loss, value = rec.get("train_loss"), rec.get(metric)
            table.add_row(
                str(rec.get("round")),
                "-" if not isinstance(loss, (int, float)) else f"{loss:.4f}",
                "-" if value is None else f"{value:.4f}",
                _mb(rec.get("cum_bytes")),
                f"{float(rec.get('cum_sim_seconds') or 0):,.4g}",
            )
        out.append(table)
    return out
