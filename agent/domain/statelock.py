"""One agent per state dir: `serve` and `cleanup` hold an exclusive lock on STATE_DIR/agent.lock.

A second one beside a live agent would undo that agent's faults from the shared journal
(or record into it); it refuses instead, naming the holder. The kernel drops the lock when
its holder dies, so a crashed agent never blocks the next start.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from faultline.agent.domain.errors import FailedPrecondition
from faultline.agent.domain.trust import NOFOLLOW

LOCK_FILE = "agent.lock"


class StateLock:
    def __init__(self, state_dir: Path, role: str) -> None:
        self.path = Path(state_dir) / LOCK_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | NOFOLLOW, 0o600)
        except OSError as e:  # a link planted there (ELOOP), or worse: never followed, never truncated
            raise FailedPrecondition(f"{self.path}: {e.strerror}; refusing the state dir") from None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self._fd, 200, 0).decode(errors="replace").strip() or "another process"
            os.close(self._fd)
            raise FailedPrecondition(f"state dir {state_dir} is in use by {holder}; stop it first "
                                     "(one agent per state dir)") from None
        os.ftruncate(self._fd, 0)
        try:  # who holds it, for the next one's message: a full disk must not stop the agent
            os.pwrite(self._fd, f"pid {os.getpid()} (faultline-agent {role})\n".encode(), 0)
        except OSError:
            pass

    def release(self) -> None:
        if self._fd >= 0:
            os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing drops the flock
            self._fd = -1


def serving_pid(state_dir: Path) -> int | None:
    """The pid of the agent serving `state_dir` (its lock held, its line naming `serve`), else None."""
    try:
        fd = os.open(Path(state_dir) / LOCK_FILE, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return None  # nobody holds it: no agent there
        except BlockingIOError:
            pass
        words = os.pread(fd, 200, 0).decode(errors="replace").split()
    finally:
        os.close(fd)
    if len(words) >= 4 and words[0] == "pid" and words[1].isdigit() and words[3] == "serve)":
        return int(words[1])
    return None
