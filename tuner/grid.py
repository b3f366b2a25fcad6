"""The method grid a study searches: methods, top-k modes, keep rates, value precisions and,
on a heterogeneous fleet, the policy points every candidate is priced at.

Value precisions (``MethodGrid.precisions_down``/``precisions_up``, ``floss-tune --bits-down/
--bits-up``): every candidate is priced at each (download, upload) pair; when a list has more
than one entry the trial draws it as a categorical (``precision_down``, ``precision_up``), any
method. Not searched by default: the base run's precisions are the only pair.

Heterogeneous fleets (``floss-tune --fleet``; docs/fleets.md): every candidate is also priced at
each policy point of ``MethodGrid.round_policies`` x ``density_policies`` x ``deadlines`` (a
deadline only where the point uses one: deadline rounds or bandwidth densities; dense and
FFA-LoRA take uniform densities only). Each list defaults to the fleet setup's own policy
(``fleet_grid``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from planner.fleet import DENSITY_POLICIES, ROUND_POLICIES, FleetError, FleetSetup
from planner.limits import is_number
from planner.method_spec import DEFAULT_KEEP_RATE
from tuner.settings import (
    TuneError,
    check_choices,
    check_methods,
    check_topks,
)

Policy = tuple[str, str, float | None]  # (round_policy, density_policy, deadline); "" = no fleet
NO_FLEET: Policy = ("", "", None)
SPARSE_UP = ("floss", "sparseadapter")  # methods whose upload density is searched (d_up)


def needs_deadline(round_policy: str, density_policy: str) -> bool:
    """Deadline rounds and bandwidth densities need a deadline; sync with uniform or tiered
    densities does not."""
    return round_policy == "deadline" or density_policy == "bandwidth"


@dataclass(frozen=True, kw_only=True)
class MethodGrid:
    """Which methods and method parameters the study searches (beside ranks and densities)."""

    methods: tuple[str, ...] = field(default=("floss",), metadata={"help": "methods to search"})
    topks: tuple[str, ...] = field(default=("global",), metadata={"help": "FLoSS top-k modes"})
    keep_rates: tuple[float, ...] = field(
        default=(DEFAULT_KEEP_RATE,), metadata={"help": "AdapterLTH keep rates per round"}
    )
    lth_floor: float | None = field(
        default=None, metadata={"help": "AdapterLTH density floor (None: k never below 1)"}
    )
    precisions_down: tuple[str, ...] = field(
        default=(), metadata={"help": "download value precisions (searched when > 1; () = base)"}
    )
    precisions_up: tuple[str, ...] = field(
        default=(), metadata={"help": "upload value precisions (searched when > 1; () = base)"}
    )
    # fleets only (empty without one; build_space fills them from the fleet setup when empty)
    round_policies: tuple[str, ...] = field(
        default=(), metadata={"help": "fleet round policies (searched when > 1)"}
    )
    density_policies: tuple[str, ...] = field(
        default=(), metadata={"help": "fleet density policies (FLoSS; searched when > 1)"}
    )
    deadlines: tuple[float, ...] = field(
        default=(), metadata={"help": "fleet deadlines, s (searched when > 1)"}
    )

    def policies(self, method: str) -> list[Policy]:
        """The fleet policy points a method is priced at ([NO_FLEET] without a fleet)."""
        if not self.round_policies:
            return [NO_FLEET]
        densities = self.density_policies if method == "floss" else ("uniform",)
        out: list[Policy] = []
        for rp in self.round_policies:
            for dp in densities:
                if needs_deadline(rp, dp):
                    out += [(rp, dp, d) for d in self.deadlines]
                else:
                    out.append((rp, dp, None))
        return out

    def _check_fleet_lists(self) -> None:
        for name, allowed, flag in (
            ("round_policies", ROUND_POLICIES, "--round-policies"),
            ("density_policies", DENSITY_POLICIES, "--density-policies"),
        ):
            values = getattr(self, name)
            if values:
                object.__setattr__(self, name, check_choices(values, allowed, flag))
        deadlines = []
        for d in self.deadlines:
            if not is_number(d) or not math.isfinite(d) or d <= 0:
                raise TuneError(f"--deadlines values must be seconds > 0, but got {d!r}.")
            deadlines.append(float(d))
        if len(set(deadlines)) != len(deadlines):
            raise TuneError(f"--deadlines has a repeated value: {self.deadlines!r}.")
        object.__setattr__(self, "deadlines", tuple(deadlines))
        if bool(self.round_policies) != bool(self.density_policies):
            raise TuneError("a fleet search needs both round and density policies.")
        if self.round_policies and not self.deadlines:
            for rp in self.round_policies:
                for dp in self.density_policies:
                    if needs_deadline(rp, dp):
                        what = "deadline rounds" if rp == "deadline" else "bandwidth densities"
                        raise TuneError(
                            f"{what} need a deadline: give --deadlines (seconds, e.g. 0.5,1,2)."
                        )
        if self.round_policies:
            shared = [m for m in self.methods if m not in ("floss", "dense", "ffa")]
            if shared:
                raise TuneError(
                    f"fleets support floss, dense and ffa; {shared[0]} keeps one shared mask: "
                    "drop it from --methods or drop --fleet."
                )

    def __post_init__(self) -> None:
        from planner.encoding import parse_precision

        for name in ("precisions_down", "precisions_up"):
            flag = "--bits-" + name.removeprefix("precisions_")
            values = getattr(self, name)
            try:
                parsed = tuple(parse_precision(v, name=flag) for v in values)
            except ValueError as exc:
                raise TuneError(str(exc)) from None
            if len(set(parsed)) != len(parsed):
                raise TuneError(f"{flag} has a repeated value: {values!r}.")
            object.__setattr__(self, name, parsed)
        object.__setattr__(self, "methods", check_methods(self.methods))
        object.__setattr__(self, "topks", check_topks(self.topks))
        if not self.keep_rates:
            raise TuneError("--keep-rates is empty.")
        for k in self.keep_rates:
            if not is_number(k) or not 0 < k < 1:
                raise TuneError(f"--keep-rates values must be in (0, 1), but got {k!r}.")
        if len(set(self.keep_rates)) != len(self.keep_rates):
            raise TuneError(f"--keep-rates has a repeated value: {self.keep_rates!r}.")
        if self.lth_floor is not None and not 0 < self.lth_floor <= 1:
            raise TuneError(f"the AdapterLTH floor must be in (0, 1], but got {self.lth_floor!r}.")
        self._check_fleet_lists()


def fleet_grid(grid: MethodGrid, fleet: FleetSetup) -> MethodGrid:
    """The grid's fleet lists, each defaulting to the fleet setup's own policy; every policy
    point checked against the fleet (tiered without a density for each tier is one line)."""
    default_deadlines = () if fleet.deadline_seconds is None else (fleet.deadline_seconds,)
    grid = replace(
        grid,
        round_policies=grid.round_policies or (fleet.round_policy,),
        density_policies=grid.density_policies or (fleet.density_policy,),
        deadlines=grid.deadlines or default_deadlines,
    )
    for method in grid.methods:
        for rp, dp, deadline in grid.policies(method):
            try:
                replace(fleet, round_policy=rp, density_policy=dp, deadline_seconds=deadline)
            except FleetError as exc:
                raise TuneError(str(exc)) from None
    return grid
