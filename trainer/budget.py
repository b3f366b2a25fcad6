"""``RunConfig.budget``: the rounds a budget buys, from planner.schedule's seeded prices.

The run's rounds are the longest prefix of ``planner.schedule.price_rounds`` (the very bytes and
simulated seconds the trainer will record, round by round) that stays within the budget, capped
by ``max_rounds``; they are computed once the model is wrapped (n is known) and before round 1,
and the resolved count is written into the config the run saves, so ``--resume`` continues the
same run. ``N-dense-rounds`` counts in the dense reference round: dense LoRA at ``ref_rank`` on
the same model and head, dense-encoded fp32 values whatever the run's encoding or precision,
priced as floss-plan prices it (``planner.afford.dense_reference_round``; on a fleet, the
mean of its first seeded dense rounds, ``planner.fleet.dense_reference_seconds``). n at the reference
rank is measured on the real wrapped model, as the tuner sizes adapters.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from itertools import islice
from typing import Any

from planner.afford import rounds_within_budget
from planner.budget import BUDGET_RTOL, parse_budget
from planner.limits import check_derived
from planner.method_spec import SRD_METHODS, MethodSpec, wire_spec
from planner.network import NetworkProfile
from planner.pricing import Population
from planner.schedule import RoundPrice
from trainer.config import RunConfig
from trainer.errors import TrainerError


def srd_pairs(slices: Sequence[Any]) -> tuple[tuple[int, int], ...]:
    """(entries of A, of B) of every LoRA pair among P's slices (PEFT names lora_A, lora_B)."""
    size = {s.name: s.stop - s.start for s in slices}
    return tuple(
        (size[name], size[name.replace("lora_A", "lora_B")])
        for name in size
        if "lora_A" in name and name.replace("lora_A", "lora_B") in size
    )


def method_spec(
    config: RunConfig,
    *,
    n: int,
    tensor_sizes: tuple[int, ...] = (),
    pairs: tuple[tuple[int, int], ...] = (),
) -> MethodSpec:
    """What ``config``'s method sends for an n-entry adapter (per-tensor top-k needs the sizes
    of P's tensors in order; fedsrd its LoRA pairs' sizes, ``srd_pairs``)."""
    d_down, d_up = config.effective_densities  # sparseadapter: (d_up, d_up), its mask density
    return wire_spec(
        config.method, n, encoding=config.encoding, precision=config.precision,
        precisions=config.wire_precisions, d_down=d_down, d_up=d_up,
        keep_rate=config.keep_rate, floor=config.lth_floor,
        tensor_sizes=tensor_sizes if config.topk == "per-tensor" else (),
        srd_pairs=pairs if config.method in SRD_METHODS else (),
        srd_base=config.srd_base, srd_upper=config.srd_upper,
        srd_coeff=config.srd_coeff, srd_mask_rate=config.srd_mask_rate,
    )  # fmt: skip


def reference_adapter_size(config: RunConfig, base_model: Any) -> int:
    """n at ``ref_rank`` for dense LoRA (A and B trainable) on the same model, targets and head:
    the trainable entries of the wrapped model, measured."""
    from trainer.modeling import wrap_lora

    model = wrap_lora(base_model, config.sized_as("dense", config.ref_rank))
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def run_population(config: RunConfig, *, network: NetworkProfile, num_clients: int) -> Population:
    """Where ``config``'s rounds happen: its network (or fleet), seed, clients and compute."""
    return Population.of(
        config,
        network=network,
        fleet=config.fleet_setup(),
        seed=config.seed,
        num_clients=num_clients,
    )


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
    pairs: tuple[tuple[int, int], ...] = (),
    reference_n: int,
    num_clients: int,
    network: NetworkProfile,
) -> BudgetRounds:
    """The rounds of ``config`` (its method, seed, clients) that fit ``config.budget``."""
    if config.budget is None:
        raise TrainerError("budget_rounds needs config.budget.")
    budget = parse_budget(config.budget)
    population = run_population(config, network=network, num_clients=num_clients)
    ref_n = reference_n if budget.kind == "dense-rounds" else None
    amount = population.resolve(budget, reference_n=reference_n)
    budget_seconds, budget_bytes = amount.seconds, amount.bytes
    if budget_seconds is not None:  # a derived number: finite and > 0 before any round
        try:
            check_derived(
                budget_seconds,
                f"budget {config.budget} in seconds",
                hint="the links' numbers make it vanish or overflow; check them",
            )
        except ValueError as exc:
            raise TrainerError(str(exc)) from None
    spec = method_spec(config, n=n, tensor_sizes=tensor_sizes, pairs=pairs)
    prices = population.prices(spec)
    fit = rounds_within_budget(
        prices,
        budget_seconds=budget_seconds,
        budget_bytes=budget_bytes,
        max_rounds=config.max_rounds,
    )
    return BudgetRounds(
        rounds=fit, budget_seconds=budget_seconds, budget_bytes=budget_bytes, reference_n=ref_n
    )


def adapter_budget_rounds(
    config: RunConfig,
    base_model: Any,
    adapter: Any,
    *,
    num_clients: int,
    network: NetworkProfile,
) -> BudgetRounds:
    """``budget_rounds`` for a wrapped adapter (a ``trainer.flat.FlatAdapter``): its n, its
    tensors' sizes and LoRA pairs; the dense reference round's n is the adapter's own when the
    run is dense LoRA's shape at ``ref_rank`` (ffa's P lacks A), else measured on ``base_model``."""
    same = config.rank == config.ref_rank and config.method != "ffa"
    ref_n = adapter.n if same else reference_adapter_size(config, base_model)
    return budget_rounds(
        config,
        n=adapter.n,
        tensor_sizes=tuple(s.stop - s.start for s in adapter.slices),
        pairs=srd_pairs(adapter.slices),
        reference_n=ref_n,
        num_clients=num_clients,
        network=network,
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
    got = adapter_budget_rounds(
        config, workload.base_model, adapter, num_clients=num_clients, network=network
    )
    if not got.rounds:
        raise TrainerError(
            f"budget {config.budget!r} buys no round of this run (n = {adapter.n:,} entries, "
            f"method {config.method}); raise it or lower rank/densities."
        )
    if log is not None:
        cap = f", capped at max_rounds={config.max_rounds}" if config.max_rounds else ""
        if config.method in SRD_METHODS:
            cap += (
                f"; predicted: fedsrd stops on the bytes it actually sends, "
                f"at most {srd_round_cap(config, len(got.rounds))} rounds"
            )
        log(got.describe(config.budget) + cap)
    if config.method in SRD_METHODS:
        return replace(config, rounds=srd_round_cap(config, len(got.rounds)))
    return replace(config, rounds=len(got.rounds))


SRD_ROUND_CAP = 4  # a fedsrd run under a budget plays at most this times its predicted rounds


def srd_round_cap(config: RunConfig, predicted: int) -> int:
    """The most rounds a fedsrd run under a budget may play: SRD_ROUND_CAP x the predicted
    rounds, or max_rounds when set."""
    return config.max_rounds or SRD_ROUND_CAP * predicted


@dataclass(frozen=True, kw_only=True)
class SpendGuard:
    """A budget enforced on what a run actually sent (fedsrd's uploads are data-dependent):
    round r + 1 is played only while the spend recorded after round r plus round r + 1's
    predicted cost stays within the budget (seconds with ``BUDGET_RTOL``, bytes exactly)."""

    prices: list[RoundPrice]  # predicted, round 1 .. the cap
    budget_seconds: float | None
    budget_bytes: int | None

    def next_fits(self, cum_bytes: int, cum_seconds: float, round_: int) -> bool:
        if round_ >= len(self.prices):
            return False
        nxt = self.prices[round_]
        if self.budget_bytes is not None:
            return cum_bytes + nxt.bytes_total <= self.budget_bytes
        assert self.budget_seconds is not None
        return cum_seconds + nxt.seconds <= self.budget_seconds * (1 + BUDGET_RTOL)

    def describe(self, rounds: int, cum_bytes: int) -> str:
        """Predicted against actual bytes over the rounds played."""
        predicted = sum(p.bytes_total for p in self.prices[:rounds])
        error = (cum_bytes - predicted) / predicted if predicted else 0.0
        return (
            f"budget spent on actual bytes: {rounds} rounds, {cum_bytes:,} bytes sent, "
            f"{predicted:,} predicted for those rounds ({error:+.1%})"
        )


def spend_guard(
    config: RunConfig,
    workload: Any,
    adapter: Any,
    *,
    num_clients: int,
    network: NetworkProfile,
) -> SpendGuard | None:
    """The guard of a fedsrd run with a budget (``config.rounds`` already its cap); None for
    every other method, whose prices are exact."""
    if config.budget is None or config.method not in SRD_METHODS:
        return None
    got = adapter_budget_rounds(
        config, workload.base_model, adapter, num_clients=num_clients, network=network
    )
    spec = method_spec(config, n=adapter.n, pairs=srd_pairs(adapter.slices))
    population = run_population(config, network=network, num_clients=num_clients)
    prices = list(islice(population.prices(spec), config.rounds))
    return SpendGuard(
        prices=prices, budget_seconds=got.budget_seconds, budget_bytes=got.budget_bytes
    )


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
    return adapter_budget_rounds(
        config,
        workload.base_model,
        adapter,
        num_clients=len(workload.client_rows(config)),
        network=config.network_profile(),
    ).rounds
