"""Your own data and model by name (``topograph.data.load_factory_dataset``,
``topograph.models.build_factory_model``, ``topograph.factories``): every accepted return
form becomes the same tensors, the sample options select exactly as ``load_dataset`` does, and
the factory names parse as documented."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from tests.helpers import write_user_factories
from topograph.data import load_dataset, load_factory_dataset
from topograph.errors import UsageError
from topograph.factories import FactorySpec, is_factory_spec
from topograph.models import build_factory_model, is_model_name

MODULE = "own_data_nets"

EXTRA = '''

def digits_splits(normalize: bool = False):
    """The digits data set's splits as a plain dict, as a user would return them."""
    from topograph.data import load_dataset
    return dict(load_dataset("digits", normalize=normalize).splits)


def as_topograph_dataset():
    from topograph.data import load_dataset
    return load_dataset("digits", limit_train=30, limit_test=10)
'''


@pytest.fixture
def folder(tmp_path, monkeypatch) -> Path:
    path = write_user_factories(tmp_path, MODULE)
    path.write_text(path.read_text() + EXTRA)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield tmp_path
    for name in [m for m in sys.modules if m.startswith(MODULE) or m.startswith("_topograph_factory_")]:
        del sys.modules[name]


def test_every_return_form_gives_the_same_tensors(folder):
    pair = load_factory_dataset(f"{MODULE}:data_pair")
    torch_ds = load_factory_dataset(f"{MODULE}:data_torch")
    numpy_ds = load_factory_dataset(f"{MODULE}:data_numpy")
    assert list(pair.splits) == ["train"] and list(torch_ds.splits) == ["train", "test"]
    for ds in (torch_ds, numpy_ds):
        x, y = ds.splits["train"]
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert torch.equal(x, pair.splits["train"][0]) and torch.equal(y, pair.splits["train"][1])
    assert pair.num_classes == int(pair.splits["train"][1].max()) + 1 and pair.input_shape == (1, 6, 6)
    assert pair.meta["source"] == "factory" and pair.name == f"{MODULE}:data_pair"
    passed = load_factory_dataset(f"{MODULE}:as_topograph_dataset")  # a topograph Dataset, as it is
    assert passed.n("train") == 30 and passed.num_classes == 10


def test_the_sample_options_select_as_load_dataset_does(folder):
    options = dict(val_size=100, seed=3, limit_train=200, limit_test=50, flatten=True)
    mine = load_factory_dataset(f"{MODULE}:digits_splits", **options)
    builtin = load_dataset("digits", normalize=False, **options)
    assert list(mine.splits) == list(builtin.splits) == ["train", "val", "test"]
    for split in builtin.splits:
        for a, b in zip(mine.splits[split], builtin.splits[split]):
            assert torch.equal(a, b), split
    assert mine.input_shape == builtin.input_shape == (64,)


def test_keyword_arguments_reach_the_factory(folder):
    ds = load_factory_dataset(f"{MODULE}:data", {"n": 10, "seed": 4})
    assert ds.n("train") == 10 and ds.n("test") == 5


@pytest.mark.parametrize("factory, kwargs, options, expect", [
    ("data_pair", {}, {"limit_test": 3}, "no 'test' split, so limit_test"),
    ("data", {"size": 2}, {}, "has no keyword argument 'size'; it takes n, seed"),
    ("data_wrong_type", {}, {}, "returned a list"),
    ("data_wrong_lengths", {}, {}, "split 'train' has 10 inputs but 9 targets"),
])
def test_data_mistakes(folder, factory, kwargs, options, expect):
    with pytest.raises(UsageError) as err:
        load_factory_dataset(f"{MODULE}:{factory}", kwargs, **options)
    assert expect in str(err.value) and "\n" not in str(err.value)


def test_a_model_factory_is_built_under_its_seed(folder):
    state = torch.get_rng_state()
    a = build_factory_model(f"{MODULE}:net", seed=7, width=3)
    b = build_factory_model(f"{MODULE}.py:net", seed=7, width=3)  # the same file by path
    c = build_factory_model(f"{MODULE}:net", seed=8, width=3)
    assert torch.equal(torch.get_rng_state(), state)  # the global generator is left as it was
    for (name, p), q, r in zip(a.state_dict().items(), b.state_dict().values(), c.state_dict().values()):
        assert torch.equal(p, q), name
    assert not torch.equal(a.stem.weight, c.stem.weight)


@pytest.mark.parametrize("text, target, attribute, is_file", [
    ("pkg.module:fn", "pkg.module", "fn", False),
    ("mod:Builder.build", "mod", "Builder.build", False),
    ("nets.py:net", "nets.py", "net", True),
    ("path/to/nets.py:net", "path/to/nets.py", "net", True),
    ("C:/work/nets.py:net", "C:/work/nets.py", "net", True),
])
def test_factory_names_parse(text, target, attribute, is_file):
    spec = FactorySpec.parse(text, label="--model")
    assert (spec.target, spec.attribute, spec.is_file) == (target, attribute, is_file)
    assert is_factory_spec(text)


@pytest.mark.parametrize("text", ["resnet20", "pkg.module:", ":fn", "pkg module:fn", "pkg.module:fn()", 3])
def test_malformed_factory_names_are_one_line(text):
    with pytest.raises(UsageError) as err:
        FactorySpec.parse(text, label="--model")
    assert str(err.value).startswith(f"--model {text!r}") and "pkg.module:fn" in str(err.value)


def test_torchvision_names_are_models_not_factories():
    assert is_model_name("torchvision:resnet18") and is_model_name("resnet20")
    assert not is_model_name("mypkg.nets:resnet20")
    assert not is_factory_spec("resnet20")
