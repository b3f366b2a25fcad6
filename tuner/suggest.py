"""How an Optuna trial picks a candidate (``suggest``).

``method`` (when several) and ``rank`` are categorical; FLoSS draws ``topk`` (when both modes are
searched), ``d_down`` and ``d_up``; SparseAdapter draws ``d_up`` only (its mask density: what
each client uploads, so TPE models one upload-density axis across both sparse methods);
AdapterLTH draws ``keep_rate`` (when several); dense and FFA draw nothing more. Densities are
log-uniform floats snapped to the nearest grid density (log space), so TPE learns that
neighbouring densities behave alike; a point the budget cannot afford is projected to the nearest
feasible candidate of that method and rank (ties: the cheaper). Every choice list is fixed per
study (RDB storages refuse a "dynamic value space"). Value precisions and, on a fleet,
``round_policy``, ``density_policy`` (FLoSS) and ``deadline`` (where the point uses one) are
categoricals, each only when its list has more than one entry.
"""

from __future__ import annotations

from typing import Any, Protocol

from tuner.candidate import Candidate
from tuner.grid import SPARSE_UP, needs_deadline
from tuner.search_space import SearchSpace


class SuggestingTrial(Protocol):
    """The part of ``optuna.Trial`` that ``suggest`` uses (a fake can stand in for it in tests)."""

    def suggest_categorical(self, name: str, choices: Any) -> Any: ...

    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False) -> float: ...


def suggest(trial: SuggestingTrial, space: SearchSpace) -> Candidate:
    """Sample a method and its parameters in the trial; return the feasible candidate it lands
    on (see the module docstring)."""
    params: dict[str, Any] = {}
    methods = space.methods
    if len(methods) > 1:
        params["method"] = trial.suggest_categorical("method", methods)
    method = params.get("method", methods[0])
    params["rank"] = int(trial.suggest_categorical("rank", space.ranks))
    if method == "floss":
        if len(space.topks) > 1:
            params["topk"] = trial.suggest_categorical("topk", space.topks)
        params["d_down"] = trial.suggest_float("d_down", *space.density_range("d_down"), log=True)
    if method in SPARSE_UP:
        params["d_up"] = trial.suggest_float("d_up", *space.density_range("d_up"), log=True)
    if method == "adapterlth" and len(space.keep_rates) > 1:
        params["keep_rate"] = trial.suggest_categorical("keep_rate", space.keep_rates)
    for name in ("precision_down", "precision_up"):
        choices = space.precisions_down if name == "precision_down" else space.precisions_up
        if len(choices) > 1:  # a static choice list: the grid's, fixed per study
            params[name] = trial.suggest_categorical(name, choices)
    if space.fleet:  # static lists too; the deadline only where the policies use one
        if len(space.round_policies) > 1:
            params["round_policy"] = trial.suggest_categorical("round_policy", space.round_policies)
        if method == "floss" and len(space.density_policies) > 1:
            params["density_policy"] = trial.suggest_categorical(
                "density_policy", space.density_policies
            )
        rp, dp, _ = space.policy_for(method, params)
        if needs_deadline(rp, dp) and len(space.deadlines) > 1:
            params["deadline"] = trial.suggest_categorical("deadline", space.deadlines)
    return space.candidate_for(params)
