"""Durable file writes and a cross-process lock.

Every file evota writes that another process (or a vehicle after power loss) may read goes
through `atomic_write`: a temp file in the same folder, fsync, `os.replace`, fsync of the
folder. A reader sees the old file or the new one, never half of either.

`set_durable(False)` keeps the atomic rename and drops the fsyncs, for one caller only: the
fleet simulator, whose thousands of simulated vans and throw-away home would otherwise
spend most of their time waiting for the host's disk. Power-loss safety is what the
power-cut and SIGKILL tests prove, with durability on.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_write", "exclusive_lock", "set_durable"]

_durable = True


def set_durable(enabled: bool) -> None:
    """Turn fsync in `atomic_write` on or off for this process (see the module docstring)."""
    global _durable  # one process-wide switch, set by the simulator
    _durable = enabled


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Replace `path` with `data` atomically and durably."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if _durable:
                os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if _durable:
        _fsync_dir(path.parent)


@contextlib.contextmanager
def exclusive_lock(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on `lock_path` (for writers of one home)."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+b") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
