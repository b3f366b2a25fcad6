"""A fake, millisecond trainer with the shape of trainer.run.train, for driving the tuner logic.

Its accuracy is a known function of (rank, d_down, d_up) and of the budget fraction spent, so
tests know which configurations are good and what the pruner should cut.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any

from planner.budget import parse_budget
from planner.plan import PlanSettings
from planner.profiles import load_model, load_network
from tuner.space import SearchSpace, build_space


@dataclass(frozen=True, kw_only=True)
class FakeConfig:
    method: str = "floss"
    rank: int = 16
    d_down: float = 1.0
    d_up: float = 1.0
    rounds: int = 10
    eval_every: int = 1
    checkpoint_every: int = 0
    clients_per_round: int = 10
    client_lr: float = 0.01
    server_lr: float = 0.001
    lora_alpha: int = 16

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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FakeResult:
    records: list[FakeRecord]
    final_val_accuracy: float | None
    final_val_loss: float | None


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


def small_space(budget: str = "50-dense-rounds", scale: float = 0.5) -> SearchSpace:
    return build_space(plan_settings(budget), budget_scale=scale)


class FakeTrain:
    """Callable like trainer.run.train; counts calls; optional sleep per round; may diverge."""

    def __init__(
        self,
        space: SearchSpace,
        *,
        sleep: float = 0.0,
        diverge_rank: int | None = None,
        interrupt_round: int | None = None,
        steps_per_client: int = 2,
    ) -> None:
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
    ) -> FakeResult:
        self.calls.append(config)
        cand = self.space.lookup(config.rank, config.d_down, config.d_up)
        assert cand is not None, f"trained an infeasible config {config}"
        records: list[FakeRecord] = []
        q = quality(config)
        for r in range(1, config.rounds + 1):
            if self.sleep:
                time.sleep(self.sleep)
            self.rounds_run += 1
            evaluated = r % config.eval_every == 0 or r == config.rounds
            frac = r / config.rounds
            acc = q * (1 - 0.5 * math.exp(-4 * frac)) if evaluated else None
            rec = FakeRecord(
                round=r,
                cum_bytes=r * cand.bytes_per_round,
                cum_sim_seconds=r * cand.seconds_per_round,
                val_loss=None if acc is None else 1 - acc,
                val_accuracy=acc,
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
        return FakeResult(records, last.val_accuracy, last.val_loss)
