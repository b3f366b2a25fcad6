"""`floss-train` and `floss train`: thin. Merge config file and flags, call trainer.run.train.

Precedence, written once here: CLI flag > config file (--config) > RunConfig default.
Imports nothing heavy at module import; torch, transformers and peft load when a run starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(
    rich_markup_mode="rich",
    add_completion=False,
    help="Train federated LoRA with sparse communication (FLoSS) or a baseline, with real bytes.",
)

DEFAULT_OUT = "floss-run"
EXIT_USER = 2
EXIT_DIVERGED = 3


def _opt(help_text: str, **kw: Any) -> Any:
    return typer.Option(help=help_text, show_default=False, **kw)


def _served_server(served: float | None, server: float | None) -> str:
    """'0.4000 (server 0.4100)': the served model's metric, then the server's dense P's."""
    if served is None:
        return "n/a"
    return f"{served:.4f}" + ("" if server is None else f" (server {server:.4f})")


def merge_config(path: Path | None, flags: dict[str, Any]) -> Any:
    """RunConfig from defaults, then the file, then the flags that were given.

    With a budget (flag or file), the run's rounds are what the budget buys; ``--rounds`` given
    beside it caps them (it becomes ``max_rounds``)."""
    from trainer.config import RunConfig, read_config_mapping

    data = read_config_mapping(path) if path is not None else {}
    given = {k: v for k, v in flags.items() if v is not None}
    data.update(given)
    if data.get("budget") is not None and "rounds" in given:
        data["max_rounds"] = data.pop("rounds")
    return RunConfig.from_dict(data)


@app.callback(invoke_without_command=True)
def train_command(
    config: Annotated[Path | None, _opt("run config file (.yaml/.yml/.json)")] = None,
    out_dir: Annotated[
        Path, typer.Option(help="where records, checkpoints and the adapter go")
    ] = Path(DEFAULT_OUT),
    resume: Annotated[bool, _opt("continue from the checkpoint in --out-dir")] = False,
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
    method: Annotated[str | None, _opt("floss | dense | sparseadapter | adapterlth | ffa")] = None,
    rank: Annotated[int | None, _opt("LoRA rank r")] = None,
    d_down: Annotated[str | None, _opt("download density, e.g. 1/4")] = None,
    d_up: Annotated[str | None, _opt("upload density, e.g. 1/16")] = None,
    topk: Annotated[str | None, _opt("global | per-tensor")] = None,
    encoding: Annotated[str | None, _opt("auto | dense | coo | bitmap | rice")] = None,
    precision: Annotated[str | None, _opt("fp32 | fp16 | bf16 on the wire")] = None,
    rounds: Annotated[int | None, _opt("server rounds (with --budget: a cap)")] = None,
    budget: Annotated[
        str | None,
        _opt(
            "run as many rounds as this buys, priced round by round as floss-plan prices "
            "them: N-dense-rounds (x one dense LoRA round at --ref-rank), a time (90m, 6h, "
            "3600s) or bytes (2GB, 1.5GiB)"
        ),
    ] = None,
    ref_rank: Annotated[int | None, _opt("rank of the dense reference round (default 16)")] = None,
    keep_rate: Annotated[
        float | None, _opt("adapterlth: share of the mask kept per round (default 0.98)")
    ] = None,
    lth_floor: Annotated[
        str | None, _opt("adapterlth: density floor, e.g. 1/64 (default: none, k down to 1)")
    ] = None,
    num_clients: Annotated[int | None, _opt("clients in the population")] = None,
    clients_per_round: Annotated[int | None, _opt("clients sampled per round")] = None,
    local_epochs: Annotated[int | None, _opt("local epochs")] = None,
    batch_size: Annotated[int | None, _opt("local batch size")] = None,
    client_lr: Annotated[float | None, _opt("client learning rate")] = None,
    client_optimizer: Annotated[str | None, _opt("sgd | adam | adamw")] = None,
    server_lr: Annotated[float | None, _opt("server learning rate")] = None,
    server_optimizer: Annotated[str | None, _opt("fedadam | fedavg | fedavgm")] = None,
    model: Annotated[str | None, _opt("all-minilm-l6-v2, a local folder or a hub id")] = None,
    task: Annotated[str | None, _opt("classification | lm")] = None,
    data: Annotated[str | None, _opt("fortunes | csv | jsonl | 20newsgroups | hf")] = None,
    data_path: Annotated[str | None, _opt("data folder, file or dataset name")] = None,
    partition: Annotated[str | None, _opt("iid | dirichlet | natural")] = None,
    dirichlet_alpha: Annotated[float | None, _opt("Dirichlet alpha")] = None,
    max_length: Annotated[int | None, _opt("tokens per text")] = None,
    max_examples_per_client: Annotated[int | None, _opt("cap per client")] = None,
    max_eval_examples: Annotated[int | None, _opt("cap on validation and test examples")] = None,
    network: Annotated[str | None, _opt("network profile name or file")] = None,
    up_slowdown: Annotated[float | None, _opt("uplink = downlink / S")] = None,
    compute_seconds: Annotated[
        float | None, _opt("client compute seconds per round (simulated)")
    ] = None,
    min_examples_per_class: Annotated[int | None, _opt("drop classes with fewer examples")] = None,
    eval_every: Annotated[int | None, _opt("evaluate every N rounds (0 = last only)")] = None,
    eval_test: Annotated[
        bool | None, _opt("evaluate the test split at the last round (default on; report only)")
    ] = None,
    checkpoint_every: Annotated[int | None, _opt("checkpoint every N rounds (0 = off)")] = None,
    seed: Annotated[int | None, _opt("seed")] = None,
    device: Annotated[str | None, _opt("auto | cpu | cuda | mps")] = None,
) -> None:
    """Train one run; records go to OUT_DIR/rounds.csv and rounds.jsonl, the adapter to OUT_DIR/adapter."""
    from trainer.errors import DivergedError, TrainerError

    flags = {
        k: v
        for k, v in locals().items()
        if k not in ("config", "out_dir", "resume", "progress", "DivergedError", "TrainerError")
    }
    try:
        cfg = merge_config(config, flags)
        rounds_text = (
            f"rounds bought by budget {cfg.budget}"
            if cfg.budget is not None
            else f"{cfg.rounds} rounds"
        )
        typer.echo(
            f"method {cfg.method}, rank {cfg.rank}, d_down {cfg.effective_densities[0]:g}, "
            f"d_up {cfg.effective_densities[1]:g}, {rounds_text} x {cfg.clients_per_round} "
            f"of {cfg.num_clients} clients; out {out_dir}"
        )
        from trainer.run import train

        result = train(cfg, out_dir=out_dir, resume=resume, progress=progress, log=typer.echo)
    except TrainerError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=EXIT_USER) from None
    except DivergedError as exc:
        typer.echo(f"error: {exc} Records are in {out_dir}.", err=True)
        raise typer.Exit(code=EXIT_DIVERGED) from None
    last = result.records[-1]
    acc = _served_server(result.final_val_accuracy, result.final_val_accuracy_server)
    loss = _served_server(result.final_val_loss, result.final_val_loss_server)
    typer.echo(f"n = {result.adapter_size:,} adapter entries; {len(result.records)} rounds")
    typer.echo(f"val accuracy {acc}, val loss {loss}")
    if result.test_loss is not None:
        test_acc = _served_server(result.test_accuracy, result.test_accuracy_server)
        test_loss = _served_server(result.test_loss, result.test_loss_server)
        typer.echo(f"test accuracy {test_acc}, test loss {test_loss}")
    typer.echo(
        f"bytes {last.cum_bytes:,} ({last.cum_bytes / 1e6:.3f} MB), simulated network "
        f"{last.cum_sim_seconds:.3f} s (compute not included unless compute_seconds is set)"
    )
    typer.echo(f"adapter saved to {out_dir / 'adapter'}")


def main() -> None:
    """Entry point of `floss-train`."""
    from planner.cli import run_typer

    run_typer(app, prog_name="floss-train")
