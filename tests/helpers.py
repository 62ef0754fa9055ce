"""Plain helpers shared by the suite's tests (``from tests.helpers import ...``): tiny models and
data, dense references and where the real data sets lie.  Fixtures built on them are in
``conftest.py``."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from topograph.core import ParamSpec

ROOT = Path(__file__).resolve().parents[1]
#: the project's shared data folder beside the repository (Fashion-MNIST and MNIST copies)
SHARED_DATA = ROOT.parent / "shared" / "data"


def data_root() -> Path | None:
    """Where the real data sets lie: ``$TOPOGRAPH_DATA_DIR``, else ``../shared/data``, else None."""
    env = os.environ.get("TOPOGRAPH_DATA_DIR")
    if env:
        return Path(env).resolve()
    return SHARED_DATA if SHARED_DATA.is_dir() else None


def classification_data(n: int = 37, shape: tuple[int, ...] = (5,), classes: int = 3,
                        seed: int = 0) -> tuple[Tensor, Tensor]:
    """``n`` Gaussian inputs of ``shape`` and uniform integer labels in ``[0, classes)``."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, *shape, generator=g), torch.randint(0, classes, (n,), generator=g)


def tiny_mlp(sizes: tuple[int, ...] = (5, 4, 3), *, seed: int = 0,
             activation: type[nn.Module] = nn.Tanh) -> nn.Sequential:
    """``Flatten`` then ``Linear``/activation layers of ``sizes`` (a first-layer-shortcut model)."""
    torch.manual_seed(seed)
    layers: list[nn.Module] = [nn.Flatten()]
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)


def tiny_conv_bn(*, channels: int = 1, classes: int = 3, seed: int = 0, batchnorm: bool = True) -> nn.Module:
    """A conv net with BatchNorm and a skip connection on 6×6 inputs (not a plain Sequential)."""

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(channels, 4, 3, padding=1)
            self.bn = nn.BatchNorm2d(4) if batchnorm else nn.Identity()
            self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
            self.head = nn.Linear(4, classes)

        def forward(self, x: Tensor) -> Tensor:
            h = torch.relu(self.bn(self.conv(x)))
            h = h + torch.relu(self.conv2(h))
            return self.head(h.mean((2, 3)))

    torch.manual_seed(seed)
    net = Net()
    if batchnorm:  # running statistics away from the defaults, so eval-mode BN is not the identity
        with torch.no_grad():
            net.bn.running_mean.uniform_(-0.5, 0.5)
            net.bn.running_var.uniform_(0.5, 2.0)
    return net


def dense_hessian(loss_of_flat: Callable[[Tensor], Tensor], flat: Tensor) -> Tensor:
    """The dense Hessian of a scalar function of a flat vector (``torch.autograd.functional``)."""
    return torch.autograd.functional.hessian(loss_of_flat, flat.detach())


def cross_entropy_of_flat(model: nn.Module, x: Tensor, y: Tensor) -> Callable[[Tensor], Tensor]:
    """θ ↦ cross-entropy of ``model`` at the flat trainable parameters θ (eval mode)."""
    spec = ParamSpec.from_module(model)
    buffers = dict(model.named_buffers())

    def f(flat: Tensor) -> Tensor:
        return F.cross_entropy(torch.func.functional_call(model, (spec.unflatten(flat), buffers), (x,)), y)

    return f


# ---------------------------------------------------------------------- a PostgreSQL server
def postgres_bin() -> Path | None:
    """The folder of PostgreSQL's server programs (``initdb``, ``pg_ctl``): on the PATH, or
    Debian's ``/usr/lib/postgresql/<version>/bin`` (the newest), else None."""
    import shutil

    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                      key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    return versions[-1].parent if versions else None


class PostgresServer:
    """A throw-away PostgreSQL server in a temporary folder, on a free port of 127.0.0.1.

    ``initdb`` refuses to run as root, so as root (CI) the server runs as the unprivileged
    ``postgres`` user that Debian's package creates (through ``runuser``); otherwise as the
    current user.  Trust authentication, fsync off: a test fixture, not a deployment.
    ``url`` is a SQLAlchemy URL for psycopg 3.
    """

    def __init__(self, bindir: Path) -> None:
        import socket
        import tempfile

        self.bindir = bindir
        self.base = Path(tempfile.mkdtemp(prefix="topograph-pg-"))
        self.data = self.base / "data"
        self.user = None
        if os.geteuid() == 0:
            import pwd

            try:
                entry = pwd.getpwnam("postgres")
            except KeyError:
                raise RuntimeError("running as root and there is no 'postgres' user to run the server") from None
            self.user = "postgres"
            os.chown(self.base, entry.pw_uid, entry.pw_gid)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"postgresql+psycopg://topograph@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        import subprocess

        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self.user is not None:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=self.base)
        if proc.returncode != 0:
            log = self.base / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr[-2000:]}{tail}")

    def start(self) -> PostgresServer:
        self._run("initdb", "-D", str(self.data), "-U", "topograph", "-A", "trust", "-E", "UTF8", "--no-sync")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.base / "server.log"), "-w", "-t", "60", "-o",
                  f"-F -p {self.port} -k {self.base} -c listen_addresses=127.0.0.1", "start")
        return self

    def stop(self) -> None:
        import shutil

        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.base, ignore_errors=True)


#: a user's module of factories, as the tests of "your own model and data" write it to a temporary
#: folder (tests/cli/test_own_models.py, tests/runs/test_own_models_config.py): a conv net with
#: BatchNorm and a skip connection, data factories in every accepted form, and broken ones
USER_FACTORIES = '''
"""A user's models and data, unknown to topograph."""
import torch
from torch import nn
from torch.utils.data import TensorDataset


class SkipNet(nn.Module):
    """conv -> BatchNorm -> ReLU, a residual conv block, global average pooling, a linear head."""

    def __init__(self, width=4, classes=3, channels=1):
        super().__init__()
        self.stem = nn.Conv2d(channels, width, 3, padding=1)
        self.bn = nn.BatchNorm2d(width)
        self.block = nn.Conv2d(width, width, 3, padding=1)
        self.head = nn.Linear(width, classes)

    def forward(self, x):
        h = torch.relu(self.bn(self.stem(x)))
        h = h + torch.relu(self.block(h))
        return self.head(h.mean((2, 3)))


def net(width: int = 4, classes: int = 3):
    return SkipNet(width, classes)


def _xy(n, seed, shape=(1, 6, 6)):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, *shape, generator=g)
    y = (x[:, :, :3].mean((1, 2, 3)) > 0).long() + (x[:, :, 3:].mean((1, 2, 3)) > 0).long()
    return x, y


def data(n: int = 48, seed: int = 0):
    return {"train": _xy(n, seed), "test": _xy(n // 2, seed + 1)}


def data_pair(n: int = 32):
    return _xy(n, 0)


def data_torch(n: int = 32):
    return {"train": TensorDataset(*_xy(n, 0)), "test": TensorDataset(*_xy(n // 2, 1))}


def data_numpy(n: int = 32):
    x, y = _xy(n, 0)
    return {"train": (x.double().numpy(), y.int().numpy()), "test": (x.double().numpy(), y.int().numpy())}


def data_five_classes(n: int = 16):
    x, y = _xy(n, 0)
    return {"train": (x, y + 2), "test": (x, y + 2)}


def data_three_channels(n: int = 16):
    return {"train": _xy(n, 0, (3, 6, 6)), "test": _xy(n, 1, (3, 6, 6))}


def data_wrong_lengths(n: int = 10):
    x, y = _xy(n, 0)
    return {"train": (x, y[:-1]), "test": (x, y)}


def data_wrong_test_shape(n: int = 10):
    return {"train": _xy(n, 0), "test": _xy(n, 1, (1, 5, 5))}


def data_wrong_type():
    return [1, 2, 3]


def not_a_model():
    return "resnet"


def broken_model(width: int = 4):
    raise RuntimeError("weights server unreachable")


def broken_data():
    raise OSError("disk not mounted")


NOT_CALLABLE = 3
'''


def write_user_factories(folder: Path, name: str) -> Path:
    """Write :data:`USER_FACTORIES` as ``folder/name.py`` and a module ``folder/name_broken.py``
    that fails on import; return the first file."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}_broken.py").write_text("import no_such_package_for_topograph_tests\n", encoding="utf-8")
    path = folder / f"{name}.py"
    path.write_text(USER_FACTORIES, encoding="utf-8")
    return path
