"""One writer per run dir: ``ganforge train`` holds an OS advisory lock (``flock``) on ``RUN/.lock`` for
its whole life. The kernel releases it when the process ends, however it ends (``kill -9`` included),
so a lock is never stale. The file names the holder (pid, host, start time) for the error a second
trainer gets. Readers (sample, eval, plot, report, export) never take it: every file they read is
written atomically.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Optional

from .errors import RunLockedError
from .logs import log

LOCK_NAME = ".lock"
_UNSUPPORTED = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}
_warned = set()


class RunLock:
    """The lock on one run dir, held until :meth:`release` (or the process's end)."""

    def __init__(self, path: Path, fd: Optional[int]) -> None:
        self.path, self.fd = path, fd

    @classmethod
    def acquire(cls, run_dir: Path) -> "RunLock":
        """Lock ``run_dir`` (creating it and the lock file) or raise RunLockedError naming the holder.
        Where the filesystem has no working locks, say so once and go on unlocked."""
        path = Path(run_dir) / LOCK_NAME
        try:
            import fcntl
        except ImportError:  # not POSIX
            return cls._unlocked(path, "this platform has no flock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = _read_holder(fd)
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise RunLockedError(_locked_message(Path(run_dir), holder)) from None
            if e.errno in _UNSUPPORTED:
                return cls._unlocked(path, f"file locks do not work on this filesystem ({e.strerror})")
            raise
        info = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S"),
                "argv": sys.argv}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        return cls(path, fd)

    @classmethod
    def _unlocked(cls, path: Path, why: str) -> "RunLock":
        if str(path.parent) not in _warned:
            _warned.add(str(path.parent))
            log.warning(f"{why}: nothing stops a second trainer on {path.parent}; make sure only "
                  f"one runs")
        return cls(path, None)

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            os.ftruncate(self.fd, 0)  # no holder any more (the file stays: deleting it races a waiting locker)
        except OSError:
            pass
        os.close(self.fd)  # closing the only descriptor drops the flock
        self.fd = None


def _read_holder(fd: int) -> dict:
    try:
        return json.loads(os.pread(fd, 4096, 0).decode() or "{}")
    except (OSError, ValueError):
        return {}


def _locked_message(run_dir: Path, holder: dict) -> str:
    pid, host = holder.get("pid", "?"), holder.get("host", "?")
    since = f" since {holder['since']}" if holder.get("since") else ""
    here = host == socket.gethostname()
    stop = f"stop it with `kill {pid}`" + ("" if here else f" on {host}")
    return (f"run dir {run_dir} is in use: ganforge train (pid {pid} on {host}{since}) is writing to it; "
            f"{stop} (it saves a checkpoint and exits), or wait for it to finish, then --resume")
