"""Request and response bodies (pydantic), each field checked where it enters.

Grids and lists may be given as the CLI spells them (``"1,2,4"``, ``"1,1/4,1/16"``) or as JSON
lists (``[1, 2, 4]``, ``[1, "1/4", 0.0625]``); either way they are checked by the planner's and
the tuner's own parsers (``planner.parse``, ``tuner.settings.check_*``), so the service
accepts exactly what the command lines accept.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from planner import limits
from planner.budget import BUDGET_HELP, parse_budget
from planner.encoding import ENCODING_CHOICES, PRECISIONS
from planner.limits import DEFAULT_OVER_SELECTION
from planner.method_spec import DEFAULT_KEEP_RATE, METHODS
from planner.parse import (
    parse_densities,
    parse_density,
    parse_floats,
    parse_ints,
    parse_methods,
    parse_names,
    parse_precisions,
)
from planner.plan_types import DEFAULT_NUM_CLIENTS, REF_RANK
from planner.profiles import DEFAULT_MODEL, DEFAULT_NETWORK
from planner.settings import (
    DEFAULT_BUDGET,
    DEFAULT_DENSITIES_TEXT,
    DEFAULT_HEURISTIC_TEXT,
    DEFAULT_RANKS_TEXT,
)
from service.errors import ACCEPTED
from service.paths import FleetRef, ModelProfileRef, NetworkRef, RunConfigPaths
from tuner.settings import METRICS, PRUNERS, SAMPLERS, SEARCHES, TOPK_MODES

Grid = str | list[int | float | str]


ACCEPTED.update(
    {
        "budget": BUDGET_HELP,
        "profile": "a network profile name (GET /api/profiles/network) or a file under --data-root",
        "model": "a model profile name (GET /api/profiles/model), or a profile / Hugging Face "
        "config.json under --data-root",
        "down": "a number > 0: downlink in Mbps (10^6 bit/s)",
        "up": "a number > 0: uplink in Mbps (10^6 bit/s)",
        "up_slowdown": "a number > 0: uplink = downlink / S",
        "rtt_ms": "a number >= 0: round-trip latency in ms",
        "lora_params": "an integer >= 1: raw adapter size at ref_rank",
        "num_labels": "an integer >= 0 (0: no classifier head)",
        "head_params": "an integer >= 0",
        "ref_rank": "an integer >= 1",
        "ranks": "LoRA ranks >= 1: a list [1, 2, 4] or text '1,2,4'",
        "d_down": "densities in (0, 1]: a list [1, '1/4', 0.0625] or text '1,1/4,0.0625'",
        "d_up": "densities in (0, 1]: a list [1, '1/4', 0.0625] or text '1,1/4,0.0625'",
        "heuristic_d_down": "densities in (0, 1]: a list or comma text",
        "clients_per_round": "an integer >= 1",
        "method": f"{', '.join(METHODS)} or all: one name, a comma text or a list",
        "methods": f"a list (or comma text) of {', '.join(METHODS)}",
        "num_clients": "an integer >= clients_per_round",
        "seed": "an integer >= 0",
        "keep_rate": "a number in (0, 1]",
        "lth_floor": "a density in (0, 1], e.g. '1/64', or null",
        "precision": f"one of {', '.join(PRECISIONS)}, or a bit width",
        "precision_down": "a comma list (or list) of precisions or bit widths: the download axis",
        "precision_up": "a comma list (or list) of precisions or bit widths: the upload axis",
        "run.precision_down": f"one of {', '.join(PRECISIONS)}, or a bit width",
        "run.precision_up": f"one of {', '.join(PRECISIONS)}, or a bit width",
        "encoding": f"one of {', '.join(ENCODING_CHOICES)}",
        "compute_seconds": "a finite number >= 0",
        "min_rounds": "an integer >= 1",
        "max_rounds": "an integer >= 1 (>= min_rounds), or null",
        "rows": "all (every feasible row, as floss-plan --format json) or recommended",
        "name": "1-128 letters, digits, '.', '_' or '-', starting with a letter or digit",
        "base": "a floss-train run config mapping (docs/trainer.md); paths under --data-root",
        "base.fleet": "a fleet name (GET /api/profiles/fleet) or a .toml/.csv under --data-root",
        "base.deadline_seconds": "seconds > 0: the base run's deadline (or give deadlines)",
        "base.tier_densities": "tier=d_down:d_up for every tier of the fleet, e.g. "
        "lte=1/4:1/16,wifi=1:1/4,5g=1:1",
        "base.density_grid": "densities in (0, 1], e.g. 1,1/4,1/16",
        "base.over_selection": "a number >= 1",
        "n_trials": "an integer in [1, 10000]",
        "budget_scale": "a number in (0, 1]",
        "topk": f"a list (or comma text) of {', '.join(TOPK_MODES)}",
        "metric": f"one of {', '.join(METRICS)}, or null (val_accuracy; val_loss for task lm)",
        "levels": "an integer in [1, 8]",
        "search": f"one of {', '.join(SEARCHES)} (halving: floss-tune's default, docs/tuner.md; "
        "pruner and sampler apply to optuna)",
        "pruner": f"one of {', '.join(PRUNERS)}",
        "sampler": f"one of {', '.join(SAMPLERS)}",
        "timeout": "a number of seconds > 0, or null",
        "max_client_steps": "an integer >= 1, or null",
        "trial_clients_per_round": "an integer >= 1, or null",
        "policy": "the density policy: uniform (the run's densities for everyone), tiered "
        "(tier_densities by each client's tier) or bandwidth (the largest d_up of density_grid "
        "under the run's that meets deadline); null: the study's, else uniform",
        "round_policy": "sync (every client is waited for) or deadline (the first "
        "clients_per_round arrivals by deadline are kept); null: the study's, else sync",
        "deadline": "seconds > 0: the deadline of deadline rounds and bandwidth densities",
        "tier_densities": "tier=d_down:d_up,... covering every client's tier, e.g. "
        "lte=1/4:1/16,wifi=1:1/4",
        "density_grid": "densities in (0, 1] a bandwidth client may take, e.g. 1,1/4,1/16",
        "round_policies": "a list (or comma text) of sync, deadline: fleet round policies to "
        "search (needs base.fleet); null: the base run's",
        "density_policies": "a list (or comma text) of uniform, tiered, bandwidth: fleet density "
        "policies to search (needs base.fleet); null: the base run's",
        "deadlines": "a list (or comma text) of seconds > 0: fleet deadlines to search (needed "
        "by deadline rounds and bandwidth densities; needs base.fleet); null: the base run's "
        "deadline_seconds",
        "clients": "a list of 1-10,000 {id, down_mbps > 0, up_mbps > 0, rtt_ms >= 0, tier}",
        "study": "the name of a study with a recommendation (GET /api/studies)",
        "run": "{method: floss|dense|ffa, rank, d_down, d_up, model, num_labels, precision, "
        "encoding}",
    }
)


def _grid_text(value: Any) -> str:
    if isinstance(value, list):
        if not value:
            raise ValueError("the list is empty")
        return ",".join(str(v) for v in value)
    return str(value)


def _check_with(parse: Any, value: Any, name: str) -> str:
    text = _grid_text(value)
    try:
        parse(text, name=name)
    except ValueError as exc:
        raise ValueError(str(exc).removeprefix(f"{name}: ")) from None
    return text


def _checked_names(v: Any, check: Callable[[tuple[str, ...]], object]) -> str:
    """A list of names (a list, or its comma-separated text) as text, once ``check`` takes it."""
    text = _grid_text(v)
    check(parse_names(text))
    return text


def check_density_value(v: Any, *, name: str) -> float:
    """One density: a number or a fraction's text (a bool is not a density)."""
    if isinstance(v, bool):
        raise ValueError(f"expected a density, but got {v!r}")
    return parse_density(str(v), name=name)


def unless_none(check: Callable[[Any], str]) -> Callable[[Any], str | None]:
    """``check`` for an optional field: None stays None (the field's default)."""

    def checked(v: Any) -> str | None:
        return None if v is None else check(v)

    return checked


def check_budget(v: str) -> str:
    """A budget's text as given, once ``planner.budget.parse_budget`` reads it."""
    parse_budget(v)
    return v


def check_ranks(v: Any) -> str:
    if isinstance(v, list) and not all(limits.is_int(x) for x in v):
        raise ValueError(f"ranks must be integers, but got {v!r}")
    if len(_grid_text(v).split(",")) > 64:
        raise ValueError("at most 64 ranks")
    return _check_with(parse_ints, v, "--ranks")


def check_densities(v: Any) -> str:
    if isinstance(v, list) and any(isinstance(x, bool) for x in v):
        raise ValueError(f"densities must be numbers or fractions, but got {v!r}")
    if len(_grid_text(v).split(",")) > 64:
        raise ValueError("at most 64 densities")
    return _check_with(parse_densities, v, "--density")


def check_precision(v: Any) -> str:
    """The planner's own parser: a scheme name, or a bit width mapped to its default scheme."""
    from planner.encoding import parse_precision

    try:
        return str(parse_precision(v, name="precision"))
    except ValueError as exc:
        raise ValueError(str(exc).removeprefix("precision: ")) from None


def check_precisions(v: Any) -> str:
    """A comma list (or a JSON list) of precisions, each one a scheme or a bit width."""
    text = _grid_text(v)
    try:
        return ",".join(parse_precisions(text, name="precision"))
    except ValueError as exc:
        raise ValueError(str(exc).removeprefix("precision: ")) from None


def check_encoding(v: str) -> str:
    if v not in ENCODING_CHOICES:
        raise ValueError(f"encoding must be one of {', '.join(ENCODING_CHOICES)}, but got {v!r}")
    return v


def _takes_bool(annotation: Any) -> bool:
    if annotation is bool:
        return True
    return any(_takes_bool(a) for a in get_args(annotation))


def given_fields(req: BaseModel) -> set[str]:
    """The fields a request set to something (a null or a false is the default: not given)."""
    return {
        k
        for k in req.model_fields_set
        if getattr(req, k) is not None and getattr(req, k) is not False
    }


class Strict(BaseModel):
    """Unknown fields, NaN and infinities refused; a bool is not a number (JSON ``true`` would
    read as 1); every number with a physical range (``planner.limits``) checked against it."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _bool_is_not_a_number(cls, v: Any, info: ValidationInfo) -> Any:
        if isinstance(v, bool) and info.field_name is not None:
            field = cls.model_fields.get(info.field_name)
            if field is not None and not _takes_bool(field.annotation):
                raise ValueError(f"{v!r} is not a number (a bool is not an integer)")
        return v

    @field_validator("*", mode="after")
    @classmethod
    def _in_range(cls, v: Any, info: ValidationInfo) -> Any:
        name = info.field_name
        if name is not None and limits.is_number(v) and limits.limit_of(name) is not None:
            limits.check(v, name)
        return v


class PlanRequest(Strict):
    """The settings of ``floss-plan``, field for flag (``--d-down`` -> ``d_down``)."""

    budget: str = Field(default=DEFAULT_BUDGET, description=BUDGET_HELP, max_length=64)
    profile: NetworkRef = Field(
        default=DEFAULT_NETWORK, description=ACCEPTED["profile"], max_length=4096
    )
    down: float | None = Field(default=None, gt=0, description=ACCEPTED["down"])
    up: float | None = Field(default=None, gt=0, description=ACCEPTED["up"])
    up_slowdown: float | None = Field(default=None, gt=0, description=ACCEPTED["up_slowdown"])
    rtt_ms: float | None = Field(default=None, ge=0, description=ACCEPTED["rtt_ms"])
    model: ModelProfileRef = Field(
        default=DEFAULT_MODEL, description=ACCEPTED["model"], max_length=4096
    )
    lora_params: int | None = Field(default=None, ge=1, description=ACCEPTED["lora_params"])
    num_labels: int | None = Field(default=None, ge=0, description=ACCEPTED["num_labels"])
    head_params: int = Field(default=0, ge=0)
    ref_rank: int = Field(default=REF_RANK, ge=1, le=4096)
    ranks: Grid = Field(default=DEFAULT_RANKS_TEXT, description=ACCEPTED["ranks"])
    d_down: Grid = Field(default=DEFAULT_DENSITIES_TEXT, description=ACCEPTED["d_down"])
    d_up: Grid = Field(default=DEFAULT_DENSITIES_TEXT, description=ACCEPTED["d_up"])
    heuristic_d_down: Grid = Field(
        default=DEFAULT_HEURISTIC_TEXT, description=ACCEPTED["heuristic_d_down"]
    )
    clients_per_round: int = Field(default=10, ge=1, le=100_000)
    method: str | list[str] = Field(default="floss", description=ACCEPTED["method"])
    num_clients: int = Field(default=DEFAULT_NUM_CLIENTS, ge=1, le=10_000_000)
    seed: int = Field(default=0, ge=0, lt=2**63)
    keep_rate: float = Field(default=DEFAULT_KEEP_RATE, gt=0, le=1)
    lth_floor: str | float | None = Field(default=None, description=ACCEPTED["lth_floor"])
    precision: str = Field(default="fp32", description=ACCEPTED["precision"])
    precision_down: str | None = Field(default=None, description=ACCEPTED["precision_down"])
    precision_up: str | None = Field(default=None, description=ACCEPTED["precision_up"])
    encoding: str = Field(default="auto", description=ACCEPTED["encoding"])
    compute_seconds: float = Field(default=0.0, ge=0)
    min_rounds: int = Field(default=1, ge=1)
    max_rounds: int | None = Field(default=None, ge=1)
    rows: Literal["all", "recommended"] = Field(default="all", description=ACCEPTED["rows"])
    # floss-plan --fleet: per-client links instead of one network (the network fields then do
    # not apply); each field below needs ``fleet``
    fleet: FleetRef | None = Field(
        default=None,
        max_length=4096,
        description="a fleet: a name (floss profiles fleet) or a .toml/.csv under --data-root",
    )
    round_policy: str = Field(
        default="sync,deadline", max_length=64, description="fleet: sync, deadline or both"
    )
    deadline: float | None = Field(default=None, gt=0, description="fleet: the deadline, s")
    over_selection: float = Field(
        default=DEFAULT_OVER_SELECTION, ge=1, le=1000, description="fleet: deadline rounds"
    )
    density_policy: str | None = Field(
        default=None, max_length=64, description="fleet: uniform, tiered, bandwidth (a list)"
    )
    tier_densities: str | None = Field(
        default=None, max_length=1024, description="fleet: e.g. lte=1/4:1/16,wifi=1:1/4"
    )
    density_grid: str | None = Field(
        default=None, max_length=1024, description="fleet: the bandwidth policy's densities"
    )
    adapt_down: bool = Field(default=False, description="fleet, bandwidth: adapt d_down too")
    max_dropped: float | None = Field(
        default=None, ge=0, le=1, description="fleet: flag deadline rows dropping more uploads"
    )

    _budget = field_validator("budget")(check_budget)

    _ranks = field_validator("ranks", mode="before")(check_ranks)

    _densities = field_validator("d_down", "d_up", "heuristic_d_down", mode="before")(
        check_densities
    )

    @field_validator("method", mode="before")
    @classmethod
    def _method(cls, v: Any) -> str:
        text = _grid_text(v)
        parse_methods(text)
        return text

    @field_validator("lth_floor", mode="before")
    @classmethod
    def _floor(cls, v: Any) -> str | None:
        if v is None:
            return None
        check_density_value(v, name="--lth-floor")
        return str(v)

    _precision = field_validator("precision", mode="before")(check_precision)

    _precisions = field_validator("precision_down", "precision_up", mode="before")(
        unless_none(check_precisions)
    )

    _encoding = field_validator("encoding")(check_encoding)


class PlanResponse(BaseModel):
    """``rows`` are exactly ``floss-plan --format json``'s rows (the short list first)."""

    header: list[str]
    budget_seconds: float | None
    budget_bytes: int | None
    infeasible: int
    feasible: int
    recommended: int
    rows: list[dict[str, Any]]


class StudyRequest(Strict):
    """A tuning study: ``floss-tune run``'s flags, field for flag, and the base run config."""

    name: str = Field(..., description=ACCEPTED["name"], max_length=128)
    base: RunConfigPaths = Field(default_factory=dict, description=ACCEPTED["base"])
    budget: str = Field(default=DEFAULT_BUDGET, description=BUDGET_HELP, max_length=64)
    n_trials: int = Field(default=20, ge=1, le=10_000)
    budget_scale: float = Field(default=1.0, gt=0, le=1)
    ranks: Grid = Field(default=DEFAULT_RANKS_TEXT, description=ACCEPTED["ranks"])
    d_down: Grid = Field(default=DEFAULT_DENSITIES_TEXT, description=ACCEPTED["d_down"])
    d_up: Grid = Field(default=DEFAULT_DENSITIES_TEXT, description=ACCEPTED["d_up"])
    ref_rank: int = Field(default=REF_RANK, ge=1, le=4096)
    min_rounds: int = Field(default=1, ge=1)
    max_rounds: int | None = Field(default=None, ge=1)
    methods: str | list[str] = Field(default="floss", description=ACCEPTED["methods"])
    topk: str | list[str] = Field(default="global", description=ACCEPTED["topk"])
    metric: str | None = Field(default=None, description=ACCEPTED["metric"])
    levels: int = Field(default=4, ge=1, le=8)
    search: str = Field(default="halving", description=ACCEPTED["search"])
    pruner: str = Field(default="sha", description=ACCEPTED["pruner"])
    sampler: str = Field(default="tpe", description=ACCEPTED["sampler"])
    seed: int | None = Field(default=None, ge=0, lt=2**32)
    tune_lr: bool = False
    seeds: bool = Field(
        default=True, description="enqueue dense LoRA and the d_up = d_down/S family"
    )
    max_client_steps: int | None = Field(default=None, ge=1)
    trial_clients_per_round: int | None = Field(default=None, ge=1)
    timeout: float | None = Field(default=None, gt=0)
    # floss-tune's fleet search (--round-policies, --density-policies, --deadlines); each needs
    # base.fleet, and every policy point is checked against the fleet at submit
    round_policies: str | list[str] | None = Field(
        default=None, description=ACCEPTED["round_policies"]
    )
    density_policies: str | list[str] | None = Field(
        default=None, description=ACCEPTED["density_policies"]
    )
    deadlines: str | list[float | str] | None = Field(
        default=None, description=ACCEPTED["deadlines"]
    )

    @field_validator("round_policies", "density_policies", mode="before")
    @classmethod
    def _policies(cls, v: Any, info: ValidationInfo) -> str | None:
        from planner.fleet import DENSITY_POLICIES, ROUND_POLICIES
        from tuner.settings import check_choices

        if v is None:
            return None
        allowed = ROUND_POLICIES if info.field_name == "round_policies" else DENSITY_POLICIES
        text = _grid_text(v)
        flag = "--" + str(info.field_name).replace("_", "-")
        try:
            return ",".join(check_choices(parse_names(text), allowed, flag))
        except ValueError as exc:
            raise ValueError(str(exc).removeprefix(f"{flag}: ").removeprefix(f"{flag} ")) from None

    @field_validator("deadlines", mode="before")
    @classmethod
    def _deadlines(cls, v: Any) -> str | None:
        if v is None:
            return None
        if isinstance(v, list) and any(isinstance(x, bool) for x in v):
            raise ValueError(f"deadlines must be seconds, but got {v!r}")
        values = parse_floats(_grid_text(v), name="deadlines")
        if not values or len(values) > 64:
            raise ValueError("give 1 to 64 deadlines")
        for d in values:
            if not math.isfinite(d) or d <= 0:
                raise ValueError(f"deadlines must be seconds > 0, but got {d!r}")
            limits.check(d, "deadline_seconds", name="deadlines")
        if len(set(values)) != len(values):
            raise ValueError(f"a deadline is repeated: {_grid_text(v)}")
        return ",".join(repr(d) for d in values)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        from tuner.settings import check_study_name

        check_study_name(v)
        return v

    _budget = field_validator("budget")(check_budget)

    _ranks = field_validator("ranks", mode="before")(check_ranks)

    _densities = field_validator("d_down", "d_up", mode="before")(check_densities)

    @field_validator("methods", mode="before")
    @classmethod
    def _methods(cls, v: Any) -> str:
        from tuner.settings import check_methods

        return _checked_names(v, check_methods)

    @field_validator("topk", mode="before")
    @classmethod
    def _topk(cls, v: Any) -> str:
        from tuner.settings import check_topks

        return _checked_names(v, check_topks)

    @field_validator("metric")
    @classmethod
    def _metric(cls, v: str | None) -> str | None:
        from tuner.settings import check_metric

        return None if v is None else check_metric(v)

    @field_validator("search", "pruner", "sampler")
    @classmethod
    def _choice(cls, v: str, info: ValidationInfo) -> str:
        name = str(info.field_name)
        choices = {"search": SEARCHES, "pruner": PRUNERS, "sampler": SAMPLERS}[name]
        if v not in choices:
            raise ValueError(f"{name} must be one of {', '.join(choices)}, but got {v!r}")
        return v
