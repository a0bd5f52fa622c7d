"""The HTML report: every section and its figures on a real small run, a comparison, the CLI, the
page rendered in headless Chromium; notes for missing tables and escaping on synthetic folders."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from small_run import small_run
from synth_runs import write_run

from raybench.cli import cli
from raybench.errors import UsageError
from raybench.report import plots
from raybench.report.comparison import COMPARISON_SECTIONS, build_comparison
from raybench.report.single import SECTIONS, build_report

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def sections_of(page: str) -> dict[str, str]:
    """Section anchor -> that section's HTML."""
    return dict(re.findall(r'<section id="([^"]+)">(.*?)</section>', page, flags=re.S))


def images_of(html: str) -> list[bytes]:
    """The decoded inline PNGs of an HTML fragment."""
    return [base64.b64decode(b) for b in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)]


# ---------------------------------------------------------------------------------------------
# a real small run


@pytest.fixture(scope="module")
def run_dir(ray_local, tmp_path_factory):
    return small_run(tmp_path_factory)


@pytest.fixture(scope="module")
def report(run_dir):
    return build_report(run_dir)


#: Sections that always draw (a run with requests); the others may say in a sentence that there
#: is nothing to draw (no conflicts, only ok outcomes, one node, no events, ...).
ALWAYS_DRAWN = ("throughput", "latency", "distribution", "cdf", "stages")
#: Sections added for issue #17 (the load as Locust or k6 shows it).
NEW_SECTIONS = ("throughput", "latency", "distribution", "outcomes", "regions", "nodes")


@pytest.mark.ray
def test_report_has_every_section_with_its_figures(report, run_dir):
    assert report.startswith("<!DOCTYPE html>")
    found = sections_of(report)
    assert list(found) == [a for a, _ in SECTIONS]
    for anchor, title in SECTIONS:
        assert f"<h2>{title}</h2>" in found[anchor]
        pngs = images_of(found[anchor])
        if anchor in ALWAYS_DRAWN:
            assert pngs, f"section {anchor} has no figure"
        elif not pngs:  # a sentence says why there is no chart
            assert '<p class="note">' in found[anchor], anchor
        assert all(p.startswith(PNG_MAGIC) and len(p) > 2000 for p in pngs)
    assert "<table" in found["summary"]
    assert '<p id="harness"' in found["summary"] and "harness: " in found["summary"]
    # self-contained: nothing loaded from elsewhere
    assert not re.search(r'(src|href)="(https?:|file:|//)', report)
    assert "<script" not in report


@pytest.mark.ray
def test_report_numbers_come_from_the_files(report, run_dir):
    from raybench.judge import stats
    from raybench.report.html import format_ms
    from raybench.results import store

    req = store.read_table(run_dir, "requests").to_pydict()
    lat = [x for x, w in zip(req["latency_ms"], req["warmup"], strict=True) if not w]
    cdf = sections_of(report)["cdf"]
    # the "all" row of the CDF table: count and exact nearest-rank p99
    assert f"<td>{len(lat):,}</td>" in cdf
    assert f"<td>{format_ms(stats.percentile(lat, 99.0))}</td>" in cdf
    summary = sections_of(report)["summary"]
    assert '<td class="l">small</td>' in summary  # the run id
    if not (run_dir / "sla.arrow").exists():
        assert "No sla.arrow in this run folder" in summary
    else:
        assert "windows failed" in summary
    if not (run_dir / "fuse_ops.arrow").exists():
        assert "fuse_ops.arrow is not in this run folder" in sections_of(report)["fuse"]


@pytest.mark.ray
def test_comparison_has_every_section(run_dir, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(run_dir, other)
    page = build_comparison(run_dir, other)
    found = sections_of(page)
    assert list(found) == [a for a, _ in COMPARISON_SECTIONS]
    for anchor in ("latency", "cdf", "stages", "resources"):
        assert images_of(found[anchor]), anchor
    assert "baseline small" in found["runs"] and "current small" in found["runs"]
    assert "regression(s)" in found["verdicts"] or "No statistical comparison" in found["verdicts"]


@pytest.mark.ray
def test_cli_report_writes_refuses_and_forces(run_dir, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    runner = CliRunner()
    res = runner.invoke(cli, ["report", str(copy)])
    assert res.exit_code == 0, res.output
    out = copy / "report.html"
    assert res.output.strip().splitlines()[-1] == str(out)
    assert out.read_text().startswith("<!DOCTYPE html>")
    before = out.stat().st_mtime_ns
    res = runner.invoke(cli, ["report", str(copy)])
    assert res.exit_code == 2 and "exists already" in res.output
    assert out.stat().st_mtime_ns == before
    res = runner.invoke(cli, ["report", str(copy), "--force"])
    assert res.exit_code == 0
    res = runner.invoke(cli, ["report", str(copy), str(copy), "-o", str(tmp_path / "cmp.html")])
    assert res.exit_code == 0, res.output
    assert res.output.strip().splitlines()[-1] == str(tmp_path / "cmp.html")
    assert not list(tmp_path.glob(".*.tmp")) and not list(copy.glob(".*.tmp"))


@pytest.mark.ray
@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed (apt-get install chromium)")
def test_report_renders_in_headless_chromium(report, tmp_path):
    # A copy of the page with a checker appended: it counts the images that decoded and records
    # any script error or console error; the report itself has no script. The browser's console
    # goes to stderr (--enable-logging=stderr): the checker's probe line must be there (the log
    # works) and nothing else may be.
    checker = """<script>
window.addEventListener('error', e => { document.body.dataset.jsError = String(e.message); }, true);
const consoleError = console.error;
console.error = (...a) => { document.body.dataset.consoleError = a.join(' '); consoleError(...a); };
console.log('rb-console-probe');
window.addEventListener('load', () => {
  const imgs = Array.from(document.images);
  const ok = imgs.filter(i => i.complete && i.naturalWidth > 100 && i.naturalHeight > 100).length;
  const d = document.createElement('div'); d.id = 'rb-check'; d.textContent = 'images ' + ok + '/' + imgs.length;
  document.body.appendChild(d);
});
</script></body>"""
    page = tmp_path / "report.html"
    page.write_text(report.replace("</body>", checker), encoding="utf-8")
    base = [str(CHROMIUM), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000"]
    proc = subprocess.run(
        [*base, "--enable-logging=stderr", "--v=0", "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=90,
        check=True,
    )
    dom = proc.stdout
    n = report.count("<img ")
    assert f'<div id="rb-check">images {n}/{n}</div>' in dom, dom[-500:]
    assert "data-js-error" not in dom and "data-console-error" not in dom
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    assert any("rb-console-probe" in line for line in console), proc.stderr[-2000:]
    assert [line for line in console if "rb-console-probe" not in line] == []
    assert "Uncaught" not in proc.stderr
    for anchor, title in SECTIONS:
        assert f"<h2>{title}</h2>" in dom
        assert f'<section id="{anchor}">' in dom
    for anchor in NEW_SECTIONS:
        assert f'<section id="{anchor}">' in dom, anchor
    assert '<p id="harness"' in dom
    shot = tmp_path / "shot.png"
    subprocess.run(
        [*base, "--hide-scrollbars", "--window-size=1100,3000", f"--screenshot={shot}", page.as_uri()],
        capture_output=True,
        timeout=90,
        check=True,
    )
    assert shot.read_bytes().startswith(PNG_MAGIC) and shot.stat().st_size > 50_000


# ---------------------------------------------------------------------------------------------
# synthetic folders (no Ray): missing tables, escaping, the extra


def test_missing_tables_give_notes_not_errors(tmp_path):
    evil = "<script>alert('x')</script> & co"
    run = write_run(
        tmp_path,
        "syn",
        seed=3,
        windows=6,
        scenario={"name": evil, "run": {"duration": "30s", "warmup": "5s", "window": "5s"},
                  "sla": {"thresholds": ["p99<100ms", "share(latency<50ms)>=90%"]}},
    )  # fmt: skip
    page = build_report(run)
    found = sections_of(page)
    assert list(found) == [a for a, _ in SECTIONS]
    assert "<script>" not in page and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; co" in page
    assert "No sla.arrow in this run folder" in found["summary"] and "p99&lt;100ms" in found["summary"]
    assert "windows.arrow is missing or empty" in found["latency"]
    assert "fuse_ops.arrow is not in this run folder" in found["fuse"]
    assert "resources.arrow is missing or empty" in found["resources"]
    assert "events.arrow is not in this run folder" in found["events"]
    for anchor in ("cdf", "stages", "contention"):
        assert images_of(found[anchor]), anchor


def test_comparison_of_synthetic_runs(tmp_path):
    base = write_run(tmp_path, "base", seed=1, windows=8)
    cur = write_run(tmp_path, "cur", seed=2, windows=8, latency_scale=1.5)
    page = build_comparison(base, cur)
    found = sections_of(page)
    assert list(found) == [a for a, _ in COMPARISON_SECTIONS]
    assert "regression" in found["verdicts"]
    assert "Neither run has resource samples" in found["resources"]


def test_not_a_run_folder_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="not a run folder"):
        build_report(tmp_path / "nope")
    res = CliRunner().invoke(cli, ["report", str(tmp_path / "nope")])
    assert res.exit_code == 2 and "not a run folder" in res.output


def test_without_matplotlib_one_line_with_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(UsageError, match=r"install the report extra: pip install 'raybench\[report\]'"):
        plots.require()


def test_fuse_only_folder_reports_fuse_vs_native_per_operation(tmp_path):
    import numpy as np
    import pyarrow as pa

    from raybench.results import schema, store

    run = store.create_run_dir(tmp_path, "fuse1")
    rng = np.random.default_rng(0)
    n = 400
    ops = np.array(["read", "write", "stat", "fsync"])[rng.integers(0, 4, n)]
    target = np.where(np.arange(n) % 2 == 0, "fuse", "native")
    latency = np.where(target == "fuse", 200.0, 20.0) * rng.lognormal(0, 0.3, n)
    ok = np.arange(n) % 50 != 0
    data = pa.table(
        {"run_id": ["fuse1"] * n, "ts_ns": np.arange(n, dtype=np.int64) * 1000, "node_id": ["n1"] * n,
         "worker": (np.arange(n) % 4).astype(np.int32), "op": ops, "target": target,
         "bytes": np.full(n, 4096), "latency_us": latency, "ok": ok,
         "errno": pa.array(np.where(ok, 0, 5).astype(np.int32), mask=ok)},
        schema=schema.schema("fuse_ops", final=False),
    )  # fmt: skip
    store.write_table(run, "fuse_ops", data)
    # the manifest `raybench fuse` writes: its own summary shape, no scenario, no requests
    store.write_json_atomic(run / "manifest.json", {"schema_version": 1, "run_id": "fuse1", "kind": "fuse",
                                                    "status": "ok", "summary": {"all": {"fuse": 1}}})  # fmt: skip
    found = sections_of(build_report(run))
    assert "No requests in this run folder" in found["summary"]
    fuse = found["fuse"]
    assert images_of(fuse)
    for op in ("read", "write", "stat", "fsync"):
        assert f'<td class="l">{op}</td><td class="l">fuse</td>' in fuse
    from raybench.judge.stats import percentile
    from raybench.report.html import num

    m = (ops == "read") & (target == "fuse") & ok
    assert f"<td>{num(percentile(latency[m], 99.0))}</td>" in fuse
    assert f"<td>{int(((ops == 'read') & (target == 'fuse') & ~ok).sum()):,}</td>" in fuse
