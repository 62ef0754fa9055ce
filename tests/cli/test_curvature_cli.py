"""``topograph curvature`` on a tiny trained run: table, JSON and plots; user mistakes → exit 2."""

import json

import pytest
import torch

from topograph.cli.main import main


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from topograph.runs import train

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    doc = {
        "run": {"epochs": 2, "seeds": [0]},
        "data": {"name": "digits", "limit_train": 120, "limit_test": 60, "batch_size": 40},
        "model": {"name": "mlp-digits"},
        "optimizer": {"name": "sgd", "lr": 0.1},
        "snapshots": {"every_epochs": 1},
    }
    run = train(doc, tmp_path_factory.mktemp("runs"), progress=False)
    yield run
    torch.set_num_threads(before)


@pytest.mark.slow
def test_curvature_cli_writes_json_and_plots_that_match_the_library(tiny_run, tmp_path, capsys):
    from topograph.curvature import HessianOperator, lanczos

    out = tmp_path / "curv"
    code = main(["curvature", str(tiny_run.path), "--top-k", "2", "--trace-probes", "20",
                 "--density", "--per-layer", "--along-trajectory", "--batch-size", "100",
                 "--out", str(out)])
    assert code == 0
    report = json.loads((out / "curvature.json").read_text())
    obj = tiny_run.objective()
    x, y = obj.splits["train"]
    ref = lanczos(HessianOperator(obj, batch=(x[:100], y[:100])), k=1, tol=1e-8, max_steps=200)
    assert report["top_eigenvalues"][0] == pytest.approx(ref.top, rel=1e-3)
    assert report["samples"] == 100 and len(report["layers"]) == 2
    assert len(report["along_trajectory"]["measures"]) == len(tiny_run.snapshots()[0])
    for name in ("density.png", "density.svg", "along_trajectory.png", "along_trajectory.svg"):
        assert (out / name).stat().st_size > 0
    assert "λ_1" in capsys.readouterr().out


def test_curvature_cli_user_mistakes_exit_2(tmp_path, capsys, tiny_run):
    assert main(["curvature", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["curvature", str(tiny_run.path), "--top-k", "0"]) == 2
    assert main(["curvature", str(tmp_path)]) == 2  # exists, but not a run
