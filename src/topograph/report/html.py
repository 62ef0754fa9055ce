"""Build a single self-contained HTML file from a list of sections.

Matplotlib figures are embedded as base64 PNG (``data:`` URLs); plotly figures as ``<div>``s
with plotly.js included inline exactly once (``include_plotlyjs=True`` on the first figure),
so the file opens offline and can be mailed or archived as it is.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from topograph.io import atomic_write_text


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Note:
    """A paragraph; ``kind`` = "info", "warning" (e.g. a skipped analysis) or "claim"."""

    text: str
    kind: str = "info"


@dataclass
class Table:
    """A table; also written as CSV under the name ``name``."""

    name: str
    title: str
    columns: list[str]
    rows: list[dict[str, Any]]
    caption: str = ""

    def to_csv(self) -> str:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=self.columns, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        for r in self.rows:
            w.writerow({c: _plain(r.get(c, "")) for c in self.columns})
        return buf.getvalue()


@dataclass
class Figure:
    """A matplotlib figure (embedded as PNG; closed after rendering)."""

    title: str
    figure: Any
    caption: str = ""


@dataclass
class Image:
    """A PNG file already on disk (e.g. a plot another module saved), embedded as base64."""

    title: str
    path: str | os.PathLike
    caption: str = ""


@dataclass
class Plotly:
    """A plotly figure (interactive)."""

    title: str
    figure: Any
    caption: str = ""


@dataclass
class Code:
    title: str
    text: str


def _plain(v: Any) -> Any:
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.6g}"
    return v


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return "–" if math.isnan(v) else html.escape(f"{v:.4g}")
    return html.escape(str(v))


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1200px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.9em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f0f0f0} caption{caption-side:bottom;font-size:.85em;color:#555;text-align:left}
.warning{background:#fff4d6;border-left:4px solid #e0a800;padding:.4em .8em}
.claim{background:#eef6ff;border-left:4px solid #2a7ae2;padding:.4em .8em}
.info{padding:.2em 0} pre{background:#f6f6f6;padding:.8em;overflow-x:auto;font-size:.8em}
img{max-width:100%} .fig{margin:1em 0}
"""


@dataclass
class Report:
    """A report under construction: ``add`` sections, then ``write`` (atomic)."""

    title: str
    sections: list[Any] = field(default_factory=list)

    def add(self, *sections: Any) -> Report:
        self.sections.extend(sections)
        return self

    def tables(self) -> list[Table]:
        return [s for s in self.sections if isinstance(s, Table)]

    def render(self) -> str:
        parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
                 f"<title>{html.escape(self.title)}</title><style>{CSS}</style></head><body>",
                 f"<h1>{html.escape(self.title)}</h1>"]
        plotly_included = False
        for s in self.sections:
            if isinstance(s, Heading):
                lvl = min(max(s.level, 2), 4)
                parts.append(f"<h{lvl}>{html.escape(s.text)}</h{lvl}>")
            elif isinstance(s, Note):
                parts.append(f"<p class='{html.escape(s.kind)}'>{html.escape(s.text)}</p>")
            elif isinstance(s, Table):
                parts.append(self._table(s))
            elif isinstance(s, Figure):
                parts.append(self._figure(s))
            elif isinstance(s, Image):
                data = base64.b64encode(Path(s.path).read_bytes()).decode("ascii")
                cap = f"<p class='info'>{html.escape(s.caption)}</p>" if s.caption else ""
                parts.append(f"<div class='fig'><h4>{html.escape(s.title)}</h4><img alt='{html.escape(s.title)}' "
                             f"src='data:image/png;base64,{data}'>{cap}</div>")
            elif isinstance(s, Plotly):
                div = s.figure.to_html(full_html=False, include_plotlyjs=not plotly_included,
                                       config={"displaylogo": False})
                plotly_included = True
                parts.append(f"<div class='fig plotly-figure'><h4>{html.escape(s.title)}</h4>{div}"
                             + (f"<p class='info'>{html.escape(s.caption)}</p>" if s.caption else "")
                             + "</div>")
            elif isinstance(s, Code):
                parts.append(f"<details><summary>{html.escape(s.title)}</summary>"
                             f"<pre>{html.escape(s.text)}</pre></details>")
            else:  # pragma: no cover - programming error
                raise TypeError(f"unknown report section {type(s).__name__}")
        parts.append("</body></html>")
        return "\n".join(parts)

    @staticmethod
    def _table(t: Table) -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in t.columns)
        body = "".join("<tr>" + "".join(f"<td>{_cell(r.get(c, ''))}</td>" for c in t.columns) + "</tr>"
                       for r in t.rows)
        cap = f"<caption>{html.escape(t.caption)} (CSV: tables/{html.escape(t.name)}.csv)</caption>"
        return f"<h4>{html.escape(t.title)}</h4><table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    @staticmethod
    def _figure(f: Figure) -> str:
        import matplotlib.pyplot as plt

        buf = io.BytesIO()
        f.figure.savefig(buf, format="png", dpi=90, bbox_inches="tight")
        plt.close(f.figure)
        data = base64.b64encode(buf.getvalue()).decode("ascii")
        cap = f"<p class='info'>{html.escape(f.caption)}</p>" if f.caption else ""
        return (f"<div class='fig'><h4>{html.escape(f.title)}</h4>"
                f"<img alt='{html.escape(f.title)}' src='data:image/png;base64,{data}'>{cap}</div>")

    def write(self, path: str | os.PathLike, *, tables_dir: str | os.PathLike | None = None) -> Path:
        """Write the HTML (and each table as CSV into ``tables_dir``) atomically."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if tables_dir is not None:
            tdir = Path(tables_dir)
            tdir.mkdir(parents=True, exist_ok=True)
            for t in self.tables():
                _atomic_text(tdir / f"{t.name}.csv", t.to_csv())
        _atomic_text(path, self.render())
        return path


def _atomic_text(path: Path, text: str) -> None:
    atomic_write_text(path, text)


__all__ = ["Code", "Figure", "Heading", "Image", "Note", "Plotly", "Report", "Table"]
