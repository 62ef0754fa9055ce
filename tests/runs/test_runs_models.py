"""Runs with the papers' models and data options: an autoencoder (targets = inputs, MSE), an LSTM
on permuted-pixel sequences, MNIST by name, and the one-line errors of mismatched settings."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from topograph.data import load_dataset
from topograph.errors import UsageError
from topograph.runs import RunConfig, train
from topograph.runs.config import result_view


def config(**sections) -> dict:
    doc = {
        "run": {"name": "m", "epochs": 2, "threads": 1},
        "data": {"name": "digits", "batch_size": 32, "limit_train": 256, "limit_test": 100},
        "model": {"name": "mlp-digits"},
        "optimizer": {"name": "adam", "lr": 0.01},
        "snapshots": {"every_epochs": 0},
    }
    for name, values in sections.items():
        doc.setdefault(name, {}).update(values)
    return doc


def test_an_autoencoder_run_trains_on_its_inputs_with_mse(tmp_path):
    doc = config(data={"targets": "inputs", "normalize": False},
                 model={"name": "autoencoder", "loss": "mse", "in_channels": 1, "image_size": 8})
    run = train(doc, tmp_path, progress=False)
    rows = run.metrics()
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    assert all(math.isnan(r["test_acc"]) for r in rows)
    assert run.config["data"]["targets"] == "inputs" and run.config["model"]["loss"] == "mse"
    # the recorded loss is the mean squared reconstruction error of the final model
    data = load_dataset("digits", targets="inputs", normalize=False, limit_train=256, limit_test=100)
    x, y = data.test
    with torch.no_grad():
        expected = F.mse_loss(run.model()(x), y)
    assert rows[-1]["test_loss"] == pytest.approx(float(expected), rel=1e-5)
    assert run.objective().evaluate(split="test").loss == pytest.approx(float(expected), rel=1e-5)


def test_an_lstm_run_reads_permuted_pixel_sequences(tmp_path):
    doc = config(data={"permute_pixels": 1234}, model={"name": "lstm", "in_channels": 1, "image_size": 8})
    run = train(doc, tmp_path, progress=False)
    rows = run.metrics()
    assert rows[-1]["train_loss"] < rows[0]["train_loss"] and rows[-1]["test_acc"] > rows[0]["test_acc"]
    expected = load_dataset("digits", permute_pixels=1234, limit_train=256, limit_test=100)
    assert run.dataset().fingerprint() == expected.fingerprint() and expected.input_shape == (8, 8)


def test_mnist_by_name(tmp_path, data_dir):
    if not (data_dir / "mnist").is_dir():
        pytest.skip("no MNIST copy")
    doc = config(run={"epochs": 1}, data={"name": "mnist", "limit_train": 128, "limit_test": 64},
                 model={"name": "fcp"}, optimizer={"name": "sgd", "lr": 0.1})
    run = train(doc, tmp_path, progress=False)
    assert run.summary["dataset"]["n_train"] == 128 and run.summary["n_params"] == 42_200


@pytest.mark.parametrize("sections,message", [
    ({"model": {"loss": "mse"}},
     "model.loss 'mse' needs real-valued targets, but data 'digits' has class labels; "
     'set data.targets = "inputs" (an autoencoder) or use model.loss = "cross-entropy"'),
    ({"data": {"targets": "inputs"}, "model": {"name": "autoencoder", "in_channels": 1, "image_size": 8}},
     "model.loss 'cross-entropy' needs class labels, but data.targets is 'inputs'; use model.loss = \"mse\""),
    ({"data": {"targets": "inputs"}, "model": {"loss": "mse"}},
     "model 'mlp-digits' outputs (10,) per sample but the targets are (64,); model.loss 'mse' needs equal shapes"),
    ({"model": {"name": "resnet8", "depth": 8}},
     "model 'resnet8' has no keyword argument 'depth'; it takes in_channels, image_size, num_classes, shortcut"),
])
def test_mismatched_settings_are_one_line_errors(tmp_path, sections, message):
    with pytest.raises(UsageError) as info:
        train(config(**sections), tmp_path, progress=False)
    assert str(info.value).endswith(message)


def test_config_checks_the_new_keys():
    cfg = RunConfig.from_dict(config(data={"name": "mnist", "permute_pixels": 7, "targets": "labels"}))
    assert cfg.data.permute_pixels == 7 and cfg.to_dict()["data"]["permute_pixels"] == 7
    assert RunConfig.from_dict(config()).to_dict()["data"]["permute_pixels"] is False
    assert RunConfig.from_dict(config(model={"name": "torchvision:resnet18"})).model.name == "torchvision:resnet18"
    with pytest.raises(UsageError, match="data.permute_pixels must be false or a non-negative integer seed, got true"):
        RunConfig.from_dict(config(data={"permute_pixels": True}))
    with pytest.raises(UsageError, match="data.targets must be one of 'labels', 'inputs', got 'pixels'"):
        RunConfig.from_dict(config(data={"targets": "pixels"}))
    with pytest.raises(UsageError, match="model.loss must be one of 'cross-entropy', 'mse', got 'l1'"):
        RunConfig.from_dict(config(model={"loss": "l1"}))
    with pytest.raises(UsageError, match="model.name must be one of .*vgg9 or torchvision:<model>, got 'vgg10'"):
        RunConfig.from_dict(config(model={"name": "vgg10"}))


def test_the_new_keys_at_their_defaults_leave_older_runs_matching(tmp_path):
    """A config written before permute_pixels/targets existed has the same result view (and so
    resumes, and keeps its study hash) as the same config now; seed 0 is not 'off'."""
    now = RunConfig.from_dict(config()).to_dict()
    before = {k: dict(v) for k, v in now.items()}
    del before["data"]["permute_pixels"], before["data"]["targets"]
    assert result_view(now) == result_view(before)
    seeded = RunConfig.from_dict(config(data={"permute_pixels": 0})).to_dict()
    assert result_view(seeded) != result_view(before) and result_view(seeded)["data"]["permute_pixels"] == 0
    run = train(config(run={"epochs": 1}), tmp_path, progress=False)
    text = (run.path / "config.toml").read_text()
    (run.path / "config.toml").write_text("\n".join(
        line for line in text.splitlines() if not line.startswith(("permute_pixels", "targets"))))
    (run.path / "summary.json").unlink()                   # resume the "older" run: no mismatch error
    assert train(config(run={"epochs": 1}), tmp_path, progress=False).metrics()
