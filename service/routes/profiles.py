"""``/api/profiles``: the network, model and fleet profiles visible by name, with their numbers."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from service.errors import FieldError

PROFILE_KINDS = ("network", "model", "fleet")
FLAGS = {
    "network": "floss-plan --profile",
    "model": "floss-plan --model",
    "fleet": "floss-plan --fleet",
}


def _fleet_numbers(path: str) -> dict[str, Any]:
    from planner.fleet import load_fleet

    f = load_fleet(path)
    return {
        "tiers": [
            {
                "name": t.name,
                "weight": t.weight,
                "down_mbps": t.down_mbps,
                "up_mbps": t.up_mbps,
                "rtt_ms": t.rtt_ms,
                "spread_sigma": t.spread_sigma,
            }
            for t in f.tiers
        ],
        "measured_clients": len(f.measured),
        "source": f.source,
    }


def _profile_entry(entry: Any) -> dict[str, Any]:
    from planner.profiles import load_model, load_network

    out: dict[str, Any] = {
        "name": entry.name,
        "description": entry.description,
        "origin": "built-in" if entry.origin == "built-in" else "user",
    }
    try:
        if entry.kind == "network":
            n = load_network(str(entry.path))
            out.update(
                down_mbps=n.down_mbps,
                up_mbps=n.up_mbps,
                rtt_ms=n.rtt_ms,
                spread_sigma=n.spread_sigma,
                up_slowdown=n.up_slowdown,
                source=n.source,
            )
        elif entry.kind == "fleet":
            out.update(_fleet_numbers(str(entry.path)))
        else:
            m = load_model(str(entry.path))
            out.update(
                hidden_size=m.hidden_size,
                num_labels=m.num_labels,
                adapter_params_rank16=m.adapter_params(16),
                source=m.source,
            )
    except ValueError:
        # by name only: the parser's message may quote the file (the service never echoes one)
        out["error"] = (
            f"{entry.path.name} is not a readable {entry.kind} profile; "
            f"{FLAGS[entry.kind]} {entry.path} says why"
        )
    return out


def router() -> APIRouter:
    r = APIRouter(tags=["profiles"])

    @r.get("/api/profiles")
    def profiles() -> dict[str, list[dict[str, Any]]]:
        """Every network, model and fleet profile visible by name (built-in and
        $FLOSS_PROFILE_DIR), with its numbers (a fleet: its tiers, or its measured clients)."""
        from planner.profiles import list_profiles

        return {k: [_profile_entry(e) for e in list_profiles(k)] for k in PROFILE_KINDS}  # type: ignore[arg-type]

    @r.get("/api/profiles/{kind}")
    def profiles_of(kind: str) -> list[dict[str, Any]]:
        """The profiles of one kind: network, model or fleet."""
        from planner.profiles import list_profiles

        if kind not in PROFILE_KINDS:
            raise FieldError("kind", f"unknown profile kind {kind!r}", "network, model or fleet")
        return [_profile_entry(e) for e in list_profiles(kind)]  # type: ignore[arg-type]

    return r
