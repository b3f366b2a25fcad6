"""The page's two forms (a plan's, sent by GET so a plan is a link; a study's, sent by POST) and
the error list shown under them, each error naming its field."""

from __future__ import annotations

from html import escape
from typing import Any

from planner.method_spec import METHODS

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
