"""Read a study back: the trials as rows, the Pareto front, the recommendation, the rich table.

Everything comes from the trials' user attributes (candidate, configs, RoundRecords), so a study
in any storage can be shown and exported without re-running a trial.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tuner.candidate import candidate_label, density_label, policy_label
from tuner.rungs import ATTR_FRACTION, ATTR_RUNG
from tuner.study import ATTR_SPACE
from tuner.trial_attrs import (
    ATTR_CANDIDATE,
    ATTR_CONFIG,
    ATTR_END,
    ATTR_FULL_CONFIG,
    ATTR_RECORDS,
    ATTR_RESUMED,
    ATTR_RETRY_OF,
    ATTR_STEPS,
    ATTR_VAL_EXAMPLES,
    TEST_METRICS,
)

if TYPE_CHECKING:
    import optuna
    import pandas as pd

COLUMNS = (
    "trial",
    "state",
    "end",
    "method",
    "topk",
    "rank",
    "d_down",
    "d_up",
    "keep_rate",
    "round_policy",
    "density_policy",
    "deadline",
    "rounds",
    "full_rounds",
    "fraction",
    "value",
    *TEST_METRICS,
    "client_steps",
    "bytes",
    "sim_seconds",
    "full_bytes",
    "last_step",
    "why",
    "enqueued",
    "duplicate_of",
    "pareto",
    "recommended",
)


@dataclass(frozen=True, kw_only=True)
class TrialRow:
    trial: int
    state: str  # COMPLETE | PRUNED | RUNNING | FAIL | WAITING
    end: str
    method: str | None
    topk: str | None
    rank: int | None
    d_down: float | None
    d_up: float | None
    keep_rate: float | None
    rounds: int | None  # trial budget (a halving rung trains to `fraction` of it)
    full_rounds: int | None
    fraction: float | None  # successive halving: the share of the trial budget it trained
    value: float | None  # objective (complete) or last reported value (pruned): validation
    test_accuracy: float | None  # test split, complete trials only: reported, never selected on
    test_accuracy_server: float | None
    test_loss: float | None
    test_loss_server: float | None
    client_steps: int
    bytes: int | None  # communication the trial really spent (all clients, both directions)
    sim_seconds: float | None
    full_bytes: int | None  # planner's bytes of the full run
    last_step: int | None
    why: str  # the planner's reason when the config is dense LoRA or the heuristic family
    enqueued: bool  # a seed put in the queue before sampling
    duplicate_of: int | None
    pareto: bool = False
    recommended: bool = False
    # fleets only (None without one): the trial's round and density policies and deadline, s
    round_policy: str | None = None
    density_policy: str | None = None
    deadline: float | None = None
    # not in COLUMNS (trials.csv keeps its columns): what ``floss-tune show`` adds
    trained_rounds: int | None = None  # rounds really trained (a pruned trial: up to its stop)
    planned_rounds: int | None = None  # rounds the trial set out to train (a rung: its share)
    precision_down: str = "fp32"
    precision_up: str = "fp32"
    retry_of: int | None = None  # an interrupted trial enqueued again
    resumed_round: int | None = None  # went on from the checkpoint of this round
    rung: int | None = None  # successive halving's rung

    @property
    def policies(self) -> str:
        """' sync/uniform', ' deadline 0.5s/bandwidth' ('' without a fleet)."""
        return policy_label(
            {
                "round_policy": self.round_policy,
                "density_policy": self.density_policy,
                "deadline": self.deadline,
            }
        )

    @property
    def label(self) -> str:
        if self.rank is None or self.d_down is None or self.d_up is None:
            return "-"
        method = self.method or "floss"
        if method == "floss":
            topk = " per-tensor" if self.topk == "per-tensor" else ""
            if self.density_policy == "tiered":  # the tiers' densities, not the run's
                return f"r{self.rank} tier densities{topk}" + self.policies
            return (
                f"r{self.rank} ↓{density_label(self.d_down)} ↑{density_label(self.d_up)}{topk}"
                + self.policies
            )
        return (
            candidate_label(
                {
                    "method": method,
                    "rank": self.rank,
                    "d_up": self.d_up,
                    "keep_rate": self.keep_rate,
                }
            )
            + self.policies
        )

    def test_value(self, metric: str) -> float | None:
        """The test-split counterpart of a validation metric (for the reports only)."""
        return getattr(self, test_metric_for(metric), None)

    def to_dict(self) -> dict[str, Any]:
        return {c: getattr(self, c) for c in COLUMNS}


def test_metric_for(metric: str) -> str:
    """val_accuracy -> test_accuracy, val_loss_server -> test_loss_server, ..."""
    return "test_" + metric.removeprefix("val_")


def study_metric(study: optuna.Study) -> str:
    meta = study.user_attrs.get(ATTR_SPACE) or {}
    return str(meta.get("metric", "val_accuracy"))


def trial_rows(study: optuna.Study, *, waiting: bool = False) -> list[TrialRow]:
    """One row per trial (waiting trials only with ``waiting``: from their enqueued params),
    with the Pareto flags and recommendation."""
    from dataclasses import replace

    from optuna.trial import TrialState

    rows = []
    for t in study.get_trials(deepcopy=False):
        if t.state == TrialState.WAITING and not waiting:
            continue
        cand = t.user_attrs.get(ATTR_CANDIDATE) or {}
        if not cand and t.state == TrialState.WAITING:  # what was enqueued, not yet projected
            cand = dict(t.system_attrs.get("fixed_params") or {})
        records = t.user_attrs.get(ATTR_RECORDS) or []
        last = records[-1] if records else {}
        steps = sorted(t.intermediate_values)
        value = t.value if t.state == TrialState.COMPLETE else None
        if value is None and steps:
            value = t.intermediate_values[steps[-1]]
        full_rounds = cand.get("full_rounds")
        full_bytes = cand.get("full_bytes")
        if full_bytes is None and full_rounds is not None:  # a study from before exact prices
            full_bytes = full_rounds * int(cand["bytes_per_round"])
        tests = {
            name: (float(t.user_attrs[name]) if name in t.user_attrs else None)
            for name in TEST_METRICS
        }
        rows.append(
            TrialRow(
                trial=t.number,
                state=t.state.name,
                end=str(t.user_attrs.get(ATTR_END, t.state.name.lower())),
                method=cand.get("method", "floss" if cand else None),
                topk=cand.get("topk", "global" if cand else None),
                rank=cand.get("rank"),
                d_down=cand.get("d_down"),
                d_up=cand.get("d_up"),
                keep_rate=cand.get("keep_rate"),
                rounds=cand.get("rounds"),
                full_rounds=full_rounds,
                fraction=t.user_attrs.get(ATTR_FRACTION),
                value=None if value is None else float(value),
                test_accuracy=tests["test_accuracy"],
                test_accuracy_server=tests["test_accuracy_server"],
                test_loss=tests["test_loss"],
                test_loss_server=tests["test_loss_server"],
                client_steps=int(t.user_attrs.get(ATTR_STEPS, 0)),
                bytes=last.get("cum_bytes"),
                sim_seconds=last.get("cum_sim_seconds"),
                full_bytes=full_bytes,
                last_step=steps[-1] if steps else None,
                why=str(cand.get("why", "")),
                enqueued="fixed_params" in t.system_attrs,
                duplicate_of=t.user_attrs.get("duplicate_of"),
                round_policy=cand.get("round_policy") or None,
                density_policy=cand.get("density_policy") or None,
                deadline=cand.get("deadline"),
                trained_rounds=len(records) if records else None,
                planned_rounds=(t.user_attrs.get(ATTR_CONFIG) or {}).get("rounds")
                or cand.get("rounds"),
                precision_down=str(cand.get("precision_down", "fp32")),
                precision_up=str(cand.get("precision_up", "fp32")),
                retry_of=t.user_attrs.get(ATTR_RETRY_OF),
                resumed_round=(t.user_attrs.get(ATTR_RESUMED) or {}).get("round"),
                rung=t.user_attrs.get(ATTR_RUNG),
            )
        )
    maximize = study.direction.name == "MAXIMIZE"
    front = pareto_front(rows, maximize=maximize)
    best = recommend(rows, maximize=maximize)
    return [
        replace(r, pareto=r.trial in front, recommended=best is not None and r.trial == best.trial)
        for r in rows
    ]


def _scored(rows: list[TrialRow]) -> list[TrialRow]:
    return [
        r
        for r in rows
        if r.state == "COMPLETE"
        and r.duplicate_of is None
        and r.value is not None
        and math.isfinite(r.value)
        and r.bytes is not None
    ]


def pareto_front(rows: list[TrialRow], *, maximize: bool) -> set[int]:
    """Complete trials that no other beats on both quality and bytes spent."""
    scored = deepest(rows)
    sign = 1.0 if maximize else -1.0

    def dominates(a: TrialRow, b: TrialRow) -> bool:
        qa, qb = sign * float(a.value or 0), sign * float(b.value or 0)
        ba, bb = int(a.bytes or 0), int(b.bytes or 0)
        return qa >= qb and ba <= bb and (qa > qb or ba < bb)

    return {r.trial for r in scored if not any(dominates(o, r) for o in scored if o is not r)}


def deepest(rows: list[TrialRow]) -> list[TrialRow]:
    """The scored trials at the deepest fidelity (successive halving's last rung; every
    scored trial when trials run their whole budget): values compare only at equal depth."""
    scored = _scored(rows)
    depth = max((r.fraction or 1.0 for r in scored), default=1.0)
    return [r for r in scored if math.isclose(r.fraction or 1.0, depth)]


def ranked(rows: list[TrialRow], *, maximize: bool) -> list[TrialRow]:
    """The deepest rung's trials, best first: by validation value, then fewer bytes sent."""
    sign = -1.0 if maximize else 1.0
    return sorted(deepest(rows), key=lambda r: (sign * float(r.value or 0), r.bytes or 0, r.trial))


def recommend(rows: list[TrialRow], *, maximize: bool) -> TrialRow | None:
    """The best complete trial of the deepest fidelity by its validation value; equal quality
    goes to the one that sent fewer bytes. Test metrics play no part."""
    best = ranked(rows, maximize=maximize)
    return best[0] if best else None


def certainty_facts(study: optuna.Study, rows: list[TrialRow]) -> dict[str, Any] | None:
    """How sure the pick is: the runner-up at the same depth, the gap, and (accuracy metrics)
    the gap's sampling noise, two binomial standard errors of a difference of two accuracies
    measured on ``val_examples`` validation texts; None with fewer than two trials at that
    depth. Training-seed noise is not measured inside a study."""
    maximize = study.direction.name == "MAXIMIZE"
    order = ranked(rows, maximize=maximize)
    if len(order) < 2:
        return None
    best, second = order[0], order[1]
    facts: dict[str, Any] = {
        "trial": best.trial,
        "value": best.value,
        "fraction": best.fraction,
        "runner_up": second.label,
        "runner_up_trial": second.trial,
        "runner_up_value": second.value,
        "gap": abs(float(best.value or 0) - float(second.value or 0)),
    }
    n = study.trials[best.trial].user_attrs.get(ATTR_VAL_EXAMPLES)
    if "accuracy" in study_metric(study) and isinstance(n, int) and n > 0:
        p1, p2 = float(best.value or 0), float(second.value or 0)
        facts["val_examples"] = n
        facts["noise_2se"] = 2 * math.sqrt((p1 * (1 - p1) + p2 * (1 - p2)) / n)
        facts["beyond_noise"] = facts["gap"] > facts["noise_2se"]
    return facts


def certainty(study: optuna.Study, rows: list[TrialRow]) -> str | None:
    """``certainty_facts`` as the line ``show`` and the export print."""
    f = certainty_facts(study, rows)
    if f is None:
        return None
    text = (
        f"runner-up: {f['runner_up']} (trial {f['runner_up_trial']}) "
        f"{f['runner_up_value']:.4f}, gap {f['gap']:.4f}"
    )
    if "noise_2se" in f:
        text += (
            f"; {'beyond' if f['beyond_noise'] else 'within'} the validation sampling noise "
            f"(2 s.e. = {f['noise_2se']:.4f} on {f['val_examples']:,} texts; "
            "training-seed noise not measured by the study)"
        )
    return text


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    rec = next((r for r in trial_rows(study) if r.recommended), None)
    return None if rec is None else study.trials[rec.trial]


def recommended_full_config(study: optuna.Study) -> dict[str, Any] | None:
    t = best_trial(study)
    return None if t is None else dict(t.user_attrs[ATTR_FULL_CONFIG])


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame([r.to_dict() for r in trial_rows(study)], columns=list(COLUMNS))


def records_frame(study: optuna.Study) -> pd.DataFrame:
    """Every RoundRecord of every trial, with the trial number in front."""
    import pandas as pd

    rows = [
        {"trial": t.number, **rec}
        for t in study.get_trials(deepcopy=False)
        for rec in t.user_attrs.get(ATTR_RECORDS) or []
    ]
    return pd.DataFrame(rows)


def _mb(n: int | None) -> str:
    if n is None:
        return "-"
    return f"{n / 1e6:,.1f}" if n >= 1e7 else f"{n / 1e6:.3g}"


def recommendation_line(study: optuna.Study) -> str:
    rows = trial_rows(study)
    best = next((r for r in rows if r.recommended), None)
    if best is None:
        return "no trial has finished its budget yet: nothing to recommend."
    metric = study_metric(study)
    test = best.test_value(metric)
    tested = "" if test is None else f" ({test_metric_for(metric)} {test:.4f}, reported only)"
    method = best.method or "floss"
    if method == "floss":
        what = (
            f"rank {best.rank}, d_down {density_label(best.d_down or 1)}, "
            f"d_up {density_label(best.d_up or 1)}"
            + (", per-tensor top-k" if best.topk == "per-tensor" else "")
        )
    else:
        what = best.label.removesuffix(best.policies)
    if best.round_policy:
        fleet = (study.user_attrs.get(ATTR_SPACE) or {}).get("fleet")
        deadline = "" if best.deadline is None else f", deadline {best.deadline:g} s"
        what += (
            f" on fleet {fleet}: {best.round_policy} rounds, {best.density_policy} "
            f"densities{deadline}"
        )
    depth = (
        "on the trial budget"
        if best.fraction is None
        else f"at {best.fraction:g} of the trial budget (successive halving's deepest rung)"
    )
    sure = certainty(study, rows)
    return (
        f"recommended: {what} (trial {best.trial}): {metric} "
        f"{best.value:.4f} {depth}{tested}; the full run is {best.full_rounds} "
        f"rounds, {_mb(best.full_bytes)} MB." + ("" if sure is None else f"\n{sure}.")
    )
