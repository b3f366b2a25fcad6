"""`floss-train` and `floss train`: thin. Merge config file and flags, call trainer.run.train.

Precedence, written once here: CLI flag > config file (--config) > RunConfig default.
Imports nothing heavy at module import; torch, transformers and peft load when a run starts.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated, Any

import typer

from planner import command
from planner.command import fail, new_app, run_typer
from trainer import interrupt  # stdlib only

app = new_app(
    help_text="Train federated LoRA with sparse communication (FLoSS) or a baseline, with real "
    "bytes."
)

DEFAULT_OUT = "floss-run"
NOT_CONFIG = ("config", "out_dir", "resume", "overwrite", "progress")  # flags, not RunConfig fields
EXIT_USER = 2
EXIT_DIVERGED = 3


def _opt(help_text: str, **kw: Any) -> Any:
    return typer.Option(help=help_text, show_default=False, **kw)


def _cfg(name: str, help_text: str, **kw: Any) -> Any:
    """An option for RunConfig field ``name``: its help ends with the field's default, so the
    two cannot drift (the value stays None when not given: the config file may set it)."""
    from trainer.config import RunConfig  # light: no torch

    default = RunConfig.__dataclass_fields__[name].default
    shown = "none" if default is None else f"{default:g}" if isinstance(default, float) else default
    return _opt(f"{help_text} (default {shown})", **kw)


def _served_server(served: float | None, server: float | None) -> str:
    """'0.4000 (server 0.4100)': the served model's metric, then the server's dense P's."""
    if served is None:
        return "n/a"
    return f"{served:.4f}" + ("" if server is None else f" (server {server:.4f})")


def eval_line(cfg: Any) -> str:
    """What the run evaluates, and how often: evaluation is the slow part of a CPU run."""
    cap = "all" if cfg.max_eval_examples is None else f"at most {cfg.max_eval_examples}"
    when = (
        "the last round" if cfg.eval_every == 0 else f"every {cfg.eval_every} rounds and the last"
    )
    test = f"; test ({cap}) at the last round" if cfg.eval_test else ""
    return (
        f"evaluates validation ({cap} examples) {when}{test} "
        "(--eval-every, --max-eval-examples 0 = all, --no-eval-test)"
    )


def values_text(cfg: Any) -> str:
    """'values q8 down / rh4 up, error feedback, ' when not fp32 both ways ('' otherwise)."""
    down, up = cfg.wire_precisions
    text = "" if (down, up) == ("fp32", "fp32") else f"values {down} down / {up} up, "
    return text + ("error feedback, " if cfg.error_feedback else "")


def clients_text(cfg: Any) -> str:
    """The population a round samples from: num_clients, or the natural partition's clients."""
    if cfg.partition != "natural":
        return str(cfg.num_clients)
    held = f" with >= {cfg.min_client_examples} examples" if cfg.min_client_examples > 1 else ""
    by = "Maintainer" if cfg.data == "debian-packages" else repr(cfg.client_column)
    return f"the natural partition's (by {by}{held})"


def fleet_line(cfg: Any) -> str | None:
    """With a fleet: its round and density policies, and that --network is not used."""
    if cfg.fleet is None:
        return None
    rounds = (
        "sync rounds"
        if cfg.round_policy == "sync"
        else f"deadline rounds (over-selection {cfg.over_selection:g})"
    )
    deadline = "" if cfg.deadline_seconds is None else f", deadline {cfg.deadline_seconds:g} s"
    tiers = f" {cfg.tier_densities}" if cfg.density_policy == "tiered" else ""
    return (
        f"fleet {cfg.fleet}: {rounds}{deadline}, {cfg.density_policy} densities{tiers}; "
        "round seconds from each client's own link (--network, --up-slowdown not used)"
    )


def merge_config(path: Path | None, flags: dict[str, Any]) -> Any:
    """RunConfig from defaults, then the file, then the flags that were given.

    With a budget (flag or file), the run's rounds are what the budget buys; ``--rounds`` given
    beside it caps them (it becomes ``max_rounds``)."""
    from trainer.config import RunConfig
    from trainer.config_files import read_config_mapping

    data = read_config_mapping(path) if path is not None else {}
    given = {k: v for k, v in flags.items() if v is not None}
    data.update(given)
    if data.get("budget") is not None and "rounds" in given:
        data["max_rounds"] = data.pop("rounds")
    return RunConfig.from_dict(data)


# floss-train's numbers with a range in planner.limits (the network profile's are checked when
# it is read, the fleet file's when it is read).
RANGED = (
    "num_clients",
    "clients_per_round",
    "rounds",
    "max_rounds",
    "compute_seconds",
    "deadline_seconds",
    "over_selection",
    "keep_rate",
    "up_slowdown",
    "seed",
)
FLAG_OF = {"deadline_seconds": "--deadline"}  # a flag spelled unlike its field


def _flag(field: str) -> str:
    return FLAG_OF.get(field, "--" + field.replace("_", "-"))


def check_options(cfg: Any, flags: dict[str, Any]) -> None:
    """Every number within its physical range, and no option without effect
    (``planner.options``' table): a flag so given is refused, a config file's value is noted
    once on stderr (a saved run config holds every field)."""
    from planner import limits, options
    from trainer.config import RunConfig
    from trainer.errors import TrainerError

    given = {k for k, v in flags.items() if v is not None and v is not False}
    values = {k: getattr(cfg, k) for k in RANGED}
    context = options.Context(
        fleet=cfg.fleet is not None,
        round_policies=frozenset({cfg.round_policy}),
        density_policies=frozenset({cfg.density_policy}),
        methods=frozenset({cfg.method}),
        partition=cfg.partition,
        deadline=cfg.deadline_seconds is not None,
    )
    try:
        limits.check_fields(values, spell=lambda f: _flag(f) if f in given else f)
        note = options.check(context, given, spell=_flag)
    except ValueError as exc:
        raise TrainerError(str(exc)) from None
    if note is not None:
        typer.echo(note, err=True)
    defaults = RunConfig.__dataclass_fields__
    from_file = {
        k
        for k in cfg.to_dict()
        if k not in given and k in defaults and getattr(cfg, k) != defaults[k].default
    }
    hit = options.unused(context, from_file - given)
    if hit is not None:
        name, rule = hit
        typer.echo(f"note: {name} (config file) has no effect: it needs {rule.needs}", err=True)


def resume_line(exc: interrupt.Interrupted, out_dir: Path) -> str:
    """The one line an interrupted run prints: where it stopped and the exact resume command."""
    if not exc.checkpoint:
        return f"{exc} (nothing saved to resume from); run the same command again to start over."
    out = shlex.quote(str(out_dir))
    config = shlex.quote(str(out_dir / "config.yaml"))
    return (
        f"{exc}, checkpoint saved; resume with: "
        f"floss-train --config {config} --out-dir {out} --resume"
    )


@app.callback(invoke_without_command=True)
@interrupt.graceful  # first Ctrl-C/SIGTERM: finish the round, checkpoint, exit 130
def train_command(
    config: Annotated[Path | None, _opt("run config file (.yaml/.yml/.json)")] = None,
    out_dir: Annotated[
        Path, typer.Option(help="where records, checkpoints and the adapter go")
    ] = Path(DEFAULT_OUT),
    resume: Annotated[bool, _opt("continue from the checkpoint in --out-dir")] = False,
    overwrite: Annotated[
        bool, _opt("replace the run already in --out-dir (its records, checkpoint, adapter)")
    ] = False,
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
    method: Annotated[
        str | None,
        _cfg("method", "floss | dense | sparseadapter | adapterlth | ffa | fedsrd | fedsrd-e"),
    ] = None,
    rank: Annotated[int | None, _cfg("rank", "LoRA rank r")] = None,
    d_down: Annotated[str | None, _cfg("d_down", "download density in (0, 1], e.g. 1/4")] = None,
    d_up: Annotated[str | None, _cfg("d_up", "upload density in (0, 1], e.g. 1/16")] = None,
    topk: Annotated[str | None, _cfg("topk", "global | per-tensor")] = None,
    encoding: Annotated[str | None, _cfg("encoding", "auto | dense | coo | bitmap | rice")] = None,
    precision: Annotated[
        str | None,
        _cfg(
            "precision",
            "value precision both ways: fp32 fp16 bf16, q8 q4 q2 q1 (nearest), sr8 sr4 sr2 sr1 "
            "(unbiased stochastic), rh8 rh4 rh2 rh1 (rotation codes), stc1, or a bit width "
            "32 16 8 4 2 1",
        ),
    ] = None,
    precision_down: Annotated[
        str | None,
        typer.Option(
            "--precision-down",
            "--bits-down",
            show_default=False,
            help="download value precision: a scheme as --precision or a bit width "
            "(8 = q8, 4 = rh4, ...; default: --precision)",
        ),
    ] = None,
    precision_up: Annotated[
        str | None,
        typer.Option(
            "--precision-up",
            "--bits-up",
            show_default=False,
            help="upload value precision: a scheme as --precision or a bit width "
            "(8 = q8, 4 = rh4, ...; default: --precision)",
        ),
    ] = None,
    error_feedback: Annotated[
        bool | None,
        _opt(
            "uploads: clients keep what their upload left out and add it to the next one "
            "(STC's residuals, checkpointed) (default off)"
        ),
    ] = None,
    rounds: Annotated[int | None, _cfg("rounds", "server rounds (with --budget: a cap)")] = None,
    budget: Annotated[
        str | None,
        _opt(
            "run as many rounds as this buys, priced round by round as floss-plan prices "
            "them: N-dense-rounds (x one dense LoRA round at --ref-rank), a time (90m, 6h, "
            "3600s) or bytes (2GB = 2*10^9 bytes, 1.5GiB = 1.5*2^30) (default: none, --rounds)"
        ),
    ] = None,
    ref_rank: Annotated[
        int | None, _cfg("ref_rank", "rank of the budget's dense reference round")
    ] = None,
    keep_rate: Annotated[
        float | None, _cfg("keep_rate", "adapterlth: share of the mask kept per round")
    ] = None,
    lth_floor: Annotated[
        str | None, _opt("adapterlth: density floor, e.g. 1/64 (default: none, k down to 1)")
    ] = None,
    srd_base: Annotated[
        float | None,
        _cfg("srd_base", "fedsrd: pruned share base + min(upper, coeff * ln kurtosis): base"),
    ] = None,
    srd_upper: Annotated[float | None, _cfg("srd_upper", "fedsrd: the rule's upper")] = None,
    srd_coeff: Annotated[float | None, _cfg("srd_coeff", "fedsrd: the rule's coeff")] = None,
    srd_mask_rate: Annotated[
        float | None,
        _cfg("srd_mask_rate", "fedsrd: share of the server's update a download drops"),
    ] = None,
    num_clients: Annotated[int | None, _cfg("num_clients", "clients in the population")] = None,
    clients_per_round: Annotated[
        int | None, _cfg("clients_per_round", "clients sampled per round")
    ] = None,
    local_epochs: Annotated[int | None, _cfg("local_epochs", "local epochs per round")] = None,
    batch_size: Annotated[int | None, _cfg("batch_size", "local batch size, examples")] = None,
    client_lr: Annotated[float | None, _cfg("client_lr", "client learning rate")] = None,
    client_optimizer: Annotated[str | None, _cfg("client_optimizer", "sgd | adam | adamw")] = None,
    server_lr: Annotated[float | None, _cfg("server_lr", "server learning rate")] = None,
    server_optimizer: Annotated[
        str | None, _cfg("server_optimizer", "fedadam | fedavg | fedavgm")
    ] = None,
    model: Annotated[
        str | None, _cfg("model", "all-minilm-l6-v2, a local folder or a hub id")
    ] = None,
    task: Annotated[str | None, _cfg("task", "classification | lm")] = None,
    data: Annotated[
        str | None,
        _cfg("data", "fortunes | debian-packages | csv | jsonl | parquet | hf | 20newsgroups"),
    ] = None,
    data_path: Annotated[
        str | None,
        _cfg(
            "data_path",
            "data folder or file: fortunes folder, saved `apt-cache dumpavail`, CSV/JSONL/Parquet "
            "file, a dataset saved with save_to_disk (hf), or a hub name (hf, online)",
        ),
    ] = None,
    text_column: Annotated[str | None, _cfg("text_column", "the text column of a table")] = None,
    label_column: Annotated[str | None, _cfg("label_column", "the label column of a table")] = None,
    client_column: Annotated[
        str | None, _cfg("client_column", "the client column of a table (--partition natural)")
    ] = None,
    sections: Annotated[
        str | None,
        _cfg(
            "sections",
            "debian-packages: Sections used as labels, a comma list or 'all' (none = the topic "
            "sections, docs/trainer.md)",
        ),
    ] = None,
    partition: Annotated[str | None, _cfg("partition", "iid | dirichlet | natural")] = None,
    dirichlet_alpha: Annotated[
        float | None, _cfg("dirichlet_alpha", "Dirichlet concentration alpha")
    ] = None,
    max_length: Annotated[int | None, _cfg("max_length", "tokens per text")] = None,
    max_examples_per_client: Annotated[
        int | None, _cfg("max_examples_per_client", "cap on examples per client")
    ] = None,
    min_client_examples: Annotated[
        int | None,
        _cfg(
            "min_client_examples",
            "--partition natural: clients with fewer training examples sit out the run",
        ),
    ] = None,
    max_eval_examples: Annotated[
        int | None,
        _cfg("max_eval_examples", "cap on validation and test examples, each; 0 = all"),
    ] = None,
    network: Annotated[
        str | None,
        _cfg("network", "network profile name or file (not used for round seconds with --fleet)"),
    ] = None,
    up_slowdown: Annotated[
        float | None,
        _opt("S: uplink = downlink / S (default: the profile's uplink; not used with --fleet)"),
    ] = None,
    compute_seconds: Annotated[
        float | None, _cfg("compute_seconds", "client compute seconds per round (simulated)")
    ] = None,
    fleet: Annotated[str | None, command.fleet_option("none")] = None,
    round_policy: Annotated[
        str | None,
        _cfg(
            "round_policy",
            "with --fleet: sync (wait for all) | deadline (over-select, keep "
            "the first m by --deadline)",
        ),
    ] = None,
    deadline_seconds: Annotated[
        float | None,
        typer.Option(
            "--deadline",
            "--deadline-seconds",
            help="with --fleet: the deadline D in seconds (deadline rounds; the bandwidth "
            "policy's per-client target) (default none)",
            show_default=False,
        ),
    ] = None,
    over_selection: command.OverSelection = None,
    density_policy: Annotated[
        str | None,
        _cfg(
            "density_policy",
            "with --fleet: uniform | tiered (--tier-densities) | bandwidth "
            "(each client's largest grid d_up that meets --deadline)",
        ),
    ] = None,
    tier_densities: Annotated[str | None, command.tier_densities_option("none")] = None,
    density_grid: command.DensityGrid = None,
    adapt_down: Annotated[
        bool | None, _cfg("adapt_down", "bandwidth: adapt each client's d_down too")
    ] = None,
    min_examples_per_class: Annotated[
        int | None, _cfg("min_examples_per_class", "drop classes with fewer examples")
    ] = None,
    eval_every: Annotated[
        int | None, _cfg("eval_every", "evaluate every N rounds and the last (0 = last only)")
    ] = None,
    eval_test: Annotated[
        bool | None, _opt("evaluate the test split at the last round (default on; report only)")
    ] = None,
    checkpoint_every: Annotated[
        int | None, _cfg("checkpoint_every", "checkpoint every N rounds (0 = off)")
    ] = None,
    seed: Annotated[
        int | None, _cfg("seed", "seed of split, partition, sampling, init; 0..2**63-1")
    ] = None,
    device: Annotated[str | None, _cfg("device", "auto | cpu | cuda | mps")] = None,
) -> None:
    """Train one run; records go to OUT_DIR/rounds.csv and rounds.jsonl, the adapter to OUT_DIR/adapter."""
    from trainer.errors import DivergedError, TrainerError
    from trainer.paths import check_run_dir

    flags = {
        k: v
        for k, v in locals().items()
        if k not in (*NOT_CONFIG, "DivergedError", "TrainerError", "check_run_dir")
    }
    try:
        cfg = merge_config(config, flags)
        check_options(cfg, flags)
        check_run_dir(out_dir, resume=resume, overwrite=overwrite)  # before the model loads
        if resume:  # a rerun's first line: from which round it goes on
            from trainer.paths import resume_note

            typer.echo(resume_note(out_dir))
        rounds_text = (
            f"rounds bought by budget {cfg.budget}"
            if cfg.budget is not None
            else f"{cfg.rounds} rounds"
        )
        typer.echo(
            f"method {cfg.method}, rank {cfg.rank}, d_down {cfg.effective_densities[0]:g}, "
            f"d_up {cfg.effective_densities[1]:g}, {values_text(cfg)}{rounds_text} x "
            f"{cfg.clients_per_round} of {clients_text(cfg)} clients; out {out_dir}"
        )
        typer.echo(eval_line(cfg))
        fleet_text = fleet_line(cfg)
        if fleet_text is not None:
            typer.echo(fleet_text)
        from trainer.run import train

        result = train(
            cfg,
            out_dir=out_dir,
            resume=resume,
            progress=progress,
            log=typer.echo,
            overwrite=overwrite,
            resume_said=True,
        )
    except TrainerError as exc:
        fail(str(exc), code=EXIT_USER)
    except DivergedError as exc:
        fail(f"{exc} Records are in {out_dir}.", code=EXIT_DIVERGED)
    except interrupt.Interrupted as exc:
        typer.echo(resume_line(exc, out_dir), err=True)
        raise typer.Exit(code=interrupt.EXIT_CODE) from None
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
    run_typer(app, prog_name="floss-train")
