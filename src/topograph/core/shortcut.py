r"""The first-layer shortcut and the runner of the later layers with per-point weights.

Points of an affine subspace θ(c) = θ₀ + Σ_j c_j v_j share most of a network's first-layer work:
a first ``nn.Linear`` or ``nn.Conv2d`` is linear in its weight, so for the layer's input X

    layer(X; W₀ + Σ_j c_j V_j, b₀ + Σ_j c_j e_j) = G₀ + Σ_j c_j G_j,   G_j = layer(X; V_j, e_j),

(for a convolution too: it is linear in its kernel).  The 1 + m products G_j are formed once per
data chunk; every point then costs a combination of them plus the layers after the first.  For
the 784-128-64-10 MLP of the benchmarks that removes about 11× of a surface's FLOPs; for conv nets
whose first convolution has a small fan-in (3×3 on one or three channels) the combination costs
about what the convolution did, so :meth:`FirstLayer.pays` leaves them to the plain path.

:func:`find_first_layer` finds the layer by running the model once on a
:func:`~topograph.core.modules.structural_copy` with hooks: the first module with parameters of its
own to run must be an ``nn.Linear`` or ``nn.Conv2d`` (zero padding) that runs exactly once, on an
input that depends on no parameter (a flatten or reshape of the data is fine), whose tensors are
trainable and used by no other module.  Any ``nn.Module`` qualifies — ResNets, user models with
skip connections — not only ``nn.Sequential``.

Two runners evaluate the later layers:

:class:`ChainRunner`
    a plain ``nn.Sequential`` whose later children are ``nn.Linear``, elementwise activations and
    eval-mode dropout: the K points' weights are stacked and every layer is one batched GEMM over
    the K points (in place and class-major for the no-grad losses; autograd-safe otherwise).
    Other children run through ``torch.func.vmap`` of ``functional_call``.
:class:`GivenRunner`
    any model: a structural copy whose first layer is replaced by :class:`Given`, a module that
    returns the pre-activations it is handed as its ``value`` tensor, run with
    ``functional_call`` point by point (or ``vmap``-ed over points on a GPU).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, vmap

from topograph.core.modules import direct_parameters, structural_copy, submodule_parent
from topograph.core.params import ParamSpec

#: children that act elementwise (shape-preserving, no parameters): applied to (K, r, H) as is
ELEMENTWISE = (nn.ReLU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.LeakyReLU, nn.ELU, nn.SiLU, nn.Softplus,
               nn.Identity, nn.Mish, nn.Hardtanh, nn.ReLU6, nn.CELU, nn.SELU, nn.Hardswish,
               nn.Hardsigmoid, nn.Tanhshrink, nn.Softsign, nn.LogSigmoid)
#: with later layers batched over the points (a chain of nn.Linear), the shortcut pays when the
#: first layer's fan-in is at least this many times the 1 + m products a point combines
PAYING_FAN_IN_FACTOR = 8
#: a model run point by point: the shortcut pays when the first layer does at least this share of
#: a forward pass's multiply-adds (what it saves) — a 784-wide first layer of an MLP does ~90 %, the
#: first 3×3 convolution of cnn-small ~5 %, of ResNet-20 ~1 %
PAYING_SHARE = 0.3


class Given(nn.Module):
    """Stands in for a model's first layer: returns the tensor handed to it as ``value``."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("value", torch.empty(0), persistent=False)

    def forward(self, *_args) -> Tensor:
        return self.value


class _Captured(Exception):
    def __init__(self, value: Tensor) -> None:
        super().__init__("first-layer input captured")
        self.value = value


class _Capture(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        raise _Captured(x)


@dataclass(frozen=True)
class FirstLayer:
    """Where a model's first layer is and how its products G_j are formed."""

    name: str                    # dotted module name
    layer: nn.Module             # the user's nn.Linear / nn.Conv2d (read for its settings)
    weight: slice                # its weight in the flat parameter vector
    bias: slice | None           # its trainable bias there (None: no bias, or a frozen one)
    chain: tuple[tuple[str, nn.Module], ...] | None  # plain Sequential: the children after it
    flattens: bool = False       # chain only: the data are flattened before the layer
    share: float = 1.0           # the layer's share of a forward pass's multiply-adds (probe-counted)

    @property
    def fan_in(self) -> int:
        """Multiply-adds per output element of the layer."""
        w = self.layer.weight
        return int(w.shape[1] * (w[0, 0].numel() if w.ndim == 4 else 1))

    def pays(self, m: int) -> bool:
        """Whether the shortcut is clearly cheaper than a forward pass per point: with batched
        later layers, when combining 1 + m products costs little next to the layer's fan-in; point
        by point, when the layer does a large share of the forward pass's multiply-adds."""
        if self.stacked:
            return self.fan_in >= PAYING_FAN_IN_FACTOR * (1 + m)
        return self.share >= PAYING_SHARE and self.fan_in >= PAYING_FAN_IN_FACTOR * (1 + m)

    @property
    def frozen_bias(self) -> Tensor | None:
        """The layer's bias when it is not trainable: a constant of every point."""
        b = self.layer.bias
        return None if b is None or self.bias is not None else b.detach()

    def add_frozen_bias(self, z: Tensor) -> Tensor:
        """z plus the frozen bias over the output features (the points of a subspace without a
        centre, whose combination of products does not hold it)."""
        b = self.frozen_bias
        if b is None:
            return z
        return z + (b.to(z).view(-1, 1, 1) if isinstance(self.layer, nn.Conv2d) else b.to(z))

    @property
    def stacked(self) -> bool:
        """Whether the later layers can run as batched GEMMs over points (:class:`ChainRunner`)."""
        return self.chain is not None and all(_stackable(c) for _, c in self.chain)

    # ------------------------------------------------------------------ products
    def inputs(self, module: nn.Module, x: Tensor) -> Tensor:
        """The layer's input for the data x (a parameter-free function of x)."""
        if self.chain is not None:
            return x.reshape(x.shape[0], -1) if self.flattens else x
        view = structural_copy(module)
        parent, last = submodule_parent(view, self.name)
        parent._modules[last] = _Capture()
        try:
            with torch.no_grad():
                view(x)
        except _Captured as got:
            return got.value
        raise RuntimeError(f"the first layer {self.name!r} did not run")  # find_first_layer checked it

    def products(self, inputs: Tensor, centre: Tensor | None, vectors: Tensor) -> Tensor:
        """G of shape (J, n, *out): J = 1 + m rows (centre first) or m rows when ``centre`` is None.

        The weight blocks are read in place (strided views of the flat vectors); the bias of a
        direction is its bias block, the centre's its own (a frozen bias lives in the centre only).
        """
        lay = self.layer
        shape = tuple(lay.weight.shape)
        w_dirs = vectors[:, self.weight].unflatten(1, shape)
        b_dirs = vectors[:, self.bias] if self.bias is not None else None
        if centre is not None:  # a frozen bias is a constant: in the centre only
            w_centre = centre[self.weight].view(shape)
            b_centre = centre[self.bias] if self.bias is not None else self.frozen_bias
            b_centre = None if b_centre is None else b_centre.to(vectors)
        x = inputs.to(vectors.dtype)
        if isinstance(lay, nn.Conv2d):
            weights = [w_dirs[j] for j in range(w_dirs.shape[0])]
            biases = [None if b_dirs is None else b_dirs[j] for j in range(w_dirs.shape[0])]
            if centre is not None:
                weights.insert(0, w_centre)
                biases.insert(0, b_centre)
            return torch.stack([F.conv2d(x, w, b, lay.stride, lay.padding, lay.dilation, lay.groups)
                                for w, b in zip(weights, biases)])
        lead = x.shape[:-1]
        xf = x.reshape(-1, x.shape[-1])
        j0 = 0 if centre is None else 1
        g = xf.new_empty(j0 + w_dirs.shape[0], xf.shape[0], shape[0])
        if torch.is_grad_enabled() and (vectors.requires_grad or (centre is not None and centre.requires_grad)):
            dirs = torch.matmul(xf, w_dirs.transpose(1, 2))
            if b_dirs is not None:
                dirs = dirs + b_dirs.unsqueeze(1)
            if centre is not None:
                dirs = torch.cat([F.linear(xf, w_centre, b_centre).unsqueeze(0), dirs])
            return dirs.unflatten(1, lead)
        if w_dirs.shape[0]:
            xs, wt = xf.expand(w_dirs.shape[0], -1, -1), w_dirs.transpose(1, 2)
            if b_dirs is None:
                torch.bmm(xs, wt, out=g[j0:])
            else:
                torch.baddbmm(b_dirs.unsqueeze(1), xs, wt, out=g[j0:])
        if centre is not None:  # what F.linear computes, into place
            if b_centre is None:
                torch.mm(xf, w_centre.t(), out=g[0])
            else:
                torch.addmm(b_centre, xf, w_centre.t(), out=g[0])
        return g.unflatten(1, lead)


def combine(a: Tensor, g: Tensor) -> Tensor:
    """The K points' pre-activations a @ G: a (K, J), G (J, N) → (K, N).

    One point on a line with a centre (K = 1, J = 2: a line search's trial step, a[0, 0] = 1) on
    the CPU is one elementwise pass G₀ + a₁G₁ instead of a GEMM with an inner dimension of 2
    (≈ 0.1 ms against ≈ 0.5 ms for 10,000 × 64 pre-activations between line-search steps).
    """
    if a.shape[0] == 1 and a.shape[1] == 2 and g.device.type == "cpu" and not a.requires_grad \
            and not g.requires_grad and float(a[0, 0]) == 1.0:
        return torch.add(g[0], g[1], alpha=float(a[0, 1])).unsqueeze(0)
    return torch.mm(a, g)


def find_first_layer(module: nn.Module, spec: ParamSpec, example: Tensor) -> tuple[FirstLayer | None, str]:
    """The first layer of ``module`` if the shortcut applies to it, else ``(None, why not)``.

    ``spec``: the trainable parameters' layout; ``example``: a few data rows to run the model on.
    """
    found = _sequential_first_layer(module, spec)
    if found is not None:
        return found
    view = structural_copy(module)
    order: list[tuple[str, bool]] = []
    macs: dict[str, int] = {}
    for name, m in direct_parameters(view):
        m.register_forward_pre_hook(
            lambda mod, args, _name=name: order.append(
                (_name, bool(args) and isinstance(args[0], Tensor) and args[0].requires_grad)))
        m.register_forward_hook(lambda mod, args, out, _name=name: macs.__setitem__(
            _name, macs.get(_name, 0) + _multiply_adds(mod, out)))
    view.eval()
    try:
        with torch.enable_grad():
            view(example)
    except Exception as err:  # noqa: BLE001 - a model the probe cannot run gets the plain path
        return None, f"the model did not run on the probe ({type(err).__name__})"
    if not order:
        return None, "no layer with parameters ran"
    name, depends = order[0]
    layer = module.get_submodule(name)
    kind_ok = (type(layer).forward is nn.Linear.forward and isinstance(layer, nn.Linear)) or (
        isinstance(layer, nn.Conv2d) and type(layer).forward is nn.Conv2d.forward and layer.padding_mode == "zeros")
    if not kind_ok:
        return None, f"the first layer to run, {name!r}, is a {type(layer).__name__}, not nn.Linear or nn.Conv2d"
    if sum(1 for n, _ in order if n == name) != 1:
        return None, f"the first layer {name!r} runs more than once"
    if depends:
        return None, f"the input of the first layer {name!r} depends on parameters"
    found, why = _checked(module, spec, name, layer, None, False, share=macs[name] / max(sum(macs.values()), 1))
    return (found, why) if found is None else _verified(module, found, example)


def _multiply_adds(module: nn.Module, out) -> int:
    """Multiply-adds of one call (linear and convolution layers exactly; other layers with
    parameters as parameters × output rows)."""
    out = out[0] if isinstance(out, (tuple, list)) else out
    if not isinstance(out, Tensor):
        return 0
    if isinstance(module, nn.Linear):
        return out.numel() * module.in_features
    if isinstance(module, nn.modules.conv._ConvNd):
        w = module.weight
        return out.numel() * (w.shape[1] * w[0, 0].numel())
    return sum(p.numel() for p in module.parameters(recurse=False)) * int(out.shape[0])


@torch.no_grad()
def _verified(module: nn.Module, first: FirstLayer, example: Tensor) -> tuple[FirstLayer | None, str]:
    """The model run with its first layer replaced by the layer's own output must give the
    model's output (a model that reads the layer's tensors elsewhere does not)."""
    view = structural_copy(module)
    view.eval()
    runner = GivenRunner(view, first, dict(view.named_buffers()))
    params = {n: p for n, p in view.named_parameters() if not n.startswith(f"{first.name}.")}
    try:
        z = first.layer(first.inputs(view, example))
        same = torch.allclose(runner.run(params, z, example), view(example), rtol=1e-4, atol=1e-6)
    except Exception as err:  # noqa: BLE001 - a model that needs the replaced layer itself
        return None, f"the model reads its first layer {first.name!r} other than by calling it ({type(err).__name__})"
    if not same:
        return None, f"the model's output depends on its first layer {first.name!r} other than through its output"
    return first, ""


def _sequential_first_layer(module: nn.Module, spec: ParamSpec):
    """The plain-``nn.Sequential`` case found by inspection (no probe run): optional
    ``nn.Flatten(1, -1)`` children, then an ``nn.Linear``; the rest is the chain."""
    if not isinstance(module, nn.Sequential) or type(module).forward is not nn.Sequential.forward:
        return None
    children = list(module.named_children())
    i = 0
    while i < len(children) and isinstance(children[i][1], nn.Flatten):
        if (children[i][1].start_dim, children[i][1].end_dim) != (1, -1):
            return None
        i += 1
    if i >= len(children) or type(children[i][1]) is not nn.Linear:
        return None
    name, layer = children[i]
    return _checked(module, spec, name, layer, tuple(children[i + 1:]), i > 0)


def _checked(module, spec, name, layer, chain, flattens, *, share: float = 1.0) -> tuple[FirstLayer | None, str]:
    w_name, b_name = f"{name}.weight", f"{name}.bias"
    if w_name not in spec.names:
        return None, f"the first layer's weight {w_name!r} is frozen"
    own = {id(layer.weight), id(layer.bias)}
    for other_name, m in module.named_modules():
        if other_name != name and any(id(p) in own for p in m._parameters.values() if p is not None):
            return None, f"the first layer's tensors are shared with {other_name!r}"
    bias = spec.slice_of(b_name) if b_name in spec.names else None
    return FirstLayer(name, layer, spec.slice_of(w_name), bias, chain, flattens, share), ""


def _stackable(child: nn.Module) -> bool:
    return type(child) is nn.Linear or isinstance(child, ELEMENTWISE) or (
        isinstance(child, nn.Dropout) and not child.training)


# ---------------------------------------------------------------------- later layers
def later_parameters(first: FirstLayer, spec: ParamSpec, centre: Tensor | None, vectors: Tensor,
                     coef: Tensor) -> dict[str, Tensor]:
    """Per-point tensors (K, *shape) of every trainable tensor but the first layer's:
    θ₀ + coef @ V over their columns, one product per contiguous run of columns."""
    skip = {f"{first.name}.weight", f"{first.name}.bias"}
    runs: list[list] = []
    for name, shape, sl in spec.items():
        if name in skip:
            continue
        if runs and runs[-1][1] == sl.start:
            runs[-1][1] = sl.stop
            runs[-1][2].append((name, shape, sl))
        else:
            runs.append([sl.start, sl.stop, [(name, shape, sl)]])
    out = {}
    c = coef.to(vectors)
    for start, stop, members in runs:
        cols = vectors[:, start:stop]
        flat = c @ cols if centre is None else torch.addmm(centre[start:stop].unsqueeze(0), c, cols)
        for name, shape, sl in members:
            out[name] = flat[:, sl.start - start:sl.stop - start].view(coef.shape[0], *shape)
    return out


def _child_state(prefix: str, child: nn.Module, params: Mapping[str, Tensor], buffers: Mapping[str, Tensor]):
    """A later child's own tensors from ``params`` (names without ``prefix``), its buffers and its
    frozen parameters (the module's own)."""
    local = {n[len(prefix):]: v for n, v in params.items() if n.startswith(prefix)}
    bufs = {n[len(prefix):]: v for n, v in buffers.items() if n.startswith(prefix)}
    frozen = {n: p.detach() for n, p in child.named_parameters() if n not in local}
    return local, bufs, frozen


class ChainRunner:
    """The children after the first layer of a plain ``nn.Sequential``, with per-point weights.

    ``run(params, h)``: h (K, r, H) the K points' pre-activations of r rows, ``params`` the
    per-point tensors (K, *shape); returns (K, r, C), or (K, C, r) with ``class_major`` when the
    last child is an ``nn.Linear`` (computed as W hᵀ so a loss over classes runs along rows).
    ``inplace`` (no-grad evaluation) applies ReLU in place.  Frozen tensors are the module's own.
    """

    def __init__(self, first: FirstLayer, buffers: Mapping[str, Tensor]) -> None:
        self.first = first
        self.chain = first.chain or ()
        self.buffers = buffers

    def run(self, params: Mapping[str, Tensor], h: Tensor, *, inplace: bool = False,
            class_major: bool = False) -> Tensor:
        k = h.shape[0]
        last = len(self.chain) - 1
        for i, (cname, child) in enumerate(self.chain):
            if isinstance(child, ELEMENTWISE) or (isinstance(child, nn.Dropout) and not child.training):
                h = torch.relu_(h) if inplace and isinstance(child, nn.ReLU) else child(h)
                continue
            prefix = f"{cname}."
            if type(child) is nn.Linear:
                w = params.get(prefix + "weight")
                b = params.get(prefix + "bias")
                w = child.weight.detach().to(h).expand(k, -1, -1) if w is None else w
                if b is None and child.bias is not None:
                    b = child.bias.detach().to(h).expand(k, -1)
                if class_major and i == last:  # (K, C, r) = W (K, C, H) @ hᵀ (K, H, r)
                    ht = h.transpose(1, 2)
                    return torch.bmm(w, ht) if b is None else torch.baddbmm(b.unsqueeze(2), w, ht)
                wt = w.transpose(1, 2)
                h = torch.bmm(h, wt) if b is None else torch.baddbmm(b.unsqueeze(1), h, wt)
                continue
            local, bufs, frozen = _child_state(prefix, child, params, self.buffers)

            def call(p, x, _child=child, _bufs=bufs, _frozen=frozen):
                return functional_call(_child, ({**_frozen, **p}, _bufs), (x,))

            h = vmap(call)(local, h)
        return h.transpose(1, 2) if class_major else h

    def run_one(self, params: Mapping[str, Tensor], h: Tensor) -> Tensor:
        """The later children at ONE point (params unbatched, h (r, H)), differentiable."""
        for cname, child in self.chain:
            prefix = f"{cname}."
            if isinstance(child, ELEMENTWISE) or (isinstance(child, nn.Dropout) and not child.training):
                h = child(h)
            elif type(child) is nn.Linear:
                h = F.linear(h, params.get(prefix + "weight", child.weight), params.get(prefix + "bias", child.bias))
            else:
                local, bufs, frozen = _child_state(prefix, child, params, self.buffers)
                h = functional_call(child, ({**frozen, **local}, bufs), (h,))
        return h


class GivenRunner:
    """Any model with its first layer replaced by :class:`Given`: ``run(params, z, x)`` is the
    model's output at one point whose first-layer output is z (``params``: the point's other
    tensors by name, ``x``: the data, for whatever else the model reads of it)."""

    def __init__(self, module: nn.Module, first: FirstLayer, buffers: Mapping[str, Tensor]) -> None:
        self.view = structural_copy(module)
        parent, last = submodule_parent(self.view, first.name)
        parent._modules[last] = Given()
        self.key = f"{first.name}.value"
        self.buffers = dict(buffers)

    def run(self, params: Mapping[str, Tensor], z: Tensor, x: Tensor) -> Tensor:
        return functional_call(self.view, ({**params, self.key: z}, self.buffers), (x,))

    def run_many(self, params: Mapping[str, Tensor], z: Tensor, x: Tensor) -> Tensor:
        """K points at once (``params`` and z with a leading K axis) by ``torch.func.vmap``."""
        return vmap(lambda p, zz: self.run(p, zz, x))(dict(params), z)


__all__ = ["ELEMENTWISE", "ChainRunner", "FirstLayer", "Given", "GivenRunner", "combine", "find_first_layer",
           "later_parameters"]
