"""A fake, millisecond trainer with the shape of trainer.run.train, for driving the tuner logic.

Its accuracy is a known function of (rank, d_down, d_up) and of the budget fraction spent, so
tests know which configurations are good and what the pruner should cut.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass
from typing import Any

from planner.budget import parse_budget
from planner.plan_types import PlanSettings
from planner.profiles import load_model, load_network
from tuner.build import build_space
from tuner.grid import MethodGrid
from tuner.search_space import SearchSpace


@dataclass(frozen=True, kw_only=True)
class FakeConfig:
    method: str = "floss"
    topk: str = "global"
    rank: int = 16
    d_down: float = 1.0
    d_up: float = 1.0
    keep_rate: float = 0.98
    lth_floor: float | None = None
    rounds: int = 10
    eval_every: int = 1
    checkpoint_every: int = 0
    clients_per_round: int = 10
    client_lr: float = 0.01
    server_lr: float = 0.001
    lora_alpha: int = 16
    precision: str = "fp32"
    precision_down: str | None = None
    precision_up: str | None = None
    fleet: str | None = None  # fleets: the base's; the policies are the candidate's
    round_policy: str = "sync"
    density_policy: str = "uniform"
    deadline_seconds: float | None = None

    @property
    def wire_precisions(self) -> tuple[str, str]:
        return (self.precision_down or self.precision, self.precision_up or self.precision)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FakeRecord:
    round: int
    cum_bytes: int
    cum_sim_seconds: float
    val_loss: float | None
    val_accuracy: float | None
    client_steps: int
    bytes_total: int = 0
    val_loss_server: float | None = None
    val_accuracy_server: float | None = None
    test_loss: float | None = None
    test_accuracy: float | None = None
    test_loss_server: float | None = None
    test_accuracy_server: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FakeResult:
    records: list[FakeRecord]
    final_val_accuracy: float | None
    final_val_loss: float | None
    test_accuracy: float | None = None
    test_accuracy_server: float | None = None
    test_loss: float | None = None
    test_loss_server: float | None = None


class Diverged(ValueError):
    pass


def quality(config: FakeConfig) -> float:
    """Best at rank 8, d_down 1/4, d_up 1/16; falls off in log distance."""
    dist = (
        abs(math.log2(config.rank / 8)) * 0.03
        + abs(math.log2(config.d_down / 0.25)) * 0.04
        + abs(math.log2(config.d_up / 0.0625)) * 0.05
    )
    return max(0.05, 0.9 - dist)


def plan_settings(budget: str = "50-dense-rounds", *, max_rounds: int | None = 40) -> PlanSettings:
    return PlanSettings(
        model=load_model("all-minilm-l6-v2"),
        network=load_network("thesis").with_links(up_slowdown=16),
        budget=parse_budget(budget),
        ranks=(2, 4, 8, 16),
        d_down=(1.0, 0.5, 0.25, 0.125, 0.0625),
        d_up=(1.0, 0.25, 0.0625, 0.015625),
        max_rounds=max_rounds,
    )


def small_space(
    budget: str = "50-dense-rounds", scale: float = 0.5, grid: MethodGrid | None = None
) -> SearchSpace:
    return build_space(plan_settings(budget), budget_scale=scale, grid=grid)


class FakeTrain:
    """Callable like trainer.run.train; counts calls; optional sleep per round; may diverge.

    Rounds cost what planner.schedule prices them at (the space's seeded prices), as in the real
    trainer. It evaluates the rounds of ``eval_every`` and ``eval_rounds`` and the last one: the
    served model (``val_*``) a little below the server model (``val_*_server``). On the last round
    it also reports test metrics, by default equal to validation; ``test_of(validation)`` lets a
    test make them disagree (the tuner must never select on them).
    """

    def __init__(
        self,
        space: SearchSpace,
        *,
        sleep: float = 0.0,
        diverge_rank: int | None = None,
        interrupt_round: int | None = None,
        steps_per_client: int = 2,
        test_of: Callable[[float], float] = lambda acc: acc,
        honour_eval_rounds: bool = True,
    ) -> None:
        self.test_of = test_of
        self.honour_eval_rounds = honour_eval_rounds
        self.eval_rounds_seen: list[tuple[int, ...]] = []
        self.interrupt_round = interrupt_round
        self.space = space
        self.sleep = sleep
        self.diverge_rank = diverge_rank
        self.steps_per_client = steps_per_client
        self.calls: list[FakeConfig] = []
        self.rounds_run = 0

    def __call__(
        self,
        config: FakeConfig,
        *,
        on_round: Any = None,
        progress: bool = True,
        workload: Any = None,
        eval_rounds: Collection[int] | None = None,
    ) -> FakeResult:
        self.calls.append(config)
        self.eval_rounds_seen.append(tuple(sorted(eval_rounds or ())))
        cand = self.space.lookup_config(config)
        assert cand is not None, f"trained an infeasible config {config}"
        extra = set(eval_rounds or ()) if self.honour_eval_rounds else set()
        records: list[FakeRecord] = []
        q = quality(config)
        cum_bytes, cum_seconds = 0, 0.0
        costs = self.space.round_costs(cand, config.rounds)
        for r in range(1, config.rounds + 1):
            if self.sleep:
                time.sleep(self.sleep)
            self.rounds_run += 1
            every = config.eval_every
            last = r == config.rounds
            evaluated = (every > 0 and r % every == 0) or last or r in extra
            frac = r / config.rounds
            server = q * (1 - 0.5 * math.exp(-4 * frac)) if evaluated else None
            acc = None if server is None else server * 0.98
            test = None if acc is None or not last else self.test_of(acc)
            round_bytes, seconds = costs[r - 1]
            cum_bytes += round_bytes
            cum_seconds += seconds
            rec = FakeRecord(
                round=r,
                cum_bytes=cum_bytes,
                cum_sim_seconds=cum_seconds,
                bytes_total=round_bytes,
                val_loss=None if acc is None else 1 - acc,
                val_accuracy=acc,
                val_loss_server=None if server is None else 1 - server,
                val_accuracy_server=server,
                test_accuracy=test,
                test_loss=None if test is None else 1 - test,
                test_accuracy_server=None if test is None else test / 0.98,
                test_loss_server=None if test is None else 1 - test / 0.98,
                client_steps=config.clients_per_round * self.steps_per_client,
            )
            records.append(rec)
            if self.diverge_rank == config.rank and r == 2:
                raise Diverged("loss is nan")
            if r == self.interrupt_round:
                raise KeyboardInterrupt
            if on_round is not None and on_round(rec) is False:
                break
        last = records[-1]
        return FakeResult(
            records,
            last.val_accuracy,
            last.val_loss,
            test_accuracy=last.test_accuracy,
            test_accuracy_server=last.test_accuracy_server,
            test_loss=last.test_loss,
            test_loss_server=last.test_loss_server,
        )
