"""``RunConfig.budget``: the rounds a budget buys, from planner.schedule's seeded prices.

The run's rounds are the longest prefix of ``planner.schedule.price_rounds`` (the very bytes and
simulated seconds the trainer will record, round by round) that stays within the budget, capped
by ``max_rounds``; they are computed once the model is wrapped (n is known) and before round 1,
and the resolved count is written into the config the run saves, so ``--resume`` continues the
same run. ``N-dense-rounds`` counts in the dense reference round: dense LoRA at ``ref_rank`` on
the same model and head, dense-encoded fp32 values whatever the run's encoding or precision,
priced as floss-plan prices it (``planner.schedule.dense_reference_round``; on a fleet, the
mean of its first seeded dense rounds, ``planner.fleet.dense_reference_seconds``). n at the reference
rank is measured on the real wrapped model, as the tuner sizes adapters.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from planner.budget import parse_budget
from planner.fleet import dense_reference_seconds, price_fleet_rounds
from planner.network import NetworkProfile
from planner.schedule import (
    MethodSpec,
    RoundPrice,
    dense_reference_round,
    price_rounds,
    rounds_within_budget,
)
from trainer.config import RunConfig
from trainer.errors import TrainerError


def method_spec(config: RunConfig, *, n: int, tensor_sizes: tuple[int, ...] = ()) -> MethodSpec:
    """What ``config``'s method sends for an n-entry adapter (per-tensor top-k needs the sizes
    of P's tensors in order)."""
    d_down, d_up = config.effective_densities  # sparseadapter: (d_up, d_up), its mask density
    return MethodSpec(
        method=config.method,
        n=n,
        d_down=d_down,
        d_up=d_up,
        keep_rate=config.keep_rate,
        floor=config.lth_floor,
        encoding=config.encoding,
        precision=config.precision,
        precision_down=config.wire_precisions[0],
        precision_up=config.wire_precisions[1],
        tensor_sizes=tensor_sizes if config.topk == "per-tensor" else (),
    )


def reference_adapter_size(config: RunConfig, base_model: Any) -> int:
    """n at ``ref_rank`` for dense LoRA (A and B trainable) on the same model, targets and head:
    the trainable entries of the wrapped model, measured."""
    from trainer.modeling import wrap_lora

    model = wrap_lora(base_model, config.sized_as("dense", config.ref_rank))
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@dataclass(frozen=True, kw_only=True)
class BudgetRounds:
    rounds: list[RoundPrice]  # the rounds that fit, priced
    budget_seconds: float | None
    budget_bytes: int | None
    reference_n: int | None  # n of the dense reference round (N-dense-rounds only)

    def describe(self, text: str) -> str:
        spent_b = sum(p.bytes_total for p in self.rounds)
        spent_s = sum(p.seconds for p in self.rounds)
        if self.budget_bytes is not None:
            of = f"{spent_b:,} of {self.budget_bytes:,} bytes"
        else:
            of = f"{spent_s:,.3f} of {self.budget_seconds:,.3f} simulated s"
        return f"budget {text}: {len(self.rounds)} rounds fit ({of})"


def budget_rounds(
    config: RunConfig,
    *,
    n: int,
    tensor_sizes: tuple[int, ...] = (),
    reference_n: int,
    num_clients: int,
    network: NetworkProfile,
) -> BudgetRounds:
    """The rounds of ``config`` (its method, seed, clients) that fit ``config.budget``."""
    if config.budget is None:
        raise TrainerError("budget_rounds needs config.budget.")
    budget = parse_budget(config.budget)
    budget_seconds: float | None = None
    budget_bytes: int | None = None
    ref_n: int | None = None
    fleet = config.fleet_setup()
    if budget.kind == "dense-rounds":
        ref_n = reference_n
        if fleet is not None:  # the fleet's own dense round (sync, uniform, seeded mean)
            ref_seconds = dense_reference_seconds(
                fleet,
                n=reference_n,
                seed=config.seed,
                num_clients=num_clients,
                clients_per_round=config.clients_per_round,
                compute_seconds=config.compute_seconds,
            )
        else:
            ref_seconds = dense_reference_round(
                n=reference_n,
                network=network,
                clients_per_round=config.clients_per_round,
                compute_seconds=config.compute_seconds,
            ).seconds
        budget_seconds = budget.amount * ref_seconds
    elif budget.kind == "seconds":
        budget_seconds = budget.amount
    else:
        budget_bytes = int(budget.amount)
    spec = method_spec(config, n=n, tensor_sizes=tensor_sizes)
    prices: Iterator[RoundPrice]
    if fleet is not None:
        prices = price_fleet_rounds(
            spec,
            fleet,
            seed=config.seed,
            num_clients=num_clients,
            clients_per_round=config.clients_per_round,
            compute_seconds=config.compute_seconds,
        )
    else:
        prices = price_rounds(
            spec,
            network=network,
            seed=config.seed,
            num_clients=num_clients,
            clients_per_round=config.clients_per_round,
            compute_seconds=config.compute_seconds,
        )
    fit = rounds_within_budget(
        prices,
        budget_seconds=budget_seconds,
        budget_bytes=budget_bytes,
        max_rounds=config.max_rounds,
    )
    return BudgetRounds(
        rounds=fit, budget_seconds=budget_seconds, budget_bytes=budget_bytes, reference_n=ref_n
    )


def resolve_budget_rounds(
    config: RunConfig,
    workload: Any,
    adapter: Any,
    *,
    num_clients: int,
    network: NetworkProfile,
    log: Callable[[str], None] | None = None,
) -> RunConfig:
    """``config`` with ``rounds`` = the rounds its budget buys (the trainer calls this)."""
    assert config.budget is not None
    same = config.rank == config.ref_rank and config.method != "ffa"
    ref_n = adapter.n if same else reference_adapter_size(config, workload.base_model)
    got = budget_rounds(
        config,
        n=adapter.n,
        tensor_sizes=tuple(s.stop - s.start for s in adapter.slices),
        reference_n=ref_n,
        num_clients=num_clients,
        network=network,
    )
    if not got.rounds:
        raise TrainerError(
            f"budget {config.budget!r} buys no round of this run (n = {adapter.n:,} entries, "
            f"method {config.method}); raise it or lower rank/densities."
        )
    if log is not None:
        cap = f", capped at max_rounds={config.max_rounds}" if config.max_rounds else ""
        log(got.describe(config.budget) + cap)
    return replace(config, rounds=len(got.rounds))


def planned_prices(config: RunConfig, workload: Any) -> list[RoundPrice]:
    """The priced rounds ``train(config, workload=workload)`` will run when ``config.budget`` is
    set: the same seeded prices the trainer resolves its rounds from (benches evaluate at budget
    fractions with them)."""
    import torch

    from trainer.flat import FlatAdapter
    from trainer.modeling import wrap_lora

    if config.budget is None:
        raise TrainerError("planned_prices needs config.budget.")
    adapter = FlatAdapter(wrap_lora(workload.base_model, config), torch.device("cpu"))
    same = config.rank == config.ref_rank and config.method != "ffa"
    ref_n = adapter.n if same else reference_adapter_size(config, workload.base_model)
    return budget_rounds(
        config,
        n=adapter.n,
        tensor_sizes=tuple(s.stop - s.start for s in adapter.slices),
        reference_n=ref_n,
        num_clients=len(workload.client_rows(config)),
        network=config.network_profile(),
    ).rounds
