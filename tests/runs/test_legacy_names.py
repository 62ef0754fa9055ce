"""Run directories written before the work counts were renamed (``grad_evals``/``func_evals`` →
``backward_passes``/``forward_passes``) read and resume under the current names, and a resumed
one ends exactly like a run trained under the current names throughout."""

from __future__ import annotations

import json

import pytest
import torch

from topograph.runs import Run, train
from topograph.runs.store import CHECKPOINT_FILE, METRICS_FILE, SUMMARY_FILE, TIME_COLUMNS

# the names this version writes -> the names the earlier version wrote (written out here, not
# taken from topograph.runs.legacy, so the test checks that table too)
EARLIER = {
    "backward_passes": "grad_evals", "forward_passes": "func_evals",
    "backward_passes_total": "grad_evals_total", "forward_passes_total": "func_evals_total",
    "backward_samples_total": "grad_samples_total", "backward_samples": "grad_samples",
    "ep_backward0": "ep_grad0", "ep_forward0": "ep_func0",
    "backward_total": "grad_total", "forward_total": "func_total",
}


def config():
    return {
        "run": {"name": "old", "epochs": 3, "threads": 1},
        "data": {"name": "digits", "batch_size": 32, "limit_train": 128, "limit_test": 100},
        "model": {"name": "mlp-digits"},
        "optimizer": {"name": "sam", "rho": 0.05, "base": {"name": "sgd", "lr": 0.1}},  # 2 F/B per step
    }


class Stop(Exception):
    pass


def earlier_names(mapping):
    return {EARLIER.get(k, k): v for k, v in mapping.items()}


def make_earlier(run_dir):
    """Rewrite a run directory as the earlier version wrote it."""
    lines = (run_dir / METRICS_FILE).read_text().splitlines()
    header = ",".join(EARLIER.get(c, c) for c in lines[0].split(","))
    (run_dir / METRICS_FILE).write_text("\n".join([header, *lines[1:]]) + "\n")
    ck = torch.load(run_dir / CHECKPOINT_FILE, weights_only=True)
    ck["loop"] = earlier_names(ck["loop"])
    ck["loop"]["rows"] = [earlier_names(r) for r in ck["loop"]["rows"]]
    torch.save(ck, run_dir / CHECKPOINT_FILE)
    if (run_dir / SUMMARY_FILE).exists():
        summary = json.loads((run_dir / SUMMARY_FILE).read_text())
        (run_dir / SUMMARY_FILE).write_text(json.dumps(earlier_names(summary)))


def without_times(rows):
    return [{k: v for k, v in r.items() if k not in TIME_COLUMNS} for r in rows]


def test_an_earlier_interrupted_run_resumes_under_the_current_names(tmp_path):
    ref = train(config(), tmp_path / "ref", progress=False)

    def stop_at_1(row):
        if row["epoch"] == 1:
            raise Stop

    with pytest.raises(Stop):
        train(config(), tmp_path / "cut", progress=False, on_epoch=stop_at_1)
    run_dir = tmp_path / "cut" / "old" / "seed-0"
    make_earlier(run_dir)
    assert "grad_evals_total" in (run_dir / METRICS_FILE).read_text()

    seen = []
    run = train(config(), tmp_path / "cut", progress=False, on_epoch=seen.append)
    assert [r["epoch"] for r in seen] == [0, 1, 2, 3]
    assert all("backward_passes_total" in r and "grad_evals_total" not in r for r in seen)
    got, want = without_times(run.metrics()), without_times(ref.metrics())
    assert [sorted(r) for r in got] == [sorted(r) for r in want]
    for a, b in zip(got, want):
        assert a == pytest.approx(b, rel=1e-6, nan_ok=True)
    assert run.metrics()[-1]["backward_passes_total"] == 2 * 4 * 3  # SAM: 2 per step, 4 batches, 3 epochs
    assert run.summary["backward_passes"] == ref.summary["backward_passes"] == 24
    assert run.summary["forward_passes"] == ref.summary["forward_passes"]


def test_an_earlier_finished_run_reads_under_the_current_names(tmp_path):
    ref = train(config(), tmp_path / "ref", progress=False)
    want_rows, want_summary = ref.metrics(), dict(ref.summary)
    make_earlier(ref.path)
    assert "grad_evals" in (ref.path / SUMMARY_FILE).read_text()

    old = Run.open(ref.path)
    assert old.summary == want_summary
    assert json.dumps(old.metrics()) == json.dumps(want_rows)  # (NaN == NaN as text)
    again = train(config(), tmp_path / "ref", progress=False)  # finished: returned as it is
    assert again.summary["backward_passes"] == 24
