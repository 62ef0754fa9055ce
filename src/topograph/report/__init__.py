"""One self-contained HTML report: tables, matplotlib figures (base64 PNG), plotly figures
(plotly.js embedded once, inline), notes and code blocks — no external URL anywhere.

>>> import tempfile
>>> from pathlib import Path
>>> from topograph.report import Report, Table, Note
>>> table = Table("results", "Results", ["optimizer", "test_acc"], [{"optimizer": "sgd", "test_acc": 0.91}])
>>> report = Report("my study").add(Note("hello"), table)
>>> print(table.to_csv(), end="")
optimizer,test_acc
sgd,0.91
>>> with tempfile.TemporaryDirectory() as folder:
...     written = report.write(Path(folder) / "report.html")
...     print(Path(folder, "report.html").read_text(encoding="utf-8").count("<table>"))
1
"""

from topograph.report.html import Code, Figure, Heading, Image, Note, Plotly, Report, Table

__all__ = ["Code", "Figure", "Heading", "Image", "Note", "Plotly", "Report", "Table"]
