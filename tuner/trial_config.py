"""What a trial trains: its RunConfig, the full run's RunConfig, and the key of what it trains.

Two candidates that train the same thing (FLoSS sending every entry both ways is dense LoRA; a
deadline that binds no client) share one key, so a study trains the configuration once and marks
the other trial its duplicate (``tuner.ledger``). The configs are the base run's ``RunConfig``
with the candidate's fields (docs/tuner.md).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from tuner.candidate import Candidate
from tuner.search_space import SearchSpace, trial_clients


def trained_as(candidate: Candidate) -> tuple[str, str]:
    """(method, top-k mode) as far as training can tell them apart: FLoSS sending every entry
    both ways is dense LoRA, and the top-k mode only matters when something is cut."""
    dense = candidate.d_down == 1.0 and candidate.d_up == 1.0
    if candidate.method == "floss" and dense:
        return "dense", "global"
    return candidate.method, candidate.topk if candidate.method == "floss" else "global"


def candidate_key(candidate: Candidate, lrs: dict[str, float]) -> str:
    """A string that is equal for two trials that would train the same thing."""
    method, topk = trained_as(candidate)
    parts = [method, topk, f"r{candidate.rank}"]
    parts += [f"{candidate.d_down:.12g}", f"{candidate.d_up:.12g}"]
    if candidate.keep_rate is not None:
        parts.append(f"keep={candidate.keep_rate:.12g}")
    if (candidate.precision_down, candidate.precision_up) != ("fp32", "fp32"):
        parts.append(f"values={candidate.precision_down}/{candidate.precision_up}")
    if candidate.round_policy:  # a fleet: the policies change what is trained
        deadline = "" if candidate.deadline is None else f"@{candidate.deadline:.12g}s"
        parts.append(f"fleet={candidate.round_policy}/{candidate.density_policy}{deadline}")
    parts += [f"{k}={v:.6g}" for k, v in sorted(lrs.items())]
    return "|".join(parts)


def trained_key(space: SearchSpace, candidate: Candidate, lrs: dict[str, float]) -> str:
    """``candidate_key`` of what ``candidate``'s trial trains: configurations that settle
    identically (``SearchSpace.settles_as``: a deadline that binds no client, say, at the
    space's trial clients per round) share one key, so only the first to run trains and the
    other is its duplicate."""
    return candidate_key(space.settles_as(candidate), lrs)


def method_fields(candidate: Candidate) -> dict[str, Any]:
    """The RunConfig fields a candidate sets (a saved config holds what its method uses)."""
    out: dict[str, Any] = {
        "method": candidate.method,
        "topk": candidate.topk,
        "rank": candidate.rank,
        "d_down": candidate.d_down,
        "d_up": candidate.d_up,
    }
    if candidate.keep_rate is not None:
        out["keep_rate"] = candidate.keep_rate
    if candidate.round_policy:  # a fleet run: the candidate's policies (the fleet is the base's)
        out["round_policy"] = candidate.round_policy
        out["density_policy"] = candidate.density_policy
        out["deadline_seconds"] = candidate.deadline
    return out


def precision_fields(base: Any, candidate: Candidate) -> dict[str, Any]:
    """precision_down/precision_up when the candidate's differ from the base run's (a searched
    bit width); nothing otherwise, so an unsearched config stays as the base wrote it."""
    wire = (candidate.precision_down, candidate.precision_up)
    if wire == getattr(base, "wire_precisions", ("fp32", "fp32")):
        return {}
    return {"precision_down": wire[0], "precision_up": wire[1]}


def trial_config(
    base: Any,
    candidate: Candidate,
    *,
    lrs: dict[str, float],
    clients_per_round: int | None,
) -> Any:
    """The RunConfig a trial trains: the base config with the candidate and the trial rounds.
    It evaluates only the fidelity checkpoints (passed as ``eval_rounds``) and the last round;
    ``clients_per_round``: ``--trial-clients-per-round`` (``trial_clients``)."""
    changes: dict[str, Any] = {
        **method_fields(candidate),
        **precision_fields(base, candidate),
        "rounds": candidate.rounds,
        "eval_every": 0,
        "checkpoint_every": 0,  # trials keep no files; their records go to the study
        **lrs,
    }
    if clients_per_round is not None:
        changes["clients_per_round"] = trial_clients(clients_per_round, base.clients_per_round)
    return replace(base, **changes)


def full_config(base: Any, candidate: Candidate, *, lrs: dict[str, float]) -> Any:
    """The RunConfig of the full training run (full budget rounds, the base eval schedule)."""
    return replace(
        base,
        **method_fields(candidate),
        **precision_fields(base, candidate),
        rounds=candidate.full_rounds,
        **lrs,
    )
