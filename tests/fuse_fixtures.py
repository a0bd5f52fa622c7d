"""Fixtures for the FUSE tests: real mounts through /dev/fuse, skipped only where the probe says no.

Import the fixtures into a test module with ``from tests.fuse_fixtures import *`` style names or
explicitly (pytest finds fixtures imported into the module's namespace).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fuse_bench.mount import Mount, private_mountpoint, probe, raybench_mounts

BACKENDS = ("fusepy", "mfusepy")


def require_fuse(backend: str = "fusepy") -> None:
    """Skip the calling test with the probe's exact reason when FUSE cannot be used."""
    reason = probe(backend)
    if reason is not None:
        pytest.skip(f"FUSE unavailable ({backend}): {reason}")


def assert_unmounted(mountpoint: Path) -> None:
    """The mountpoint is in no raybench line of /proc/self/mountinfo."""
    left = [m for m in raybench_mounts() if m.mountpoint == str(mountpoint)]
    assert not left, f"mount left behind: {left}"


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    require_fuse(request.param)
    return request.param


@pytest.fixture(params=("single", "multi"))
def loop(request: pytest.FixtureRequest) -> str:
    """libfuse's loop: the filesystem must be right under both (single is the default)."""
    return request.param


@pytest.fixture
def mounted(backend: str, loop: str) -> Iterator[Mount]:
    """A live in-memory mount of ``backend`` on ``loop``, unmounted (and checked) afterwards."""
    mount = Mount(private_mountpoint(), backend=backend, multithreaded=loop == "multi")
    try:
        mount.start()
        yield mount
    finally:
        mount.stop()
        assert_unmounted(mount.mountpoint)
