"""Bad input and damaged files through the CLI: one line on stderr naming the file or option,
exit code 2, no traceback — for every case of the newcomer's list (issue 16) and more.

Two tiny digits runs are trained once for the module; each case copies them, damages or
misuses what it needs (the damaged files are built here: truncated, empty, random bytes,
another architecture's weights, a pickle naming a forbidden global) and runs the command
in-process through click's ``CliRunner``.  A few cases run as real processes to show that the
exit code and the single line hold outside the test harness too.
"""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from torch import nn

from topograph.cli.main import cli, main
from topograph.runs import Run, train

TINY = {
    "run": {"epochs": 2, "threads": 1},
    "data": {"name": "digits", "batch_size": 64, "limit_train": 128},
    "snapshots": {"every_epochs": 1},
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """``OUT/a/seed-0`` (SGD) and ``OUT/b/seed-0`` (Adam): finished tiny runs, trained once."""
    out = tmp_path_factory.mktemp("bad-input-runs")
    train({**TINY, "run": {**TINY["run"], "name": "a"}, "optimizer": {"name": "sgd", "lr": 0.1}},
          out, progress=False)
    train({**TINY, "run": {**TINY["run"], "name": "b"}, "optimizer": {"name": "adam", "lr": 0.01}},
          out, progress=False)
    return out


@pytest.fixture
def runs(trained, tmp_path) -> Path:
    """A private copy of the trained runs (a case may damage it)."""
    shutil.copytree(trained, tmp_path / "runs")
    return tmp_path / "runs"


# ---------------------------------------------------------------------- damaged and foreign files


class _Payload:
    """A pickle that would create ``marker`` when unpickled without restrictions."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def truncated(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def empty(path: Path) -> None:
    path.write_bytes(b"")


def random_bytes(path: Path) -> None:
    path.write_bytes(torch.randint(0, 256, (4000,), generator=torch.Generator().manual_seed(0),
                                   dtype=torch.uint8).numpy().tobytes())


def foreign_architecture(path: Path) -> None:
    """The state_dict of a 64-16-10 MLP where the run's model is 64-32-10."""
    torch.manual_seed(0)
    torch.save(nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10)).state_dict(), path)


def forbidden_global(path: Path) -> None:
    buf = io.BytesIO()
    torch.save({"weights": _Payload(str(path.parent / "PAYLOAD-RAN"))}, buf)
    path.write_bytes(buf.getvalue())


def unfinished(run_dir: Path) -> None:
    """Make a finished run look interrupted (its checkpoint is what resuming reads)."""
    (run_dir / "summary.json").unlink()
    (run_dir / "model.pt").unlink()


# ---------------------------------------------------------------------- the cases


@dataclass
class Case:
    """``setup(runs, tmp) -> argv``; the error line must hold every string of ``expect``."""

    id: str
    setup: Callable[[Path, Path], list[str]]
    expect: list[str]
    patch: dict[str, object] = field(default_factory=dict)


def _damage_model(damage):
    def setup(runs: Path, tmp: Path) -> list[str]:
        damage(runs / "a/seed-0/model.pt")
        return ["surface", str(runs / "a/seed-0"), "--resolution", "3"]
    return setup


def _resume_from(damage):
    def setup(runs: Path, tmp: Path) -> list[str]:
        run = runs / "a/seed-0"
        unfinished(run)
        damage(run / "checkpoints/last.pt")
        return ["train", str(run / "config.toml"), "--out", str(runs), "--quiet"]
    return setup


def _edit_config(old: str, new: str, command: str):
    def setup(runs: Path, tmp: Path) -> list[str]:
        cfg = runs / "a/seed-0/config.toml"
        cfg.write_text(cfg.read_text().replace(old, new))
        return [command, str(runs / "a/seed-0")]
    return setup


def _with_config(text: str, *extra: str):
    def setup(runs: Path, tmp: Path) -> list[str]:
        (tmp / "c.toml").write_text(text)
        return ["train", str(tmp / "c.toml"), "--out", str(tmp / "out"), "--quiet", *extra]
    return setup


def _args(*args: str):
    """argv with ``A``/``B`` for the runs' directories and ``T`` for the test's folder."""
    def setup(runs: Path, tmp: Path) -> list[str]:
        return [a.replace("A", str(runs / "a/seed-0")).replace("B", str(runs / "b/seed-0")).replace("T", str(tmp))
                if a[:1] in "ABT" else a for a in args]
    return setup


def _under_a_file(*args: str):
    """``--out`` under a regular file (``T/file/...``); ``T/c.toml`` is a valid config."""
    def setup(runs: Path, tmp: Path) -> list[str]:
        (tmp / "file").write_text("not a folder")
        (tmp / "c.toml").write_text(MOMENTUM_CONFIG)
        return _args(*args)(runs, tmp)
    return setup


def _snapshot(damage):
    def setup(runs: Path, tmp: Path) -> list[str]:
        damage(runs / "a/seed-0/snapshots/000001.pt")
        return ["surface", str(runs / "a/seed-0"), "--trajectory", "--resolution", "3"]
    return setup


def _write(relative: str, text: str, *argv: str):
    def setup(runs: Path, tmp: Path) -> list[str]:
        (runs / "a/seed-0" / relative).write_text(text)
        return _args(*argv)(runs, tmp)
    return setup


MOMENTUM_CONFIG = """
[run]
name = "m"
epochs = 1
[data]
name = "digits"
limit_train = 64
[optimizer]
name = "momentum"
lr = 0.05
momentum = 0.9
"""

CASES = [
    # 1. damaged or foreign run files
    Case("model-truncated", _damage_model(truncated), ["a/seed-0/model.pt", "damaged", "topograph train"]),
    Case("model-empty", _damage_model(empty), ["a/seed-0/model.pt", "empty (0 bytes)", "summary.json"]),
    Case("model-random-bytes", _damage_model(random_bytes), ["a/seed-0/model.pt", "damaged"]),
    Case("model-foreign-architecture", _damage_model(foreign_architecture),
         ["a/seed-0/model.pt", "does not match", "'1.weight'", "(16, 64) in the file", "(32, 64) in the model"]),
    Case("model-forbidden-global", _damage_model(forbidden_global),
         ["a/seed-0/model.pt", "refused", "open", "nothing in it was run"]),
    Case("curvature-model-empty", lambda r, t: (empty(r / "a/seed-0/model.pt"), ["curvature", str(r / "a/seed-0")])[1],
         ["a/seed-0/model.pt", "empty"]),
    Case("paths-model-truncated", lambda r, t: (truncated(r / "b/seed-0/model.pt"),
                                                _args("paths", "A", "B", "--steps", "1")(r, t))[1],
         ["b/seed-0/model.pt", "damaged"]),
    Case("config-edited-to-another-model", _edit_config('name = "mlp-digits"', 'name = "mlp-fmnist"', "surface"),
         ["a/seed-0/model.pt", "does not match the run's model 'mlp-fmnist'", "config.toml was edited"]),
    Case("config-edited-to-an-unknown-model", _edit_config('name = "mlp-digits"', 'name = "mlp-nope"', "curvature"),
         ["a/seed-0/config.toml", "describes no model", "mlp-nope"]),
    Case("checkpoint-random-as-path", lambda r, t: (random_bytes(r / "a/seed-0/checkpoints/last.pt"),
                                                    ["curvature", str(r / "a/seed-0/checkpoints/last.pt")])[1],
         ["checkpoints/last.pt", "damaged", "give the run directory"]),
    Case("checkpoint-truncated-as-path", lambda r, t: (truncated(r / "a/seed-0/checkpoints/last.pt"),
                                                       ["surface", str(r / "a/seed-0/checkpoints/last.pt")])[1],
         ["checkpoints/last.pt", "damaged"]),
    Case("resume-from-random-checkpoint", _resume_from(random_bytes),
         ["checkpoints/last.pt", "damaged", "delete it to restart the run from epoch 0"]),
    Case("resume-from-empty-checkpoint", _resume_from(empty), ["checkpoints/last.pt", "empty", "restart"]),
    Case("resume-from-truncated-checkpoint", _resume_from(truncated), ["checkpoints/last.pt", "restart"]),
    Case("resume-from-a-state-dict", _resume_from(foreign_architecture),
         ["checkpoints/last.pt", "not a resumable checkpoint", "restart"]),
    Case("resume-from-forbidden-global", _resume_from(forbidden_global),
         ["checkpoints/last.pt", "refused", "restart"]),
    Case("snapshot-truncated", _snapshot(truncated), ["snapshots/000001.pt", "damaged", "delete it"]),
    Case("snapshot-foreign", _snapshot(foreign_architecture), ["snapshots/000001.pt", "not a parameter snapshot"]),
    Case("summary-json-damaged", _write("summary.json", "{not json", "surface", "A"),
         ["a/seed-0/summary.json", "damaged", "topograph train"]),
    Case("surface-file-not-hdf5", _write("x.h5", "not HDF5", "surface", "A", "--resolution", "3", "--out",
                                         "A/x.h5"),
         ["x.h5", "HDF5"]),
    # 2. --out that cannot be written, in every command
    Case("out-under-a-file-quickstart", _under_a_file("quickstart", "--out", "T/file/q"),
         ["--out", "file/q", "is a file"]),
    Case("out-under-a-file-train", _under_a_file("train", "T/c.toml", "--out", "T/file/o"),
         ["--out", "file/o", "is a file"]),
    Case("out-under-a-file-surface", _under_a_file("surface", "A", "--out", "T/file/s.h5"), ["--out", "file/s.h5"]),
    Case("out-under-a-file-curvature", _under_a_file("curvature", "A", "--out", "T/file/c"), ["--out", "file/c"]),
    Case("out-under-a-file-paths", _under_a_file("paths", "A", "B", "--out", "T/file/p"), ["--out", "file/p"]),
    Case("out-under-a-file-demo", _under_a_file("demo", "--out", "T/file/d"), ["--out", "file/d"]),
    Case("out-under-a-file-study", _under_a_file("study", "quickstart", "--quick", "--out", "T/file/s"),
         ["--out", "file/s"]),
    Case("out-read-only-surface-default", _args("surface", "A", "--resolution", "3"),
         ["surface", "a/seed-0", "cannot be written", "--out"], patch={"topograph.cli.checks._writable": "deny"}),
    Case("out-read-only-train", _with_config(MOMENTUM_CONFIG), ["--out", "cannot be written"],
         patch={"topograph.cli.checks._writable": "deny"}),
    Case("out-read-only-found-when-writing", _args("curvature", "A", "--out", "T/c", "--trace-probes", "3"),
         ["curvature.json", "Read-only file system"], patch={"topograph.io.temp_file_beside": "erofs"}),
    # 3. study without the studies extra
    Case("study-without-optuna", _args("study", "quickstart", "--quick", "--out", "T/s"),
         ["optuna", "pip install 'topograph[studies]'"], patch={"optuna": None}),
    # 4. accepted nonsense, now refused
    Case("momentum-2", _with_config(MOMENTUM_CONFIG, "--set", "optimizer.momentum=2"),
         ["optimizer.momentum must be a number in [0, 1)", "got 2"]),
    Case("betas-above-1", _with_config(MOMENTUM_CONFIG, "--set", "optimizer.name=adam", "--set", "optimizer.momentum=",
                                       "--set", "optimizer.betas=[0.9, 1.5]"), ["optimizer.betas", "[0, 1)"]),
    Case("num-classes-3-on-10-classes", _with_config(MOMENTUM_CONFIG, "--set", "model.num_classes=3"),
         ["c.toml", "3 outputs", "10 classes", "model.num_classes = 10"]),
    Case("curvature-batch-beyond-data", _args("curvature", "A", "--batch-size", "100000"),
         ["--batch-size 100000", "only 128 samples"]),
    Case("surface-batch-beyond-data", _args("surface", "A", "--batch-size", "100000"),
         ["--batch-size 100000", "only 128 samples"]),
    Case("paths-same-run-twice", _args("paths", "A", "A"), ["a/seed-0", "same weights"]),
    Case("paths-run-and-its-model", _args("paths", "A", "A/model.pt"), ["model.pt", "same weights"]),
    Case("paths-runs-with-a-duplicate", _args("paths", "--runs", "A", "B", "A"), ["same weights", "once"]),
    Case("surface-out-png", _args("surface", "A", "--out", "T/x.png"), ["--out", "x.png", ".h5"]),
    Case("surface-resolution-1-plot", _args("surface", "A", "--resolution", "1", "--plot"),
         ["--plot", "--resolution 2 or more"]),
    Case("curvature-top-k-beyond-parameters", _args("curvature", "A", "--top-k", "100000"),
         ["--top-k 100000", "2410 parameters"]),
    # 5. click's usage errors as one line naming the option and what is allowed
    Case("dim-3", _args("surface", "A", "--dim", "3"), ["--dim", "'3' is not one of '1', '2'", "surface --help"]),
    Case("top-k-0", _args("curvature", "A", "--top-k", "0"), ["--top-k", "x>=1", "curvature --help"]),
    Case("points-2", _args("paths", "A", "B", "--points", "2"), ["--points", "x>=3"]),
    Case("lr-negative", _args("paths", "A", "B", "--lr", "-1"), ["--lr", "x>0"]),
    Case("norm-unknown", _args("surface", "A", "--norm", "fancy"), ["--norm", "'fancy' is not one of"]),
    Case("unknown-option", _args("curvature", "A", "--top", "3"), ["No such option", "--top"]),
    Case("missing-argument", _args("train"), ["Missing argument", "CONFIG"]),
    # 6. switching the optimizer with --set leaves keys of the old one
    Case("set-optimizer-name-leftover-key", _with_config(MOMENTUM_CONFIG, "--set", "optimizer.name=adam"),
         ["optimizer.momentum does not apply", "'adam'", "--set optimizer.momentum="]),
]


def _apply_patches(monkeypatch, patch: dict[str, object]) -> None:
    for target, how in patch.items():
        if target == "optuna":
            monkeypatch.setitem(sys.modules, "optuna", None)  # `import optuna` raises ImportError
        elif how == "deny":
            monkeypatch.setattr(target, lambda *a, **k: False)
        elif how == "erofs":
            def read_only(path, **kwargs):
                raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
            monkeypatch.setattr(target, read_only)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_input_is_one_line_exit_2(case: Case, runs: Path, tmp_path: Path, monkeypatch) -> None:
    argv = case.setup(runs, tmp_path)
    _apply_patches(monkeypatch, case.patch)
    result = CliRunner().invoke(cli, argv)
    err = result.stderr
    assert isinstance(result.exception, SystemExit), result.exception  # no exception escaped
    assert result.exit_code == 2, (result.exit_code, err, result.stdout)
    assert err.startswith("topograph: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in result.output
    assert "\n\n" not in result.output and not result.stdout.startswith("\n")  # no blank lines
    for part in case.expect:
        assert part in err, (part, err)
    assert not (runs / "a/seed-0/PAYLOAD-RAN").exists()  # the forbidden global never ran


def test_at_least_thirty_cases():
    assert len(CASES) >= 30 and len({c.id for c in CASES}) == len(CASES)


# ---------------------------------------------------------------------- in real processes


@pytest.mark.parametrize("make, expect", [
    (lambda r, t: (truncated(r / "a/seed-0/model.pt"), ["surface", str(r / "a/seed-0")])[1], "damaged"),
    (lambda r, t: (forbidden_global(r / "a/seed-0/model.pt"), ["curvature", str(r / "a/seed-0")])[1], "refused"),
    (lambda r, t: ["surface", str(r / "a/seed-0"), "--dim", "3"], "--dim"),
    (lambda r, t: ((t / "file").write_text("x"), ["paths", str(r / "a/seed-0"), str(r / "b/seed-0"),
                                                  "--out", str(t / "file/p")])[1], "is a file"),
], ids=["model-truncated", "forbidden-global", "dim-3", "out-under-a-file"])
@pytest.mark.slow
def test_real_process_exit_code_2_and_one_line(make, expect, runs, tmp_path):
    argv = make(runs, tmp_path)
    proc = subprocess.run([sys.executable, "-m", "topograph.cli.main", *argv], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("topograph: error: ")
    assert expect in proc.stderr and "Traceback" not in proc.stderr + proc.stdout
    assert not (runs / "a/seed-0/PAYLOAD-RAN").exists()


# ---------------------------------------------------------------------- the ways back the messages give


def test_restart_after_a_damaged_checkpoint_gives_the_uninterrupted_run(runs, trained, capsys):
    """The line says: delete the checkpoint, run the same command; that ends as a fresh run."""
    run = runs / "a/seed-0"
    unfinished(run)
    random_bytes(run / "checkpoints/last.pt")
    argv = ["train", str(run / "config.toml"), "--out", str(runs), "--quiet"]
    assert main(argv) == 2
    message = capsys.readouterr().err
    assert f"rm {run / 'checkpoints/last.pt'}" in message
    (run / "checkpoints/last.pt").unlink()
    assert main(argv) == 0
    assert f"run directory: {run}" in capsys.readouterr().out
    fresh = torch.load(run / "model.pt", weights_only=True)
    reference = torch.load(trained / "a/seed-0/model.pt", weights_only=True)
    assert fresh.keys() == reference.keys() and all(torch.equal(fresh[k], reference[k]) for k in fresh)
    assert [r["train_loss"] for r in Run.open(run).metrics()] == [
        r["train_loss"] for r in Run.open(trained / "a/seed-0").metrics()]


def test_a_damaged_model_is_rewritten_by_the_command_the_line_gives(runs, trained, capsys):
    run = runs / "a/seed-0"
    truncated(run / "model.pt")
    assert main(["curvature", str(run)]) == 2
    message = capsys.readouterr().err
    command = message.split("then run `")[1].split("`")[0]
    assert command == f"topograph train {run / 'config.toml'} --out {runs}"
    (run / "model.pt").unlink()
    (run / "summary.json").unlink()
    assert main([*command.split()[1:], "--quiet"]) == 0
    assert (run / "model.pt").read_bytes() == (trained / "a/seed-0/model.pt").read_bytes()


def test_a_damaged_metrics_table_is_named_and_rewritten(runs, trained, capsys):
    from topograph.errors import DamagedFileError

    run = runs / "a/seed-0"
    (run / "metrics.csv").write_text("epoch,step\n0,zero\n")
    with pytest.raises(DamagedFileError, match=r"a/seed-0/metrics.csv: is damaged.*topograph train"):
        Run.open(run).metrics()
    (run / "metrics.csv").unlink()
    (run / "summary.json").unlink()
    assert main(["train", str(run / "config.toml"), "--out", str(runs), "--quiet"]) == 0
    assert (run / "metrics.csv").read_text() == (trained / "a/seed-0/metrics.csv").read_text()


def test_a_finished_runs_damaged_checkpoint_points_to_its_final_weights(runs, capsys):
    random_bytes(runs / "a/seed-0/checkpoints/last.pt")
    assert main(["surface", str(runs / "a/seed-0/checkpoints/last.pt")]) == 2
    assert "the run is finished" in capsys.readouterr().err
    assert Run.open(runs / "a/seed-0").model()  # the final weights are intact


def test_the_corrected_rerun_after_num_classes_3_is_not_blocked(tmp_path, capsys):
    config = tmp_path / "c.toml"
    config.write_text(MOMENTUM_CONFIG)
    out = tmp_path / "out"
    assert main(["train", str(config), "--out", str(out), "--quiet", "--set", "model.num_classes=3"]) == 2
    assert not (out / "m").exists()  # refused before anything is written
    # a directory left by an older version (config.toml but nothing trained) does not block either
    (out / "m/seed-0").mkdir(parents=True)
    (out / "m/seed-0/config.toml").write_text('[model]\nname = "mlp-digits"\nnum_classes = 3\n')
    assert main(["train", str(config), "--out", str(out), "--quiet"]) == 0
    assert Run.open(out / "m/seed-0").summary["status"] == "completed"


def test_set_with_an_empty_value_removes_the_key(tmp_path, capsys):
    config = tmp_path / "c.toml"
    config.write_text(MOMENTUM_CONFIG)
    out = tmp_path / "out"
    assert main(["train", str(config), "--out", str(out), "--quiet", "--set", "optimizer.name=adam",
                 "--set", "optimizer.momentum="]) == 0
    optimizer = Run.open(out / "m/seed-0").config["optimizer"]
    assert optimizer["name"] == "adam" and "momentum" not in optimizer


# ---------------------------------------------------------------------- handled sensibly


@pytest.mark.slow
def test_lanczos_finding_fewer_eigenvalues_says_so(runs, tmp_path):
    # 5 samples: the Hessian's Krylov space closes long before 2,000 steps
    result = CliRunner().invoke(cli, ["curvature", str(runs / "a/seed-0"), "--top-k", "2000", "--batch-size", "5",
                                      "--trace-probes", "3", "--out", str(tmp_path / "c")])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "c/curvature.json").read_text())
    found = len(report["top_eigenvalues"])
    assert report["top_k"] == 2000 and 0 < found < 2000 and report["samples"] == 5
    assert f"note: Lanczos found {found} of the 2000 eigenvalues" in result.stdout


@pytest.mark.slow
def test_paths_write_beside_the_runs(runs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["paths", str(runs / "a/seed-0"), str(runs / "b/seed-0"),
                                      "--method", "linear"])
    assert result.exit_code == 0, result.output
    assert (runs / "a/seed-0/paths/b-seed-0-linear/paths.json").is_file()
    result = CliRunner().invoke(cli, ["paths", "--runs", str(runs / "a/seed-0"), str(runs / "b/seed-0")])
    assert result.exit_code == 0, result.output
    assert (runs / "paths-linear/solutions.json").is_file()
    assert not (tmp_path / "paths-out").exists()


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_written_files_respect_the_umask(tmp_path, umask):
    from topograph.io import atomic_open, atomic_torch_save, atomic_write_text

    old = os.umask(umask)
    try:
        files = [atomic_write_text(tmp_path / "a.txt", "x"), atomic_torch_save(tmp_path / "b.pt", {"x": 1})]
        with atomic_open(tmp_path / "c.csv", "w") as fh:
            fh.write("x")
        files.append(tmp_path / "c.csv")
        (tmp_path / "plain").write_text("x")  # what open() gives: the reference
        expected = (tmp_path / "plain").stat().st_mode & 0o777
    finally:
        os.umask(old)
    assert expected == 0o666 & ~umask
    assert [f.stat().st_mode & 0o777 for f in files] == [expected] * 3


def test_demo_help_gives_an_estimate():
    result = CliRunner().invoke(cli, ["demo", "--help"])
    assert result.exit_code == 0 and "about 6 minutes" in result.output


@pytest.mark.slow
def test_demo_reports_progress_off_a_terminal(tmp_path):
    result = CliRunner().invoke(cli, ["demo", "--quick", "--landscape", "himmelblau", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "demo: himmelblau done (1/1," in result.stderr


def test_study_intro_states_the_modes_seed_count():
    from topograph.studies import load_study

    for name in ("quickstart", "guided-exploration"):
        quick, default = load_study(name, quick=True), load_study(name)
        assert f"over {len(quick.budget.seeds)} seeds" in quick.description and "{seeds}" not in quick.description
        assert f"over {len(default.budget.seeds)} seeds" in default.description
        assert len(quick.budget.seeds) != len(default.budget.seeds)


def test_quickstart_names_what_it_reuses(tmp_path):
    from topograph.quickstart import earlier_results

    assert earlier_results(tmp_path) == ""
    (tmp_path / "sgd/seed-0").mkdir(parents=True)
    (tmp_path / "sgd/seed-0/summary.json").write_text("{}")
    (tmp_path / "adam/seed-0/checkpoints").mkdir(parents=True)
    (tmp_path / "adam/seed-0/checkpoints/last.pt").write_bytes(b"")
    assert earlier_results(tmp_path) == "1 finished run and 1 interrupted run (resumed)"
    (tmp_path / "analysis").mkdir()
    (tmp_path / "analysis/curvature.json").write_text("{}")
    assert earlier_results(tmp_path).endswith("and the curvature")


def test_example_config_digits_sgd_trains_plain_sgd():
    from topograph.runs import load_config

    cfg = load_config(Path(__file__).resolve().parents[2] / "examples/configs/digits-sgd.toml")
    assert cfg.optimizer.name == "sgd" and cfg.optimizer.hyperparameters["momentum"] == 0
