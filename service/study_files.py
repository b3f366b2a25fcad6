"""What a study gives to take away: its recommended trial's candidate and run config, the plot
of its trials (PNG) and floss-tune's export folder (zipped, made in a child process)."""

from __future__ import annotations

import io
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from service.errors import ServiceError
from service.workers import child_env, error_line

if TYPE_CHECKING:
    import optuna


def recommended_candidate(study: optuna.Study) -> tuple[dict[str, Any], dict[str, Any]]:
    """(candidate, full run config) of a study's recommended trial."""
    from tuner.report import best_trial

    trial = best_trial(study)
    if trial is None:
        raise ServiceError(409, f"study {study.study_name!r} has no recommendation yet")
    return dict(trial.user_attrs["candidate"]), dict(trial.user_attrs["full_config"])


def plot_png(study: optuna.Study) -> bytes:
    """The Pareto plot of a study's finished trials."""
    from tuner.export import plot_pareto
    from tuner.report import study_metric, trial_rows

    rows = trial_rows(study)
    if not any(r.state in ("COMPLETE", "PRUNED") for r in rows):
        raise ServiceError(409, f"study {study.study_name!r} has no finished trial to plot yet")
    with tempfile.TemporaryDirectory(prefix="floss-plot-") as tmp:
        path = Path(tmp) / "pareto.png"
        plot_pareto(
            rows,
            metric=study_metric(study),
            maximize=study.direction.name == "MAXIMIZE",
            path=path,
        )
        return path.read_bytes()


def export_zip(name: str, *, storage_url: str, work_dir: Path, timeout_seconds: float) -> bytes:
    """floss-tune export in a child process (it loads peft), zipped."""
    with tempfile.TemporaryDirectory(prefix="floss-export-", dir=work_dir) as tmp:
        out = Path(tmp) / name
        try:
            done = subprocess.run(
                [sys.executable, "-m", "tuner.cli", "export", str(out),
                 "--storage", storage_url, "--study-name", name],
                capture_output=True,
                timeout=timeout_seconds,
                cwd=tmp,
                env=child_env(),
                check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            raise ServiceError(504, f"export of {name!r} took over {timeout_seconds:g} s") from None
        if done.returncode != 0:
            lines = done.stderr.decode("utf-8", "replace").splitlines()
            raise ServiceError(409, f"cannot export {name!r}: {error_line(lines)}")
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for path in sorted(out.rglob("*")):
                if path.is_file():
                    zf.write(path, str(Path(name) / path.relative_to(out)))
        return buf.getvalue()
