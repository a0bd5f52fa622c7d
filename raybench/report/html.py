"""HTML building blocks of the reports: page, sections, tables, notes, inline PNG images, and
number formatting. Pure string functions; every piece of text that goes in is escaped here.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Iterable, Sequence
from typing import Any

from raybench.units import format_ms as _format_ms

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:1000px;padding:1em;
color:#222}
h1{font-size:1.5em;margin-bottom:.2em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0;font-size:.85em}
th,td{border:1px solid #ddd;padding:.25em .5em;text-align:right;vertical-align:top}
th{background:#f4f4f4}td.l,th.l{text-align:left}td{white-space:nowrap}td.l{white-space:normal}
table.kv th{background:#f8f8f8;font-weight:600;width:14em}
img{max-width:100%;height:auto;display:block;margin:.5em 0}
.note{color:#555;background:#fafafa;border-left:3px solid #bbb;padding:.4em .7em}
.pass{color:#176b20;font-weight:600}.fail{color:#b00020;font-weight:600}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:1em}.grid>div{overflow-x:auto}
nav a{margin-right:.8em}code{background:#f2f2f2;padding:0 .2em}
"""


def esc(value: Any) -> str:
    """``str(value)``, HTML-escaped (quotes included)."""
    return html.escape(str(value), quote=True)


def img(png: bytes | Any, alt: str) -> str:
    """An inline PNG; ``png`` may be a :class:`raybench.report.render.Pending` figure (its marker
    stands for the base64 data until the renderer finishes the page)."""
    data = png.marker if hasattr(png, "marker") else base64.b64encode(png).decode("ascii")
    return f'<img alt="{esc(alt)}" src="data:image/png;base64,{data}">'


def note(text: str) -> str:
    return f'<p class="note">{esc(text)}</p>'


def table(header: Sequence[str], rows: Iterable[Sequence[Any]], left: int = 1) -> str:
    """A table; the first ``left`` columns are left-aligned. Cells are escaped (a cell given as
    ``("html", markup)`` is inserted as is; only this module builds those)."""

    def cell(tag: str, i: int, v: Any) -> str:
        cls = ' class="l"' if i < left else ""
        inner = v[1] if isinstance(v, tuple) and len(v) == 2 and v[0] == "html" else esc(v)
        return f"<{tag}{cls}>{inner}</{tag}>"

    head = "".join(cell("th", i, h) for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(cell("td", i, v) for i, v in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{esc(anchor)}"><h2>{esc(title)}</h2>\n{body}\n</section>'


def page(title: str, sections: Sequence[tuple[str, str]], bodies: dict[str, str], intro: str) -> str:
    nav = "".join(f'<a href="#{esc(a)}">{esc(t)}</a>' for a, t in sections)
    parts = [section(a, t, bodies[a]) for a, t in sections]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width,initial-scale=1"><title>{esc(title)}</title>'
        f"<style>{CSS}</style></head><body>\n<h1>{esc(title)}</h1>\n{intro}\n<nav>{nav}</nav>\n"
        + "\n".join(parts)
        + '\n<footer><p class="note">Every number on this page is computed from the run folder\'s files. '
        "Percentiles are exact nearest-rank over the recorded rows (raybench.judge.stats); warm-up requests "
        "are left out of every statistic.</p></footer>\n</body></html>\n"
    )


def format_ms(ms: Any) -> str:
    """:func:`raybench.units.format_ms`, with sub-0.1 ms values in µs (queue waits are that small)."""
    if isinstance(ms, (int, float)) and 0 < ms < 0.1:
        return f"{ms * 1000:.1f}µs"
    return _format_ms(None if ms is None else float(ms))


def kv(rows: Iterable[Sequence[Any]]) -> str:
    """A two-column key/value table without a header."""
    body = "".join(f'<tr><th class="l">{esc(k)}</th><td class="l">{esc(v)}</td></tr>' for k, v in rows)
    return f'<table class="kv"><tbody>{body}</tbody></table>'


def pct(x: Any) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x * 100:.3g}%"


def num(x: Any, fmt: str = "{:,.1f}") -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else fmt.format(x)


def mib(x: float) -> str:
    return num(x, "{:,.0f}MiB")
