"""Plans over HTTP: the planner's own functions, one source of truth.

``plan_body`` runs ``planner.settings.build_settings`` (the CLI's precedence) and ``planner.plan.plan``
and answers with ``planner.render.row_dicts``: the rows of ``floss-plan --format json``. A plan
is a pure function of its settings, so rendered answers are kept in a small LRU (by the
request's canonical JSON; requests naming files are not kept, a file may change).

With ``fleet`` set the plan is ``floss-plan --fleet``'s (``planner.fleet_request.fleet_plan``: every
configuration at once on the fleet's links, the short list per policy pair) and its rows are
``floss-plan --fleet --format json``'s; ``plan_seconds`` says how long computing it took (a cached
answer is the same bytes, so it says how long the first one took).

Round plans (the next round of a running federation) are in ``service.round_plans``.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

from planner.errors import PlanError
from planner.plan import plan
from planner.render import header_lines, row_dicts
from service.errors import FieldError, field_of_message
from service.paths import looks_like_path
from service.round_plan_schemas import RunSpec
from service.schemas import PlanRequest, given_fields


class PlanCache:
    """Rendered plan answers by canonical request; thread-safe (routes run in a pool)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> bytes | None:
        with self._lock:
            body = self._items.get(key)
            if body is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return body

    def put(self, key: str, body: bytes) -> None:
        if self.size <= 0:
            return
        with self._lock:
            self._items[key] = body
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


def check_profile_name(value: str, *, kind: str, field: str) -> None:
    from planner.profiles import list_profiles

    names = {e.name for e in list_profiles(kind)} | {e.path.stem for e in list_profiles(kind)}  # type: ignore[arg-type]
    if value not in names:
        raise FieldError(
            field,
            f"unknown {kind} profile {value!r}",
            f"one of {', '.join(sorted(names))}, or a file under --data-root",
        )


def resolve_profiles(req: PlanRequest, data_root: Path | None) -> tuple[str, str]:
    """(profile, model) as the planner should read them: names checked against the profile
    tables, paths confined to the data root."""
    profile, model = req.profile, req.model  # paths: confined and parsed as the request was read
    if not looks_like_path(profile):
        check_profile_name(profile, kind="network", field="profile")
    if not looks_like_path(model) and req.lora_params is None:
        check_profile_name(model, kind="model", field="model")
    return profile, model


def check_options(req: PlanRequest) -> None:
    """No field without effect: ``planner.options``' table, as floss-plan applies it (a fleet
    field without a fleet, tier densities under another density policy, ...)."""
    from planner.errors import UnusedOption
    from planner.options import FLEET
    from planner.settings import check_plan_options

    try:
        check_plan_options(
            given_fields(req),
            fleet=req.fleet,
            round_policy=req.round_policy,
            density_policy=req.density_policy,
            tier_densities=req.tier_densities,
            method=req.method,
            deadline=req.deadline,
            spell=str,
        )
    except UnusedOption as exc:
        if exc.rule.needs == FLEET:
            raise FieldError(exc.name, "needs a fleet", "fleet: a fleet name or file") from None
        raise FieldError(exc.name, f"needs {exc.rule.needs}") from None


def compute_plan(req: PlanRequest, data_root: Path | None) -> Any:
    """The planner's Plan for a request; FieldError naming the field on a bad setting."""
    profile, model = resolve_profiles(req, data_root)
    try:
        return plan(_settings(req, profile, model))
    except PlanError as exc:
        raise FieldError(field_of_message(str(exc), "budget"), str(exc)) from None
    except ValueError as exc:
        raise FieldError(field_of_message(str(exc), "settings"), str(exc)) from None


def _settings(req: PlanRequest, profile: str, model: str) -> Any:
    """``planner.settings.build_settings`` of the request (the CLI's precedence); ValueError."""
    from planner.settings import build_settings

    return build_settings(
        budget=req.budget,
        profile=profile,
        down=req.down,
        up=req.up,
        up_slowdown=req.up_slowdown,
        rtt_ms=req.rtt_ms,
        model=model,
        lora_params=req.lora_params,
        num_labels=req.num_labels,
        head_params=req.head_params,
        ref_rank=req.ref_rank,
        ranks=str(req.ranks),
        d_down=str(req.d_down),
        d_up=str(req.d_up),
        heuristic_d_down=str(req.heuristic_d_down),
        clients_per_round=req.clients_per_round,
        precision=req.precision,
        precision_down=req.precision_down,
        precision_up=req.precision_up,
        encoding=req.encoding,
        compute_seconds=req.compute_seconds,
        min_rounds=req.min_rounds,
        max_rounds=req.max_rounds,
        method=str(req.method),
        num_clients=req.num_clients,
        seed=req.seed,
        keep_rate=req.keep_rate,
        lth_floor=None if req.lth_floor is None else str(req.lth_floor),
    )


def compute_fleet_plan(req: PlanRequest, data_root: Path | None) -> tuple[Any, float]:
    """(``floss-plan --fleet``'s FleetPlan of a request with ``fleet``, seconds it took)."""
    from planner.fleet_plan import MAX_PLAN_CLIENTS
    from planner.fleet_request import NETWORK_ONLY, FleetOptions, fleet_plan

    fleet = req.fleet  # a path: confined and parsed as the request was read
    assert fleet is not None
    if not looks_like_path(fleet):
        check_profile_name(fleet, kind="fleet", field="fleet")
    for name in NETWORK_ONLY:
        if name in req.model_fields_set:
            raise FieldError(name, "does not apply with a fleet: each client has its own link")
    if req.num_clients > MAX_PLAN_CLIENTS:  # before any work
        raise FieldError(
            "num_clients",
            f"a fleet plan draws every client's link: at most {MAX_PLAN_CLIENTS:,} clients",
            f"num_clients <= {MAX_PLAN_CLIENTS:,}",
        )
    _, model = resolve_profiles(req, data_root)
    options = FleetOptions(
        fleet=fleet,
        round_policy=req.round_policy,
        deadline=req.deadline,
        over_selection=req.over_selection,
        density_policy=req.density_policy,
        tier_densities=req.tier_densities,
        density_grid=req.density_grid,
        adapt_down=req.adapt_down,
        max_dropped=req.max_dropped,
    )
    start = time.perf_counter()
    try:
        p = fleet_plan(_settings(req, req.profile, model), options)
    except ValueError as exc:
        raise FieldError(field_of_message(str(exc), "fleet"), str(exc)) from None
    return p, time.perf_counter() - start


def fleet_payload(req: PlanRequest, data_root: Path | None) -> dict[str, Any]:
    """``floss-plan --fleet``'s plan of a request with ``fleet`` (rows as its JSON rows;
    ``rows: recommended``: the short list, in its order)."""
    from planner.render import fleet_header_lines, fleet_row_dict

    p, seconds = compute_fleet_plan(req, data_root)
    if req.rows == "recommended":
        rows = [fleet_row_dict(p.rows[i]) for i in p.short_list]
    else:
        rows = [fleet_row_dict(r) for r in p.rows]
    return {
        "header": fleet_header_lines(p),
        "budget_seconds": p.budget_seconds,
        "budget_bytes": p.budget_bytes,
        "infeasible": 0,
        "feasible": len(p.rows),
        "recommended": len(p.short_list),
        "rows": rows,
        "fleet": p.fleet.name,
        "plan_seconds": round(seconds, 6),
    }


def plan_payload(req: PlanRequest, data_root: Path | None) -> dict[str, Any]:
    check_options(req)
    if req.fleet is not None:
        return fleet_payload(req, data_root)
    p = compute_plan(req, data_root)
    rows = row_dicts(p)
    if req.rows == "recommended":
        rows = [r for r in rows if r["recommended"]]
    return {
        "header": header_lines(p),
        "budget_seconds": p.budget_seconds,
        "budget_bytes": p.budget_bytes,
        "infeasible": p.infeasible,
        "feasible": len(p.rows),
        "recommended": sum(r.recommended for r in p.rows),
        "rows": rows,
    }


def plan_file(req: PlanRequest, data_root: Path | None, *, fmt: str) -> str:
    """The plan as ``floss-plan --format csv|json`` writes it (``--fleet``'s with a fleet):
    every feasible row, whatever ``rows`` says."""
    from planner.render import render_fleet_plan, render_plan

    check_options(req)
    if req.fleet is not None:
        return render_fleet_plan(compute_fleet_plan(req, data_root)[0], fmt=fmt)
    return render_plan(compute_plan(req, data_root), fmt=fmt)


def _cacheable(req: PlanRequest) -> bool:
    named = (req.profile, req.model, req.fleet or "")
    return not any(looks_like_path(v) for v in named)  # a file may change


def cached_plan_body(req: PlanRequest, cache: PlanCache) -> bytes | None:
    """The answer of an earlier identical request, or None (no work done)."""
    return cache.get(req.model_dump_json()) if _cacheable(req) else None


def plan_body(req: PlanRequest, data_root: Path | None, cache: PlanCache) -> bytes:
    """The JSON answer of POST /api/plan, from the cache when the same plan was asked."""
    if (body := cached_plan_body(req, cache)) is not None:
        return body
    body = json.dumps(plan_payload(req, data_root), separators=(",", ":")).encode()
    if _cacheable(req):
        cache.put(req.model_dump_json(), body)
    return body


def run_adapter_size(run: RunSpec, data_root: Path | None) -> int:
    from planner.profiles import load_model

    model_ref = run.model  # a path was confined and parsed as the request was read
    if not looks_like_path(model_ref):
        check_profile_name(model_ref, kind="model", field="run.model")
    try:
        model = load_model(model_ref)
    except ValueError as exc:
        raise FieldError("run.model", str(exc)) from None
    labels = model.num_labels if run.num_labels is None else run.num_labels
    return model.adapter_params(
        run.rank, num_labels=labels, head_params=run.head_params, freeze_a=run.method == "ffa"
    )
