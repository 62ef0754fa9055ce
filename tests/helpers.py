"""Plain helpers shared by the suite's tests (``from tests.helpers import ...``): tiny models and
data, dense references and where the real data sets lie.  Fixtures built on them are in
``conftest.py``."""

from __future__ import annotations

import copy
import math
import os
import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from topograph.core import ParamSpec
from topograph.data import cifar10

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
                        seed: int = 0, dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
    """``n`` Gaussian inputs of ``shape`` and uniform integer labels in ``[0, classes)``."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, *shape, generator=g, dtype=dtype), torch.randint(0, classes, (n,), generator=g)


def regression_data(n: int = 37, shape: tuple[int, ...] = (5,), outputs: int = 1,
                    seed: int = 0, dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
    """``n`` Gaussian inputs of ``shape`` and Gaussian targets of ``outputs`` values each."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, *shape, generator=g, dtype=dtype), torch.randn(n, outputs, generator=g, dtype=dtype)


def tiny_mlp(sizes: tuple[int, ...] = (5, 4, 3), *, seed: int = 0, activation: type[nn.Module] = nn.Tanh,
             batchnorm: bool = False, dropout: float = 0.0) -> nn.Sequential:
    """``Flatten`` then ``Linear`` layers of ``sizes`` (a first-layer-shortcut model); after each
    hidden ``Linear``: ``BatchNorm1d`` (if ``batchnorm``, with running statistics away from the
    defaults, so eval-mode BatchNorm is not the identity), the activation, ``Dropout(dropout)``
    (if ``dropout > 0``)."""
    torch.manual_seed(seed)
    layers: list[nn.Module] = [nn.Flatten()]
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers += [nn.BatchNorm1d(b)] if batchnorm else []
            layers.append(activation())
            layers += [nn.Dropout(dropout)] if dropout > 0 else []
    net = nn.Sequential(*layers)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm1d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    return net


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


class ReshapingCNN(nn.Module):
    """A conv net on flat 6-vectors whose forward reshapes them to 1×3×2 images and pads them
    before its first layer (a 2×2 conv): the first layer is found only by probing the forward."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 2)
        self.fc = nn.Linear(2 * 2 * 2, 3)

    def forward(self, x: Tensor) -> Tensor:
        x = x.view(x.shape[0], 1, 3, 2)
        x = torch.relu(self.conv(F.pad(x, (0, 1, 0, 0))))
        return self.fc(x.flatten(1))


def cross_entropy_closure(opt: torch.optim.Optimizer, model: nn.Module, x: Tensor, y: Tensor,
                          calls: list[bool] | None = None) -> Callable[..., Tensor]:
    """The ``closure(backward=True)`` of torch.optim for the cross-entropy of ``model`` on one
    batch: zero the gradients, forward, backward when asked; returns the graph-attached loss.
    ``calls`` (optional) records the ``backward`` flag of every call."""

    def closure(backward: bool = True) -> Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        if calls is not None:
            calls.append(backward)
        if backward:
            loss.backward()
        return loss

    return closure


def dense_hessian(loss_of_flat: Callable[[Tensor], Tensor], flat: Tensor) -> Tensor:
    """The dense Hessian of a scalar function of a flat vector (``torch.autograd.functional``)."""
    return torch.autograd.functional.hessian(loss_of_flat, flat.detach())


def loss_of_flat(model: nn.Module, x: Tensor, y: Tensor,
                 loss_fn: Callable[[Tensor, Tensor], Tensor] = F.cross_entropy) -> Callable[[Tensor], Tensor]:
    """θ ↦ ``loss_fn`` of ``model`` at the flat trainable parameters θ, through ``functional_call``
    (in the module's current mode: put it in eval mode for eval-mode BatchNorm and no dropout)."""
    spec = ParamSpec.from_module(model)
    buffers = dict(model.named_buffers())

    def f(flat: Tensor) -> Tensor:
        return loss_fn(torch.func.functional_call(model, (spec.unflatten(flat), buffers), (x,)), y)

    return f


def cross_entropy_of_flat(model: nn.Module, x: Tensor, y: Tensor) -> Callable[[Tensor], Tensor]:
    """θ ↦ cross-entropy of ``model`` at the flat trainable parameters θ (:func:`loss_of_flat`)."""
    return loss_of_flat(model, x, y, F.cross_entropy)


def flat_params(model: nn.Module) -> Tensor:
    """The model's trainable parameters as one detached flat vector (``parameters()`` order)."""
    return torch.cat([p.detach().reshape(-1) for p in model.parameters() if p.requires_grad])


def losses_at_points(model: nn.Module, points: Tensor, x: Tensor, y: Tensor,
                     loss_fn: Callable[[Tensor, Tensor], Tensor] = F.cross_entropy) -> tuple[Tensor, Tensor]:
    """Naive reference: each point (a row of flat trainable parameters) loaded into a deep copy
    of ``model`` with ``vector_to_parameters``, one eval-mode forward pass.  Returns the losses
    and the accuracies (NaN where the targets are not class labels), float64."""
    ref = copy.deepcopy(model).eval()
    trainable = [p for p in ref.parameters() if p.requires_grad]
    losses, accuracies = [], []
    with torch.no_grad():
        for point in points:
            torch.nn.utils.vector_to_parameters(point.to(trainable[0].dtype), trainable)
            out = ref(x)
            losses.append(float(loss_fn(out, y)))
            labels = y.dtype in (torch.int64, torch.int32) and out.dim() == 2
            accuracies.append(float((out.argmax(1) == y).float().mean()) if labels else math.nan)
    return torch.tensor(losses, dtype=torch.float64), torch.tensor(accuracies, dtype=torch.float64)


def random_symmetric(n: int, seed: int = 0, spectrum=None) -> np.ndarray:
    """A random symmetric n×n matrix (numpy): random orthogonal eigenvectors and the given
    ``spectrum`` (default: standard normal eigenvalues)."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    lam = rng.standard_normal(n) if spectrum is None else np.asarray(spectrum, dtype=float)
    a = (q * lam) @ q.T
    return (a + a.T) / 2


def assert_same_direction(u: Tensor, v: Tensor, tol: float = 1e-5) -> None:
    """u and v are parallel or antiparallel (eigenvectors are defined up to sign)."""
    u, v = u / u.norm(), v / v.norm()
    assert abs(abs(float(u @ v)) - 1.0) < tol


# ---------------------------------------------------------------------- data files
def write_cifar10(folder: Path, n: int = 4, seed: int = 0, str_keys: bool = False, protocol: int = 2) -> dict:
    """CIFAR-10 batches of ``n`` random images each in the official layout (python pickles), with
    ``bytes`` keys (as the official files) or ``str`` keys; returns {file name: (data, labels)}."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    key = (lambda k: k) if str_keys else (lambda k: k.encode())
    written = {}
    for name in (*cifar10.TRAIN_BATCHES, cifar10.TEST_BATCH):
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, n)]
        batch = {key("batch_label"): b"batch " + name.encode(), key("labels"): labels, key("data"): data,
                 key("filenames"): [f"img_{i}.png".encode() for i in range(n)]}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=protocol))
        written[name] = (data, labels)
    meta = {key("label_names"): [c.encode() for c in cifar10.CLASS_NAMES], key("num_vis"): 3072}
    (folder / cifar10.META_FILE).write_bytes(pickle.dumps(meta, protocol=protocol))
    return written


class RunsCode:
    """Unpickling this would call ``os.system`` (touching a marker file)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


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
