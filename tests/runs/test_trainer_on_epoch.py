"""The trainer's per-epoch callback: every row once, in order, and a raising callback leaves a
resumable run that ends exactly like an uninterrupted one (SAM as the optimizer: 2 F/B per step)."""

from __future__ import annotations

import pytest
import torch

from topograph.runs import train
from topograph.runs.store import SUMMARY_FILE, TIME_COLUMNS

BATCHES = 4  # 128 samples / batch 32


def config():
    return {
        "run": {"name": "cb", "epochs": 3, "threads": 1},
        "data": {"name": "digits", "batch_size": 32, "limit_train": 128, "limit_test": 100},
        "model": {"name": "mlp-digits"},
        "optimizer": {"name": "sam", "rho": 0.05, "base": {"name": "sgd", "lr": 0.1}},
    }


class Stop(Exception):
    pass


def strip(rows):
    """Rows without wall times, NaN as a string (so that == compares them)."""
    return [{k: ("nan" if v != v else v) for k, v in r.items() if k not in TIME_COLUMNS} for r in rows]


def test_on_epoch_rows_and_resume_after_a_raising_callback(tmp_path):
    seen: list[dict] = []
    ref = train(config(), tmp_path / "ref", progress=False, on_epoch=seen.append)
    assert [r["epoch"] for r in seen] == [0, 1, 2, 3]
    ref_rows = ref.metrics()
    for got, want in zip(seen, ref_rows):  # the rows as written (the CSV keeps ~7 significant digits)
        assert {k: v for k, v in got.items() if k not in TIME_COLUMNS} == pytest.approx(
            {k: v for k, v in want.items() if k not in TIME_COLUMNS}, rel=1e-6, nan_ok=True)
    # SAM through the registry and the trainer: 2 forward/backward passes per step
    assert [r["backward_passes"] for r in ref_rows[1:]] == [2 * BATCHES] * 3

    def stop_at_2(row):
        if row["epoch"] == 2:
            raise Stop  # e.g. optuna.TrialPruned

    with pytest.raises(Stop):
        train(config(), tmp_path / "cut", progress=False, on_epoch=stop_at_2)
    run_dir = tmp_path / "cut" / "cb" / "seed-0"
    assert not (run_dir / SUMMARY_FILE).exists()
    resumed: list[dict] = []
    run = train(config(), tmp_path / "cut", progress=False, on_epoch=resumed.append)
    assert [r["epoch"] for r in resumed] == [0, 1, 2, 3]  # the stored rows first, then the new one
    assert strip(run.metrics()) == strip(ref_rows)
    for a, b in zip(ref.model().parameters(), run.model().parameters()):
        assert torch.equal(a, b)
    again: list[dict] = []  # a finished run: nothing retrained, every row delivered
    train(config(), tmp_path / "cut", progress=False, on_epoch=again.append)
    assert [r["epoch"] for r in again] == [0, 1, 2, 3]
    assert strip(run.metrics()) == strip(ref_rows)


def test_optuna_pruning_through_on_epoch_leaves_a_resumable_trial(tmp_path):
    import optuna

    from topograph.runs.config import RunConfig
    from topograph.runs.store import CHECKPOINT_FILE
    from topograph.runs.trainer import Session
    from topograph.studies.tuning import _PruningCallback

    doc = config()
    doc["data"]["val_size"] = 32
    doc["optimizer"] = {"name": "sgd", "lr": 0.1}
    cfg = RunConfig.from_dict(doc, source="test")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=2.0))
    trial = study.ask()  # any accuracy < 2 is pruned at the first epoch
    run_dir = tmp_path / "trial"
    with pytest.raises(optuna.TrialPruned, match="epoch 1"):
        Session(cfg, 0, run_dir, on_epoch=_PruningCallback(trial)).run()
    reported = study._storage.get_trial(trial._trial_id).intermediate_values
    rows = Session(cfg, 0, run_dir).run().metrics()  # resumes from the checkpoint after epoch 1
    assert (run_dir / CHECKPOINT_FILE).exists() and [r["epoch"] for r in rows] == [0, 1, 2, 3]
    assert reported == {1: pytest.approx(rows[1]["val_acc"], rel=1e-6)}
