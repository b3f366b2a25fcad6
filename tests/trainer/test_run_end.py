"""A run's end: it always leaves a checkpoint of its last round, so a finished run is extended
with ``resume`` to more rounds (bit for bit the longer run), the resume says from which round it
goes on, and every JSON record carries numbers or null, never the string "nan"."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch

import trainer.session as run_module
from trainer.checkpoint import checkpoint_round, load_checkpoint
from trainer.config import RunConfig
from trainer.errors import TrainerError
from trainer.records import JSONL_NAME, RecordWriter, RoundRecord, json_safe
from trainer.run import train


def _cfg(tiny_kwargs: dict[str, Any], **changes: Any) -> RunConfig:
    return RunConfig(**{**tiny_kwargs, "eval_every": 0, "eval_test": False, **changes})


def _strip(records: list[RoundRecord]) -> list[dict[str, Any]]:
    """What a round trained and sent (its evaluation depends on which round was last)."""
    return [
        {k: v for k, v in r.to_dict().items() if k != "wall_seconds" and "val_" not in k}
        for r in records
    ]


@pytest.mark.parametrize("every", [0, 2])
def test_a_finished_run_is_extended_bit_for_bit(
    tiny_kwargs: dict[str, Any], tiny_workload: Any, tmp_path: Path, every: int
) -> None:
    """3 rounds (not a multiple of checkpoint_every=2, or no periodic checkpoint at all), then
    resume to 5: the same P and records as one 5-round run, and the first line says round 4."""
    full = train(_cfg(tiny_kwargs, rounds=5), workload=tiny_workload, progress=False)
    out = tmp_path / "run"
    short = _cfg(tiny_kwargs, rounds=3, checkpoint_every=every)
    train(short, workload=tiny_workload, out_dir=out, progress=False)
    assert checkpoint_round(out) == 3
    lines: list[str] = []
    longer = replace(short, rounds=5)
    extended = train(
        longer, workload=tiny_workload, out_dir=out, progress=False, resume=True, log=lines.append
    )
    assert lines[0] == (
        f"resuming from round 4: the checkpoint in {str(out / 'checkpoint')!r} holds rounds 1..3"
    )
    assert full.final_p is not None and extended.final_p is not None
    assert torch.equal(full.final_p, extended.final_p)
    assert _strip(extended.records) == _strip(full.records)
    assert checkpoint_round(out) == 5  # and it can be extended again
    assert len((out / JSONL_NAME).read_text().splitlines()) == 5


def test_resume_of_a_finished_run_says_nothing_is_left(
    tiny_kwargs: dict[str, Any], tiny_workload: Any, tmp_path: Path
) -> None:
    config = _cfg(tiny_kwargs, rounds=2)
    train(config, workload=tiny_workload, out_dir=tmp_path, progress=False)
    lines: list[str] = []
    again = train(
        config, workload=tiny_workload, out_dir=tmp_path, progress=False, resume=True,
        log=lines.append,
    )  # fmt: skip
    assert len(again.records) == 2
    assert any("already holds all 2 rounds: nothing to train" in line for line in lines)
    with pytest.raises(
        TrainerError, match=r"is at round 2, past this run's 1 rounds; give at least 2"
    ):
        train(
            replace(config, rounds=1), workload=tiny_workload, out_dir=tmp_path, progress=False,
            resume=True,
        )  # fmt: skip


def test_a_checkpoint_dir_keeps_only_the_interrupt(
    tiny_kwargs: dict[str, Any], tiny_workload: Any, tmp_path: Path
) -> None:
    """``checkpoint_dir`` without an out_dir (a tuning trial): nothing on a run that ends,
    a checkpoint when it is interrupted, and resume goes on from it bit for bit."""
    from trainer import interrupt

    config = _cfg(tiny_kwargs, rounds=4)
    full = train(config, workload=tiny_workload, progress=False)
    done = tmp_path / "done"
    train(config, workload=tiny_workload, checkpoint_dir=done, progress=False)
    assert not done.exists()

    def stop_after_2(record: RoundRecord) -> None:
        if record.round == 2:
            interrupt.request()

    cut = tmp_path / "cut"
    try:
        with pytest.raises(interrupt.Interrupted) as caught:
            train(config, workload=tiny_workload, checkpoint_dir=cut, progress=False,
                  on_round=stop_after_2)  # fmt: skip
    finally:
        interrupt.reset()
    assert caught.value.checkpoint and caught.value.round == 2
    assert checkpoint_round(cut) == 2
    assert not (cut / JSONL_NAME).exists()  # only the checkpoint
    resumed = train(config, workload=tiny_workload, checkpoint_dir=cut, progress=False, resume=True)
    assert full.final_p is not None and resumed.final_p is not None
    assert torch.equal(full.final_p, resumed.final_p)


def _nan_record(round_: int = 1) -> RoundRecord:
    return RoundRecord(
        round=round_, rank=4, d_down=1.0, d_up=0.0, bytes_down=10, bytes_up=0, bytes_total=30,
        cum_bytes=30, sim_seconds=0.5, cum_sim_seconds=0.5, wall_seconds=0.1,
        train_loss=math.nan, val_loss=None, val_accuracy=None, client_steps=0,
        clients=[0, 1, 2], kept=[], client_seconds=[0.5, math.inf, 0.2],
    )  # fmt: skip


def test_a_round_nobody_made_writes_null_not_nan(tmp_path: Path) -> None:
    """rounds.jsonl and the checkpoint meta: strict JSON (no NaN token, no "nan" string);
    read back, the loss is NaN again; an older file's "nan" string still reads."""
    RecordWriter(tmp_path).write(_nan_record())
    line = (tmp_path / JSONL_NAME).read_text().splitlines()[0]
    assert '"train_loss": null' in line and "nan" not in line.lower() and "inf" not in line
    data = json.loads(line, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert data["client_seconds"] == [0.5, None, 0.2]
    assert math.isnan(RoundRecord.from_dict(data).train_loss)
    old = {**data, "train_loss": "nan", "val_loss": "inf"}
    back = RoundRecord.from_dict(old)
    assert math.isnan(back.train_loss) and back.val_loss == math.inf
    assert json_safe({"a": [1.0, -math.inf, {"b": math.nan}], "c": "nan"}) == {
        "a": [1.0, None, {"b": None}],
        "c": "nan",  # a string the user wrote is not a number
    }


def test_a_real_run_with_an_empty_round_writes_strict_json(
    tiny_kwargs: dict[str, Any],
    tiny_workload: Any,
    fleet_file: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A fleet run whose round 2 nobody makes (forced): rounds.jsonl, summary.json and the
    checkpoint's meta parse as strict JSON, and the run resumes from that checkpoint."""
    real_round = run_module.fleet_round

    def nobody_in_round_2(*args: Any, **kw: Any) -> Any:
        price = real_round(*args, **kw)
        if kw["round_"] != 2:
            return price
        zeros = [0] * len(price.clients)
        return replace(price, kept=[], bytes_up=zeros, bytes_total=sum(price.bytes_down), d_up=0.0)

    monkeypatch.setattr(run_module, "fleet_round", nobody_in_round_2)
    config = _cfg(tiny_kwargs, rounds=2, fleet=fleet_file)
    result = train(config, workload=tiny_workload, out_dir=tmp_path, progress=False)
    assert math.isnan(result.records[1].train_loss)

    def strict(text: str) -> Any:
        return json.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))

    rows = [strict(x) for x in (tmp_path / JSONL_NAME).read_text().splitlines()]
    assert rows[1]["train_loss"] is None
    strict((tmp_path / "summary.json").read_text())
    meta = strict((tmp_path / "checkpoint" / "meta.json").read_text())
    assert meta["records"][1]["train_loss"] is None
    ckpt = load_checkpoint(tmp_path, config=config.to_dict(), n=result.adapter_size)
    assert math.isnan(RoundRecord.from_dict(ckpt.meta["records"][1]).train_loss)


def test_a_budget_run_is_extended_by_a_larger_budget(
    tiny_kwargs: dict[str, Any], tiny_workload: Any, tmp_path: Path
) -> None:
    """The budget only decides how many rounds (randomness is per (seed, round, client)), so
    --resume with a larger budget trains the rounds it adds; one that buys fewer is refused."""
    kw = {k: v for k, v in tiny_kwargs.items() if k != "rounds"}
    small, large = _cfg(kw, budget="2-dense-rounds"), _cfg(kw, budget="4-dense-rounds")
    whole = train(large, workload=tiny_workload, progress=False)
    first = train(small, workload=tiny_workload, out_dir=tmp_path, progress=False)
    assert 0 < len(first.records) < len(whole.records)
    more = train(large, workload=tiny_workload, out_dir=tmp_path, progress=False, resume=True)
    assert _strip(more.records) == _strip(whole.records)
    assert more.final_p is not None and whole.final_p is not None
    assert torch.equal(more.final_p, whole.final_p)
    with pytest.raises(TrainerError, match="past this run's"):
        train(small, workload=tiny_workload, out_dir=tmp_path, progress=False, resume=True)


def test_the_resume_note_needs_no_torch(tmp_path: Path) -> None:
    """trainer.paths.resume_note reads the manifest only: a CLI can print it before torch loads."""
    import subprocess
    import sys

    (tmp_path / "checkpoint").mkdir()
    (tmp_path / "checkpoint" / "manifest.json").write_text('{"format": 2, "round": 7}')
    code = (
        "import sys; from pathlib import Path; from trainer.paths import resume_note; "
        f"print(resume_note(Path({str(tmp_path)!r}))); print('torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out == [
        f"resuming from round 8: the checkpoint in {str(tmp_path / 'checkpoint')!r} holds "
        "rounds 1..7",
        "False",
    ]


def test_floss_train_extends_a_finished_run(tmp_path: Path, tiny_kwargs: dict[str, Any]) -> None:
    """The command as a user types it: a finished 2-round run, then --resume --rounds 4 trains
    rounds 3 and 4 (not 1..4 again) and says so first."""
    import yaml
    from typer.testing import CliRunner

    from trainer.cli import app

    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump({**tiny_kwargs, "rounds": 2, "eval_every": 0}))
    out = tmp_path / "out"
    runner = CliRunner()
    first = runner.invoke(app, ["--config", str(cfg), "--out-dir", str(out), "--no-progress"])
    assert first.exit_code == 0, first.output
    before = (out / JSONL_NAME).read_text().splitlines()
    saved = str(out / "config.yaml")
    args = ["--config", saved, "--out-dir", str(out), "--resume", "--rounds", "4", "--no-progress"]
    more = runner.invoke(app, args)
    assert more.exit_code == 0, more.output
    note = f"resuming from round 3: the checkpoint in {str(out / 'checkpoint')!r} holds rounds 1..2"
    lines = more.output.splitlines()
    assert lines[0] == note and lines.count(note) == 1  # the rerun's first line, said once
    assert "4 rounds" in more.output
    after = (out / JSONL_NAME).read_text().splitlines()
    assert after[:2] == before  # rounds 1 and 2 as they were (their wall seconds too): not rerun
    assert [json.loads(x)["round"] for x in after] == [1, 2, 3, 4] and checkpoint_round(out) == 4
