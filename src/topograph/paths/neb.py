"""Nudged elastic band / string method with a climbing image, AutoNEB-style pivot insertion.

A band of pivots R_0 = ω¹, R_1, …, R_n, R_{n+1} = ω² (interior pivots initialised on the
segment) relaxes under the NEB force (Henkelman & Jónsson 2000; Henkelman, Uberuaga & Jónsson
2000 for the climbing image):

    F_i = −(∇L(R_i) − (∇L(R_i)·τ_i) τ_i) + k (‖R_{i+1} − R_i‖ − ‖R_i − R_{i−1}‖) τ_i,

with τ_i the energy-weighted ("improved") tangent built from the neighbouring pivots.  After
``climb_after`` of the steps the highest pivot climbs: F_c = −∇L(R_c) + 2(∇L(R_c)·τ_c) τ_c, which
drives it to the saddle along the band.  With ``spring_constant=inf`` (what every AutoNEB config
of Draxler et al. 2018 uses) there are no springs: after each step the pivots are re-spaced to
equal arc length along the polyline (the string method of E, Ren & Vanden-Eijnden 2002), on
either side of the climbing pivot, which stays where the force put it.

AutoNEB (``cycles > 1``): after each cycle the loss is evaluated at ``subdivisions`` points inside
every segment, and ``insert_per_cycle`` new pivots are inserted where it is highest.

Each step evaluates all interior pivots in one batched pass (their gradients are independent).
The found path is the polyline through the pivots (a :class:`~topograph.paths.family.PolylinePath`
with knots at the pivots' normalised arc-length positions); its height is re-evaluated densely.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from topograph.core import ObjectiveLike, Work
from topograph.errors import UsageError
from topograph.paths.barrier import _flat_point
from topograph.paths.evaluate import PathEvaluator
from topograph.paths.family import PolylinePath
from topograph.paths.finder import PathFinderSettings
from topograph.paths.optimize import _progress, random_batch
from topograph.paths.result import PathResult


def improved_tangents(band: Tensor, energies: Tensor) -> Tensor:
    """Henkelman–Jónsson tangents (unit vectors) of the interior pivots of ``band`` ((n+2)×P)."""
    plus = band[2:] - band[1:-1]
    minus = band[1:-1] - band[:-2]
    e_prev, e, e_next = energies[:-2], energies[1:-1], energies[2:]
    d_next, d_prev = (e_next - e).abs(), (e_prev - e).abs()
    dmax, dmin = torch.maximum(d_next, d_prev), torch.minimum(d_next, d_prev)
    up = (e_next > e) & (e > e_prev)
    down = (e_next < e) & (e < e_prev)
    mixed_w_plus = torch.where(e_next > e_prev, dmax, dmin)
    mixed_w_minus = torch.where(e_next > e_prev, dmin, dmax)
    w_plus = torch.where(up, 1.0, torch.where(down, 0.0, mixed_w_plus)).to(band)
    w_minus = torch.where(up, 0.0, torch.where(down, 1.0, mixed_w_minus)).to(band)
    tau = w_plus[:, None] * plus + w_minus[:, None] * minus
    # both weights zero (flat energies): fall back to the central difference
    tau = torch.where((w_plus + w_minus == 0)[:, None], plus + minus, tau)
    return tau / tau.norm(dim=1, keepdim=True).clamp_min(1e-30)


def _respace(points: Tensor, count: int) -> Tensor:
    """``count`` points equally spaced in arc length along the polyline ``points`` (ends kept)."""
    seg = (points[1:] - points[:-1]).norm(dim=1)
    s = torch.cat([seg.new_zeros(1), seg.cumsum(0)])
    if float(s[-1]) == 0.0:
        return points[:1].expand(count, -1).clone()
    target = torch.linspace(0, float(s[-1]), count, dtype=points.dtype, device=points.device)
    idx = torch.clamp(torch.searchsorted(s, target, right=True) - 1, 0, len(seg) - 1)
    frac = ((target - s[idx]) / seg[idx].clamp_min(1e-30)).clamp(0, 1)
    return points[idx] + frac[:, None] * (points[idx + 1] - points[idx])


@dataclass
class NEBPathFinder(PathFinderSettings):
    """Nudged elastic band / string method between two solutions (AutoNEB-style).

    images:           interior pivots at the start.
    steps:            optimisation steps per cycle.
    lr, momentum:     step size and heavy-ball momentum of the force update (θ ← θ + lr·v).
    spring_constant:  k; ``math.inf`` (default): no springs, equal-arc-length re-spacing.
    climbing:         turn the highest pivot into a climbing image after ``climb_after`` × steps.
    cycles:           AutoNEB cycles; between cycles ``insert_per_cycle`` pivots are inserted
                      where the loss at ``subdivisions`` sub-pivots per segment is highest.
    max_step:         cap on the Euclidean length of one pivot's move (stability on stiff losses).
    batch_size, split, dense_points, eval_splits, batchnorm, engine, seed, progress, checkpoint,
    checkpoint_every: as in :class:`~topograph.paths.FourierPathFinder` (``dense_points``
    default: 10 per segment; the checkpoint holds the band, the velocities, the cycle and step,
    the generator's state and the history).
    """

    images: int = 20
    steps: int = 500
    lr: float = 0.01
    momentum: float = 0.0
    spring_constant: float = math.inf
    climbing: bool = True
    climb_after: float = 0.5
    cycles: int = 1
    insert_per_cycle: int = 2
    subdivisions: int = 9
    max_step: float | None = None

    def _check(self) -> None:
        if int(self.images) < 1:
            raise UsageError(f"images must be a positive integer, got {self.images}")
        if int(self.cycles) < 1:
            raise UsageError(f"cycles must be a positive integer, got {self.cycles}")
        if self.lr <= 0:
            raise UsageError(f"lr must be positive, got {self.lr}")
        if self.spring_constant < 0:
            raise UsageError(f"spring_constant must be non-negative (inf: string method), got {self.spring_constant}")
        if not 0.0 <= self.climb_after <= 1.0:
            raise UsageError(f"climb_after must be a fraction in [0, 1], got {self.climb_after}")

    def find(self, objective: ObjectiveLike, start: Tensor, end: Tensor, *,
             on_step: Callable[[int, int], None] | None = None) -> PathResult:
        """Relax a band from ``start`` to ``end``; return the densely evaluated polyline.

        ``on_step(k, total)`` is called after each step k of all ``steps × cycles`` (after its
        checkpoint, when one is due).
        """
        self._check()
        t0 = time.perf_counter()
        work0 = objective.work.copy()
        start = _flat_point(objective, start, "start")
        end = _flat_point(objective, end, "end")
        checkpoint = self._checkpoint("neb", objective, start, end)
        evaluator = PathEvaluator(objective, engine=self.engine)
        gen = torch.Generator().manual_seed(int(self.seed))
        s = torch.linspace(0, 1, int(self.images) + 2, dtype=start.dtype, device=start.device)
        band = (1 - s)[:, None] * start[None] + s[:, None] * end[None]
        ends, _ = evaluator.evaluate(torch.eye(2, dtype=start.dtype, device=start.device),
                                     torch.stack([start, end]), split=self.split)
        e_ends = ends.to(start)
        history: dict[str, list[float]] = {"value": [], "max_loss": []}
        steps, cycles = int(self.steps), int(self.cycles)
        total_steps = steps * cycles
        # the loop's position: `done` steps of cycle `cycle` relaxed (velocity: its momentum)
        position = {"cycle": 0, "done": 0, "velocity": torch.zeros_like(band[1:-1])}
        saved = checkpoint.load() if checkpoint is not None else None
        if saved is not None:
            band = saved["band"].to(band)
            position = {"cycle": int(saved["cycle"]), "done": int(saved["done"]),
                        "velocity": saved["velocity"].to(band)}
            gen.set_state(saved["generator"])
            history = {k: list(v) for k, v in saved["history"].items()}
            work0.resume(objective.work, Work.from_dict(saved["work"]))

        def save(band: Tensor, cycle: int, done: int, velocity: Tensor) -> None:
            checkpoint.save({"band": band.detach().clone(), "cycle": cycle, "done": done,
                             "velocity": velocity.detach().clone(), "generator": gen.get_state(),
                             "history": history, "work": (objective.work - work0).as_dict()})

        finished = position["cycle"] >= cycles
        completed = position["cycle"] * steps + position["done"]
        with _progress(self.progress if not finished else False, total_steps, "NEB", completed=completed) as bar:
            for cycle in range(position["cycle"], cycles):
                first = position["done"] if cycle == position["cycle"] else 0
                velocity = position["velocity"] if cycle == position["cycle"] else None
                band = self._relax(band, e_ends, objective, evaluator, gen, history, bar, cycle=cycle, first=first,
                                   velocity=velocity, save=save if checkpoint is not None else None,
                                   on_step=on_step)
                if cycle < cycles - 1 and self.insert_per_cycle > 0:
                    band = self._insert(band, evaluator)
                if checkpoint is not None:  # the cycle (and its insertion) is done
                    save(band, cycle + 1, 0, torch.zeros_like(band[1:-1]))
                if on_step is not None and first < steps:
                    on_step((cycle + 1) * steps, total_steps)
        knots = _arc_knots(band)
        path = PolylinePath(start, end, control=band[1:-1], knots=knots[1:-1])
        dense = int(self.dense_points or 10 * (band.shape[0] - 1) + 1)
        t = torch.unique(torch.cat([torch.linspace(0, 1, dense, dtype=start.dtype), knots.cpu()])).to(start)
        return self._result(objective, path, t, evaluator, method="neb", history=history, started=t0,
                            work0=work0, counts={"optimisation_steps": total_steps, "pivots": int(band.shape[0] - 2),
                                                 "dense_points": int(t.numel())})

    # ------------------------------------------------------------------ one cycle
    def _relax(self, band, e_ends, objective, evaluator, gen, history, bar, *, cycle: int = 0, first: int = 0,
               velocity: Tensor | None = None, save=None, on_step=None) -> Tensor:
        """Steps ``first`` … ``steps`` − 1 of one cycle (``velocity``: the momentum at ``first``);
        ``save(band, cycle, done, velocity)`` every ``checkpoint_every`` steps (of all cycles)."""
        band = band.clone()
        n = band.shape[0] - 2
        velocity = torch.zeros_like(band[1:-1]) if velocity is None else velocity.clone()
        steps = int(self.steps)
        climb_from = int(round(self.climb_after * steps))
        eye = torch.eye(n, dtype=band.dtype, device=band.device)
        for step in range(first, steps):
            inner = band[1:-1].clone().requires_grad_(True)
            batch = random_batch(objective, self.split, self.batch_size, gen)
            losses, _ = evaluator.backward(eye, inner, lambda lo: lo.sum(), split=self.split, batch=batch)
            grad = inner.grad.detach()
            energies = torch.cat([e_ends[:1], losses.to(band), e_ends[1:]])
            tau = improved_tangents(band, energies)
            g_par = (grad * tau).sum(1, keepdim=True)
            force = -(grad - g_par * tau)
            if math.isfinite(self.spring_constant) and self.spring_constant > 0:
                plus = (band[2:] - band[1:-1]).norm(dim=1)
                minus = (band[1:-1] - band[:-2]).norm(dim=1)
                force = force + self.spring_constant * (plus - minus)[:, None] * tau
            climber = None
            if self.climbing and step >= climb_from:
                climber = int(torch.argmax(losses))
                force[climber] = -grad[climber] + 2 * g_par[climber] * tau[climber]
            velocity = self.momentum * velocity + force
            move = self.lr * velocity
            if self.max_step is not None:
                norms = move.norm(dim=1, keepdim=True)
                move = move * torch.clamp(self.max_step / norms.clamp_min(1e-30), max=1.0)
            band[1:-1] += move
            if math.isinf(self.spring_constant):
                band = self._respace_band(band, climber)
            history["value"].append(float(losses.max()))
            history["max_loss"].append(float(losses.max()))
            done = step + 1
            overall = cycle * steps + done  # steps of all cycles so far: the checkpoint cadence counts these
            if save is not None and done < steps and overall % int(self.checkpoint_every) == 0:
                save(band, cycle, done, velocity)
            if bar is not None:
                bar.advance()
            if on_step is not None and done < steps:  # the cycle's last step: in find(), after the cycle's save
                on_step(overall, steps * int(self.cycles))
        return band

    @staticmethod
    def _respace_band(band: Tensor, climber: int | None) -> Tensor:
        if climber is None:
            return _respace(band, band.shape[0])
        c = climber + 1  # index in the band
        left = _respace(band[: c + 1], c + 1)
        right = _respace(band[c:], band.shape[0] - c)
        return torch.cat([left[:-1], band[c:c + 1], right[1:]])

    def _insert(self, band: Tensor, evaluator: PathEvaluator) -> Tensor:
        sub = int(self.subdivisions)
        frac = torch.arange(1, sub + 1, dtype=band.dtype, device=band.device) / (sub + 1)
        segs = band.shape[0] - 1
        coeffs = torch.zeros(segs * sub, band.shape[0], dtype=band.dtype, device=band.device)
        for i in range(segs):
            coeffs[i * sub:(i + 1) * sub, i] = 1 - frac
            coeffs[i * sub:(i + 1) * sub, i + 1] = frac
        losses, _ = evaluator.evaluate(coeffs, band, split=self.split)
        per_seg = losses.view(segs, sub)
        best_seg = per_seg.max(dim=1)
        order = torch.argsort(best_seg.values, descending=True)[: int(self.insert_per_cycle)]
        new = {int(i): coeffs[int(i) * sub + int(best_seg.indices[i])] @ band for i in order}
        rows = []
        for i in range(band.shape[0]):
            rows.append(band[i])
            if i in new:
                rows.append(new[i])
        return torch.stack(rows)


def _arc_knots(band: Tensor) -> Tensor:
    seg = (band[1:] - band[:-1]).norm(dim=1)
    s = torch.cat([seg.new_zeros(1), seg.cumsum(0)])
    if float(s[-1]) == 0.0:
        return torch.linspace(0, 1, band.shape[0], dtype=band.dtype, device=band.device)
    knots = s / s[-1]
    # strictly increasing knots for the polyline (coincident pivots get nudged apart)
    eps = torch.finfo(band.dtype).eps * 16
    for i in range(1, knots.numel()):
        if knots[i] <= knots[i - 1]:
            knots[i] = knots[i - 1] + eps
    return knots.clamp(max=1.0)


__all__ = ["NEBPathFinder", "improved_tangents"]
