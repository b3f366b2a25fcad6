"""A finished study in a storage, made without training: the trial attributes floss-tune
writes, for tests that read, show, plan from or export a study."""

from __future__ import annotations


def make_fake_study(storage: str, name: str = "fake") -> None:
    """A finished study in ``storage`` with the trial attributes floss-tune writes (candidate,
    records, full run config), made without training: three complete trials and a pruned one."""
    import optuna
    from optuna.distributions import CategoricalDistribution, IntDistribution
    from optuna.trial import TrialState, create_trial

    from planner.profiles import load_model
    from trainer.config import RunConfig
    from tuner.storage import open_storage

    model = load_model("all-minilm-l6-v2")
    study = optuna.create_study(
        storage=open_storage(storage), study_name=name, direction="maximize"
    )
    study.set_user_attr("floss_space", {"metric": "val_accuracy"})
    dists = {
        "rank": IntDistribution(1, 64),
        "d_down": CategoricalDistribution([1.0, 0.25]),
        "d_up": CategoricalDistribution([1.0, 0.0625]),
    }
    for i, (rank, d_down, d_up, acc, state) in enumerate(
        [
            (16, 1.0, 1.0, 0.60, TrialState.COMPLETE),
            (8, 0.25, 0.0625, 0.70, TrialState.COMPLETE),
            (4, 0.25, 0.0625, 0.65, TrialState.COMPLETE),
            (2, 1.0, 0.0625, 0.30, TrialState.PRUNED),
        ]
    ):
        n = model.adapter_params(rank, num_labels=model.num_labels)
        per_round = 10_000 * rank
        cand = {
            "method": "floss",
            "topk": "global",
            "rank": rank,
            "d_down": d_down,
            "d_up": d_up,
            "n": n,
            "rounds": 4,
            "full_rounds": 40,
            "bytes_per_round": per_round,
            "full_bytes": 40 * per_round,
            "why": "",
        }
        records = [
            {
                "round": r,
                "cum_bytes": r * per_round,
                "cum_sim_seconds": r * 0.5,
                "val_accuracy": acc,
                "client_steps": 10,
            }
            for r in range(1, 5)
        ]
        full = RunConfig(rank=rank, d_down=d_down, d_up=d_up, rounds=40).to_dict()
        study.add_trial(
            create_trial(
                state=state,
                value=acc if state == TrialState.COMPLETE else None,
                params={"rank": rank, "d_down": d_down, "d_up": d_up},
                distributions=dists,
                intermediate_values={1: acc},
                user_attrs={
                    "candidate": cand,
                    "records": records,
                    "full_config": full,
                    "client_steps": 40,
                    "key": f"k{i}",
                },
            )
        )
