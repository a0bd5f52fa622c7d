"""The driver's priority during a run: every thread lowered to the hosts' niceness, then restored."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

_CHILD = textwrap.dedent(
    """
    import json, os, sys, threading
    from raybench.engine import priority

    def nices():
        return sorted(os.getpriority(os.PRIO_PROCESS, t) for t in priority._threads())

    go = threading.Event()
    threads = [threading.Thread(target=go.wait) for _ in range(3)]  # threads that exist already
    for t in threads:
        t.start()
    base = priority.niceness()
    before = nices()
    unchanged = priority.lower_to(base - 1)  # never raises a priority
    p = priority.lower_to(base + int(sys.argv[1]))
    during = nices()
    p.restore()
    after = nices()
    go.set()
    for t in threads:
        t.join()
    print(json.dumps({"base": base, "before": before, "during": during, "after": after,
                      "manifest": p.to_manifest(), "unchanged": unchanged.to_manifest()}))
    """
)


@pytest.mark.skipif(sys.platform != "linux", reason="per-thread niceness is Linux's")
def test_every_thread_is_lowered_and_given_back():
    out = subprocess.run([sys.executable, "-c", _CHILD, "5"], capture_output=True, text=True, check=True, timeout=60)
    r = json.loads(out.stdout)
    base = r["base"]
    assert len(r["before"]) >= 4 and set(r["before"]) == {base}
    assert set(r["during"]) == {base + 5}  # the main thread and the three others
    assert r["unchanged"] == {"before": base, "during": base, "restored": None}
    assert r["manifest"]["before"] == base and r["manifest"]["during"] == base + 5
    if os.geteuid() == 0:
        assert r["manifest"]["restored"] is True and set(r["after"]) == {base}
    else:  # raising a priority again needs CAP_SYS_NICE
        assert r["manifest"]["restored"] is False and set(r["after"]) == {base + 5}
