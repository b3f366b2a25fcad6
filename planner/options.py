"""When an option has an effect: one table for floss-plan, floss-train, floss-tune and the API.

Each row of ``RULES`` says that an option (by its field name, as every surface spells it; a flag
is the name with dashes) changes nothing unless a condition holds: a fleet is given, the density
policy is tiered, the method is adapterlth... A surface describes what it was asked for as a
``Context`` and the names the user set, and ``unused`` returns the first row broken: the CLIs
refuse a flag so given (one line, exit 2), the service a field (422), and a value that came from
a config file is noted once on stderr (a saved run config holds every field). No option is
silently ignored.

Conflicting aliases (``--precision-down 8 --bits-down 4``) are refused before parsing by
``planner.command.run_typer``: an option given twice is refused by every command line.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass

from planner.errors import UnusedOption


@dataclass(frozen=True, kw_only=True)
class Context:
    """What a command was asked to do, as far as the rules need it."""

    fleet: bool = False
    round_policies: frozenset[str] = frozenset({"sync"})
    density_policies: frozenset[str] = frozenset({"uniform"})
    methods: frozenset[str] = frozenset({"floss"})
    partition: str = "iid"
    deadline: bool = False  # a deadline in seconds was given


@dataclass(frozen=True, kw_only=True)
class Rule:
    """``option`` (and its ``aliases``: the same setting under another surface's name) has an
    effect only when ``holds``; ``needs`` says what it needs, as the message shows it."""

    option: str
    needs: str
    holds: Callable[[Context], bool]
    aliases: tuple[str, ...] = ()
    warn: bool = False  # noted on stderr instead of refused (see the row)

    @property
    def names(self) -> tuple[str, ...]:
        return (self.option, *self.aliases)


def _fleet(c: Context) -> bool:
    return c.fleet


def _tiered(c: Context) -> bool:
    return "tiered" in c.density_policies


def _bandwidth(c: Context) -> bool:
    return "bandwidth" in c.density_policies


def _deadline_rounds(c: Context) -> bool:
    return "deadline" in c.round_policies


def _uses_deadline(c: Context) -> bool:
    return _deadline_rounds(c) or _bandwidth(c)


def _over_selects(c: Context) -> bool:
    # deadline rounds sample ceil(m x over-selection); without --deadline the planner's default
    # deadline (bandwidth densities) is the 1/over-selection quantile of the clients' seconds
    return _deadline_rounds(c) or (_bandwidth(c) and not c.deadline)


def _adapterlth(c: Context) -> bool:
    return "adapterlth" in c.methods


def _not_natural(c: Context) -> bool:
    return c.partition != "natural"


FLEET = "--fleet"
TIERED = "the tiered density policy (--density-policy tiered)"
BANDWIDTH = "the bandwidth density policy (--density-policy bandwidth)"
DEADLINE_ROUNDS = "deadline rounds (--round-policy deadline)"

# Fleet rows first: without a fleet, "needs --fleet" is the first thing to say.
RULES: tuple[Rule, ...] = (
    Rule(option="round_policy", needs=FLEET, holds=_fleet, aliases=("round_policies",)),
    Rule(option="density_policy", needs=FLEET, holds=_fleet, aliases=("density_policies",)),
    Rule(option="deadline", needs=FLEET, holds=_fleet, aliases=("deadline_seconds", "deadlines")),
    Rule(option="over_selection", needs=FLEET, holds=_fleet),
    Rule(option="tier_densities", needs=FLEET, holds=_fleet),
    Rule(option="density_grid", needs=FLEET, holds=_fleet),
    Rule(option="adapt_down", needs=FLEET, holds=_fleet),
    Rule(option="max_dropped", needs=FLEET, holds=_fleet),
    Rule(option="tier_densities", needs=TIERED, holds=_tiered),
    Rule(option="density_grid", needs=BANDWIDTH, holds=_bandwidth),
    Rule(option="adapt_down", needs=BANDWIDTH, holds=_bandwidth),
    Rule(
        option="deadline",
        needs=f"{DEADLINE_ROUNDS} or {BANDWIDTH}",
        holds=_uses_deadline,
        aliases=("deadline_seconds", "deadlines"),
    ),
    Rule(option="over_selection", needs=DEADLINE_ROUNDS, holds=_over_selects),
    Rule(option="max_dropped", needs=DEADLINE_ROUNDS, holds=_deadline_rounds),
    Rule(
        option="keep_rate", needs="--method adapterlth", holds=_adapterlth, aliases=("keep_rates",)
    ),
    Rule(option="lth_floor", needs="--method adapterlth", holds=_adapterlth),
    # noted, not refused: floss-train's run config still holds clients_per_round <= num_clients
    # under a natural partition, so a --num-clients may be what lets a run start
    Rule(
        option="num_clients",
        needs="a partition other than natural (--partition natural: the data's own clients)",
        holds=_not_natural,
        warn=True,
    ),
)


def unused(
    context: Context, given: Iterable[str], *, warn: bool | None = None
) -> tuple[str, Rule] | None:
    """The first (name, rule) among ``given`` names whose rule does not hold, else None;
    ``warn``: among the rows that refuse (False) or note (True) only."""
    names = set(given)
    for rule in RULES:
        if warn is not None and rule.warn != warn:
            continue
        for name in rule.names:
            if name in names and not rule.holds(context):
                return name, rule
    return None


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


# floss-tune spells the settings it searches in the plural (one value or a list to search)
TUNE_FLAGS = {
    "--density-policy": "--density-policies",
    "--round-policy": "--round-policies",
    "--method": "--methods",
}


def respell(text: str, flags: Mapping[str, str] | None) -> str:
    """``text`` with each flag of ``flags`` (a whole flag: followed by a space, ')' or the end)
    written as that surface spells it."""
    for old, new in (flags or {}).items():
        text = re.sub(rf"{re.escape(old)}(?=[ )]|$)", new, text)
    return text


def message(
    name: str,
    rule: Rule,
    *,
    spell: Callable[[str], str] = flag,
    flags: Mapping[str, str] | None = None,
) -> str:
    """'--tier-densities needs the tiered density policy (--density-policy tiered).';
    ``flags``: the surface's own spelling of the flags the row names (``TUNE_FLAGS``)."""
    return f"{spell(name)} needs {respell(rule.needs, flags)}."


def check(
    context: Context,
    given: Iterable[str],
    *,
    spell: Callable[[str], str] = flag,
    flags: Mapping[str, str] | None = None,
) -> str | None:
    """An ``UnusedOption`` (one line) for the first given option that would have no effect;
    else the note (one line, for stderr) of a row that notes, else None. ``flags``: as in
    ``message``."""
    names = set(given)
    hit = unused(context, names, warn=False)
    if hit is not None:
        raise UnusedOption(message(*hit, spell=spell, flags=flags), name=hit[0], rule=hit[1])
    note = unused(context, names, warn=True)
    if note is None:
        return None
    name, rule = note
    return f"note: {spell(name)} has no effect: it needs {respell(rule.needs, flags)}."


def policies(text: str | Collection[str] | None, default: Iterable[str]) -> frozenset[str]:
    """A comma list (or names) as a set; ``default`` when None."""
    if text is None:
        return frozenset(default)
    items = text.split(",") if isinstance(text, str) else text
    return frozenset(p.strip() for p in items if p.strip())


def plan_context(
    *,
    fleet: bool,
    round_policy: str,
    density_policy: str | None,
    tier_densities: str | None,
    methods: Iterable[str],
    deadline: bool,
) -> Context:
    """floss-plan's and POST /api/plan's settings (the fleet's default density policies:
    uniform and bandwidth, and tiered when tier densities are given)."""
    default = ("uniform", "bandwidth", "tiered") if tier_densities else ("uniform", "bandwidth")
    return Context(
        fleet=fleet,
        round_policies=policies(round_policy, ()),
        density_policies=policies(density_policy, default),
        methods=frozenset(methods),
        deadline=deadline,
    )


__all__ = [
    "RULES",
    "Context",
    "Rule",
    "check",
    "flag",
    "message",
    "plan_context",
    "policies",
    "unused",
]
