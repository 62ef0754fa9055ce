"""Work counters: the one vocabulary for the compute a method spends.

Methods are compared at equal compute (seed 002's Table 1 gives SGD the rolling ball's budget;
a surface of 961 points is 961 forward passes).  Every object that does work — the
:class:`~topograph.core.Objective`, every optimizer, every surface, curvature and path result —
reports it with the same three counts, in the same units:

``forward_passes``
    forward passes of the model, each over the data it was asked about (one split, one batch,
    one minibatch); a point of a surface or a path is one.
``backward_passes``
    gradients (a forward and a backward pass counted as one of each).
``hvps``
    Hessian-vector products.
"""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass
class Work:
    """Counts of forward passes, backward passes and Hessian-vector products (mutable).

    >>> w = Work()
    >>> w.add(forward_passes=3)
    >>> (w + Work(backward_passes=1)).as_dict()
    {'forward_passes': 3, 'backward_passes': 1, 'hvps': 0}
    """

    forward_passes: int = 0
    backward_passes: int = 0
    hvps: int = 0

    def add(self, *, forward_passes: int = 0, backward_passes: int = 0, hvps: int = 0) -> None:
        self.forward_passes += int(forward_passes)
        self.backward_passes += int(backward_passes)
        self.hvps += int(hvps)

    def resume(self, current: Work, done: Work) -> None:
        """Make this baseline ``current − done``: the work since it is then ``done``, what a resumed
        job had spent before its kill (work repeated while starting again is not counted twice)."""
        for f in fields(self):
            setattr(self, f.name, getattr(current, f.name) - getattr(done, f.name))

    def copy(self) -> Work:
        return Work(self.forward_passes, self.backward_passes, self.hvps)

    def __add__(self, other: Work) -> Work:
        return Work(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    def __sub__(self, other: Work) -> Work:
        return Work(*(getattr(self, f.name) - getattr(other, f.name) for f in fields(self)))

    def as_dict(self) -> dict[str, int]:
        return {f.name: int(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: dict) -> Work:
        return cls(**{f.name: int(d.get(f.name, 0)) for f in fields(cls)})


__all__ = ["Work"]
