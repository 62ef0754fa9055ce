"""The HTML report renders in headless Chromium: every plotly figure draws, no console errors."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from topograph.report import Code, Figure, Heading, Note, Plotly, Report, Table

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def _require_chromium():
    if CHROMIUM is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is required in CI (Debian package `chromium`) to test the HTML report")
        pytest.skip("chromium not installed (apt-get install chromium) — report rendering not tested")


def _chromium(args, tmp_path):
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
           "--virtual-time-budget=10000", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def _console_errors(stderr: str) -> list[str]:
    bad = []
    for line in stderr.splitlines():
        if "Uncaught" in line or ("CONSOLE" in line and ("ERROR" in line or ":ERROR:" in line)):
            bad.append(line)
    return bad


def check_renders(html: Path, tmp_path: Path, n_plotly: int, screenshot_name: str) -> str:
    """Dump the DOM and a screenshot; assert plotly drew every figure, no console errors."""
    _require_chromium()
    dom = _chromium(["--dump-dom", html.resolve().as_uri()], tmp_path)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert not _console_errors(dom.stderr), _console_errors(dom.stderr)
    # each drawn plotly figure gets a <div class="plot-container plotly"> with an <svg class="main-svg">
    drawn = len(re.findall(r'class="plot-container plotly"', dom.stdout))
    assert drawn == n_plotly, f"{drawn} of {n_plotly} plotly figures rendered"
    assert dom.stdout.count('class="main-svg"') >= n_plotly
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / screenshot_name
    res = _chromium([f"--screenshot={shot}", "--window-size=1280,2000", html.resolve().as_uri()], tmp_path)
    assert res.returncode == 0 and shot.exists() and shot.stat().st_size > 10_000
    return dom.stdout


def _small_report():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import plotly.graph_objects as go

    fig, ax = plt.subplots()
    ax.plot([0, 1, 2], [1, 0.5, 0.2])
    z = np.add.outer(np.linspace(-1, 1, 9) ** 2, np.linspace(-1, 1, 9) ** 2)
    rep = Report("report test")
    rep.add(Heading("h"), Note("a <b>note</b> & more", "warning"),
            Table("t", "table", ["a", "b"], [{"a": 1, "b": 0.5}, {"a": "x<y", "b": float("nan")}]),
            Figure("mpl", fig), Plotly("surface", go.Figure(go.Surface(z=z))),
            Plotly("scatter", go.Figure(go.Scatter(x=[1, 2], y=[3, 4]))), Code("code", "x = 1 < 2"))
    return rep


def test_report_is_self_contained_and_escaped(tmp_path):
    rep = _small_report()
    path = rep.write(tmp_path / "r.html", tables_dir=tmp_path / "tables")
    text = path.read_text()
    assert text.count("src='data:image/png;base64,") == 1
    assert "a &lt;b&gt;note&lt;/b&gt; &amp; more" in text and "x&lt;y" in text
    # no external resources: plotly.js is inline; outside scripts no http(s) src/href at all
    assert not re.search(r"<script[^>]*\ssrc=", text) and "<link" not in text
    markup = re.sub(r"<script.*?</script>", "", text, flags=re.S)
    assert not re.search(r'(src|href)\s*=\s*["\']https?://', markup)
    assert len(re.findall(r"plotly.js v\d", text)) == 1  # the library, inline, once
    assert (tmp_path / "tables" / "t.csv").read_text().splitlines() == ["a,b", "1,0.5", "x<y,"]


@pytest.mark.slow
def test_report_renders_in_chromium(tmp_path):
    path = _small_report().write(tmp_path / "r.html")
    dom = check_renders(path, tmp_path, n_plotly=2, screenshot_name="report-unit.png")
    assert "report test" in dom
