"""Export a study: the recommended run config, its PEFT LoraConfig, all trials, and a plot.

Files written to the export folder:

* ``run.yaml`` and ``run.json``: ``trainer.config.RunConfig.save`` of the recommended full run
  (full-budget rounds), which ``floss-train --config`` reads unchanged;
* ``peft/adapter_config.json``: ``peft.LoraConfig.save_pretrained`` with the recommended rank,
  alpha, dropout and target modules (left out when the run config leaves them to the model type:
  PEFT then picks the same defaults as the trainer, query/value for BERT; sorted, so two exports
  are the same file). ``base_model_name_or_path`` is what PEFT can load: the packaged model's
  folder, a local folder's absolute path, or the hub id. PEFT has no field for the
  communication densities; they are in ``run.yaml``;
* ``trials.csv`` and ``trials.parquet`` (pyarrow), ``rounds.csv``
  with every RoundRecord of every trial;
* ``flower/run_config.toml`` and ``flower/pyproject-snippet.toml``: the same run as a Flower run
  config (``flwr run --run-config``; ``[tool.flwr.app.config]``), see ``tuner.flower``;
* ``flower-app/``: a runnable Flower app whose run config is this run (``federation.appdir``;
  its README shows the ``flwr run`` command);
* ``pareto.png``: the metric against the bytes each trial sent, the Pareto front and the
  recommendation marked.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuner.report import (
    TrialRow,
    certainty_facts,
    recommendation_line,
    recommended_full_config,
    records_frame,
    study_metric,
    trial_rows,
    trials_frame,
)
from tuner.settings import TuneError

if TYPE_CHECKING:
    import optuna

PEFT_TASK = {"classification": "SEQ_CLS", "lm": "CAUSAL_LM"}


def require_parquet() -> None:
    """trials.parquet is part of every export: pyarrow (the train extra) must be there."""
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise TuneError(
            "floss-tune export writes trials.parquet and needs pyarrow: pip install pyarrow "
            "(floss's train extra holds it)."
        ) from None


def peft_base_model(model: str) -> str:
    """What PEFT can load the base model from: the packaged model's folder for its name, an
    absolute path for a local folder, a hub id (or a tiny random test model's name) as given."""
    from trainer.config import DEFAULT_MODEL

    if model == DEFAULT_MODEL:
        from trainer.model_names import packaged_minilm_path

        return packaged_minilm_path()
    if Path(model).is_dir():
        return str(Path(model).resolve())
    return model


def lora_config_dict(run: dict[str, Any], target_modules: list[str] | None) -> dict[str, Any]:
    """The keyword arguments of ``peft.LoraConfig`` for a run config mapping."""
    model = run.get("model")
    kwargs: dict[str, Any] = {
        "r": int(run["rank"]),
        "lora_alpha": run["lora_alpha"],
        "lora_dropout": float(run.get("lora_dropout", 0.0)),
        "task_type": PEFT_TASK.get(str(run.get("task"))),
        "base_model_name_or_path": peft_base_model(model) if isinstance(model, str) else None,
    }
    if target_modules:
        kwargs["target_modules"] = sorted(target_modules)
    return kwargs


def save_peft_config(run: dict[str, Any], folder: Path, target_modules: list[str] | None) -> Path:
    from peft import LoraConfig

    from trainer.checkpoint import canonical_adapter_config

    config = LoraConfig(**lora_config_dict(run, target_modules))
    folder.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(str(folder))
    return canonical_adapter_config(folder)  # two exports of one study: the same file


def _xy(rows: list[TrialRow]) -> tuple[list[float], list[float]]:
    """(MB sent, metric) of rows that have both."""
    return [float(r.bytes or 0) / 1e6 for r in rows], [float(r.value or 0.0) for r in rows]


def plot_pareto(rows: list[TrialRow], *, metric: str, maximize: bool, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    done = [r for r in rows if r.state == "COMPLETE" and r.duplicate_of is None and r.bytes]
    pruned = [r for r in rows if r.state == "PRUNED" and r.value is not None and r.bytes]
    fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    if pruned:
        ax.scatter(*_xy(pruned), marker="x", color="0.6", label="pruned (last checkpoint reported)")
    if done:
        ax.scatter(*_xy(done), color="tab:blue", label="trained to the end of its budget")
    front = sorted((r for r in done if r.pareto), key=lambda r: r.bytes or 0)
    if front:
        xs, ys = _xy(front)
        ax.step(xs, ys, where="post", color="tab:orange", label="Pareto front")
        for r, x, y in zip(front, xs, ys, strict=True):
            ax.annotate(r.label, (x, y), textcoords="offset points", xytext=(5, -10), fontsize=7)
    best = next((r for r in rows if r.recommended), None)
    if best is not None and best.bytes and best.value is not None:
        ax.scatter(
            *_xy([best]),
            marker="*",
            s=300,
            color="tab:red",
            zorder=5,
            label=f"recommended: {best.label}",
        )
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    ax.set_xlabel("communication the trial sent (MB = 10^6 bytes, all clients, both directions)")
    ax.set_ylabel(f"{metric} ({'higher' if maximize else 'lower'} is better)")
    ax.set_title("floss-tune: quality vs communication")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def export_study(
    study: optuna.Study, out_dir: Path, *, target_modules: list[str] | None = None
) -> list[str]:
    """Write the export folder; returns one line per file (what it is, or why it was skipped)."""
    from trainer.config import RunConfig

    full = recommended_full_config(study)
    if full is None:
        raise TuneError(
            f"study {study.study_name!r} has no trial that finished its budget; nothing to export."
        )
    require_parquet()  # before any file is written
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = []
    config = RunConfig.from_dict(full)
    for name in ("run.yaml", "run.json"):
        config.save(out_dir / name)
        lines.append(f"{out_dir / name}: recommended run config (floss-train --config)")
    meta = study.user_attrs.get("floss_space") or {}
    modules = (
        target_modules
        or (list(config.target_modules) if config.target_modules else None)
        or meta.get("target_modules")
    )
    path = save_peft_config(config.to_dict(), out_dir / "peft", modules)
    lines.append(f"{path}: PEFT LoraConfig")
    from tuner.flower import write_flower_config

    flat, snippet = write_flower_config(config.to_dict(), out_dir / "flower")
    lines.append(f"{flat}: Flower run config (flwr run --run-config)")
    lines.append(f"{snippet}: the same keys under [tool.flwr.app.config]")
    from federation.appdir import run_command, write_app
    from federation.config import AppSettings

    app_dir = out_dir / "flower-app"
    # results beside the app, outside the folder `flwr run` packs (as floss flower-app does)
    results = (out_dir / "flower-app-results").resolve()
    write_app(app_dir, config, AppSettings(out_dir=str(results)))
    lines.append(f"{app_dir}: a runnable Flower app of this run: {run_command(app_dir, config)}")
    facts = {"recommendation": recommendation_line(study).splitlines()[0],
             "certainty": certainty_facts(study, trial_rows(study))}  # fmt: skip
    (out_dir / "recommendation.json").write_text(
        json.dumps(facts, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    lines.append(f"{out_dir / 'recommendation.json'}: the pick, its runner-up, gap and noise")
    frame = trials_frame(study)
    frame.to_csv(out_dir / "trials.csv", index=False)
    lines.append(f"{out_dir / 'trials.csv'}: all {len(frame)} trials")
    frame.to_parquet(out_dir / "trials.parquet", index=False, engine="pyarrow")
    lines.append(f"{out_dir / 'trials.parquet'}: all {len(frame)} trials (Parquet)")
    records = records_frame(study)
    records.to_csv(out_dir / "rounds.csv", index=False)
    lines.append(f"{out_dir / 'rounds.csv'}: {len(records)} RoundRecords of all trials")
    rows = trial_rows(study)
    maximize = study.direction.name == "MAXIMIZE"
    plot_pareto(rows, metric=study_metric(study), maximize=maximize, path=out_dir / "pareto.png")
    lines.append(f"{out_dir / 'pareto.png'}: {study_metric(study)} vs bytes sent, Pareto front")
    return lines
