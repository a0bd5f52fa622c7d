"""The passthrough test filesystem: every operation forwarded to a real directory.

Same contracts as the in-memory tree (errors, thread safety, file handles, times): see
:mod:`fuse_bench.fs`.
"""

from __future__ import annotations

import errno
import os
import stat as st
import time
from pathlib import Path

from fuse_bench.fs import UTIME_NOW_REM, UTIME_OMIT_REM, os_error, split_path


class PassthroughFS:
    """Every operation forwarded to the same path under ``backing`` (a real directory).

    Handles are real file descriptors of the backing files. Thread safety comes from the kernel:
    each method is one or a few system calls on paths or descriptors, with no shared Python state.
    """

    use_ns = True
    # Operations on an open file are served by handle, never by path: libfuse may then skip
    # computing the path (cheaper) and keeps calling us for files unlinked while open.
    flag_nullpath_ok = True
    flag_nopath = True
    flag_utime_omit_ok = True

    def __init__(self, backing: Path) -> None:
        self.backing = os.path.realpath(backing)
        if not os.path.isdir(self.backing):
            raise NotADirectoryError(errno.ENOTDIR, "backing directory does not exist", str(backing))

    def _full(self, path: str | None) -> str:
        if path is None:
            raise os_error(errno.EBADF)
        split_path(path)
        # Paths from the kernel are absolute and normalized ('..' never reaches us), so joining
        # cannot escape the backing directory.
        return self.backing + path if path != "/" else self.backing

    def getattr(self, path: str | None, fh: int | None = None) -> dict[str, int]:
        s = os.fstat(fh) if fh else os.lstat(self._full(path))
        return {
            "st_mode": s.st_mode,
            "st_ino": s.st_ino,
            "st_nlink": s.st_nlink,
            "st_uid": s.st_uid,
            "st_gid": s.st_gid,
            "st_size": s.st_size,
            "st_blocks": s.st_blocks,
            "st_blksize": s.st_blksize,
            "st_atime": s.st_atime_ns,
            "st_mtime": s.st_mtime_ns,
            "st_ctime": s.st_ctime_ns,
        }

    def access(self, path: str, amode: int) -> int:
        if not os.access(self._full(path), amode):
            raise os_error(errno.EACCES, path)
        return 0

    def chmod(self, path: str | None, mode: int) -> int:
        os.chmod(self._full(path), st.S_IMODE(mode))
        return 0

    def chown(self, path: str | None, uid: int, gid: int) -> int:
        os.chown(self._full(path), uid, gid)
        return 0

    def utimens(self, path: str | None, times: tuple[int, int] | None = None) -> int:
        if times is None:
            os.utime(self._full(path))
            return 0
        cur = os.lstat(self._full(path))
        now = time.time_ns()

        def pick(value: int, current: int) -> int:
            rem = value % 1_000_000_000
            if rem == UTIME_OMIT_REM:
                return current
            return now if rem == UTIME_NOW_REM else int(value)

        os.utime(self._full(path), ns=(pick(times[0], cur.st_atime_ns), pick(times[1], cur.st_mtime_ns)))
        return 0

    def statfs(self, path: str) -> dict[str, int]:
        v = os.statvfs(self._full(path))
        keys = ("f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail", "f_files", "f_ffree", "f_namemax")
        return {k: getattr(v, k) for k in keys}

    def mkdir(self, path: str, mode: int) -> int:
        os.mkdir(self._full(path), mode)
        return 0

    def rmdir(self, path: str) -> int:
        os.rmdir(self._full(path))
        return 0

    def opendir(self, path: str) -> int:
        return os.open(self._full(path), os.O_RDONLY | os.O_DIRECTORY)

    def readdir(self, path: str | None, fh: int | None) -> list[str]:
        return [".", "..", *os.listdir(fh if fh else self._full(path))]

    def releasedir(self, path: str | None, fh: int | None) -> int:
        if fh:
            os.close(fh)
        return 0

    def create(self, path: str, mode: int, flags: int | None = None) -> int:
        # fusepy (libfuse 2) does not pass the open flags to create; O_RDWR lets any later
        # read or write through this handle succeed.
        if flags is None:
            flags = os.O_RDWR
        return os.open(self._full(path), flags | os.O_CREAT, mode)

    def open(self, path: str, flags: int) -> int:
        return os.open(self._full(path), flags & ~os.O_CREAT)

    def read(self, path: str | None, size: int, offset: int, fh: int | None) -> bytes:
        return os.pread(fh, size, offset) if fh else b""

    def write(self, path: str | None, data: bytes, offset: int, fh: int | None) -> int:
        if not fh:
            raise os_error(errno.EBADF, path)
        return os.pwrite(fh, data, offset)

    def truncate(self, path: str | None, length: int, fh: int | None = None) -> int:
        if fh:
            os.ftruncate(fh, length)
        else:
            os.truncate(self._full(path), length)
        return 0

    def flush(self, path: str | None, fh: int | None) -> int:
        return 0

    def fsync(self, path: str | None, datasync: int, fh: int | None) -> int:
        if fh:
            (os.fdatasync if datasync else os.fsync)(fh)
        return 0

    def release(self, path: str | None, fh: int | None) -> int:
        if fh:
            os.close(fh)
        return 0

    def unlink(self, path: str) -> int:
        os.unlink(self._full(path))
        return 0

    def rename(self, old: str, new: str) -> int:
        os.rename(self._full(old), self._full(new))
        return 0
