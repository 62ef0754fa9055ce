"""`[model] factory` and `[data] factory` in run configs: a user's module written by the test (a
conv net with BatchNorm and a skip connection, and a data factory) trained by ``topograph
train``, interrupted and resumed, reopened as a run directory by ``Run`` and ``topograph
surface``; and every mistake in such a config as one line, exit code 2."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from tests.helpers import write_user_factories
from topograph.cli.main import cli
from topograph.landscape import Surface
from topograph.runs import Run, load_config, train
from topograph.runs.store import TIME_COLUMNS

MODULE = "own_run_nets"

CONFIG = f"""
[run]
name = "mine"
epochs = 3
threads = 1

[model]
factory = "{MODULE}:net"
width = 3

[data]
factory = "{MODULE}:data"
batch_size = 16

[data.kwargs]
n = 40

[optimizer]
name = "momentum"
lr = 0.05
"""


@pytest.fixture
def folder(tmp_path, monkeypatch) -> Path:
    """The user's folder (the current directory): the factory module and config.toml."""
    write_user_factories(tmp_path, MODULE)
    (tmp_path / "config.toml").write_text(CONFIG, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield tmp_path
    for name in [m for m in sys.modules if m.startswith(MODULE)]:
        del sys.modules[name]


class Stop(Exception):
    pass


def _stop_after(epoch: int):
    def on_epoch(row):
        if row["epoch"] == epoch:
            raise Stop

    return on_epoch


def test_train_resume_and_reopen_a_run_of_factories(folder):
    cfg = load_config("config.toml")
    assert cfg.model.factory == f"{MODULE}:net" and cfg.model.kwargs == {"width": 3}
    assert cfg.data.factory == f"{MODULE}:data" and cfg.data.kwargs == {"n": 40}
    whole = train(cfg, folder / "whole", progress=False)

    with pytest.raises(Stop):  # killed after epoch 1, then resumed by the command line
        train(cfg, folder / "resumed", progress=False, on_epoch=_stop_after(1))
    assert not (folder / "resumed/mine/seed-0/model.pt").exists()
    result = CliRunner().invoke(cli, ["train", "config.toml", "--out", "resumed", "--quiet"])
    assert result.exit_code == 0, result.stderr
    resumed = Run.open(folder / "resumed/mine/seed-0")

    def rows(run):
        return [{k: None if v != v else v for k, v in r.items() if k not in TIME_COLUMNS}  # NaN == NaN
                for r in run.metrics()]

    assert rows(resumed) == rows(whole) and len(rows(whole)) == 4
    for (name, a), b in zip(whole.model().state_dict().items(), resumed.model().state_dict().values()):
        assert torch.equal(a, b), name

    # the run directory keeps the factories, not a built-in name
    text = (resumed.path / "config.toml").read_text()
    assert f'factory = "{MODULE}:net"' in text and 'name = "mlp-digits"' not in text
    assert 'name = "digits"' not in text and "normalize" not in text and "kwargs = {n = 40}" in text
    user = importlib.import_module(MODULE)
    data = user.data(n=40)
    for split in ("train", "test"):
        for got, expected in zip(resumed.dataset().splits[split], data[split]):
            assert torch.equal(got, expected)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        initial = user.net(width=3)
    for a, b in zip(resumed.model("initial").state_dict().values(), initial.state_dict().values()):
        assert torch.equal(a, b)  # the factory is called under the run's seed
    assert resumed.summary["dataset"]["name"] == f"{MODULE}:data"

    # topograph surface reopens the run directory: its centre is the run's final model
    result = CliRunner().invoke(cli, ["surface", str(resumed.path), "--resolution", "3", "--out", "s.h5"])
    assert result.exit_code == 0, result.stderr
    model = resumed.model().eval()
    x, y = data["train"]
    with torch.no_grad():
        plain = F.cross_entropy(model(x), y).item()
    assert Surface.load(folder / "s.h5").loss[1, 1] == pytest.approx(plain, rel=1e-5)


def test_a_file_path_factory_and_validation_split(folder):
    doc = {"run": {"name": "file", "epochs": 1, "threads": 1},
           "model": {"factory": f"./{MODULE}.py:net"},
           "data": {"factory": f"{MODULE}.py:data", "val_size": 8, "limit_train": 20, "batch_size": 10}}
    run = train(doc, folder / "runs", progress=False)
    splits = run.dataset().splits
    assert [len(splits[k][1]) for k in ("train", "val", "test")] == [20, 8, 24]
    assert "val_loss" in run.metrics()[-1]


def _write(folder: Path, text: str) -> str:
    (folder / "bad.toml").write_text(text, encoding="utf-8")
    return "bad.toml"


MISTAKES = {
    "name-and-factory": (f'[model]\nname = "mlp-digits"\nfactory = "{MODULE}:net"\n',
                         ["bad.toml: model.name and model.factory both given"]),
    "malformed-factory": ('[model]\nfactory = "resnet20"\n', ["model.factory must be a factory 'pkg.module:fn'"]),
    "data-key-of-built-ins": (f'[data]\nfactory = "{MODULE}:data"\nnormalize = false\n',
                              ["data.normalize does not apply to data.factory"]),
    "data-kwargs-without-factory": ("[data]\nkwargs = {n = 3}\n",
                                    ["data.kwargs are keyword arguments of data.factory, but no data.factory"]),
    "data-kwargs-not-a-table": (f'[data]\nfactory = "{MODULE}:data"\nkwargs = 3\n',
                                ["data.kwargs must be a table of keyword arguments"]),
    "module-not-importable": ('[model]\nfactory = "no_such_user_module:net"\n',
                              ["bad.toml: model.factory 'no_such_user_module:net': cannot import module"]),
    "model-kwarg-unknown": (f'[model]\nfactory = "{MODULE}:net"\ndepth = 3\n[data]\nfactory = "{MODULE}:data"\n',
                            [f"bad.toml: model.factory '{MODULE}:net' has no keyword argument 'depth'",
                             "the other keys of [model] in bad.toml"]),
    "data-kwarg-unknown": (f'[model]\nfactory = "{MODULE}:net"\n[data]\nfactory = "{MODULE}:data"\n'
                           "kwargs = {size = 3}\n",
                           [f"bad.toml: data.factory '{MODULE}:data' has no keyword argument 'size'",
                            "[data.kwargs] table of bad.toml"]),
    "no-test-split": (f'[model]\nfactory = "{MODULE}:net"\n[data]\nfactory = "{MODULE}:data_pair"\n',
                      ["returns no 'test' split, which training evaluates"]),
    "more-classes-than-outputs": (f'[model]\nfactory = "{MODULE}:net"\n[data]\nfactory = "{MODULE}:data_five_classes"\n',
                                  [f"model '{MODULE}:net' has 3 outputs but data '{MODULE}:data_five_classes' has 5"]),
    "model-factory-wrong-type": (f'[model]\nfactory = "{MODULE}:not_a_model"\n[data]\nfactory = "{MODULE}:data"\n',
                                 ["returned a str, not a torch.nn.Module"]),
    "data-wrong-shapes": (f'[model]\nfactory = "{MODULE}:net"\n[data]\nfactory = "{MODULE}:data_wrong_test_shape"\n',
                          ["split 'test' has inputs of shape (1, 5, 5) per sample"]),
}


@pytest.mark.parametrize("case", list(MISTAKES), ids=list(MISTAKES))
def test_each_config_mistake_is_one_line_exit_2(case, folder):
    text, expect = MISTAKES[case]
    result = CliRunner().invoke(cli, ["train", _write(folder, text), "--out", "runs", "--quiet"])
    err = result.stderr
    assert result.exit_code == 2, (err, result.exception)
    assert err.startswith("topograph: error: ") and err.count("\n") == 1 and "Traceback" not in result.output, err
    for part in expect:
        assert part in err, (part, err)


def test_a_run_of_a_factory_reopened_elsewhere_names_the_module(folder, tmp_path_factory, monkeypatch):
    run = train(load_config("config.toml").for_seed(0), folder / "runs", progress=False)
    del sys.modules[MODULE]
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in (str(folder), "")])
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    result = CliRunner().invoke(cli, ["surface", str(run.path), "--resolution", "2"])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert f"config.toml: model.factory '{MODULE}:net': cannot import module '{MODULE}'" in result.stderr
    assert "run topograph from the folder that holds it" in result.stderr
