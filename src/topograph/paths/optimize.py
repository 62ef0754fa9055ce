"""The optimisation loop shared by the trainable path families (Fourier, Bézier, polychain).

One step: pick the t values (a fixed grid, or a random subset — the scalable variant), evaluate
the K path points in one batched pass (on the full split or on a random minibatch), reduce the
K losses to one number with the method's objective, add the chord-length regulariser
λ Σ_m ‖ω(t_{m+1}) − ω(t_m)‖² on the fixed grid, and take an Adam (or SGD) step on the control
vectors.  The endpoints are buffers, so they cannot move.

The loop is resumable: given a :class:`~topograph.paths.checkpoint.SearchCheckpoint` it saves
its whole state every few steps and at the end, and starts from the saved state when there is one.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext

import torch
from torch import Tensor

from topograph.core import Objective, ObjectiveLike, Work
from topograph.errors import UsageError
from topograph.paths.checkpoint import SearchCheckpoint
from topograph.paths.evaluate import PathEvaluator
from topograph.paths.family import LinearPath


def _progress(enabled: bool | None, total: int, description: str, completed: int = 0):
    """A rich progress bar when asked (or when stderr is a terminal and ``enabled`` is None)."""
    import sys

    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        return nullcontext(None)
    from rich.progress import Progress

    class _Bar:
        def __enter__(self):
            self.p = Progress(transient=True)
            self.p.__enter__()
            self.task = self.p.add_task(description, total=total, completed=completed)
            return self

        def advance(self):
            self.p.advance(self.task)

        def __exit__(self, *exc):
            return self.p.__exit__(*exc)

    return _Bar()


def random_batch(objective, split: str, batch_size: int | None, generator: torch.Generator):
    """A random minibatch of ``batch_size`` samples of ``split`` (None: the full split)."""
    if batch_size is None or not isinstance(objective, Objective):
        return None
    x, y = objective.splits[split]
    n = x.shape[0]
    if batch_size >= n:
        return None
    idx = torch.randperm(n, generator=generator)[:batch_size]
    return x[idx], y[idx]


def optimise_path(
    path: LinearPath,
    objective: ObjectiveLike,
    evaluator: PathEvaluator,
    *,
    reduce: Callable[[Tensor], Tensor],
    grid: Tensor,
    steps: int,
    lr: float,
    reg: float,
    t_sampler: Callable[[torch.Generator], Tensor] | None = None,
    batch_size: int | None = None,
    split: str = "train",
    optimizer: str = "adam",
    momentum: float = 0.9,
    gradient_noise: float = 0.0,
    keep_best: bool = True,
    seed: int = 0,
    progress: bool | None = None,
    description: str = "path",
    checkpoint: SearchCheckpoint | None = None,
    on_step: Callable[[int, int], None] | None = None,
    work0: Work | None = None,
) -> dict[str, list[float]]:
    """Optimise ``path.control`` in place; return the history.

    ``t_sampler(gen)`` returns the t values of a step (default: the fixed ``grid``).  With
    ``keep_best`` and a deterministic objective (full split, fixed grid, no noise) the control
    vectors with the lowest objective seen are restored at the end (the NN notebook of
    arXiv:2602.21276 reports the iterate with the lowest total loss).

    With a ``checkpoint`` (:class:`~topograph.paths.checkpoint.SearchCheckpoint`) the loop
    starts from its saved state when there is one, and saves its state every
    ``checkpoint.every`` steps and at the end: control vectors, optimiser state, generator
    state, history, best iterate so far and the work spent since ``work0`` (the objective's work
    counts when the search began; moved back by a resumed search's earlier work), the final one
    only what the result needs: control vectors, history, work.  A resumed search ends with the
    same control vectors and history as an uninterrupted one; one whose checkpoint is final
    returns at once.  ``on_step(k, steps)`` is called after step k (after its checkpoint, when
    one is due).
    """
    if int(steps) < 0:
        raise UsageError(f"steps must be a non-negative integer, got {steps}")
    if lr <= 0:
        raise UsageError(f"lr must be positive, got {lr}")
    if optimizer == "adam":
        opt = torch.optim.Adam([path.control], lr=lr)
    elif optimizer == "sgd":
        opt = torch.optim.SGD([path.control], lr=lr, momentum=momentum)
    else:
        raise UsageError(f"optimizer={optimizer!r}; use 'adam' or 'sgd'")
    steps = int(steps)
    gen = torch.Generator().manual_seed(int(seed))
    deterministic = t_sampler is None and batch_size is None and gradient_noise == 0.0
    history: dict[str, list[float]] = {"value": [], "max_loss": []}
    best_value, best_control = float("inf"), None
    done = 0
    saved = checkpoint.load() if checkpoint is not None else None
    if saved is not None:
        with torch.no_grad():
            path.control.copy_(saved["control"])
        history = {k: list(v) for k, v in saved["history"].items()}
        if work0 is not None:
            work0.resume(objective.work, Work.from_dict(saved["work"]))
        if saved["finished"]:  # the final state: nothing left to optimise
            return history
        opt.load_state_dict(saved["optimizer"])
        gen.set_state(saved["generator"])
        best_value, best_control = float(saved["best_value"]), saved["best_control"]
        done = int(saved["step"])

    def save(step: int) -> None:
        checkpoint.save({"step": step, "finished": False, "control": path.control.detach().clone(),
                         "optimizer": opt.state_dict(), "generator": gen.get_state(), "history": history,
                         "best_value": best_value, "best_control": best_control,
                         "work": _work_since(objective, work0)})

    with _progress(progress, steps, description, completed=done) as bar:
        for step in range(done + 1, steps + 1):
            opt.zero_grad(set_to_none=True)
            t = grid if t_sampler is None else t_sampler(gen).to(grid)
            batch = random_batch(objective, split, batch_size, gen)
            coeffs = path.basis(t)
            losses, value = evaluator.backward(coeffs, path.vectors, reduce, split=split, batch=batch)
            if reg:
                w = path.points(grid)
                penalty = reg * (w[1:] - w[:-1]).pow(2).sum()
                penalty.backward()
                value += float(penalty.detach())
            if deterministic and keep_best and value < best_value:
                best_value, best_control = value, path.control.detach().clone()
            if gradient_noise:
                path.control.grad.add_(torch.randn(path.control.shape, generator=gen).to(path.control) * gradient_noise)
            opt.step()
            history["value"].append(value)
            history["max_loss"].append(float(losses.max()))
            if checkpoint is not None and step < steps and step % checkpoint.every == 0:
                save(step)
            if bar is not None:
                bar.advance()
            if on_step is not None:
                on_step(step, steps)
    if deterministic and keep_best and best_control is not None:
        # the final iterate has not been scored yet: score it before choosing
        with torch.no_grad():
            lo, _ = evaluator.evaluate(path.basis(grid), path.vectors.detach(), split=split)
            w = path.points(grid)
            final = float(reduce(lo.to(grid))) + reg * float((w[1:] - w[:-1]).pow(2).sum())
        if final > best_value:
            with torch.no_grad():
                path.control.copy_(best_control)
    if checkpoint is not None:  # the final state holds what the result needs (no optimiser state)
        checkpoint.save({"step": steps, "finished": True, "control": path.control.detach().clone(),
                         "history": history, "work": _work_since(objective, work0)})
    return history


def _work_since(objective, work0: Work | None) -> dict[str, int]:
    return (objective.work - work0).as_dict() if work0 is not None else Work().as_dict()


__all__ = ["optimise_path", "random_batch"]
