"""One process at a time in a folder: an exclusive lock on a file inside it.

The lock is ``fcntl.flock`` on ``FOLDER/<name>``. The kernel releases it when the last process
holding it ends, however it ends (SIGKILL included), so a lock left by a killed process never
blocks the next one: there is no stale lock to detect or take over, and two processes that
start at once cannot both hold it. The file names its holder (process id, host, start time)
for the one-line refusal of the next process. A holder may hand the lock's descriptor to the
child processes it starts (``pass_fds``, :meth:`FolderLock.add_child`): the lock then lives
while any of them does, so a child left running by a killed parent still keeps others out.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from pathlib import Path

from .errors import UserError


class FolderBusy(UserError):
    """The folder's lock is held by another live process."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


class FolderLock:
    """The exclusive lock of ``path`` (a file, created in its folder while held; removed on
    :meth:`release`). ``what`` names the holder's kind in the refusal ("model_training.run")."""

    def __init__(self, path: str | Path, what: str):
        self.path = Path(path)
        self.what = what
        self.fd: int | None = None
        self.holder: dict = {}

    def acquire(self) -> FolderLock:
        """Hold the lock, or raise FolderBusy naming the live process that holds it."""
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise FolderBusy(self._busy_message()) from None
            except OSError as err:  # a file system without locks (some network mounts)
                os.close(fd)
                raise UserError(
                    f"{self.path} cannot be locked ({err.strerror}): put the folder on a file "
                    "system that supports file locks (flock)"
                ) from None
            try:  # the previous holder may have removed the file between our open and flock
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        self.fd = fd
        self.holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": time.strftime("%Y-%m-%d %H:%M:%S"),
            "children": [],
        }
        self._write()
        return self

    def add_child(self, pid: int) -> None:
        """Record a child process that holds the lock's descriptor (started with
        ``pass_fds=(lock.fd,)``): named in the refusal if it outlives this process."""
        self.holder["children"] = [*self.holder.get("children", []), pid]
        self._write()

    def release(self) -> None:
        """Remove the file, then let the lock go (a process waiting on the removed file
        retries on the new one)."""
        if self.fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        os.close(self.fd)
        self.fd = None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _write(self) -> None:
        assert self.fd is not None
        data = (json.dumps(self.holder) + "\n").encode()
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, data, 0)

    def _busy_message(self) -> str:
        try:
            holder = json.loads(self.path.read_text())
        except (OSError, ValueError):
            holder = {}
        if not isinstance(holder, dict):
            holder = {}
        host = holder.get("host")
        pids = [p for p in [holder.get("pid"), *holder.get("children", [])] if isinstance(p, int)]
        here = host == socket.gethostname()
        live = [p for p in pids if _alive(p)] if here else pids
        pid = (live or pids or ["?"])[0]
        role = "" if pid == holder.get("pid") else ", a step it started"
        where = "" if here or not host else f" on host {host}"
        return (
            f"{self.path.parent} is in use by another {self.what} (process {pid}{role}{where}, "
            f"since {holder.get('since', '?')}): wait for it to end or stop it; a process that "
            "was killed holds nothing, so then run the same command again (--resume)"
        )


__all__ = ["FolderBusy", "FolderLock"]
