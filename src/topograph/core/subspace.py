r"""Many points of an affine subspace at once: the one evaluation engine of topograph.

Nearly everything topograph evaluates lies in a low-dimensional affine subspace of parameter
space.  A surface is a plane θ* + αδ + βη (Li et al. 2018), a path a curve Σ_j C_kj V_j of a
few control vectors (Yu & Morozov, seed 001), a line search the line θ − u r̂, Guided
Exploration's probes θ ± σu_i.  :class:`SubspaceEvaluator` evaluates the points

    θ(c_k) = c₀ + Σ_j c_kj v_j,    k = 1 … K   (c₀: the centre, or 0 for a path),

given the K × m coefficient matrix, on a split (in chunks) or on one batch:

* :meth:`~SubspaceEvaluator.evaluate` — losses and accuracies, no gradient;
* :meth:`~SubspaceEvaluator.losses` — losses differentiable in the centre, the vectors and the
  coefficients (path finders optimise the vectors through it);
* :meth:`~SubspaceEvaluator.value_and_grad` — the loss and gradient at one point (optimizers).

Two engines give the same numbers to float rounding (``engine=``):

``"first-layer"``
    the first-layer shortcut of :mod:`topograph.core.shortcut`: the first ``nn.Linear`` or
    ``nn.Conv2d``'s products G_j are formed once per data chunk (and kept between calls within
    ``memory_budget``), each point combines them.  For a plain ``nn.Sequential`` of linear
    layers and activations the later layers run as batched GEMMs over tiles of K points × r rows
    that stay in cache (the hot path of MLP surfaces); for any other model they run through
    ``functional_call`` of a copy whose first layer returns the combined products.
``"generic"``
    every point formed (in blocks within ``memory_budget``) and run through the objective's own
    forward pass, chunk-major (each chunk stays in cache across points) or, on a GPU,
    ``torch.func.vmap``-ed over groups of points.
``"auto"`` (default)
    the shortcut where it applies and pays (:meth:`FirstLayer.pays`), else generic.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import torch
from torch import Tensor
from torch.func import functional_call, vmap

from topograph.core.modules import batchnorm_layers
from topograph.core.objective import Objective, default_accuracy
from topograph.core.shortcut import ChainRunner, FirstLayer, GivenRunner, combine, later_parameters
from topograph.errors import UsageError

ENGINES = ("auto", "generic", "first-layer")


class SubspaceEvaluator:
    """Loss and accuracy at the points ``centre + coef @ vectors`` of an affine subspace.

    Parameters
    ----------
    objective:
        a :class:`~topograph.core.Objective` (or, generic engine only, any objective such as
        :class:`~topograph.core.FunctionObjective`).
    centre, vectors:
        c₀ of shape (P,) (``None``: the origin) and the m vectors, shape (m, P).
    engine:
        ``"auto"``, ``"first-layer"`` (raise where it does not apply) or ``"generic"``.
    memory_budget:
        bytes for the kept first-layer products and for blocks of formed points.
    tile_elements, points_per_pass:
        the MLP hot path's tiles: floats of pre-activations per tile (default 2²⁰ on the CPU,
        4 MiB, within the last-level cache; 2²⁵ on a GPU) and points per tile (8 on the CPU,
        64 on a GPU); both measured fastest on the surface benchmark.
    workers:
        threads sharing the row tiles of the MLP hot path on the CPU (default: torch's
        intra-op threads, at most 8); each runs on its share of the threads.
    vectorize:
        ``torch.func.vmap`` the forward over groups of ``points_per_pass`` points (grouped
        convolutions for conv nets; both engines) — the default on GPUs, which it fills; on a CPU
        one point's pass already fills the cores, so the default there is a pass per point.
        Never under ``batchnorm="batch"`` with BatchNorm (each point's statistics are its own).

    Nothing is computed at construction.
    """

    def __init__(self, objective, centre: Tensor | None, vectors: Tensor, *, engine: str = "auto",
                 memory_budget: int = 512 * 2**20, tile_elements: int | None = None,
                 points_per_pass: int | None = None, workers: int | None = None,
                 vectorize: bool | None = None) -> None:
        if engine not in ENGINES:
            raise UsageError(f"engine={engine!r}; use one of {', '.join(map(repr, ENGINES))}")
        if vectors.ndim != 2 or (centre is not None and vectors.shape[1] != centre.numel()):
            raise UsageError(f"vectors must be m×P with P = the centre's size; got {tuple(vectors.shape)}")
        self.objective = objective
        self.centre = centre
        self.vectors = vectors
        self.engine = engine
        self.memory_budget = int(memory_budget)
        self.tile_elements = tile_elements
        self.points_per_pass = points_per_pass
        self.workers = workers
        self.vectorize = vectorize
        self._kept: tuple[object, list[Tensor]] | None = None   # (data key, products per chunk)
        self._known_centre: list[Tensor] | None = None

    @property
    def dim(self) -> int:
        """m, the number of vectors."""
        return int(self.vectors.shape[0])

    # ------------------------------------------------------------------ engine choice
    def first_layer(self, split: str = "train", batch=None) -> FirstLayer | None:
        """The first layer the shortcut runs through for this data, or ``None`` (generic)."""
        if self.engine == "generic":
            return None
        obj = self.objective
        found, why = obj.first_layer(batch=batch, split=split) if isinstance(obj, Objective) else (
            None, "the objective is not a module with data")
        if found is not None and self.engine == "auto" and not found.pays(self.dim):
            found, why = None, "it would not pay"
        if found is None and self.engine == "first-layer":
            raise UsageError(f"engine='first-layer' does not apply: {why}; use engine='auto' or 'generic'")
        return found

    def resolved_engine(self, split: str = "train", batch=None) -> str:
        """``"first-layer"`` or ``"generic"``: the engine a call on this data takes."""
        return "generic" if self.first_layer(split, batch) is None else "first-layer"

    def _coefficients(self, coefficients) -> Tensor:
        coef = torch.as_tensor(coefficients, dtype=torch.float64) if not isinstance(coefficients, Tensor) \
            else coefficients
        if coef.ndim == 1 and self.dim == 1:
            coef = coef.unsqueeze(1)
        if coef.ndim != 2 or coef.shape[1] != self.dim:
            raise UsageError(f"coefficients have shape {tuple(coef.shape)}; they must be K×{self.dim}")
        return coef

    def _full(self, coef: Tensor) -> Tensor:
        """The product weights [1, c] (with a centre) or c, in the vectors' dtype."""
        c = coef.to(self.vectors)
        if self.centre is None:
            return c
        return torch.cat([torch.ones(c.shape[0], 1, dtype=c.dtype, device=c.device), c], dim=1)

    def points(self, coef: Tensor) -> Tensor:
        """The K points as a (K, P) tensor."""
        c = coef.to(self.vectors)
        return c @ self.vectors if self.centre is None else torch.addmm(self.centre.unsqueeze(0), c, self.vectors)

    # ------------------------------------------------------------------ products
    def _pre_activations(self, first: FirstLayer, a: Tensor, g: Tensor, shape: tuple[int, ...]) -> Tensor:
        """The K points' first-layer outputs a @ G, shaped (K, *shape) (``shape``: one point's), with a
        frozen bias added where no centre holds it."""
        z = combine(a, g.reshape(g.shape[0], -1)).view(a.shape[0], *shape)
        return first.add_frozen_bias(z) if self.centre is None else z

    def _products(self, first: FirstLayer, split: str, batch) -> list[Tensor]:
        """G (J, n, *out) per data chunk; kept between calls when they fit ``memory_budget``."""
        key = (split, None if batch is None else (id(batch[0]), id(batch[1])))
        if self._kept is not None and self._kept[0] == key and not torch.is_grad_enabled():
            return self._kept[1]
        obj = self.objective
        out, total = [], 0
        for i, (x, _) in enumerate(obj.chunks(split, batch)):
            inputs = first.inputs(obj.module, x)
            if self._known_centre is not None and self.centre is not None:
                g = first.products(inputs, None, self.vectors)
                g = torch.cat([self._known_centre[i].unsqueeze(0), g])
            else:
                g = first.products(inputs, self.centre, self.vectors)
            out.append(g)
            total += g.numel() * g.element_size()
        if total <= self.memory_budget and not torch.is_grad_enabled():
            self._kept = (key, out)
        return out

    def centre_products(self, shift) -> list[Tensor] | None:
        """The first layer's products at the point c₀ + shift·v per data chunk, from the kept ones
        (G₀ + Σ_j shift_j G_j, no pass over the data), or ``None`` when none are kept.  They equal
        bitwise the pre-activations an evaluation at ``shift`` forms; :meth:`use_centre_products`
        on an evaluator centred there skips that product (a line search moving along its lines)."""
        if self._kept is None or self.centre is None:
            return None
        a = self._full(torch.as_tensor(shift, dtype=torch.float64).reshape(1, -1))
        return [combine(a, g.reshape(g.shape[0], -1)).view_as(g[0]) for g in self._kept[1]]

    def use_centre_products(self, products: list[Tensor] | None) -> None:
        """Take ``products`` (one per data chunk of the next call) as the centre's first-layer products."""
        self._known_centre = products
        self._kept = None

    # ------------------------------------------------------------------ evaluate
    @torch.no_grad()
    def evaluate(self, coefficients, *, split: str = "train", batch=None) -> tuple[Tensor, Tensor]:
        """Losses and accuracies (two float64 CPU tensors of length K) at the K points given by
        ``coefficients`` (K×m)."""
        coef = self._coefficients(coefficients)
        if coef.shape[0] == 0:
            return torch.zeros(0, dtype=torch.float64), torch.zeros(0, dtype=torch.float64)
        first = self.first_layer(split, batch)
        if first is None:
            return self._evaluate_generic(coef, split, batch)
        obj = self.objective
        with obj.mode():
            products = self._products(first, split, batch)
            chunks = list(obj.chunks(split, batch))
            if first.stacked and products[0].ndim == 3:
                losses, correct, has_acc = self._evaluate_tiles(first, coef, products, chunks)
            else:
                losses, correct, has_acc = self._evaluate_given(first, coef, products, chunks)
        n = sum(y.shape[0] for _, y in chunks)
        obj.work.add(forward_passes=coef.shape[0])
        acc = (correct / n).cpu() if has_acc else torch.full((coef.shape[0],), math.nan, dtype=torch.float64)
        return (losses / n).cpu(), acc

    def _evaluate_generic(self, coef: Tensor, split: str, batch) -> tuple[Tensor, Tensor]:
        per_point = self.vectors.shape[1] * self.vectors.element_size()
        block = max(1, min(coef.shape[0], self.memory_budget // max(per_point, 1) // 2))
        losses, accs = [], []
        for i in range(0, coef.shape[0], block):
            thetas = self.points(coef[i:i + block])
            if self._vectorized():
                lo, ac = self._evaluate_vmapped(thetas, split, batch)
            else:
                lo, ac = self.objective.evaluate_many(thetas, split=split, batch=batch)
            losses.append(lo.double().cpu())
            accs.append(ac.double().cpu())
        return torch.cat(losses), torch.cat(accs)

    def _vectorized(self) -> bool:
        """Whether points are evaluated in vmap-ed groups (see ``vectorize``)."""
        obj = self.objective
        if not isinstance(obj, Objective) or (obj.batchnorm != "eval" and batchnorm_layers(obj.module)):
            return False
        return self.vectorize if self.vectorize is not None else self.vectors.device.type != "cpu"

    def _evaluate_vmapped(self, thetas: Tensor, split: str, batch) -> tuple[Tensor, Tensor]:
        """``torch.func.vmap`` of the forward over groups of points: one batched pass per group
        and chunk (grouped convolutions for conv nets), which fills a GPU; on a CPU one point's
        pass already fills the cores."""
        obj = self.objective
        k = thetas.shape[0]
        group = max(1, self.points_per_pass or 64)
        losses = torch.zeros(k, dtype=torch.float64, device=thetas.device)
        correct = torch.zeros(k, dtype=torch.float64, device=thetas.device)
        has_acc, n = True, 0
        with obj.mode():
            bufs = obj.buffers_at(obj.spec.unflatten(thetas[0]))

            def fwd(flat: Tensor, x: Tensor) -> Tensor:
                return functional_call(obj.module, (obj.spec.unflatten(flat), bufs), (x,))

            for x, y in obj.chunks(split, batch):
                n += x.shape[0]
                for g0 in range(0, k, group):
                    out = vmap(fwd, in_dims=(0, None))(thetas[g0:g0 + group], x)
                    losses[g0:g0 + group] += vmap(obj.loss_fn, in_dims=(0, None))(out, y).double() * x.shape[0]
                    if obj.accuracy_fn is None or obj.accuracy_fn(out[0], y) is None:
                        has_acc = False
                    else:
                        correct[g0:g0 + group] += vmap(obj.accuracy_fn, in_dims=(0, None))(out, y).double()
        obj.work.add(forward_passes=k)
        acc = correct / n if has_acc else torch.full_like(correct, math.nan)
        return (losses / n).cpu(), acc.cpu()

    def _evaluate_given(self, first: FirstLayer, coef: Tensor, products, chunks):
        """Any model: per chunk, per point, the combined products through the rest of the model."""
        obj = self.objective
        k = coef.shape[0]
        full = self._full(coef)
        later = later_parameters(first, obj.spec, self.centre, self.vectors, coef)
        runner = GivenRunner(obj.module, first, obj.buffers_at({}))
        losses = torch.zeros(k, dtype=torch.float64, device=self.vectors.device)
        correct = torch.zeros(k, dtype=torch.float64, device=self.vectors.device)
        has_acc = True
        group = max(1, self.points_per_pass or 64) if self._vectorized() else 1
        for g, (x, y) in zip(products, chunks):
            for i0 in range(0, k, group):
                i1 = min(i0 + group, k)
                z = self._pre_activations(first, full[i0:i1], g, g.shape[1:])
                if group > 1:  # one vmap-ed pass over the group's points
                    outs = runner.run_many({n: v[i0:i1] for n, v in later.items()}, z, x)
                else:
                    outs = runner.run(obj.layout_params({n: v[i0] for n, v in later.items()}),
                                      obj.layout(z[0]), x).unsqueeze(0)
                for i, out in zip(range(i0, i1), outs):
                    losses[i] += obj.loss_fn(out, y).double() * y.shape[0]
                    c = obj.accuracy_fn(out, y) if obj.accuracy_fn is not None else None
                    if c is None:
                        has_acc = False
                    else:
                        correct[i] += c
        return losses, correct, has_acc

    # ------------------------------------------------------------------ the MLP hot path
    def _evaluate_tiles(self, first: FirstLayer, coef: Tensor, products, chunks):
        obj = self.objective
        kk = coef.shape[0]
        full = self._full(coef)
        on_gpu = self.vectors.device.type != "cpu"
        tile = self.tile_elements or (2**25 if on_gpu else 2**20)
        per_pass = self.points_per_pass or (64 if on_gpu else 8)
        kp = max(1, min(per_pass, kk))
        workers = 1 if on_gpu else max(1, self.workers or min(torch.get_num_threads(), 8))
        runner = ChainRunner(first, obj.buffers_at({}))
        blocks = [(i, min(i + kp, kk), full[i:i + kp],
                   later_parameters(first, obj.spec, self.centre, self.vectors, coef[i:i + kp]))
                  for i in range(0, kk, kp)]
        tasks = []
        for g, (_, y) in zip(products, chunks):
            # rows per tile fixed by the settings (not by the number of points), so a point's
            # value does not depend on the block or rank it was evaluated in
            rows = max(1, tile // (per_pass * g.shape[2]))
            starts = list(range(0, g.shape[1], rows))
            per_worker = -(-len(starts) // workers)
            tasks += [(g, y, rows, starts[w:w + per_worker]) for w in range(0, len(starts), per_worker)]
        if workers > 1 and len(tasks) > 1:
            previous = torch.get_num_threads()
            torch.set_num_threads(max(1, previous // workers))
            try:
                with ThreadPoolExecutor(max_workers=workers) as pool:
                    results = list(pool.map(lambda t: self._run_tiles(t, blocks, runner, kk), tasks))
            finally:
                torch.set_num_threads(previous)
        else:
            results = [self._run_tiles(t, blocks, runner, kk) for t in tasks]
        return sum(r[0] for r in results), sum(r[1] for r in results), all(r[2] for r in results)

    def _run_tiles(self, task, blocks, runner: ChainRunner, kk: int):
        """Loss sums, correct counts and has-accuracy over the row tiles of one task; tile-major,
        so a tile's products stay in cache for every block of points."""
        g, y, rows, starts = task
        losses = torch.zeros(kk, dtype=torch.float64, device=g.device)
        correct = torch.zeros(kk, dtype=torch.float64, device=g.device)
        has_acc = True
        n, width, parts = g.shape[1], g.shape[2], g.shape[0]
        fast = _class_major_applies(self.objective, y)
        for r0 in starts:
            r1 = min(r0 + rows, n)
            gv = g[:, r0:r1, :].reshape(parts, (r1 - r0) * width)
            yb = y[r0:r1]
            for i0, i1, a, params in blocks:
                pre = self._pre_activations(runner.first, a, gv, (r1 - r0, width))
                out = runner.run(params, pre, inplace=True, class_major=fast)
                if fast:
                    lo, c = _class_major_terms(out, yb, want_accuracy=self.objective.accuracy_fn is not None)
                    losses[i0:i1] += lo
                else:
                    lo, c = _point_terms(self.objective, out, yb)
                    losses[i0:i1] += lo.double() * (r1 - r0)
                if c is None:
                    has_acc = False
                else:
                    correct[i0:i1] += c
        return losses, correct, has_acc

    # ------------------------------------------------------------------ differentiable
    def losses(self, coefficients, *, split: str = "train", batch=None) -> Tensor:
        """Differentiable mean losses of the K points (length K), through whatever of the centre,
        the vectors and the coefficients requires grad."""
        coef = self._coefficients(coefficients)
        first = self.first_layer(split, batch)
        obj = self.objective
        if first is None:
            return obj.losses(self.points(coef), split=split, batch=batch)
        n = obj.samples(split, batch)
        full = self._full(coef)
        later = later_parameters(first, obj.spec, self.centre, self.vectors, coef)
        total = 0
        with obj.mode():
            products = self._products(first, split, batch)
            chained = first.stacked and products[0].ndim == 3
            runner = ChainRunner(first, obj.buffers_at({})) if chained else GivenRunner(obj.module, first,
                                                                                      obj.buffers_at({}))
            for g, (x, y) in zip(products, obj.chunks(split, batch)):
                if chained:
                    out = runner.run(later, self._pre_activations(first, full, g, g.shape[1:]))
                    per_point = _point_terms(obj, out, y, want_accuracy=False)[0]
                else:
                    per_point = torch.stack([obj.loss_fn(runner.run(
                        obj.layout_params({name: v[i] for name, v in later.items()}),
                        self._pre_activations(first, full[i:i + 1], g, g.shape[1:])[0], x), y)
                        for i in range(coef.shape[0])])
                total = total + per_point * (y.shape[0] / n)
        obj.work.add(forward_passes=coef.shape[0])
        return total

    def value_and_grad(self, coefficients, *, split: str = "train", batch=None) -> tuple[Tensor, Tensor]:
        """Loss (float64, 0-d) and flat gradient (the objective's layout) at ONE point.

        On the MLP hot path the pre-activations come from the kept (or carried) products: the
        later layers run forward and backward by autograd and the first layer's gradient closes
        as ∂L/∂W = ∂L/∂Zᵀ X, ∂L/∂b = Σ_rows ∂L/∂Z — no first-layer forward product.  Elsewhere,
        the objective's ``value_and_grad`` at the point.
        """
        coef = torch.as_tensor(coefficients, dtype=torch.float64) if not isinstance(coefficients, Tensor) \
            else coefficients
        coef = self._coefficients(coef.reshape(1, -1) if coef.ndim == 1 else coef)
        if coef.shape[0] != 1:
            raise UsageError(f"value_and_grad takes one point; got {coef.shape[0]} rows of coefficients")
        first = self.first_layer(split, batch)
        obj = self.objective
        if first is None or not first.stacked or self.centre is None:
            value, grad = obj.value_and_grad(self.points(coef)[0].detach(), split=split, batch=batch)
            return torch.tensor(value, dtype=torch.float64), grad
        full = self._full(coef)
        grad = torch.zeros_like(self.centre)
        total = torch.zeros((), dtype=torch.float64, device=self.centre.device)
        with torch.no_grad(), obj.mode():
            products = self._products(first, split, batch)
            runner = ChainRunner(first, obj.buffers_at({}))
            leaves = {name: v[0].detach().requires_grad_()
                      for name, v in later_parameters(first, obj.spec, self.centre, self.vectors, coef).items()}
            n_total = sum(g.shape[1] for g in products)
            for g, (x, y) in zip(products, obj.chunks(split, batch)):
                rows, width = g.shape[1], g.shape[2]
                z = self._pre_activations(first, full, g, (rows, width))[0].requires_grad_()
                with torch.enable_grad():
                    loss = obj.loss_fn(runner.run_one(leaves, z), y)
                    parts = torch.autograd.grad(loss * (rows / n_total), [z, *leaves.values()], allow_unused=True)
                total += loss.detach().double() * rows
                dz = parts[0]
                grad[first.weight].view(width, -1).addmm_(dz.t(), first.inputs(obj.module, x).to(dz.dtype))
                if first.bias is not None:
                    grad[first.bias].add_(dz.sum(0))
                for name, part in zip(leaves, parts[1:]):
                    if part is not None:
                        grad[obj.spec.slice_of(name)].add_(part.reshape(-1))
        obj.work.add(forward_passes=1, backward_passes=1)
        return (total / n_total).cpu(), grad


# ---------------------------------------------------------------------- loss terms
def _class_major_applies(objective, y: Tensor) -> bool:
    """Whether the tiles' losses can use the class-major cross-entropy/accuracy kernel."""
    return (objective.loss_fn is torch.nn.functional.cross_entropy and y.ndim == 1
            and not y.is_floating_point() and objective.accuracy_fn in (default_accuracy, None))


def _class_major_terms(lt: Tensor, y: Tensor, *, want_accuracy: bool) -> tuple[Tensor, Tensor | None]:
    """Cross-entropy summed over the rows and the number correct per point, logits (K, C, r).

    ℓ = logsumexp_c z_c − z_y with the max subtracted; a prediction is correct when z_y is the
    maximum and no other class ties with it (a tile with a tie falls back to ``argmax``, whose
    first-index rule then decides, exactly as the generic path).  Without an accuracy (the
    optimizers' probes) the loss is torch's fused cross-entropy over the class dimension.
    """
    k = lt.shape[0]
    if not want_accuracy:
        return torch.nn.functional.cross_entropy(lt, y.view(1, -1).expand(k, -1), reduction="none").sum(1), None
    m = lt.amax(1, keepdim=True)
    zy = lt.gather(1, y.view(1, 1, -1).expand(k, 1, -1))
    lse = (lt - m).exp_().sum(1, keepdim=True).log_().add_(m)
    lo = (lse - zy).sum((1, 2))
    if lt.device.type != "cpu":  # no host sync per tile on a GPU
        return lo, (lt.argmax(1) == y.view(1, -1)).sum(1)
    if bool(((lt == m).sum(1) > 1).any()):
        return lo, (lt.argmax(1) == y.view(1, -1)).sum(1)
    return lo, (zy == m).sum((1, 2))


def _point_terms(objective, out: Tensor, y: Tensor, *, want_accuracy: bool = True):
    """Per-point mean loss (K,) and number correct (K,) or None, outputs (K, r, C)."""
    loss_fn = objective.loss_fn
    if loss_fn is torch.nn.functional.cross_entropy and y.ndim == 1 and not y.is_floating_point():
        k, r = out.shape[0], out.shape[1]
        lo = torch.nn.functional.cross_entropy(out.reshape(k * r, -1), y.repeat(k), reduction="none").view(k, r).mean(1)
    else:
        try:
            lo = vmap(loss_fn, in_dims=(0, None))(out, y)
        except Exception:  # noqa: BLE001 - a loss vmap cannot trace: one call per point
            lo = torch.stack([loss_fn(o, y) for o in out])
    acc_fn = objective.accuracy_fn
    if not want_accuracy or acc_fn is None or acc_fn(out[0], y) is None:
        return lo, None
    return lo, torch.stack([torch.as_tensor(acc_fn(o, y)) for o in out])


__all__ = ["ENGINES", "SubspaceEvaluator"]
