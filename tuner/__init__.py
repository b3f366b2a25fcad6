"""The autotuner: the one place that joins the planner and the trainer (Optuna studies over the
configurations a budget affords, trained by the trainer and reported with the planner's prices).

This face names the package's public API (docs/contracts.md, "Package faces"); each name is
imported from its home module on first use, so ``import tuner`` loads no Optuna or torch.
"""

from __future__ import annotations

from planner import lazy_face

# home module -> the names it gives the face
_FACE = {
    "tuner.build": ("build_space",),
    "tuner.candidate": ("Candidate",),
    "tuner.export": ("export_study", "plot_pareto"),
    "tuner.report": (
        "TrialRow",
        "best_trial",
        "recommendation_line",
        "recommended_full_config",
        "trial_rows",
    ),
    "tuner.runner": ("run_tuning",),
    "tuner.search_space": ("SearchSpace",),
    "tuner.settings": ("TuneError", "TuneSettings"),
    "tuner.storage": ("open_storage",),
}
__all__ = sorted(name for names in _FACE.values() for name in names)
__getattr__ = lazy_face(__name__, _FACE)
