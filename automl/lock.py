"""One writer per run directory: an advisory ``flock`` on ``RUN_DIR/.lock``.

The process that searches a run holds the lock exclusively while it sets up (a one-shot
controller's supernet search writes its checkpoint in the run directory), then shares it:

* a second ``automl search --resume RUN_DIR`` while the first still runs is refused in one
  line that names the owner (pid, host, start);
* ``--resume RUN_DIR --join`` works on the run as one more worker beside it (the engine's
  multi-process design: claims in the store keep two processes off one architecture); it
  waits while the owner is still setting up.

The kernel drops the lock when its process ends, ``kill -9`` included, so a killed search never
leaves a run stuck. Locks on network file systems are only as good as their ``flock``. Turning
the owner's exclusive lock into a shared one is not atomic (flock(2)): a plain ``--resume`` that
lands in that instant becomes the owner, and the first search waits for it before going on.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO


class RunBusy(ValueError):
    """Another process owns the run directory."""


class RunLock:
    """The lock of one run directory (see the module docstring)."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / ".lock"
        self._fh: IO[str] | None = None

    def acquire(self, *, join: bool = False, log: Callable[[str], object] | None = None) -> str:
        """Take the lock: ``"owner"`` (exclusive) or, with ``join`` while another process owns
        the run, ``"joined"`` (shared; waits for the owner's set-up). Raises :class:`RunBusy`."""
        fh = open(self.path, "a+")  # noqa: SIM115 - held open for the life of the run
        try:
            return self._take(fh, join, log)
        except BaseException:
            if self._fh is None:
                fh.close()
            raise

    def _take(self, fh: IO[str], join: bool, log: Callable[[str], object] | None) -> str:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = self.owner()
            if not join:
                raise RunBusy(f"run {self.path.parent} is in use by {owner}; wait for it to end or stop it, or add "
                              "--join to work on it as another worker") from None
            try:
                fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                if log:
                    log(f"waiting for {owner} to finish setting the run up")
                fcntl.flock(fh, fcntl.LOCK_SH)
            self._fh = fh
            return "joined"
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}))
        fh.flush()
        self._fh = fh
        return "owner"

    def share(self) -> None:
        """Let ``--join`` workers in (called once the set-up that writes the run directory is done)."""
        if self._fh is not None:
            fcntl.flock(self._fh, fcntl.LOCK_SH)

    def release(self) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None

    def owner(self) -> str:
        """Who holds the lock, as the owner wrote it (or the workers that joined it, once it ended)."""
        try:
            info = json.loads(self.path.read_text() or "{}")
            text = f"automl pid {info['pid']} on {info['host']} (since {info['since']})"
        except (OSError, ValueError, KeyError):
            return "another automl process"
        if info["host"] == socket.gethostname():
            try:
                os.kill(int(info["pid"]), 0)
            except ProcessLookupError:
                return f"workers that joined the search of {text}, which has ended"
            except PermissionError:
                pass
        return text
