"""Quantized messages in the trainer: config round trips, seeded rounding end to end, error
feedback's residuals (what they hold, and that a resumed run continues bit for bit), the served
model, exports and the floss-train / floss-tune one-line errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from typer.testing import CliRunner

import trainer.session as run_module
from planner.encoding import cheapest_encoding, kept_entries
from trainer.config import RunConfig
from trainer.errors import TrainerError
from trainer.flat import Slice
from trainer.methods import make_method
from trainer.run import train
from trainer.sparse import select_positions
from tuner.flower import flower_run_config

runner = CliRunner()


def _cfg(kwargs: dict[str, Any], **changes: Any) -> RunConfig:
    return RunConfig(**{**kwargs, "eval_every": 0, "eval_test": False, **changes})


def test_precision_fields_round_trip(tmp_path: Path) -> None:
    cfg = RunConfig(precision_down="8", precision_up=4, error_feedback=True)
    assert (cfg.precision_down, cfg.precision_up) == ("q8", "rh4")  # widths -> their schemes
    assert cfg.wire_precisions == ("q8", "rh4")
    for name in ("run.yaml", "run.json"):
        assert RunConfig.load(cfg.save(tmp_path / name)) == cfg
    assert RunConfig.from_dict(cfg.to_dict()) == cfg
    # configs written before the precision axis load unchanged: precision both ways
    old = tmp_path / "old.yaml"
    old.write_text(yaml.safe_dump({"precision": "bf16", "d_up": 0.25}))
    loaded = RunConfig.load(old)
    assert loaded.wire_precisions == ("bf16", "bf16") and loaded.error_feedback is False
    assert RunConfig(precision="stc1", precision_down="fp32").wire_precisions == ("fp32", "stc1")


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"precision_up": 3}, "precision_up: unsupported bit width 3"),
        ({"precision_down": "int4"}, "precision_down must be one of fp32, fp16, bf16, q8"),
        ({"precision": "fp8"}, "precision must be one of"),
        ({"error_feedback": "yes"}, "error_feedback must be true or false"),
        ({"encoding": "dense", "precision_up": "sr4"}, "encoding dense with upload precision sr4"),
        ({"method": "sparseadapter", "encoding": "dense", "precision": "q8"}, "does not exist"),
    ],
)
def test_bad_precisions_are_refused(changes: dict[str, Any], match: str) -> None:
    with pytest.raises(TrainerError, match=match):
        RunConfig(**changes)


def test_dense_encoding_at_full_density_exists() -> None:
    RunConfig(method="dense", encoding="dense", precision="q4")
    RunConfig(d_down=1.0, d_up=1.0, encoding="dense", precision="sr1")


def test_flower_export_carries_the_precisions() -> None:
    run = RunConfig(precision_down="q8", precision_up="stc1", error_feedback=True).to_dict()
    flat = flower_run_config(run)
    assert flat["precision-down"] == "q8" and flat["precision-up"] == "stc1"
    assert flat["precision"] == "fp32" and flat["error-feedback"] is True
    plain = flower_run_config(RunConfig().to_dict())
    assert "precision-down" not in plain and plain["error-feedback"] is False


def _upload_log(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, Any, torch.Tensor]]:
    """(method, sent, x) of every upload; x = what the client meant to send (Delta + e_c)."""
    log: list[tuple[Any, Any, torch.Tensor]] = []
    make = run_module.make_method

    def logged(cfg: RunConfig, *, n: int, slices: Any) -> Any:
        method = make(cfg, n=n, slices=slices)
        inner = method._upload

        def up(x: torch.Tensor, **kw: Any) -> Any:
            sent = inner(x, **kw)
            log.append((method, sent, x.clone()))
            return sent

        method._upload = up
        return method

    monkeypatch.setattr(run_module, "make_method", logged)
    return log


def test_seeded_rounding_repeats_and_bytes_match(
    tiny_kwargs: dict[str, Any], tiny_workload: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _cfg(tiny_kwargs, d_down=0.5, d_up=0.25, precision_down="sr4", precision_up="sr2")
    log = _upload_log(monkeypatch)
    a = train(config, workload=tiny_workload, progress=False)
    b = train(config, workload=tiny_workload, progress=False)
    assert a.final_p is not None and b.final_p is not None
    assert torch.equal(a.final_p, b.final_p)  # the draws are a function of (seed, round, client)
    n = a.adapter_size
    down = cheapest_encoding(n, kept_entries(n, 0.5), precision="sr4")[1]
    up = cheapest_encoding(n, kept_entries(n, 0.25), precision="sr2")[1]
    assert all((r.bytes_down, r.bytes_up) == (down, up) for r in a.records)
    # two clients of one round upload different draws even for the same values
    seeds = {(s.payload[:8], s.nbytes) for _, s, _ in log[:3]}
    assert len(seeds) == 3


def test_served_is_the_next_download(tiny_kwargs: dict[str, Any]) -> None:
    """served(P) rounds with the next round's draws: what its clients will start from."""
    config = _cfg(tiny_kwargs, d_down=0.5, precision_down="sr2")
    n = 1000
    method = make_method(config, n=n, slices=(Slice("p", 0, n),))
    p = torch.randn(n)
    method.download(p, [0, 1], round_=3)
    served = method.served(p)
    start, _, _ = method.download(p, [2], round_=4)
    assert torch.equal(served, start)
    first, _, _ = method.download(p, [2], round_=3)
    assert not torch.equal(first, start)


def test_error_feedback_residual_is_what_the_server_missed(
    tiny_kwargs: dict[str, Any], tiny_workload: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _cfg(tiny_kwargs, d_up=0.25, precision_up="stc1", error_feedback=True, rounds=3)
    log = _upload_log(monkeypatch)
    train(config, workload=tiny_workload, progress=False)
    method = log[0][0]
    for _, sent, _ in log:
        values = sent.vector[sent.vector != 0]
        assert values.abs().unique().numel() == 1  # stc1: one magnitude, two signs
    clients = sorted(method.residuals)
    assert len(clients) == len(set(clients)) >= 3
    last = {}
    for (_, sent, x), c in zip(log, _clients_in_order(config), strict=True):
        last[c] = x - sent.vector
    for c in clients:
        assert torch.equal(method.residuals[c], last[c])
    # the residual holds the top-k drop and the quantization error: e = x - Q(topk(x))
    _, sent, x = log[-1]
    pos = select_positions(x, 0.25, mode="global", slices=method.slices)
    kept = torch.zeros_like(x)
    kept[pos] = x[pos]
    assert torch.allclose(x - sent.vector, (x - kept) + (kept - sent.vector))


def _clients_in_order(config: RunConfig) -> list[int]:
    from planner.sampling import round_draws

    out: list[int] = []
    for r in range(1, config.rounds + 1):
        sampled, _ = round_draws(
            seed=config.seed,
            round_=r,
            num_clients=config.num_clients,
            clients_per_round=config.clients_per_round,
            network=config.network_profile(),
        )
        out += sampled
    return out


def test_error_feedback_resumes_bit_identical(
    tiny_kwargs: dict[str, Any], tiny_workload: Any, tmp_path: Path
) -> None:
    """The residuals are checkpointed with the method state: cut after round 2, resume to 4."""
    config = _cfg(
        tiny_kwargs, rounds=4, checkpoint_every=1, d_down=0.5, d_up=0.25,
        precision_down="q8", precision_up="sr1", error_feedback=True,
    )  # fmt: skip
    full = train(config, workload=tiny_workload, out_dir=tmp_path / "full", progress=False)
    cut = train(config, workload=tiny_workload, out_dir=tmp_path / "cut", progress=False,
                on_round=lambda rec: rec.round < 2)  # fmt: skip
    assert cut.stopped_early
    meta = json.loads((tmp_path / "cut" / "checkpoint" / "meta.json").read_text())
    assert meta["method"]["residual_clients"]
    resumed = train(config, workload=tiny_workload, out_dir=tmp_path / "cut", progress=False,
                    resume=True)  # fmt: skip
    assert full.final_p is not None and resumed.final_p is not None
    assert torch.equal(full.final_p, resumed.final_p)


def test_floss_train_bits_flags(tmp_path: Path, tiny_kwargs: dict[str, Any]) -> None:
    from trainer.cli import app

    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump({**tiny_kwargs, "rounds": 1, "eval_every": 0}))
    out = tmp_path / "out"
    args = ["--config", str(cfg), "--out-dir", str(out), "--no-progress"]
    result = runner.invoke(app, [*args, "--bits-up", "4", "--bits-down", "8", "--error-feedback"])
    assert result.exit_code == 0, result.output
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert (saved["precision_down"], saved["precision_up"], saved["error_feedback"]) == (
        "q8", "rh4", True,
    )  # fmt: skip
    for bad, message in (
        (["--bits-up", "3"], "error: precision_up: unsupported bit width 3; supported widths"),
        (["--precision-down", "fp64"], "error: precision_down must be one of fp32, fp16, bf16"),
        (["--encoding", "dense", "--bits-up", "1"], "error: encoding dense with upload precision"),
    ):
        result = runner.invoke(app, [*args, "--overwrite", *bad])
        assert result.exit_code == 2, result.output
        errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and errors[0].startswith(message), result.output
        assert "Traceback" not in result.output


def test_floss_tune_bad_bits_one_line(tmp_path: Path) -> None:
    from tuner.cli import app

    for bad, message in (
        (["--bits-up", "3"], "error: --bits-up: unsupported bit width 3"),
        (["--bits-down", "8,q8"], "error: --bits-down has a repeated value"),
    ):
        result = runner.invoke(
            app,
            ["run", "--storage", f"sqlite:///{tmp_path / 's.db'}", "--n-trials", "1", *bad],
        )
        assert result.exit_code == 2, result.output
        assert result.output.startswith(message), result.output
        assert "Traceback" not in result.output


def test_tuner_searches_the_precisions() -> None:
    """A static categorical per direction, drawn only when it has more than one entry; every
    candidate is priced at its own pair; trial configs set the pair when it differs from the
    base run's."""
    import optuna

    from planner.budget import parse_budget
    from planner.plan_types import PlanSettings
    from planner.profiles import load_model, load_network
    from tuner.build import build_space
    from tuner.grid import MethodGrid
    from tuner.suggest import suggest
    from tuner.trial_config import full_config, trial_config

    settings = PlanSettings(
        model=load_model("all-minilm-l6-v2"),
        network=load_network("thesis").with_links(up_slowdown=16),
        budget=parse_budget("50-dense-rounds"),
        ranks=(4, 16),
        d_down=(1.0, 0.25, 0.0625),
        d_up=(1.0, 0.0625),
        max_rounds=40,
    )
    grid = MethodGrid(precisions_down=("32", "8"), precisions_up=("fp32", "sr4", "stc1"))
    space = build_space(settings, budget_scale=0.5, grid=grid)
    assert space.precisions_down == ["fp32", "q8"]
    pairs = {(c.precision_down, c.precision_up) for c in space.candidates}
    assert pairs == {(d, u) for d in ("fp32", "q8") for u in ("fp32", "sr4", "stc1")}
    for c in space.candidates[:12]:
        price = space.round_costs(c, 1)[0][0]
        n = c.n
        down = cheapest_encoding(n, kept_entries(n, c.d_down), precision=c.precision_down)[1]
        up = cheapest_encoding(n, kept_entries(n, c.d_up), precision=c.precision_up)[1]
        assert price == settings.clients_per_round * (down + up)
    assert all((s.precision_down, s.precision_up) == ("fp32", "fp32") for s in space.seeds)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    drawn = set()
    for _ in range(30):
        trial = study.ask()
        c = suggest(trial, space)
        assert trial.params["precision_down"] == c.precision_down
        assert trial.params["precision_up"] == c.precision_up
        assert space.params_of(c)["precision_up"] == c.precision_up
        drawn.add((c.precision_down, c.precision_up))
        study.tell(trial, 0.0)
    assert len(drawn) > 3
    base = RunConfig()
    c = next(x for x in space.candidates if (x.precision_down, x.precision_up) == ("q8", "stc1"))
    cfg = trial_config(base, c, lrs={}, clients_per_round=None)
    assert cfg.wire_precisions == ("q8", "stc1") == full_config(base, c, lrs={}).wire_precisions
    plain = next(x for x in space.candidates if (x.precision_down, x.precision_up) == ("fp32",) * 2)
    assert trial_config(base, plain, lrs={}, clients_per_round=None).precision_up is None
    not_searched = build_space(settings, budget_scale=0.5)
    trial = optuna.create_study().ask()
    suggest(trial, not_searched)
    assert "precision_up" not in trial.params and "precision_down" not in trial.params
    with pytest.raises(ValueError, match="unsupported bit width 5"):
        MethodGrid(precisions_up=("5",))


def test_floss_train_says_what_it_sends() -> None:
    from trainer.cli import values_text

    assert values_text(RunConfig()) == ""
    cfg = RunConfig(precision_down="8", precision_up="4", error_feedback=True)
    assert values_text(cfg) == "values q8 down / rh4 up, error feedback, "
