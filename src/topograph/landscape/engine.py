"""The batched evaluation engine of the maps: many points of a line or plane per pass.

:class:`PlaneEvaluator` evaluates L and the accuracy at points θ = θ* + Σ_j α_j δ_j of an
affine subspace (a line for m = 1, a plane for m = 2) given their coefficients α.  The centre
and the directions stay on the objective's device; no point is ever loaded into the module.

Generic path
    θ_k = θ* + α_k δ is formed for a block of points (one ``addmm``) and handed to
    :meth:`topograph.core.Objective.evaluate_many` — any model, any loss — or, with
    ``vectorize`` (default on GPUs), evaluated in groups by ``torch.func.vmap`` of the forward.

First-layer path (the hot path)
    A network whose first operation is ``nn.Linear`` (after an optional ``nn.Flatten``) is
    linear in its first-layer weights, so for the data X

        X (W₀ + Σ_j α_j D_j)ᵀ + (b₀ + Σ_j α_j e_j) = G₀ + Σ_j α_j G_j,   G_j = X D_jᵀ + e_j,

    where (D_j, e_j) are the first-layer blocks of δ_j.  The G_j are computed once per plane
    (one GEMM for the centre and one batched GEMM over the m directions, reading the weight
    blocks in place) and kept.  Per tile of K points × r rows
    the pre-activations of all K points are then one small GEMM ``coef (K×(1+m)) @ G[:, rows]``
    (the bias is folded into G), the activation runs in place, and the later layers run as
    batched GEMMs with per-point weights, while the tile is still in cache.  For the
    784-128-64-10 MLP this does about 11× fewer FLOPs than a forward pass per point
    (perf-baseline.md §3).  Losses are summed per tile as ``loss_fn`` (mean over the rows) × r,
    which equals the objective's sample-weighted mean.

The first-layer path applies when the module is an ``nn.Sequential`` (with Sequential's own
``forward``) whose first parametrised child is an ``nn.Linear`` preceded only by
``nn.Flatten(1, -1)``, and — under the ``"batch"`` buffer policy — the rest holds no BatchNorm
(its statistics would be taken over row tiles).  Later children may be anything: ``nn.Linear``
and elementwise activations run as batched GEMMs/in-place ops, other children through
``torch.func.vmap`` of ``functional_call``.  Otherwise the generic path runs, with the same
numbers (tests compare them to 1e-5 relative).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

from topograph.core.first_layer import (ELEMENTWISE, FirstLayerPlan, first_layer_plan, stacked_linear,
                                         stacked_linear_weights)
from topograph.core.objective import default_accuracy
from topograph.errors import UsageError
from topograph.landscape.directions import Directions

ENGINES = ("auto", "first-layer", "generic")


class PlaneEvaluator:
    """Loss and accuracy at points θ* + Σ_j α_j δ_j of a line or plane, many per pass.

    Parameters
    ----------
    objective:
        a :class:`topograph.core.Objective` (or any object with ``evaluate_many``).
    directions:
        the :class:`~topograph.landscape.Directions` (centre and m vectors).
    engine:
        ``"auto"`` (first-layer path where it applies, else generic), ``"first-layer"``
        (raise if it does not apply) or ``"generic"``.
    memory_budget:
        bytes for the precomputed first-layer products (kept across calls when they fit) and
        for the blocks of points formed by the generic path.
    tile_elements:
        floats in one tile of pre-activations (K points × r rows × H units); the default on
        the CPU, 2²⁰ (4 MiB, within L3), measured fastest on the W1 benchmark workload on 2
        cores (1.75 s against 2.3 s for 2¹⁸ = one L2 cache); 2²⁵ on a GPU.
    points_per_pass:
        K, the number of points evaluated together in one tile (default 8 on the CPU — also
        measured on W1: 16 points took 1.95 s, 4 points 2.1 s — and 64 on a GPU).
    vectorize:
        generic path only: evaluate groups of ``points_per_pass`` points in one
        ``torch.func.vmap``-ed forward (default: on GPUs) instead of one forward per point.
    workers:
        first-layer path on the CPU: threads that share the row tiles (default
        ``min(torch.get_num_threads(), 8)``); during the call the intra-op thread count is
        divided among them (1 each on 2 cores) and restored afterwards.
    plan:
        the objective's :func:`first_layer_plan`, when the caller has it already (evaluators
        built again and again for one model skip inspecting it); ``None``: found on first use.

    Nothing is computed at construction; :meth:`evaluate` does the work.
    """

    def __init__(
        self,
        objective: Any,
        directions: Directions,
        *,
        engine: str = "auto",
        memory_budget: int = 512 * 2**20,
        tile_elements: int | None = None,
        points_per_pass: int | None = None,
        vectorize: bool | None = None,
        workers: int | None = None,
        plan: FirstLayerPlan | None = None,
    ) -> None:
        if engine not in ENGINES:
            raise UsageError(f"engine={engine!r}; use one of {', '.join(ENGINES)}")
        self.objective = objective
        self.directions = directions
        self.engine = engine
        self.memory_budget = int(memory_budget)
        self.tile_elements = None if tile_elements is None else int(tile_elements)
        self.points_per_pass = None if points_per_pass is None else int(points_per_pass)
        self.vectorize = vectorize
        self.workers = None if workers is None else int(workers)
        self._plan_cache: tuple[FirstLayerPlan | None, str] | None = (
            (plan, "") if plan is not None and engine != "generic" else None)
        self._segments_key: Any = None
        self._segments: list[tuple[Tensor, Tensor]] | None = None
        self._known_centre: list[Tensor] | None = None
        self._module_buffers: dict[str, Tensor] | None = None  # read once per evaluate, when a child needs them

    # ------------------------------------------------------------------ which path
    def _plan(self) -> FirstLayerPlan | None:
        if self._plan_cache is None:
            if self.engine == "generic":
                self._plan_cache = (None, "engine='generic' was asked for")
            else:
                self._plan_cache = first_layer_plan(self.objective)
                if self._plan_cache[0] is None and self.engine == "first-layer":
                    raise UsageError(f"engine='first-layer' does not apply: {self._plan_cache[1]}; "
                                     "use engine='auto' or 'generic'")
        return self._plan_cache[0]

    @property
    def path(self) -> str:
        """``"first-layer"`` or ``"generic"``: the path :meth:`evaluate` takes."""
        return "first-layer" if self._plan() is not None else "generic"

    # ------------------------------------------------------------------ public
    @torch.no_grad()
    def evaluate(self, coefficients: Tensor, *, split: str = "train",
                 batch: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
        """Loss and accuracy (two float64 CPU tensors of length K) at the K points given by
        ``coefficients`` (K×m; row k holds α_k)."""
        coef = torch.as_tensor(coefficients, dtype=torch.float64)
        if coef.ndim == 1 and self.directions.dim == 1:
            coef = coef.unsqueeze(1)
        if coef.ndim != 2 or coef.shape[1] != self.directions.dim:
            raise UsageError(f"coefficients have shape {tuple(coef.shape)}; they must be "
                             f"K×{self.directions.dim}")
        if coef.shape[0] == 0:
            return torch.zeros(0, dtype=torch.float64), torch.zeros(0, dtype=torch.float64)
        plan = self._plan()
        if plan is not None and not plan.flattens:
            # without a Flatten, nn.Linear acts on the last axis: only 2-D inputs are rows
            x0 = batch[0] if batch is not None else self.objective.splits[split][0]
            if x0.ndim != 2:
                if self.engine == "first-layer":
                    raise UsageError("engine='first-layer' needs 2-D inputs or an nn.Flatten before the "
                                     f"first nn.Linear; the inputs have shape {tuple(x0.shape)}")
                plan = None
        if plan is None:
            return self._evaluate_generic(coef, split, batch)
        return self._evaluate_first_layer(plan, coef, split, batch)

    # ------------------------------------------------------------------ generic path
    def _evaluate_generic(self, coef: Tensor, split: str, batch) -> tuple[Tensor, Tensor]:
        d = self.directions
        per_point = d.vectors.shape[1] * d.vectors.element_size()
        block = max(1, min(coef.shape[0], self.memory_budget // max(per_point, 1) // 2))
        vectorize = self.vectorize if self.vectorize is not None else d.center.device.type != "cpu"
        losses, accs = [], []
        for i in range(0, coef.shape[0], block):
            thetas = d.points(coef[i:i + block])
            lo = ac = None
            if vectorize and hasattr(self.objective, "module"):
                try:
                    lo, ac = self._evaluate_vmapped(thetas, split, batch)
                except Exception:  # a model vmap cannot trace: one forward per point
                    self.vectorize = vectorize = False
            if lo is None:
                lo, ac = self.objective.evaluate_many(thetas, split=split, batch=batch)
            losses.append(lo.double().cpu())
            accs.append(ac.double().cpu())
        return torch.cat(losses), torch.cat(accs)

    def _evaluate_vmapped(self, thetas: Tensor, split: str, batch) -> tuple[Tensor, Tensor]:
        """``torch.func.vmap`` of the forward over groups of points: one batched pass per group
        and data chunk (pays off on GPUs; on a CPU one point's GEMM already fills the cores,
        perf-baseline §6.2)."""
        obj = self.objective
        spec = obj.spec
        k = thetas.shape[0]
        group = max(1, self.points_per_pass or (64 if thetas.device.type != "cpu" else 16))
        losses = torch.zeros(k, dtype=torch.float64, device=thetas.device)
        correct = torch.zeros(k, dtype=torch.float64, device=thetas.device)
        has_acc, n = True, 0
        with obj.mode():
            bufs = obj._buffers()

            def fwd(flat: Tensor, x: Tensor) -> Tensor:
                return functional_call(obj.module, (spec.unflatten(flat), bufs), (x,))

            for x, y in obj.chunks(split, batch):
                n += x.shape[0]
                for g0 in range(0, k, group):
                    out = vmap(fwd, in_dims=(0, None))(thetas[g0:g0 + group], x)
                    lo = vmap(obj.loss_fn, in_dims=(0, None))(out, y)
                    losses[g0:g0 + group] += lo.double() * x.shape[0]
                    if obj.accuracy_fn is None or obj.accuracy_fn(out[0], y) is None:
                        has_acc = False
                    else:
                        correct[g0:g0 + group] += vmap(obj.accuracy_fn, in_dims=(0, None))(out, y).double()
        obj.calls["forward"] += k
        acc = correct / n if has_acc else torch.full_like(correct, math.nan)
        return losses / n, acc

    # ------------------------------------------------------------------ first-layer path
    def _first_layer_segments(self, plan: FirstLayerPlan, split: str, batch) -> list[tuple[Tensor, Tensor]]:
        """[(G, y)] per data chunk, G of shape (1+m, n, H) with G_j = X D_jᵀ + e_j."""
        key = (split, None if batch is None else (id(batch[0]), id(batch[1])))
        if self._segments is not None and self._segments_key == key:
            return self._segments
        d = self.directions
        c, vecs = d.center, d.vectors
        lin = dict(self.objective.module.named_children())[plan.linear_name]
        out_f, in_f = lin.out_features, lin.in_features
        known = self._known_centre  # the centre's products, carried over (set_centre_products)
        # weights as views (no copy of the (1+m)·H·D block): the centre's (H, D) and the
        # directions' (m, H, D) with the directions' row stride
        w_centre = c[plan.weight_slice].view(out_f, in_f)
        w_dirs = vecs[:, plan.weight_slice].unflatten(1, (out_f, in_f))
        if plan.bias_slice is not None:
            b_centre, b_dirs = c[plan.bias_slice], vecs[:, plan.bias_slice]
        else:  # a frozen bias is a constant: in the centre only; absent: none
            b_centre = lin.bias.detach().to(c) if lin.bias is not None else None
            b_dirs = None
        segments = []
        total = 0
        for i, (x, y) in enumerate(self.objective.chunks(split, batch)):
            xf = x.reshape(x.shape[0], -1).to(c.dtype)
            g = xf.new_empty(1 + d.dim, x.shape[0], out_f)  # (1+m, n, H), written in place
            if d.dim:
                xs = xf.expand(d.dim, -1, -1)
                wt = w_dirs.transpose(1, 2)
                if b_dirs is None:
                    torch.bmm(xs, wt, out=g[1:])
                else:
                    torch.baddbmm(b_dirs.unsqueeze(1), xs, wt, out=g[1:])
            if known is not None:
                g[0].copy_(known[i])
            elif b_centre is None:
                torch.mm(xf, w_centre.t(), out=g[0])
            else:  # what F.linear computes, into place
                torch.addmm(b_centre, xf, w_centre.t(), out=g[0])
            segments.append((g, y))
            total += g.numel() * g.element_size()
        if total <= self.memory_budget:
            self._segments_key, self._segments = key, segments
        return segments

    def centre_products(self, shift: Tensor) -> list[Tensor] | None:
        """The first layer's products at the point c + Σ_j shift_j δ_j, per data chunk, from the
        kept ones: G₀ + Σ_j shift_j G_j (no pass over the data), or ``None`` when none are kept.

        They equal X W(c + shift·δ)ᵀ + b up to float rounding, and bitwise the pre-activations an
        evaluation at ``shift`` forms (the same :func:`_combine`); :meth:`set_centre_products` on an
        evaluator centred there skips that GEMM (a line search moving along its lines).
        """
        if self._segments is None:
            return None
        a = torch.as_tensor(shift, dtype=torch.float64).reshape(-1)
        full = torch.cat([torch.ones(1, dtype=torch.float64), a]).view(1, -1).to(self.directions.vectors)
        return [_combine(full, g.reshape(g.shape[0], -1)).view_as(g[0]) for g, _ in self._segments]

    def set_centre_products(self, products: list[Tensor] | None) -> None:
        """Use ``products`` (one (n, H) tensor per data chunk of the next evaluation, from
        :meth:`centre_products` of an earlier evaluator) as the centre's first-layer products."""
        self._known_centre = products
        self._segments, self._segments_key = None, None

    def loss_and_gradient(self, coefficients, *, split: str = "train",
                          batch: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
        r"""Loss and gradient ∇L(θ) at ONE point θ = θ* + Σ_j α_j δ_j, through the first-layer
        products (first-layer path only).

        The pre-activations Z = G₀ + Σ_j α_j G_j come from the kept (or carried) products, so
        the forward pass skips the first GEMM; backward runs through the later layers by
        autograd and closes with the first layer's ∂L/∂W = ∂L/∂Zᵀ X, ∂L/∂b = Σ_rows ∂L/∂Z
        (no gradient with respect to the data).  Returns the mean loss (float64, 0-d) and the
        flat gradient in the objective's parameter layout (zero on frozen tensors); both equal
        a forward and backward pass through the module at θ up to float rounding.
        """
        plan = self._plan()
        if plan is None:
            raise UsageError("loss_and_gradient needs the first-layer path (an nn.Linear first layer)")
        obj = self.objective
        d = self.directions
        a = torch.as_tensor(coefficients, dtype=torch.float64).reshape(1, -1)
        if a.shape[1] != d.dim:
            raise UsageError(f"coefficients have {a.shape[1]} entries; the span has {d.dim} directions")
        full = torch.cat([torch.ones(1, 1, dtype=torch.float64), a], dim=1).to(d.vectors)  # [1, α]
        spec = obj.spec
        grad = torch.zeros_like(d.center)
        total = torch.zeros((), dtype=torch.float64, device=d.center.device)
        mode = obj.mode() if hasattr(obj, "mode") else _null()
        with torch.no_grad(), mode:
            self._module_buffers = None
            segments = self._first_layer_segments(plan, split, batch)
            leaves = {name: value[0].detach().requires_grad_() for name, value in self._rest_params(plan, a).items()}
            n_total = sum(g.shape[1] for g, _ in segments)
            for (g, y), (x, _) in zip(segments, obj.chunks(split, batch)):
                rows, width = g.shape[1], g.shape[2]
                z = _combine(full, g.reshape(g.shape[0], -1)).view(rows, width).requires_grad_()
                with torch.enable_grad():
                    loss = obj.loss_fn(self._rest_forward(plan, leaves, z), y)
                    parts = torch.autograd.grad(loss * (rows / n_total), [z, *leaves.values()], allow_unused=True)
                total += loss.detach().double() * rows
                dz = parts[0]
                xf = x.reshape(rows, -1).to(dz.dtype)
                grad[plan.weight_slice].view(width, -1).addmm_(dz.t(), xf)  # ∂L/∂W = ∂L/∂Zᵀ X
                if plan.bias_slice is not None:
                    grad[plan.bias_slice].add_(dz.sum(0))
                for (name, _), part in zip(leaves.items(), parts[1:]):
                    if part is not None:
                        grad[spec.slice_of(name)].add_(part.reshape(-1))
        if hasattr(obj, "calls"):
            obj.calls["forward"] += 1
            obj.calls["backward"] += 1
        return (total / n_total).cpu(), grad

    def _rest_forward(self, plan: FirstLayerPlan, params: dict[str, Tensor], h: Tensor) -> Tensor:
        """The children after the first layer on the pre-activations h (rows, H) at ONE point
        (differentiable, nothing in place): ``nn.Linear`` as ``F.linear``, elementwise children
        as they are, anything else through ``functional_call``."""
        for cname, child in plan.rest:
            prefix = f"{cname}."
            if isinstance(child, ELEMENTWISE) or (isinstance(child, nn.Dropout) and not child.training):
                h = child(h)
                continue
            if isinstance(child, nn.Linear):
                w = params.get(prefix + "weight", child.weight)
                b = params.get(prefix + "bias", child.bias)
                h = torch.nn.functional.linear(h, w, b)
                continue
            local, bufs, frozen = self._child_state(prefix, child, params)
            h = functional_call(child, ({**frozen, **local}, bufs), (h,))
        return h

    def _child_state(self, prefix: str, child: nn.Module, params: dict[str, Tensor]):
        """A later child's own parameters from ``params`` (names without ``prefix``), its
        buffers (read from the objective once per evaluation) and its frozen parameters."""
        if self._module_buffers is None:
            obj = self.objective
            self._module_buffers = dict(obj._buffers()) if hasattr(obj, "_buffers") else {}
        local = {n[len(prefix):]: v for n, v in params.items() if n.startswith(prefix)}
        bufs = {n[len(prefix):]: v for n, v in self._module_buffers.items() if n.startswith(prefix)}
        frozen = {n: p.detach() for n, p in child.named_parameters() if n not in local}
        return local, bufs, frozen

    def _rest_params(self, plan: FirstLayerPlan, coef: Tensor) -> dict[str, Tensor]:
        """Per-point parameters (K, *shape) of every trainable tensor after the first layer."""
        d = self.directions
        spec = self.objective.spec
        first = {f"{plan.linear_name}.weight", f"{plan.linear_name}.bias"}
        cc = coef.to(d.vectors)
        # one product per contiguous run of later-layer entries (normally one: all after the
        # first layer), then per-tensor views
        runs: list[list] = []
        for name, shape, sl in spec.items():
            if name in first:
                continue
            if runs and runs[-1][1] == sl.start:
                runs[-1][1] = sl.stop
                runs[-1][2].append((name, shape, sl))
            else:
                runs.append([sl.start, sl.stop, [(name, shape, sl)]])
        out = {}
        for start, stop, members in runs:
            flat = torch.addmm(d.center[start:stop].unsqueeze(0), cc, d.vectors[:, start:stop])
            for name, shape, sl in members:
                out[name] = flat[:, sl.start - start:sl.stop - start].view(coef.shape[0], *shape)
        return out

    def _run_rest(self, plan: FirstLayerPlan, params: dict[str, Tensor], h: Tensor, k: int,
                  transpose_last: bool = False) -> Tensor:
        """The children after the first layer on h (K, r, H) with per-point weights.

        Returns (K, r, C), or (K, C, r) when ``transpose_last`` and the last child is an
        ``nn.Linear`` (computed as W h^T, so a loss over the C classes runs along rows).
        """
        last = len(plan.rest) - 1
        for i, (cname, child) in enumerate(plan.rest):
            prefix = f"{cname}."
            if isinstance(child, ELEMENTWISE) or (isinstance(child, nn.Dropout) and not child.training):
                h = torch.relu_(h) if isinstance(child, nn.ReLU) else child(h)
                continue
            if isinstance(child, nn.Linear):
                w, b = params.get(prefix + "weight"), params.get(prefix + "bias")
                if transpose_last and i == last:  # (K, C, r) = W (K, C, H) @ h^T (K, H, r)
                    w, b = stacked_linear_weights(child, w, b, k, h)
                    ht = h.transpose(1, 2)
                    return torch.bmm(w, ht) if b is None else torch.baddbmm(b.unsqueeze(2), w, ht)
                h = stacked_linear(child, h, w, b)
                continue
            # anything else: vmap of functional_call over the K points
            local, bufs, frozen = self._child_state(prefix, child, params)

            def call(p, x, _child=child, _bufs=bufs, _frozen=frozen):
                return functional_call(_child, ({**_frozen, **p}, _bufs), (x,))

            h = vmap(call)(local, h)
        return h.transpose(1, 2) if transpose_last else h

    def _fast_cross_entropy(self, y: Tensor) -> bool:
        """Whether the tile terms can use the class-major cross-entropy/accuracy kernel."""
        obj = self.objective
        return (obj.loss_fn is torch.nn.functional.cross_entropy and y.ndim == 1
                and not y.is_floating_point() and obj.accuracy_fn in (default_accuracy, None))

    def _tile_terms_class_major(self, lt: Tensor, y: Tensor) -> tuple[Tensor, Tensor | None]:
        """Cross-entropy (summed over the rows) and number correct per point, logits (K, C, r).

        ℓ = logsumexp_c z_c − z_y with the max subtracted; a prediction is correct when z_y is
        the maximum and no other class ties with it (a tile with any tie falls back to
        ``argmax``, whose first-index rule then decides, exactly as the generic path).  Without
        an accuracy (the optimizers' spans) the loss is torch's fused cross-entropy over the
        class dimension: one kernel instead of seven small ones (≈ 30 µs against 60 µs for
        9 points × 128 rows between training steps, the same values to float rounding).
        """
        k = lt.shape[0]
        if self.objective.accuracy_fn is None:  # the loss alone: one fused log-softmax + NLL
            return torch.nn.functional.cross_entropy(lt, y.view(1, -1).expand(k, -1), reduction="none").sum(1), None
        m = lt.amax(1, keepdim=True)                       # (K, 1, r)
        zy = lt.gather(1, y.view(1, 1, -1).expand(k, 1, -1))  # (K, 1, r)
        lse = (lt - m).exp_().sum(1, keepdim=True).log_().add_(m)
        lo = (lse - zy).sum((1, 2))  # summed over the rows
        if lt.device.type != "cpu":  # no host sync per tile on a GPU: argmax is cheap there
            return lo, (lt.argmax(1) == y.view(1, -1)).sum(1)
        ties = (lt == m).sum(1) > 1
        if bool(ties.any()):
            correct = (lt.argmax(1) == y.view(1, -1)).sum(1)
        else:
            correct = (zy == m).sum((1, 2))
        return lo, correct

    def _tile_terms(self, logits: Tensor, y: Tensor) -> tuple[Tensor, Tensor | None]:
        """Per-point mean loss (K,) and number correct (K,) or None, logits (K, r, C)."""
        obj = self.objective
        loss_fn = obj.loss_fn
        try:
            lo = vmap(loss_fn, in_dims=(0, None))(logits, y)
        except Exception:  # a loss vmap cannot trace: one call per point
            lo = torch.stack([loss_fn(o, y) for o in logits])
        acc_fn = obj.accuracy_fn
        if acc_fn is None:
            return lo, None
        first = acc_fn(logits[0], y)
        if first is None:
            return lo, None
        return lo, torch.stack([torch.as_tensor(acc_fn(o, y)) for o in logits])

    def _evaluate_first_layer(self, plan: FirstLayerPlan, coef: Tensor, split: str, batch) -> tuple[Tensor, Tensor]:
        obj = self.objective
        d = self.directions
        kk = coef.shape[0]
        ones = torch.ones(kk, 1, dtype=torch.float64)
        full = torch.cat([ones, coef], dim=1).to(d.vectors)  # (K, 1+m): [1, α]
        mode = obj.mode() if hasattr(obj, "mode") else _null()
        on_gpu = d.center.device.type != "cpu"
        tile = self.tile_elements or (2**25 if on_gpu else 2**20)
        per_pass = self.points_per_pass or (64 if on_gpu else 8)
        kp = max(1, min(per_pass, kk))
        workers = 1 if on_gpu else max(1, self.workers or min(torch.get_num_threads(), 8))
        with mode:
            self._module_buffers = None
            segments = self._first_layer_segments(plan, split, batch)
            blocks = [(i, min(i + kp, kk), full[i:i + kp], self._rest_params(plan, coef[i:i + kp]))
                      for i in range(0, kk, kp)]
            tasks = []
            for g, y in segments:
                # rows per tile fixed by the settings (not by the number of points), so a
                # point's value does not depend on the block or rank it was evaluated in
                rows = max(1, tile // (per_pass * g.shape[2]))
                starts = list(range(0, g.shape[1], rows))
                per_worker = -(-len(starts) // workers)
                for w0 in range(0, len(starts), per_worker):
                    tasks.append((g, y, rows, starts[w0:w0 + per_worker]))
            if workers > 1 and len(tasks) > 1:
                results = self._run_parallel(tasks, blocks, plan, kk, workers)
            else:
                results = [self._run_tiles(t, blocks, plan, kk) for t in tasks]
        losses = sum(r[0] for r in results)
        correct = sum(r[1] for r in results)
        has_acc = all(r[2] for r in results)
        n_total = sum(g.shape[1] for g, _ in segments)
        if hasattr(obj, "calls"):
            obj.calls["forward"] += kk
        losses = (losses / n_total).cpu()
        acc = (correct / n_total).cpu() if has_acc else torch.full((kk,), math.nan, dtype=torch.float64)
        return losses, acc

    def _run_parallel(self, tasks, blocks, plan, kk, workers):
        """Row tiles shared by ``workers`` threads, each running torch ops on its share of the
        intra-op threads (one each on a 2-core machine): no OpenMP fork/join per small op
        (robust on a busy machine), one L2-sized tile per core."""
        from concurrent.futures import ThreadPoolExecutor

        previous = torch.get_num_threads()
        torch.set_num_threads(max(1, previous // workers))
        try:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                return list(pool.map(lambda t: self._run_tiles(t, blocks, plan, kk), tasks))
        finally:
            torch.set_num_threads(previous)

    def _run_tiles(self, task, blocks, plan: FirstLayerPlan, kk: int):
        """Loss sums, correct counts and has-accuracy over the row tiles of one task."""
        g, y, rows, starts = task
        device = g.device
        losses = torch.zeros(kk, dtype=torch.float64, device=device)
        correct = torch.zeros(kk, dtype=torch.float64, device=device)
        has_acc = True
        n, width, parts = g.shape[1], g.shape[2], g.shape[0]
        fast = self._fast_cross_entropy(y)
        for r0 in starts:  # tile-major: the G rows of a tile stay in cache for every block
            r1 = min(r0 + rows, n)
            gv = g[:, r0:r1, :].reshape(parts, (r1 - r0) * width)
            yb = y[r0:r1]
            for i0, i1, a, params in blocks:
                k = i1 - i0
                pre = _combine(a, gv).view(k, r1 - r0, width)
                if fast:
                    out = self._run_rest(plan, params, pre, k, transpose_last=True)
                    lo, c = self._tile_terms_class_major(out, yb)
                    losses[i0:i1] += lo
                else:
                    out = self._run_rest(plan, params, pre, k)
                    lo, c = self._tile_terms(out, yb)
                    losses[i0:i1] += lo.double() * (r1 - r0)
                if c is None:
                    has_acc = False
                else:
                    correct[i0:i1] += c
        return losses, correct, has_acc


def _combine(a: Tensor, g: Tensor) -> Tensor:
    """The K points' first-layer pre-activations a @ g: a (K, 1+m) with a[:, 0] = 1, g (1+m, N).

    One point on a line (K = 1, m = 1: every trial step of a line search) on the CPU is one
    elementwise pass G₀ + a₁G₁ instead of a GEMM with an inner dimension of 2: ≈ 0.1 ms
    against ≈ 0.5 ms for 10,000 × 64 pre-activations between line-search steps (0.05 against
    0.14 ms in a loop).  :meth:`PlaneEvaluator.centre_products` forms a line's carried centre
    with it too, so on every device that centre is bitwise the accepted point's pre-activations.
    """
    if a.shape[0] == 1 and a.shape[1] == 2 and g.device.type == "cpu":
        return torch.add(g[0], g[1], alpha=float(a[0, 1])).unsqueeze(0)
    return torch.mm(a, g)


class _null:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


__all__ = ["ENGINES", "PlaneEvaluator", "first_layer_plan"]
