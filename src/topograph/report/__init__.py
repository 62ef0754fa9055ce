"""One self-contained HTML report: tables, matplotlib figures (base64 PNG), plotly figures
(plotly.js embedded once, inline), notes and code blocks — no external URL anywhere.

>>> from topograph.report import Report, Table, Note
>>> r = Report("my study"); r.add(Note("hello")); r.write("report.html")   # doctest: +SKIP
"""

from topograph.report.html import Code, Figure, Heading, Image, Note, Plotly, Report, Table

__all__ = ["Code", "Figure", "Heading", "Image", "Note", "Plotly", "Report", "Table"]
