from __future__ import annotations

import io

from raybench.cli.progress import Printer


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_log_output_gets_plain_lines():
    out = io.StringIO()
    p = Printer(out)
    p("starting")
    p.status("[ 1.0s load] 10 req/s")
    p.status("[ 2.0s load] 11 req/s")
    p.close()
    assert out.getvalue() == "starting\n[ 1.0s load] 10 req/s\n[ 2.0s load] 11 req/s\n"


def test_terminal_rewrites_the_status_line_in_place():
    out = _Tty()
    p = Printer(out)
    p.status("first")
    p.status("second")
    p("violation!")
    p.close()
    text = out.getvalue()
    assert text.count("\n") == 1 and text.endswith("violation!\n")
    assert "\r\033[Kfirst" in text and "\r\033[Ksecond" in text


def test_quiet_prints_nothing():
    out = _Tty()
    p = Printer(out, quiet=True)
    p("x")
    p.status("y")
    p.close()
    assert out.getvalue() == ""
