"""The bodies of ``POST /api/round-plan`` (pydantic): the next round's sampled clients and their
measured links, the run they train, and each client's densities, bytes and seconds back.

The fields are checked where they enter, by the same checks as ``POST /api/plan``'s
(``service.schemas``: a bool is not a number, every number within ``planner.limits``' range).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from planner.plan_types import REF_RANK
from planner.profiles import DEFAULT_MODEL
from service.errors import ACCEPTED
from service.paths import ModelProfileRef
from service.schemas import (
    Strict,
    check_density_value,
    check_encoding,
    check_precision,
    unless_none,
)

# a round plan's size: with ids this long, the largest round plan fits the default body limit
# (service.config.DEFAULT_MAX_BODY_BYTES; tests hold the two together)
MAX_ROUND_CLIENTS = 10_000
CLIENT_ID_CHARS = 64


class ClientLink(Strict):
    id: str | int = Field(
        ...,
        description=f"the client's id, echoed back (a string of at most {CLIENT_ID_CHARS} "
        "characters, or an integer)",
    )

    @field_validator("id")
    @classmethod
    def _id(cls, v: str | int) -> str | int:
        if isinstance(v, str) and len(v) > CLIENT_ID_CHARS:
            raise ValueError(f"a client id has at most {CLIENT_ID_CHARS} characters")
        if isinstance(v, int) and not -(2**63) <= v < 2**63:
            raise ValueError("an integer client id must fit in 64 bits")
        return v

    down_mbps: float = Field(..., gt=0, description="measured downlink, Mbps (10^6 bit/s)")
    up_mbps: float = Field(..., gt=0, description="measured uplink, Mbps (10^6 bit/s)")
    rtt_ms: float = Field(default=0.0, ge=0, description="measured round-trip latency, ms")
    compute_seconds: float | None = Field(
        default=None, ge=0, description="this client's local compute, s (default: the request's)"
    )
    tier: str | None = Field(
        default=None,
        max_length=CLIENT_ID_CHARS,
        description="the client's tier (tiered densities: a tier of tier_densities)",
    )


class RunSpec(Strict):
    """The run whose round is planned (when it is not a study's recommendation)."""

    method: Literal["floss", "dense", "ffa"] = "floss"
    rank: int = Field(default=REF_RANK, ge=1, le=4096)
    d_down: float | str = Field(default=0.25, description="a density in (0, 1]")
    d_up: float | str = Field(default=0.25, description="a density in (0, 1]")
    model: ModelProfileRef = Field(
        default=DEFAULT_MODEL, description=ACCEPTED["model"], max_length=4096
    )
    num_labels: int | None = Field(default=None, ge=0, description=ACCEPTED["num_labels"])
    head_params: int = Field(default=0, ge=0)
    precision: str = Field(default="fp32", description=ACCEPTED["precision"])
    precision_down: str | None = Field(
        default=None, description="download precision (None: precision)"
    )
    precision_up: str | None = Field(default=None, description="upload precision (None: precision)")
    encoding: str = Field(default="auto", description=ACCEPTED["encoding"])

    @field_validator("d_down", "d_up", mode="before")
    @classmethod
    def _density(cls, v: Any) -> float:
        return check_density_value(v, name="density")

    _precision = field_validator("precision", mode="before")(check_precision)

    _one_precision = field_validator("precision_down", "precision_up", mode="before")(
        unless_none(check_precision)
    )

    _encoding = field_validator("encoding")(check_encoding)


class RoundPlanRequest(Strict):
    """The next round's sampled clients and their measured links; the run is a study's
    recommendation (``study``) or given (``run``)."""

    study: str | None = Field(default=None, description=ACCEPTED["study"], max_length=128)
    run: RunSpec | None = Field(default=None, description=ACCEPTED["run"])
    policy: Literal["uniform", "tiered", "bandwidth"] | None = Field(
        default=None, description=ACCEPTED["policy"]
    )
    round_policy: Literal["sync", "deadline"] | None = Field(
        default=None, description=ACCEPTED["round_policy"]
    )
    deadline: float | None = Field(default=None, gt=0, description=ACCEPTED["deadline"])
    clients_per_round: int | None = Field(
        default=None,
        ge=1,
        description="deadline rounds: the uploads the server waits for (m; the clients given are "
        "the over-selected sample); null: the study's, else every client given",
    )
    tier_densities: str | None = Field(
        default=None, max_length=1024, description=ACCEPTED["tier_densities"]
    )
    density_grid: str | None = Field(
        default=None, max_length=1024, description=ACCEPTED["density_grid"]
    )
    adapt_down: bool | None = Field(
        default=None, description="bandwidth: adapt d_down too (null: the study's, else false)"
    )
    round: int | None = Field(default=None, ge=1, description="the round number, echoed back")
    compute_seconds: float = Field(default=0.0, ge=0, description="local compute per client, s")
    clients: list[ClientLink] = Field(..., min_length=1, max_length=MAX_ROUND_CLIENTS)

    @field_validator("tier_densities")
    @classmethod
    def _tiers(cls, v: str | None) -> str | None:
        from planner.fleet import parse_tier_densities

        if v is not None:
            parse_tier_densities(v)
        return v

    @field_validator("density_grid")
    @classmethod
    def _grid(cls, v: str | None) -> str | None:
        from planner.fleet import parse_grid

        if v is not None:
            parse_grid(v)
        return v


class ClientPlan(BaseModel):
    id: str | int
    tier: str | None
    kept: bool
    d_down: float
    d_up: float
    k_down: int
    k_up: int
    bytes_down: int
    bytes_up: int
    encoding_down: str
    encoding_up: str
    seconds_down: float
    seconds_up: float
    seconds: float


class RoundPlanResponse(BaseModel):
    round: int | None
    policy: str
    round_policy: str
    deadline: float | None
    clients_per_round: int
    kept: list[str | int]
    dropped: list[str | int]
    method: str
    rank: int
    n: int
    precision_down: str
    precision_up: str
    source: str
    clients: list[ClientPlan]
    seconds: float
    slowest: str | int
    bytes_total: int
