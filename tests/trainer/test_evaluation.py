"""Honest evaluation: the served model (what clients hold) beside the server's dense P, the test
split at the last round only, extra evaluation rounds, and records that round-trip."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
import torch

import trainer.client
import trainer.session
from trainer.config import RunConfig
from trainer.errors import TrainerError
from trainer.records import CSV_NAME, JSONL_NAME, RoundRecord
from trainer.run import train

SERVER_FIELDS = ("val_loss_server", "val_accuracy_server")
TEST_FIELDS = ("test_loss", "test_accuracy", "test_loss_server", "test_accuracy_server")


def _cfg(kwargs: dict[str, Any], **changes: Any) -> RunConfig:
    return RunConfig(**{**kwargs, **changes})


def _count_evaluations(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Patch trainer.client.evaluate to count calls (one per split per vector)."""
    calls: list[int] = []
    real = trainer.client.evaluate

    def counting(*args: Any, **kwargs: Any) -> tuple[float, float | None]:
        calls.append(len(args[2]))
        return real(*args, **kwargs)

    monkeypatch.setattr(trainer.client, "evaluate", counting)
    return calls


def test_served_differs_from_server_when_d_down_below_one(
    tiny_kwargs: dict[str, Any], tiny_workload: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _count_evaluations(monkeypatch)
    config = _cfg(tiny_kwargs, d_down=0.25, d_up=0.25, rounds=2, eval_every=1)
    result = train(config, workload=tiny_workload, progress=False)
    for rec in result.records:
        assert rec.val_loss is not None and rec.val_loss_server is not None
        assert rec.val_accuracy is not None and rec.val_accuracy_server is not None
        assert rec.val_loss != rec.val_loss_server  # two different models were evaluated
    # val (served, server) in each round + test (served, server) in the last
    assert len(calls) == 2 * 2 + 2
    assert result.final_val_loss == result.records[-1].val_loss
    assert result.final_val_loss_server == result.records[-1].val_loss_server
    assert result.final_val_accuracy_server == result.records[-1].val_accuracy_server


@pytest.mark.parametrize("changes", [{"method": "dense"}, {"d_down": 1, "d_up": 0.25}])
def test_served_equals_server_at_full_download_and_is_evaluated_once(
    tiny_kwargs: dict[str, Any],
    tiny_workload: Any,
    monkeypatch: pytest.MonkeyPatch,
    changes: dict[str, Any],
) -> None:
    calls = _count_evaluations(monkeypatch)
    config = _cfg(tiny_kwargs, rounds=2, eval_every=1, **changes)
    result = train(config, workload=tiny_workload, progress=False)
    for rec in result.records:
        assert rec.val_loss is not None
        assert (rec.val_loss, rec.val_accuracy) == (rec.val_loss_server, rec.val_accuracy_server)
    last = result.records[-1]
    assert last.test_loss is not None
    assert (last.test_loss, last.test_accuracy) == (
        last.test_loss_server,
        last.test_accuracy_server,
    )
    assert len(calls) == 2 + 1  # val once per round, test once: the dense P is not re-evaluated


@pytest.mark.parametrize(
    "changes",
    [
        {"method": "floss", "d_down": 0.25, "d_up": 0.25},
        {"method": "floss", "d_down": 0.5, "d_up": 0.25, "precision": "fp16"},
        {"method": "floss", "d_down": 0.25, "d_up": 0.25, "topk": "per-tensor"},
        {"method": "sparseadapter", "d_up": 0.25},
        {"method": "adapterlth", "d_up": 0.3},
    ],
)
def test_served_vector_is_the_next_rounds_start(
    tiny_kwargs: dict[str, Any],
    tiny_workload: Any,
    monkeypatch: pytest.MonkeyPatch,
    changes: dict[str, Any],
) -> None:
    served: dict[int, torch.Tensor] = {}
    starts: list[torch.Tensor] = []
    real_eval = trainer.session.evaluate_models
    real_make = trainer.session.make_method

    def capture_eval(*args: Any, **kwargs: Any) -> dict[str, float | None]:
        ((vector, share),) = kwargs["served"]  # no fleet: one served model, all the clients
        assert share == 1.0
        served[len(starts)] = vector.clone()
        return real_eval(*args, **kwargs)

    def capture_make(*args: Any, **kwargs: Any) -> Any:
        method = real_make(*args, **kwargs)
        download = method.download

        def recording(p: torch.Tensor, clients: list[int], **kw: Any) -> Any:
            out = download(p, clients, **kw)
            starts.append(out[0].clone())
            return out

        method.download = recording
        return method

    monkeypatch.setattr(trainer.session, "evaluate_models", capture_eval)
    monkeypatch.setattr(trainer.session, "make_method", capture_make)
    config = _cfg(tiny_kwargs, rounds=4, eval_every=1, eval_test=False, **changes)
    train(config, workload=tiny_workload, progress=False)
    assert sorted(served) == [1, 2, 3, 4] and len(starts) == 4
    for r in (1, 2, 3):  # the model evaluated after round r is what round r + 1's clients get
        assert torch.equal(served[r], starts[r])


def test_served_has_no_side_effects(tiny_kwargs: dict[str, Any], tiny_workload: Any) -> None:
    from trainer.flat import FlatAdapter
    from trainer.methods import make_method
    from trainer.modeling import wrap_lora

    config = _cfg(tiny_kwargs, method="sparseadapter", d_up=0.25)
    adapter = FlatAdapter(wrap_lora(tiny_workload.base_model, config), torch.device("cpu"))
    method = make_method(config, n=adapter.n, slices=adapter.slices)
    p = torch.randn(adapter.n, generator=torch.Generator().manual_seed(0))
    method.after_aggregate(p)  # cuts the mask
    method.download(p, [0])  # client 0 holds the mask now
    before = method.state()
    first = method.served(p)
    assert torch.equal(first, method.served(p))
    assert repr(method.state()) == repr(before)  # no client marked as holding the mask
    start, sizes, _ = method.download(p, [1])
    assert torch.equal(first, start)
    assert sizes[0] > method.download(p, [1])[1][0]  # client 1 was still stale before


def test_test_split_only_on_the_last_round(
    tiny_kwargs: dict[str, Any], tiny_workload: Any, tmp_path: Path
) -> None:
    config = _cfg(tiny_kwargs, rounds=3, eval_every=1)
    result = train(config, workload=tiny_workload, out_dir=tmp_path, progress=False)
    for rec in result.records[:-1]:
        assert all(getattr(rec, f) is None for f in TEST_FIELDS)
    last = result.records[-1]
    assert all(getattr(last, f) is not None for f in TEST_FIELDS)
    assert (result.test_loss, result.test_accuracy) == (last.test_loss, last.test_accuracy)
    assert (result.test_loss_server, result.test_accuracy_server) == (
        last.test_loss_server,
        last.test_accuracy_server,
    )
    summary = json.loads((tmp_path / "summary.json").read_text())
    for f in TEST_FIELDS:
        assert summary[f] == getattr(last, f)
    assert summary["final_val_accuracy"] == last.val_accuracy
    assert summary["final_val_accuracy_server"] == last.val_accuracy_server
    # eval_test off: no test metrics anywhere
    off = train(
        _cfg(tiny_kwargs, rounds=2, eval_test=False), workload=tiny_workload, progress=False
    )
    assert all(getattr(rec, f) is None for rec in off.records for f in TEST_FIELDS)
    assert off.test_accuracy is None and off.test_loss_server is None


def test_stopped_run_has_no_test_metrics(tiny_kwargs: dict[str, Any], tiny_workload: Any) -> None:
    result = train(
        _cfg(tiny_kwargs, rounds=3),
        workload=tiny_workload,
        progress=False,
        on_round=lambda rec: rec.round < 2,
    )
    assert result.stopped_early and len(result.records) == 2
    assert result.test_loss is None
    assert all(getattr(rec, f) is None for rec in result.records for f in TEST_FIELDS)


def test_no_test_split_means_no_test_metrics(tiny_kwargs: dict[str, Any]) -> None:
    from trainer.workload import prepare

    config = _cfg(tiny_kwargs, rounds=1, test_fraction=0)
    wl = prepare(config)
    assert len(wl.test_rows(config)) == 0
    result = train(config, workload=wl, progress=False)
    assert result.records[-1].val_loss is not None and result.test_loss is None


def test_max_eval_examples_caps_test_with_its_own_subsample(
    tiny_kwargs: dict[str, Any], tiny_workload: Any
) -> None:
    config = _cfg(tiny_kwargs, max_eval_examples=5)
    test = tiny_workload.test_rows(config)
    val = tiny_workload.val_rows(config)
    assert len(test) == len(val) == 5
    assert set(test) <= set(tiny_workload.split.test.tolist())
    assert set(val) <= set(tiny_workload.split.val.tolist())
    assert list(test) == sorted(test) and list(test) == list(tiny_workload.test_rows(config))
    full = _cfg(tiny_kwargs)
    assert list(tiny_workload.test_rows(full)) == list(tiny_workload.split.test)


def test_eval_rounds_are_evaluated_too(tiny_kwargs: dict[str, Any], tiny_workload: Any) -> None:
    result = train(
        _cfg(tiny_kwargs, rounds=5, eval_every=0, eval_test=False),
        workload=tiny_workload,
        progress=False,
        eval_rounds={2, 4, 9},
    )
    assert [rec.round for rec in result.records if rec.val_loss is not None] == [2, 4, 5]
    assert [rec.round for rec in result.records if rec.val_loss_server is not None] == [2, 4, 5]
    every = train(
        _cfg(tiny_kwargs, rounds=4, eval_every=2, eval_test=False),
        workload=tiny_workload,
        progress=False,
        eval_rounds=[1],
    )
    assert [rec.round for rec in every.records if rec.val_loss is not None] == [1, 2, 4]


@pytest.mark.parametrize("bad", [[0], [-1, 2], [1.5], [True]])
def test_bad_eval_rounds_are_refused(
    tiny_kwargs: dict[str, Any], tiny_workload: Any, bad: list[Any]
) -> None:
    with pytest.raises(TrainerError, match="eval_rounds must be round numbers >= 1"):
        train(_cfg(tiny_kwargs, rounds=1), workload=tiny_workload, progress=False, eval_rounds=bad)


def test_eval_test_must_be_a_bool(tiny_kwargs: dict[str, Any]) -> None:
    with pytest.raises(TrainerError, match="eval_test must be true or false, but got 'yes'"):
        _cfg(tiny_kwargs, eval_test="yes")


def test_records_round_trip_and_old_records_load(
    tiny_kwargs: dict[str, Any], tiny_workload: Any, tmp_path: Path
) -> None:
    result = train(
        _cfg(tiny_kwargs, rounds=2, eval_every=1),
        workload=tiny_workload,
        out_dir=tmp_path,
        progress=False,
    )
    for rec in result.records:
        assert RoundRecord.from_dict(rec.to_dict()) == rec
    lines = (tmp_path / JSONL_NAME).read_text().splitlines()
    assert [RoundRecord.from_dict(json.loads(x)) for x in lines] == result.records
    with (tmp_path / CSV_NAME).open(newline="") as fh:
        header = next(csv.reader(fh))
    assert header[:4] == ["round", "rank", "d_down", "d_up"]
    assert set(SERVER_FIELDS + TEST_FIELDS) <= set(header)
    # a record written before these fields existed still loads, with None for them
    old = {
        k: v for k, v in result.records[0].to_dict().items() if k not in SERVER_FIELDS + TEST_FIELDS
    }
    loaded = RoundRecord.from_dict(old)
    assert loaded.val_loss == result.records[0].val_loss
    assert all(getattr(loaded, f) is None for f in SERVER_FIELDS + TEST_FIELDS)
    with pytest.raises(KeyError):
        RoundRecord.from_dict({k: v for k, v in old.items() if k != "train_loss"})


def test_resume_from_a_checkpoint_with_old_records(
    tiny_kwargs: dict[str, Any],
    tiny_workload: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = _cfg(tiny_kwargs, rounds=3, checkpoint_every=1, eval_every=1)
    full = train(config, workload=tiny_workload, out_dir=tmp_path / "full", progress=False)
    cut = tmp_path / "cut"
    train(
        config, workload=tiny_workload, out_dir=cut, progress=False, on_round=lambda r: r.round < 2
    )
    real_load = trainer.session.load_checkpoint

    def as_if_old(*args: Any, **kwargs: Any) -> Any:
        ckpt = real_load(*args, **kwargs)
        ckpt.meta["records"] = [
            {k: v for k, v in rec.items() if k not in SERVER_FIELDS + TEST_FIELDS}
            for rec in ckpt.meta["records"]
        ]
        return ckpt

    monkeypatch.setattr(trainer.session, "load_checkpoint", as_if_old)
    resumed = train(config, workload=tiny_workload, out_dir=cut, progress=False, resume=True)
    assert resumed.records[0].val_loss_server is None  # an old record keeps what it had
    assert full.final_p is not None and resumed.final_p is not None
    assert torch.equal(full.final_p, resumed.final_p)
    strip = lambda r: {k: v for k, v in r.to_dict().items() if k != "wall_seconds"}  # noqa: E731
    assert [strip(r) for r in resumed.records[2:]] == [strip(r) for r in full.records[2:]]
    assert resumed.test_accuracy == full.test_accuracy is not None


@pytest.mark.parametrize("flag", [[], ["--no-eval-test"]])
def test_cli_prints_served_server_and_test(
    tiny_kwargs: dict[str, Any], tmp_path: Path, flag: list[str]
) -> None:
    import yaml
    from typer.testing import CliRunner

    from trainer.cli import app

    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump({**tiny_kwargs, "rounds": 1}))
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app, ["--config", str(cfg), "--out-dir", str(out), "--no-progress", *flag]
    )
    assert result.exit_code == 0, result.output
    s = json.loads((out / "summary.json").read_text())
    lines = result.output.splitlines()
    assert (
        f"val accuracy {s['final_val_accuracy']:.4f} (server {s['final_val_accuracy_server']:.4f}), "
        f"val loss {s['final_val_loss']:.4f} (server {s['final_val_loss_server']:.4f})"
    ) in lines
    test_line = (
        f"test accuracy {s['test_accuracy']:.4f} (server {s['test_accuracy_server']:.4f}), "
        f"test loss {s['test_loss']:.4f} (server {s['test_loss_server']:.4f})"
        if not flag
        else None
    )
    assert [x for x in lines if x.startswith("test ")] == ([test_line] if test_line else [])
    assert yaml.safe_load((out / "config.yaml").read_text())["eval_test"] is not bool(flag)
