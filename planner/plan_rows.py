"""Every configuration of a plan's grids priced into a ``PlanRow``: what one round costs and
how many rounds the budget buys.

floss, dense and ffa cost the same every round (``round_cost``, the planner's one cost function:
rounds = floor(budget / cost)); sparseadapter and adapterlth walk their seeded mask schedule, and
fedsrd/fedsrd-e their catch-up downloads (``planner.afford.afford``), so their per-round columns
are means. The dense reference round (``dense_round_cost``) is what an ``N-dense-rounds`` budget
counts in. The grids include the thesis heuristic pairs d_up = d_down / S (``heuristic_pairs``).
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any, NamedTuple

from planner.afford import Afforded, afford
from planner.budget import rounds_affordable
from planner.encoding import (
    information_bound_bytes,
    kept_entries,
    resolve_encoding,
    values_bytes,
)
from planner.method_spec import MASK_METHODS, METHODS, SRD_METHODS, MethodSpec, wire_spec
from planner.network import fleet_round_seconds, transfer_seconds
from planner.parse import density_key
from planner.plan_types import PlanRow, PlanSettings, RoundCost, heuristic_pairs


def round_cost(
    *,
    n: int,
    d_down: float,
    d_up: float,
    settings: PlanSettings,
    precisions: tuple[str, str] | None = None,
) -> RoundCost:
    """Bytes and seconds of one round for an n-entry adapter (the planner's one cost function);
    ``precisions`` = (download, upload), default the primary pair."""
    k_down = kept_entries(n, d_down)
    k_up = kept_entries(n, d_up)
    p_down, p_up = precisions or settings.precision_pairs[0]
    enc = settings.encoding
    enc_down, b_down = resolve_encoding(n, k_down, encoding=enc, precision=p_down)
    enc_up, b_up = resolve_encoding(n, k_up, encoding=enc, precision=p_up)
    net = settings.network
    return RoundCost(
        n=n,
        k_down=k_down,
        k_up=k_up,
        bytes_down=b_down,
        bytes_up=b_up,
        encoding_down=enc_down,
        encoding_up=enc_up,
        bound_down=information_bound_bytes(n, k_down, precision=p_down),
        bound_up=information_bound_bytes(n, k_up, precision=p_up),
        seconds_down=transfer_seconds(b_down, net.down_mbps),
        seconds_up=transfer_seconds(b_up, net.up_mbps),
        seconds_per_round=fleet_round_seconds(
            bytes_down=b_down,
            bytes_up=b_up,
            network=net,
            clients_per_round=settings.clients_per_round,
            compute_seconds=settings.compute_seconds,
        ),
        bytes_per_round=settings.clients_per_round * (b_down + b_up),
    )


def adapter_size(settings: PlanSettings, rank: int, *, method: str = "floss") -> int:
    """n(r) as the method trains it (ffa: A frozen, so B and the head only)."""
    return settings.model.adapter_params(
        rank,
        num_labels=settings.num_labels,
        head_params=settings.head_params,
        freeze_a=method == "ffa",
    )


def dense_round_cost(settings: PlanSettings) -> RoundCost:
    """The dense reference round: dense LoRA at ``ref_rank``, always dense-encoded fp32 values,
    whatever encoding or precision the plan forces (the budget must not move with them)."""
    from dataclasses import replace

    return round_cost(
        n=adapter_size(settings, settings.ref_rank),
        d_down=1.0,
        d_up=1.0,
        settings=replace(
            settings, encoding="dense", precision="fp32", precision_down=(), precision_up=()
        ),
    )


def uniform_rounds(
    settings: PlanSettings, cost: RoundCost, budget_seconds: float | None, budget_bytes: int | None
) -> int:
    if budget_seconds is not None:
        rounds = rounds_affordable(
            budget_amount=budget_seconds, cost_per_round=cost.seconds_per_round
        )
    else:
        rounds = (budget_bytes or 0) // cost.bytes_per_round  # integers: exact
    if settings.max_rounds is not None:
        rounds = min(rounds, settings.max_rounds)
    return rounds


class RowConfig(NamedTuple):
    """One configuration a plan prices into a row: the method at a rank (n entries as trained),
    its (d_down, d_up) and its (download, upload) value precisions."""

    method: str
    rank: int
    n: int
    d_down: float
    d_up: float
    precisions: tuple[str, str]


def _uniform_row(
    settings: PlanSettings, config: RowConfig, budget: tuple[float | None, int | None]
) -> PlanRow | None:
    """floss, dense or ffa: every round costs the same, so rounds = floor(budget / cost)."""
    _, _, n, d_down, d_up, precisions = config
    cost = round_cost(n=n, d_down=d_down, d_up=d_up, settings=settings, precisions=precisions)
    rounds = uniform_rounds(settings, cost, *budget)
    if rounds < settings.min_rounds:
        return None
    return _row(
        config,
        d_down=d_down,
        d_up=d_up,
        k_down=cost.k_down,
        k_up=cost.k_up,
        bytes_down=cost.bytes_down,
        bytes_up=cost.bytes_up,
        encoding_down=cost.encoding_down,
        encoding_up=cost.encoding_up,
        bound_bytes_down=cost.bound_down,
        bound_bytes_up=cost.bound_up,
        seconds_down=cost.seconds_down,
        seconds_up=cost.seconds_up,
        seconds_per_round=cost.seconds_per_round,
        bytes_per_round=cost.bytes_per_round,
        rounds=rounds,
        total_bytes=rounds * cost.bytes_per_round,
        total_seconds=rounds * cost.seconds_per_round,
    )


def _row(config: RowConfig, *, d_down: float, d_up: float, **columns: Any) -> PlanRow:
    """The row of ``config`` at the densities it is shown with, the priced ``columns`` beside."""
    return PlanRow(
        method=config.method,
        rank=config.rank,
        d_down=d_down,
        d_up=d_up,
        n=config.n,
        precision_down=config.precisions[0],
        precision_up=config.precisions[1],
        **columns,
    )


def _afford_within(
    settings: PlanSettings,
    spec: MethodSpec,
    budget: tuple[float | None, int | None],
) -> Afforded | None:
    """What the budget buys a method with a seeded schedule on the settings' network and
    population (``planner.afford.afford``); None below ``min_rounds``."""
    got = afford(
        spec,
        network=settings.network,
        seed=settings.seed,
        num_clients=settings.num_clients,
        clients_per_round=settings.clients_per_round,
        compute_seconds=settings.compute_seconds,
        budget_seconds=budget[0],
        budget_bytes=budget[1],
        max_rounds=settings.max_rounds,
    )
    return None if got.rounds < settings.min_rounds else got


def _schedule_row(
    settings: PlanSettings, config: RowConfig, budget: tuple[float | None, int | None]
) -> PlanRow | None:
    """sparseadapter or adapterlth: the seeded schedule's rounds; per-round columns are means
    (the mask density is d_up: sparseadapter's (d_up, d_up), adapterlth's 1 at round 1)."""
    method, _, n, _, d_up, precisions = config
    p_down, p_up = precisions
    density = d_up
    spec = wire_spec(
        method, n, encoding=settings.encoding, precision=settings.precision, precisions=precisions,
        d_down=density, d_up=density, keep_rate=settings.keep_rate, floor=settings.floor,
    )  # fmt: skip
    got = _afford_within(settings, spec, budget)
    if got is None:
        return None
    k = max(1, round(got.mean_density * n))
    full_encoding = resolve_encoding(n, k, encoding=settings.encoding, precision=p_down)[0]
    lth = method == "adapterlth"
    return _mean_row(
        settings,
        got,
        config,
        d_down=k / n if lth else density,
        d_up=k / n if lth else density,
        k_down=k,
        k_up=k,
        encodings=(f"values/{full_encoding}", "values"),
        # both ends hold the mask: values carry all the information (k * v)
        bounds=(float(values_bytes(k, p_down)), float(values_bytes(k, p_up))),
        keep_rate=settings.keep_rate if lth else None,
        floor=settings.floor if lth else None,
    )


def srd_pairs(settings: PlanSettings, rank: int) -> tuple[tuple[int, int], ...]:
    """(entries of A, of B) of every LoRA pair the model profile targets at ``rank`` (a raw
    ``--lora-params`` profile has no modules: () prices P as one pair of halves)."""
    return tuple(
        (rank * m.d_in, rank * m.d_out) for m in settings.model.modules for _ in range(m.count)
    )


def _srd_row(
    settings: PlanSettings, config: RowConfig, budget: tuple[float | None, int | None]
) -> PlanRow | None:
    """fedsrd or fedsrd-e at the authors' defaults: the seeded schedule's rounds (catch-up
    downloads), uploads at the rule's expected density (``planner.srd``); columns are means.
    The grid's (d_down, d_up) are (1, 1) here: the rule decides the densities."""
    method, rank, n, _, _, precisions = config
    p_down, p_up = precisions
    spec = wire_spec(
        method, n, encoding=settings.encoding, precision=settings.precision, precisions=precisions,
        srd_pairs=srd_pairs(settings, rank),
    )  # fmt: skip
    got = _afford_within(settings, spec, budget)
    if got is None:
        return None
    k_down = max(1, round(got.mean_density * n))
    k_up = spec.srd_upload_entries()
    enc_up, _ = resolve_encoding(n, k_up, encoding=settings.encoding, precision=p_up)
    return _mean_row(
        settings,
        got,
        config,
        d_down=k_down / n,
        d_up=k_up / n,
        k_down=k_down,
        k_up=k_up,
        encodings=("catch-up", enc_up),  # down: the deltas a client missed, or a dense fp32 P
        bounds=(
            information_bound_bytes(n, k_down, precision=p_down),
            information_bound_bytes(n, k_up, precision=p_up),
        ),
    )


def _mean_row(
    settings: PlanSettings,
    got: Afforded,
    config: RowConfig,
    *,
    d_down: float,
    d_up: float,
    k_down: int,
    k_up: int,
    encodings: tuple[str, str],
    bounds: tuple[float, float],
    keep_rate: float | None = None,
    floor: float | None = None,
) -> PlanRow:
    """The row of a method priced on its seeded schedule: its per-round columns are the means
    of what the budget bought (``got``); (download, upload) pairs for the encodings and bounds."""
    net = settings.network
    bytes_down, bytes_up = round(got.mean_bytes_down), round(got.mean_bytes_up)
    return _row(
        config,
        d_down=d_down,
        d_up=d_up,
        k_down=k_down,
        k_up=k_up,
        bytes_down=bytes_down,
        bytes_up=bytes_up,
        encoding_down=encodings[0],
        encoding_up=encodings[1],
        bound_bytes_down=bounds[0],
        bound_bytes_up=bounds[1],
        seconds_down=transfer_seconds(bytes_down, net.down_mbps),
        seconds_up=transfer_seconds(bytes_up, net.up_mbps),
        seconds_per_round=got.mean_seconds,
        bytes_per_round=round(got.total_bytes / max(got.rounds, 1)),
        rounds=got.rounds,
        total_bytes=got.total_bytes,
        total_seconds=got.total_seconds,
        keep_rate=keep_rate,
        floor=floor,
    )


RowKey = tuple[str, int, Fraction, Fraction, str, str]


def row_key(r: PlanRow) -> RowKey:
    return (
        r.method,
        r.rank,
        density_key(r.d_down),
        density_key(r.d_up),
        r.precision_down,
        r.precision_up,
    )


def method_configs(settings: PlanSettings, method: str) -> list[tuple[int, float, float]]:
    """(rank, d_down, d_up) of every configuration of ``method`` the plan prices, in its order:
    floss on its grids with the reference rank's baseline and heuristic pairs, sparseadapter at
    each upload density, every other method at density 1."""
    ranks = sorted({*settings.ranks, settings.ref_rank}, reverse=True)
    if method == "floss":
        heuristic = heuristic_pairs(settings)
        values = {
            density_key(d): d
            for d in (
                *settings.d_down,
                *settings.d_up,
                1.0,
                *(x for p in heuristic for x in p),
            )
        }
        extra = {(settings.ref_rank, density_key(dd), density_key(du)) for dd, du in heuristic}
        extra.add((settings.ref_rank, density_key(1.0), density_key(1.0)))
        configs = {
            (r, density_key(dd), density_key(du))
            for r in settings.ranks
            for dd in settings.d_down
            for du in settings.d_up
        } | extra
        return [(rank, values[kd], values[ku]) for rank, kd, ku in sorted(configs, reverse=True)]
    if method == "sparseadapter":
        densities = sorted({density_key(d): d for d in settings.d_up}.values(), reverse=True)
        return [(rank, d, d) for rank in ranks for d in densities]
    return [(rank, 1.0, 1.0) for rank in ranks]


def method_rows(
    settings: PlanSettings, budget_seconds: float | None, budget_bytes: int | None
) -> tuple[list[PlanRow], int]:
    """Every feasible row of every requested method, and how many configs were infeasible."""
    rows: list[PlanRow] = []
    infeasible = 0
    sizes: dict[tuple[int, str], int] = {}

    def size(rank: int, method: str) -> int:
        key = (rank, "ffa" if method == "ffa" else "lora")
        if key not in sizes:
            sizes[key] = adapter_size(settings, rank, method=method)
        return sizes[key]

    budget = (budget_seconds, budget_bytes)
    for method in (m for m in METHODS if m in settings.methods):
        price = (
            _schedule_row
            if method in MASK_METHODS
            else _srd_row
            if method in SRD_METHODS
            else _uniform_row  # floss, dense, ffa
        )
        found = [
            price(settings, RowConfig(method, rank, size(rank, method), dd, du, pair), budget)
            for rank, dd, du in method_configs(settings, method)
            for pair in settings.precision_pairs
        ]
        infeasible += sum(r is None for r in found)
        rows += [r for r in found if r is not None]
    return rows, infeasible
