"""torchvision models by name ("torchvision:<model>"): the optional extra.

torchvision is not installed in the test environment (and PyPI's torchvision 0.28.0 fails to
import beside this machine's local torch 2.13.0 build: 'operator torchvision::nms does not
exist'), so the name parsing, the keyword handling and the messages are tested against stand-in
``torchvision`` packages written to a temporary folder: one missing, one that fails to import,
one with a tiny ``models.get_model``.  With a working torchvision the last test builds a real
ResNet-18.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap

import pytest
import torch

from topograph.errors import UsageError
from topograph.models import build_model, is_model_name
from topograph.models import torchvision as tv

FAKE = '''
import torch
__version__ = "0.0-fake"


class _Models:
    @staticmethod
    def list_models():
        return ["resnet18", "tinynet"]

    @staticmethod
    def get_model(name, *, weights=None, num_classes=1000):
        assert weights is None
        return torch.nn.Linear(4, num_classes)


models = _Models()
'''


@pytest.fixture
def fake_torchvision(tmp_path, monkeypatch):
    """Put a stand-in ``torchvision`` package with the given source first on sys.path."""

    def install(source: str) -> None:
        package = tmp_path / "torchvision"
        package.mkdir(exist_ok=True)
        (package / "__init__.py").write_text(textwrap.dedent(source))
        monkeypatch.syspath_prepend(str(tmp_path))
        monkeypatch.delitem(sys.modules, "torchvision", raising=False)
        importlib.invalidate_caches()

    yield install
    sys.modules.pop("torchvision", None)


@pytest.mark.slow
def test_importing_topograph_models_does_not_import_torchvision():
    code = "import sys, topograph.models, topograph.runs; assert 'torchvision' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


def test_missing_torchvision_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)  # `import torchvision` raises ModuleNotFoundError
    with pytest.raises(UsageError) as info:
        build_model("torchvision:resnet18", seed=0)
    message = str(info.value)
    assert message == ("model 'torchvision:resnet18' needs torchvision, which is not installed: "
                       'pip install "topograph[vision]"')


def test_a_broken_torchvision_is_one_line_too(fake_torchvision):
    fake_torchvision('raise RuntimeError("operator torchvision::nms does not exist\\nmore detail")')
    with pytest.raises(UsageError) as info:
        build_model("torchvision:resnet18")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("model 'torchvision:resnet18': torchvision is installed but failed to import "
                              "(RuntimeError: operator torchvision::nms does not exist)")
    assert message.endswith('pip install "topograph[vision]"')


def test_names_keywords_and_seeding_through_a_stand_in(fake_torchvision):
    fake_torchvision(FAKE)
    assert is_model_name("torchvision:tinynet") and not is_model_name("torchvision:") and not is_model_name("tv:x")
    a = build_model("torchvision:tinynet", seed=1, num_classes=3)
    b = build_model("torchvision:tinynet", seed=1, num_classes=3)
    assert isinstance(a, torch.nn.Linear) and a.out_features == 3 and torch.equal(a.weight, b.weight)
    assert tv.split_name("torchvision:resnet18") == "resnet18" and tv.split_name("resnet18") is None
    with pytest.raises(UsageError, match=r"name a torchvision model after the colon"):
        tv.split_name("torchvision:")
    with pytest.raises(UsageError, match=r"torchvision 0.0-fake has no model 'resnet1800' \(e.g. resnet18;"):
        build_model("torchvision:resnet1800")
    with pytest.raises(UsageError, match=r"bad keyword arguments \['depth'\]: .*unexpected keyword argument 'depth'"):
        build_model("torchvision:tinynet", depth=3)
    with pytest.raises(UsageError, match="freshly initialised models; drop 'weights'"):
        build_model("torchvision:tinynet", weights="DEFAULT")


def _real_torchvision():
    try:
        return importlib.import_module("torchvision")
    except Exception:  # noqa: BLE001 - missing or built for another torch
        return None


@pytest.mark.skipif(_real_torchvision() is None, reason="torchvision is not installed (or does not import)")
def test_real_resnet18():
    model = build_model("torchvision:resnet18", seed=0, num_classes=10).eval()
    # ResNet-18 has 11,689,512 parameters with 1,000 classes; a 10-class head has 990·513 fewer
    assert sum(p.numel() for p in model.parameters()) == 11_689_512 - 990 * 513
    with torch.no_grad():
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
