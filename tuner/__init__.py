"""The autotuner: the one place that joins the planner and the trainer (Optuna studies over the
configurations a budget affords, trained by the trainer and reported with the planner's prices).

This face names the package's public API (docs/contracts.md, "Package faces"); each name is
imported from its home module on first use, so ``import tuner`` loads no Optuna or torch.
"""

from __future__ import annotations

from planner import lazy_face

# name -> the module it lives in
_HOMES = {
    "Candidate": "tuner.candidate",
    "SearchSpace": "tuner.search_space",
    "TrialRow": "tuner.report",
    "TuneError": "tuner.settings",
    "TuneSettings": "tuner.settings",
    "best_trial": "tuner.report",
    "build_space": "tuner.build",
    "export_study": "tuner.export",
    "open_storage": "tuner.storage",
    "plot_pareto": "tuner.export",
    "recommendation_line": "tuner.report",
    "recommended_full_config": "tuner.report",
    "run_tuning": "tuner.runner",
    "trial_rows": "tuner.report",
}
__all__ = sorted(_HOMES)
__getattr__ = lazy_face(__name__, _HOMES)
