"""One process at a time in a run folder: a lock file held while a run trains.

The process that trains a run (and writes its results) holds ``RUN/.lock`` with
``fcntl.flock``; a second process that wants to train, resume or replace the run meets
:class:`RunInUse`, naming the process that holds it, before it reads or writes anything. The
operating system releases the lock when its process ends, however it ends (a crash or
``kill -9`` too), so a lock is never left behind. Within one process the lock is re-entrant
(the ``train`` command holds it around training and scoring; training takes it again). Where
``fcntl`` does not exist (Windows), or the file system has no locks, runs are not locked.
"""

from __future__ import annotations

import os
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

LOCK_NAME = ".lock"
_HELD: dict[str, list[int]] = {}  # lock file -> [file descriptor, depth], in this process


class RunInUse(RuntimeError):
    """Another process holds the run folder's lock; the message names it and what to do."""


def _key(folder: Path) -> str:
    return str(folder.resolve() / LOCK_NAME)


def _pid_in(fd: int) -> str:
    text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    return f"process {text}" if text.isdigit() else "another process"


def _in_use(folder: Path, who: str) -> RunInUse:
    return RunInUse(f"{folder} is in use by {who} (it holds {folder / LOCK_NAME}: a training "
                    f"or resume that has not ended). Wait for it to end, or stop it; the lock "
                    f"goes with the process")


class RunLock:
    """The lock of one run folder: ``with RunLock(folder): ...`` or ``acquire()``/``release()``.

    ``acquire`` raises :class:`RunInUse` when another process holds it.
    """

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self._acquired = False

    def acquire(self) -> RunLock:
        if self._acquired or fcntl is None:
            return self
        key = _key(self.folder)
        if key in _HELD:  # this process holds it already
            _HELD[key][1] += 1
        else:
            fd = os.open(key, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                who = _pid_in(fd)
                os.close(fd)
                if who == f"process {os.getpid()}":  # ours, still open in a forked worker
                    return self
                raise _in_use(self.folder, who) from None
            except OSError:  # a file system without locks (some network mounts): unlocked
                os.close(fd)
                return self
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            _HELD[key] = [fd, 1]
        self._acquired = True
        return self

    def release(self) -> None:
        if not self._acquired:
            return
        self._acquired = False
        key = _key(self.folder)
        entry = _HELD[key]
        entry[1] -= 1
        if entry[1] == 0:
            del _HELD[key]
            os.close(entry[0])  # closing the file releases the lock

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def holder(folder: str | Path) -> str | None:
    """Who holds ``folder``'s lock (``"process 1234"``) if another process does, else None.

    Reads only: nothing is created or written."""
    folder = Path(folder)
    path = folder / LOCK_NAME
    if fcntl is None or _key(folder) in _HELD or not path.is_file():
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return None
    except BlockingIOError:
        return _pid_in(fd)
    except OSError:  # a file system without locks
        return None
    finally:
        os.close(fd)  # releases the shared lock taken to look


def check_free(folder: str | Path) -> None:
    """Raise :class:`RunInUse` if another process holds ``folder``'s lock (nothing is written).
    """
    who = holder(folder)
    if who is not None:
        raise _in_use(Path(folder), who)
