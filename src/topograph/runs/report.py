"""Result tables of finished runs (rich), shared by ``topograph train`` and ``quickstart``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.table import Table

from topograph.runs.store import Run


@dataclass(frozen=True)
class ResultRow:
    """The headline numbers of one finished run."""

    name: str
    seed: int
    optimizer: str
    test_acc: float
    test_loss: float
    train_loss: float
    epochs: int
    backward_passes: int
    seconds: float
    stop_reason: str
    path: str

    @classmethod
    def of(cls, run: Run) -> ResultRow:
        s = run.summary
        final = s.get("final", {})

        def num(v) -> float:
            return float("nan") if v is None else float(v)

        return cls(name=run.name, seed=run.seed, optimizer=str(s.get("optimizer", "")),
                   test_acc=num(final.get("test_acc")), test_loss=num(final.get("test_loss")),
                   train_loss=num(final.get("train_loss")), epochs=int(s.get("epochs", 0)),
                   backward_passes=int(s.get("backward_passes", 0)), seconds=float(s.get("seconds", 0.0)),
                   stop_reason=str(s.get("stop_reason", "")), path=str(run.path))


def results_table(runs: Sequence[Run], *, title: str | None = None) -> Table:
    """A rich table: run, seed, test accuracy/loss, train loss, epochs, backward passes, seconds."""
    rows = [ResultRow.of(run) for run in runs]
    early = any(r.stop_reason != "epochs" for r in rows)
    table = Table(title=title)
    columns = [("run", "left"), ("seed", "right"), ("test acc", "right"), ("test loss", "right"),
               ("train loss", "right"), ("epochs", "right"), ("backward passes", "right"), ("s", "right")]
    if early:
        columns.append(("stopped by", "left"))
    for col, justify in columns:
        table.add_column(col, justify=justify, no_wrap=True)
    for r in rows:
        cells = [r.name, str(r.seed), f"{100 * r.test_acc:.2f}%", f"{r.test_loss:.4f}",
                 f"{r.train_loss:.4f}", str(r.epochs), f"{r.backward_passes:,}", f"{r.seconds:.1f}"]
        if early:
            cells.append(r.stop_reason)
        table.add_row(*cells)
    return table


__all__ = ["ResultRow", "results_table"]
