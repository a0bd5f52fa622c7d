"""A host's cache of open file handles (one per key, least recently used closed first)."""

from __future__ import annotations

import os
import resource
from pathlib import Path

from raybench.actors.file_handles import FileHandles, handle_capacity


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def test_a_key_keeps_its_handle_and_the_least_recently_used_one_is_closed(tmp_path: Path):
    h = FileHandles(str(tmp_path), capacity=2)
    a, b = h.get(1), h.get(2)
    assert h.get(1) == a and h.opened == 2  # a hit opens nothing
    c = h.get(3)  # evicts key 2, the least recently used
    assert h.opened == 3 and _is_open(a) and _is_open(c) and not _is_open(b)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k1", "k2", "k3"]
    os.pwrite(h.get(1), b"x", 0)
    assert (tmp_path / "k1").read_bytes() == b"x"
    h.drop(1)
    assert not _is_open(a)
    h.get(1)  # opened again (the OS may hand out the same number)
    assert h.opened == 4
    h.close()


def test_capacity_covers_the_keys_within_half_the_descriptor_limit():
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert handle_capacity(100) == 100 or soft // 2 < 100
    assert handle_capacity(10**9) == max(16, soft // 2)


def test_without_create_a_missing_file_is_an_error_and_an_existing_one_opens(tmp_path: Path):
    h = FileHandles(str(tmp_path), capacity=4, create=False)  # the workspace was prefilled
    try:
        h.get(7)
    except FileNotFoundError:
        pass
    else:
        raise AssertionError("a missing file must not be created")
    assert not (tmp_path / "k7").exists() and h.opened == 0
    (tmp_path / "k7").write_bytes(b"data")
    assert os.pread(h.get(7), 10, 0) == b"data" and h.opened == 1
    h.close()


def test_open_ahead_opens_the_most_popular_keys_up_to_capacity_and_stops_at_an_error(tmp_path: Path):
    for k in range(6):
        (tmp_path / f"k{k}").write_bytes(b"x")
    h = FileHandles(str(tmp_path), capacity=4, create=False)
    assert h.open_ahead(6) == 4 and h.opened == 4  # keys 0-3: key 0 is the most popular
    fds = [h.get(k) for k in range(4)]
    assert h.opened == 4 and all(_is_open(fd) for fd in fds)  # requests find them open
    h.close()
    h = FileHandles(str(tmp_path), capacity=8, create=False)
    assert h.open_ahead(6, most=3) == 3  # at most `most`, however many keys and handles
    h.close()
    (tmp_path / "k2").unlink()  # e.g. a file missing from the workspace
    h = FileHandles(str(tmp_path), capacity=8, create=False)
    try:
        h.open_ahead(6)
    except FileNotFoundError:
        pass
    else:
        raise AssertionError("a missing file must raise")
    assert h.opened == 2  # what was opened before the error stays open
    h.close()
