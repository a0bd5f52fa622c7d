"""Process sampling (raybench.actors.sampler) on this very process and a child."""

from __future__ import annotations

import os
import subprocess
import sys

import psutil

from raybench.actors.sampler import ProcessSampler, open_fds


def test_open_fds_counts_the_descriptors_a_process_opens_and_closes(tmp_path):
    me = psutil.Process()
    before = open_fds(me)
    fds = [os.open(tmp_path / f"f{i}", os.O_CREAT | os.O_RDWR, 0o600) for i in range(300)]
    try:
        assert open_fds(me) == before + 300
        # the same count psutil lists (its listing holds one descriptor of its own while it reads)
        assert open_fds(me) in (me.num_fds(), me.num_fds() - 1)
    finally:
        for fd in fds:
            os.close(fd)
    assert open_fds(me) == before


def test_a_sample_of_another_process_has_its_descriptors_and_no_gc_counts():
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; print('ready', flush=True); time.sleep(30)"], stdout=subprocess.PIPE
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == b"ready\n"  # started up: its fds are settled
        row = ProcessSampler("fuse-server", "node-1", child.pid).sample()
        _, node, role, pid, _, rss, threads, fds, *gcs = row
        assert (node, role, pid) == ("node-1", "fuse-server", child.pid)
        assert rss > 0 and threads >= 1 and fds == psutil.Process(child.pid).num_fds() >= 3
        assert gcs == [-1, -1, -1]
    finally:
        child.kill()
        child.wait()
