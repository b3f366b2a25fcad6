"""Profiles, adapter sizes and the planning table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from planner.budget import parse_budget
from planner.errors import PlanError, ProfileError
from planner.model import model_profile_from_hf_config, raw_model_profile
from planner.network import NetworkProfile
from planner.plan import plan
from planner.plan_types import PlanSettings
from planner.profiles import list_profiles, load_model, load_network


@pytest.mark.parametrize(
    ("name", "rank", "n"),
    [
        ("all-minilm-l6-v2", 16, 16 * 2 * 6 * (384 + 384)),  # 147,456
        ("gpt2-small", 16, 16 * 12 * (768 + 2304)),  # c_attn: PEFT's default, as the trainer
        ("vit-b16", 8, 8 * 2 * 12 * (768 + 768)),
        ("llama-3-8b", 1, 32 * (8192 + 5120)),  # q_proj, v_proj: PEFT's default
    ],
)
def test_builtin_model_sizes(name: str, rank: int, n: int) -> None:
    assert load_model(name).adapter_params(rank) == n


def test_head_and_raw_sizes() -> None:
    m = load_model("all-minilm-l6-v2")
    assert m.adapter_params(16, num_labels=24) == 147_456 + 384 * 24 + 24
    raw = raw_model_profile(1000, ref_rank=16)
    assert raw.adapter_params(16) == 1000 and raw.adapter_params(32) == 2000
    with pytest.raises(ValueError, match="rank must be an integer >= 1, but got 0"):
        m.adapter_params(0)


def test_hf_config_profiles(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(
        json.dumps(
            {
                "model_type": "llama",
                "hidden_size": 4096,
                "num_hidden_layers": 32,
                "num_attention_heads": 32,
                "num_key_value_heads": 8,
                "intermediate_size": 14336,
            }
        )
    )
    assert model_profile_from_hf_config(tmp_path).adapter_params(1) == load_model(
        "llama-3-8b"
    ).adapter_params(1)
    (tmp_path / "config.json").write_text(
        json.dumps({"model_type": "gpt2", "n_embd": 768, "n_layer": 12})
    )
    assert load_model(str(tmp_path)).adapter_params(16) == load_model("gpt2-small").adapter_params(
        16
    )
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "t5"}))
    with pytest.raises(ProfileError, match="model_type 't5'"):
        load_model(str(tmp_path))


def test_user_profiles_and_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "network").mkdir()
    (tmp_path / "network" / "office.toml").write_text(
        'name = "office"\ndown_mbps = 50\nup_mbps = 5\n'
    )
    monkeypatch.setenv("FLOSS_PROFILE_DIR", str(tmp_path))
    assert load_network("office").up_slowdown == 10
    assert any(e.name == "office" and e.origin == str(tmp_path) for e in list_profiles("network"))
    assert {e.name for e in list_profiles("network")} >= {
        "thesis",
        "lte",
        "5g",
        "cable",
        "fibre",
        "dsl",
        "wifi",
        "satellite",
    }
    bad = tmp_path / "bad.toml"
    bad.write_text("down_mbps = [")
    with pytest.raises(ProfileError, match="cannot parse profile file"):
        load_network(str(bad))
    bad.write_text("down_mbps = 0\nup_mbps = 1\n")
    with pytest.raises(ProfileError, match="down_mbps: 0 is out of range"):
        load_network(str(bad))
    bad.write_text("down_mbps = 1\nup_mbps = 1\nspeed = 3\n")
    with pytest.raises(ProfileError, match="unknown key"):
        load_network(str(bad))
    with pytest.raises(ProfileError, match="unknown network profile 'nope'"):
        load_network("nope")
    with pytest.raises(ProfileError, match="does not exist"):
        load_network(str(tmp_path / "missing.toml"))


def _settings(**kw: object) -> PlanSettings:
    base: dict[str, object] = {
        "model": load_model("all-minilm-l6-v2"),
        "network": NetworkProfile(name="t", down_mbps=200, up_mbps=12.5),
        "budget": parse_budget("50-dense-rounds"),
    }
    base.update(kw)
    return PlanSettings(**base)  # type: ignore[arg-type]


def test_plan_thesis_setting() -> None:
    p = plan(_settings())
    rec = [r for r in p.rows if r.recommended]
    assert p.rows[: len(rec)] == rec
    dense = next(r for r in rec if r.d_down == 1 and r.d_up == 1)
    assert (dense.rank, dense.rounds, dense.bytes_down, dense.bytes_up) == (
        16,
        50,
        589_824,
        589_824,
    )
    assert dense.seconds_per_round == pytest.approx(0.40108032)
    assert dense.total_bytes == 50 * 10 * 2 * 589_824
    # the thesis heuristic d_up = d_down / S is recommended, S = 16
    assert {(r.d_down, r.d_up) for r in rec} >= {(1.0, 1 / 16), (0.25, 1 / 64), (1 / 16, 1 / 256)}
    h = next(r for r in rec if r.d_down == 0.25)
    assert (h.encoding_down, h.bytes_down) == ("rice", 163_584)
    assert h.rounds == int(50 * 0.40108032 / h.seconds_per_round * (1 + 1e-12))
    assert len(p.rows) == 7 * 9 * 9 and p.infeasible == 0


def test_plan_pareto_and_limits() -> None:
    p = plan(_settings(max_rounds=60, ranks=(8, 16), d_down=(1.0, 0.5), d_up=(1.0, 0.5)))
    by = {(r.rank, r.d_down, r.d_up): r for r in p.rows}
    # at the cap, smaller configs that afford no more rounds are dominated
    assert by[(16, 0.5, 0.5)].rounds == 60
    assert not by[(8, 0.5, 0.5)].pareto and by[(16, 1.0, 1.0)].pareto
    assert all(r.rounds <= 60 for r in p.rows)
    p = plan(
        _settings(min_rounds=51, ranks=(16, 32), d_down=(1.0,), d_up=(1.0,), heuristic_down=(1.0,))
    )
    assert {(r.rank, r.d_down, r.d_up) for r in p.rows} == {(16, 1.0, 1 / 16)}
    assert p.infeasible == 2


def test_plan_byte_budget_and_errors() -> None:
    p = plan(_settings(budget=parse_budget("100MB"), ranks=(16,)))
    dense = next(r for r in p.rows if r.d_down == 1 and r.d_up == 1)
    assert dense.rounds == 100_000_000 // (10 * 2 * 589_824)
    with pytest.raises(PlanError, match="budget '1kB' affords fewer than 1 round"):
        plan(_settings(budget=parse_budget("1kB")))
    with pytest.raises(PlanError, match="rank must be an integer >= 1, but got 0"):
        _settings(ranks=(0,))
    with pytest.raises(ValueError, match=r"d_up must be in \(0, 1\], but got 2"):
        _settings(d_up=(2.0,))
    with pytest.raises(PlanError, match="--max-rounds"):
        _settings(min_rounds=5, max_rounds=2)


def test_pareto_sweep_matches_brute_force() -> None:
    import random
    from dataclasses import replace

    from planner.shortlist import pareto_flags

    template = plan(_settings(ranks=(16,), d_down=(1.0,), d_up=(1.0,), heuristic_down=(1.0,))).rows[
        0
    ]
    rng = random.Random(0)
    grid = [
        (r, dd, du) for r in (1, 2, 4, 8) for dd in (1, 0.5, 0.25) for du in (1, 0.5, 0.25, 0.125)
    ]
    rows = [
        replace(template, rank=r, d_down=dd, d_up=du, rounds=rng.randint(1, 6))
        for r, dd, du in grid
    ]

    def dominated(b: object) -> bool:
        return any(
            a is not b
            and a.rank >= b.rank
            and a.d_down >= b.d_down
            and a.d_up >= b.d_up
            and a.rounds >= b.rounds  # type: ignore[attr-defined]
            for a in rows
        )

    assert pareto_flags(rows) == [not dominated(b) for b in rows]
