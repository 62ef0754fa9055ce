"""`topograph surface|curvature|paths` on a model the project never saw: a factory module the test
writes to a temporary folder (a conv net with BatchNorm and a skip connection, and data
factories), weights trained here and saved with ``torch.save(model.state_dict())``.

Each command's outputs are checked against the library called directly on the same model and
data (equal values), and against plain references (a forward pass, a dense Hessian); every
way the options can go wrong is one line on stderr, exit code 2, no traceback.
"""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from tests.helpers import cross_entropy_of_flat, dense_hessian, write_user_factories
from topograph import Objective
from topograph.cli.main import cli
from topograph.core import ParamSpec
from topograph.curvature import HessianOperator, lanczos
from topograph.data import load_dataset
from topograph.landscape import Surface, compute_surface, random_directions
from topograph.models import build_model
from topograph.paths.report import compare_solutions

MODULE = "own_cli_nets"


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """The user's folder: the factory module and two trained solutions a.pt, b.pt (width 4), a
    width-5 model's weights, a whole pickled module and a truncated file."""
    root = tmp_path_factory.mktemp("own-models")
    write_user_factories(root, MODULE)
    (root / f"{MODULE}_pkg").mkdir()  # a package, as in `--model mypkg.nets:resnet20`
    (root / f"{MODULE}_pkg/__init__.py").write_text("")
    (root / f"{MODULE}_pkg/nets.py").write_text(f"from {MODULE} import SkipNet, net\n")
    sys.path.insert(0, str(root))
    try:
        user = importlib.import_module(MODULE)
        _train_and_save(user, root)
    finally:
        sys.path.remove(str(root))
        del sys.modules[MODULE]
    (root / "small.toml").write_text(f'[model]\nfactory = "{MODULE}:net"\nwidth = 4\n\n'
                                     f'[data]\nfactory = "{MODULE}:data"\n[data.kwargs]\nn = 48\n', encoding="utf-8")
    return root


def _train_and_save(user, root: Path) -> None:
    x, y = user.data()["train"]
    for seed, name in ((0, "a.pt"), (1, "b.pt")):
        torch.manual_seed(seed)
        model = user.net(width=4)
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        for _ in range(30):  # train mode: the BatchNorm running statistics move too
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
        torch.save(model.state_dict(), root / name)
    torch.save(user.net(width=5).state_dict(), root / "width5.pt")
    torch.save(user.net(width=4), root / "whole-module.pt")
    data = (root / "a.pt").read_bytes()
    (root / "truncated.pt").write_bytes(data[: len(data) // 2])


@pytest.fixture(autouse=True)
def in_folder(folder, monkeypatch):
    """Run in the user's folder, one thread; sys.path and sys.modules as they were afterwards."""
    monkeypatch.chdir(folder)
    monkeypatch.setattr(sys, "path", list(sys.path))
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
    for name in [m for m in sys.modules if m.startswith(MODULE) or m.startswith("_topograph_factory_")]:
        del sys.modules[name]


MODEL = ["--model", f"{MODULE}:net", "--model-arg", "width=4"]
DATA = ["--data", f"{MODULE}:data", "--data-arg", "n=48"]


def invoke(argv: list[str]):
    result = CliRunner().invoke(cli, argv)
    assert result.exit_code == 0, (result.exit_code, result.stderr, result.exception)
    return result


def reference(folder: Path, weights: str = "a.pt"):
    """The same model and data built by hand, and the library's Objective on them."""
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))  # undone by `in_folder`
    user = importlib.import_module(MODULE)
    model = user.net(width=4)
    model.load_state_dict(torch.load(folder / weights, weights_only=True))
    data = user.data(n=48)
    return model, data, Objective(model, F.cross_entropy, data)


# ---------------------------------------------------------------------- the three commands


def test_surface_of_a_weights_file_equals_the_library(folder):
    result = invoke(["surface", *MODEL, "--weights", "a.pt", *DATA, "--resolution", "3", "--out", "s.h5"])
    assert "9/9 points" in result.stdout
    surface = Surface.load(folder / "s.h5")
    model, data, objective = reference(folder)
    directions = random_directions(objective, dim=2, norm="filter", ignore_1d=True, seed=0)
    expected = compute_surface(objective, directions, range=(-1.0, 1.0), resolution=3, progress=False)
    np.testing.assert_array_equal(surface.loss, expected.loss)
    np.testing.assert_array_equal(surface.accuracy, expected.accuracy)
    x, y = data["train"]
    with torch.no_grad():  # the centre is the trained model itself, in eval mode (BatchNorm's statistics)
        plain = F.cross_entropy(model.eval()(x), y).item()
    assert surface.loss[1, 1] == pytest.approx(plain, rel=1e-5)


def test_surface_default_output_lies_beside_the_weights_and_resumes(folder):
    result = invoke(["surface", *MODEL, "--weights", "b.pt", *DATA, "--resolution", "3", "--dim", "1"])
    out = folder / "b-surface-1d-filter-seed0-train.h5"
    assert out.exists() and "3 computed now" in result.stdout
    result = invoke(["surface", *MODEL, "--weights", "b.pt", *DATA, "--resolution", "3", "--dim", "1"])
    assert "0 computed now" in result.stdout


def test_config_names_the_same_model_and_data(folder):
    invoke(["surface", "--config", "small.toml", "--weights", "a.pt", "--resolution", "3", "--out", "c.h5"])
    invoke(["surface", *MODEL, "--weights", "a.pt", *DATA, "--resolution", "3", "--out", "o.h5"])
    np.testing.assert_array_equal(Surface.load(folder / "c.h5").loss, Surface.load(folder / "o.h5").loss)


def test_curvature_of_a_weights_file_equals_the_library_and_the_dense_hessian(folder):
    invoke(["curvature", *MODEL, "--weights", "a.pt", *DATA, "--top-k", "2", "--trace-probes", "3",
            "--out", "curv"])
    report = json.loads((folder / "curv/curvature.json").read_text())
    model, data, objective = reference(folder)
    eig = lanczos(HessianOperator(objective, None, split="train"), k=2, which="LA", tol=1e-3, seed=0)
    np.testing.assert_array_equal(report["top_eigenvalues"], [float(v) for v in eig.eigenvalues])
    x, y = data["train"]
    flat = ParamSpec.from_module(model).flatten(dict(model.named_parameters())).detach()
    dense = torch.linalg.eigvalsh(dense_hessian(cross_entropy_of_flat(model.eval(), x, y), flat))
    assert report["top_eigenvalues"][0] == pytest.approx(dense[-1].item(), rel=1e-3)
    assert report["loss"] == pytest.approx(objective.loss(), rel=1e-6)
    assert report["path"] == "a.pt" and report["parameters"] == flat.numel()


def test_curvature_default_output_lies_beside_the_weights(folder):
    invoke(["curvature", "--config", "small.toml", "--weights", "b.pt", "--top-k", "1", "--trace-probes", "3"])
    assert (folder / "b-curvature/curvature.json").exists()


def test_paths_between_two_weights_files_equal_the_library(folder):
    invoke(["paths", *MODEL, *DATA, "--weights", "a.pt", "--weights", "b.pt", "--steps", "3", "--points", "5"])
    out = folder / "paths/a-b-fourier"
    report = json.loads((out / "paths.json").read_text())
    _, data, objective = reference(folder)
    model_b, _, _ = reference(folder, "b.pt")
    spec = objective.spec
    theta_a = objective.flat_params()
    theta_b = spec.flatten(dict(model_b.named_parameters())).detach()
    expected = compare_solutions(objective, theta_a, theta_b, None, method="fourier", steps=3, points=5,
                                 progress=False)
    for name in ("straight", "fourier"):
        assert report[name]["height"] == expected[name].height
        assert report[name]["barrier"] == expected[name].barrier
    x, y = data["train"]
    with torch.no_grad():  # the straight line's ends are the two models, B's own BatchNorm aside
        model_a = reference(folder)[0].eval()
        assert report["straight"]["profiles"]["train"]["endpoint_losses"][0] == pytest.approx(
            F.cross_entropy(model_a(x), y).item(), rel=1e-5)


def test_torch_datasets_and_numpy_arrays_are_read_into_tensors(folder):
    invoke(["surface", *MODEL, "--weights", "a.pt", "--data", f"{MODULE}:data_torch", "--resolution", "2",
            "--dim", "1", "--out", "t.h5"])
    invoke(["surface", *MODEL, "--weights", "a.pt", "--data", f"{MODULE}:data_pair", "--resolution", "2",
            "--dim", "1", "--out", "p.h5"])
    # the same samples (TensorDataset of the pair's tensors): the same curve
    np.testing.assert_array_equal(Surface.load(folder / "t.h5").loss, Surface.load(folder / "p.h5").loss)
    invoke(["surface", *MODEL, "--weights", "a.pt", "--data", f"{MODULE}:data_numpy", "--resolution", "2",
            "--dim", "1", "--out", "n.h5"])
    np.testing.assert_allclose(Surface.load(folder / "n.h5").loss, Surface.load(folder / "p.h5").loss, rtol=1e-6)


def test_a_file_path_factory_and_limits(folder):
    invoke(["surface", "--model", f"{MODULE}.py:net", "--weights", "a.pt", "--data", f"./{MODULE}.py:data",
            "--limit-train", "20", "--resolution", "2", "--dim", "1", "--out", "f.h5"])
    assert Surface.load(folder / "f.h5").complete


def test_a_package_module_and_a_built_in_model(folder):
    invoke(["surface", "--model", f"{MODULE}_pkg.nets:net", "--model-arg", "width=4", "--weights", "a.pt", *DATA,
            "--resolution", "3", "--out", "pkg.h5"])
    invoke(["surface", *MODEL, "--weights", "a.pt", *DATA, "--resolution", "3", "--out", "mod.h5"])
    np.testing.assert_array_equal(Surface.load(folder / "pkg.h5").loss, Surface.load(folder / "mod.h5").loss)

    # a model of topograph.models by name, with weights trained elsewhere
    model = build_model("mlp-digits", seed=3)
    torch.save(model.state_dict(), folder / "mlp.pt")
    result = invoke(["surface", "--model", "mlp-digits", "--weights", "mlp.pt", "--data", "digits",
                     "--limit-train", "100", "--resolution", "3", "--dim", "1", "--out", "mlp.h5"])
    digits = load_dataset("digits", limit_train=100)
    objective = Objective(model, F.cross_entropy, digits)
    expected = compute_surface(objective, random_directions(objective, dim=1, seed=0), resolution=3, progress=False)
    np.testing.assert_array_equal(Surface.load(folder / "mlp.h5").loss, expected.loss)
    assert "3/3 points" in result.stdout


def test_a_real_process_from_the_users_folder(folder):
    """The console script does not put the current directory on sys.path; the factory is found
    because topograph does, as ``python -m`` would."""
    script = Path(sys.executable).parent / "topograph"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "topograph.cli.main"]
    proc = subprocess.run([*command, "surface", *MODEL, "--weights", "a.pt", *DATA, "--resolution", "3",
                           "--out", "real.h5"], cwd=folder, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    _, _, objective = reference(folder)
    directions = random_directions(objective, dim=2, norm="filter", ignore_1d=True, seed=0)
    expected = compute_surface(objective, directions, range=(-1.0, 1.0), resolution=3, progress=False)
    # another process may run its reductions on other threads: equal to float rounding
    np.testing.assert_allclose(Surface.load(folder / "real.h5").loss, expected.loss, rtol=1e-6)
    proc = subprocess.run([*command, "surface", "--model", "no_such_user_module:net", "--weights", "a.pt", *DATA],
                          cwd=folder, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "cannot import module 'no_such_user_module'" in proc.stderr and "Traceback" not in proc.stderr


# ---------------------------------------------------------------------- every mistake: one line


def _surface(*argv: str) -> list[str]:
    return ["surface", "--resolution", "2", *argv]


ERRORS = {
    "module-not-importable": (_surface("--model", "no_such_user_module:net", "--weights", "a.pt", *DATA),
                              ["--model 'no_such_user_module:net'", "cannot import module 'no_such_user_module'",
                               "No module named 'no_such_user_module'"]),
    "module-fails-on-import": (_surface("--model", f"{MODULE}_broken:net", "--weights", "a.pt", *DATA),
                               [f"cannot import module '{MODULE}_broken'", "no_such_package_for_topograph_tests"]),
    "callable-missing": (_surface("--model", f"{MODULE}:resnet99", "--weights", "a.pt", *DATA),
                         [f"{MODULE} has no attribute 'resnet99'", "net"]),
    "not-callable": (_surface("--model", f"{MODULE}:NOT_CALLABLE", "--weights", "a.pt", *DATA),
                     ["NOT_CALLABLE = 3 is not a callable"]),
    "file-missing": (_surface("--model", "nets/missing.py:net", "--weights", "a.pt", *DATA),
                     ["nets/missing.py", "no such file"]),
    "model-factory-raises": (_surface("--model", f"{MODULE}:broken_model", "--weights", "a.pt", *DATA),
                             [f"--model '{MODULE}:broken_model' raised RuntimeError: weights server unreachable"]),
    "model-factory-wrong-type": (_surface("--model", f"{MODULE}:not_a_model", "--weights", "a.pt", *DATA),
                                 ["returned a str, not a torch.nn.Module"]),
    "model-arg-unknown": (_surface(*MODEL, "--model-arg", "depth=3", "--weights", "a.pt", *DATA),
                          ["has no keyword argument 'depth'", "width, classes", "--model-arg"]),
    "model-arg-malformed": (_surface(*MODEL, "--model-arg", "depth", "--weights", "a.pt", *DATA),
                            ["--model-arg 'depth'", "KEY=VALUE"]),
    "data-factory-raises": (_surface(*MODEL, "--weights", "a.pt", "--data", f"{MODULE}:broken_data"),
                            [f"--data '{MODULE}:broken_data' raised OSError: disk not mounted"]),
    "data-factory-wrong-type": (_surface(*MODEL, "--weights", "a.pt", "--data", f"{MODULE}:data_wrong_type"),
                                ["returned a list", '{"train": (x, y), "test": (x, y)}']),
    "data-wrong-lengths": (_surface(*MODEL, "--weights", "a.pt", "--data", f"{MODULE}:data_wrong_lengths"),
                           ["split 'train' has 10 inputs but 9 targets"]),
    "data-wrong-test-shape": (_surface(*MODEL, "--weights", "a.pt", "--data", f"{MODULE}:data_wrong_test_shape"),
                              ["split 'test' has inputs of shape (1, 5, 5) per sample but 'train' has (1, 6, 6)"]),
    "data-does-not-fit-model": (_surface(*MODEL, "--weights", "a.pt", "--data", f"{MODULE}:data_three_channels"),
                                ["does not fit data", "(3, 6, 6)"]),
    "data-more-classes-than-outputs": (_surface(*MODEL, "--weights", "a.pt", "--data",
                                                f"{MODULE}:data_five_classes"),
                                       ["has 3 outputs but data", "5 classes"]),
    "data-unknown-name": (_surface(*MODEL, "--weights", "a.pt", "--data", "imagenet"),
                          ["--data 'imagenet': neither a data set", "mnist"]),
    "data-arg-on-a-built-in": (_surface(*MODEL, "--weights", "a.pt", "--data", "digits", "--data-arg", "n=3"),
                               ["--data-arg", "built-in data set"]),
    "weights-damaged": (_surface(*MODEL, "--weights", "truncated.pt", *DATA),
                        ["truncated.pt: is damaged", "torch.save(model.state_dict(), FILE)"]),
    "weights-foreign": (["curvature", *MODEL, "--weights", "whole-module.pt", *DATA],
                        ["whole-module.pt: refused", f"{MODULE}.SkipNet", "nothing in it was run"]),
    "weights-do-not-match": (_surface(*MODEL, "--weights", "width5.pt", *DATA),
                             ["width5.pt: does not match the model", "first mismatching key 'stem.weight'",
                              "(5, 1, 3, 3) in the file, (4, 1, 3, 3) in the model"]),
    "weights-missing": (_surface(*MODEL, "--weights", "nowhere.pt", *DATA), ["--weights nowhere.pt: no such file"]),
    "model-without-weights": (_surface(*MODEL, *DATA), ["--model needs --weights FILE"]),
    "weights-without-model": (_surface("--weights", "a.pt", *DATA), ["--weights needs --model"]),
    "model-without-data": (_surface(*MODEL, "--weights", "a.pt"), [f"--model {MODULE}:net needs --data"]),
    "run-directory-and-weights": (_surface(".", *MODEL, "--weights", "a.pt", *DATA),
                                  ["a run directory (or checkpoint) and --model --model-arg --weights --data --data-arg exclude each other"]),
    "config-and-model": (_surface("--config", "small.toml", *MODEL, "--weights", "a.pt"),
                         ["--model: --config small.toml names the model and data already"]),
    "nothing-given": (["surface"], ["give a run directory", "--weights FILE with --model and --data"]),
    "curvature-two-weights": (["curvature", *MODEL, "--weights", "a.pt", "--weights", "b.pt", *DATA],
                              ["--weights given 2 time(s)", "one --weights file"]),
    "paths-one-weights": (["paths", *MODEL, "--weights", "a.pt", *DATA],
                          ["--weights given 1 time(s)", "2 --weights files"]),
    "paths-same-weights": (["paths", *MODEL, "--weights", "a.pt", "--weights", "a.pt", *DATA],
                           ["hold the same weights"]),
    "paths-mismatch": (["paths", *MODEL, "--weights", "a.pt", "--weights", "width5.pt", *DATA],
                       ["width5.pt: does not match", "first mismatching key"]),
    "trajectory-of-weights": (_surface(*MODEL, "--weights", "a.pt", *DATA, "--trajectory"),
                              ["--trajectory needs a run directory"]),
}


@pytest.mark.parametrize("case", list(ERRORS), ids=list(ERRORS))
def test_each_mistake_is_one_line_exit_2(case, folder):
    argv, expect = ERRORS[case]
    result = CliRunner().invoke(cli, argv)
    err = result.stderr
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 2, (result.exit_code, err, result.stdout)
    assert err.startswith("topograph: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in result.output
    for part in expect:
        assert part in err, (part, err)


def test_a_config_with_a_malformed_factory_is_one_line(folder):
    (folder / "bad.toml").write_text('[model]\nfactory = "just-a-name"\n', encoding="utf-8")
    result = CliRunner().invoke(cli, ["surface", "--config", "bad.toml", "--weights", "a.pt"])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert "bad.toml: model.factory must be a factory 'pkg.module:fn'" in result.stderr, result.stderr
    shutil.copy(folder / "small.toml", folder / "small-copy.toml")  # the good one still works
    invoke(["surface", "--config", "small-copy.toml", "--weights", "a.pt", "--resolution", "2", "--dim", "1",
            "--out", "copy.h5"])
