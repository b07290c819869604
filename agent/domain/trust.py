"""Paths root trusts (the state dir, the policy file, the TLS dir and its key): the agent
refuses to start on one that is a symlink, is not its own user's (root's), or that group or
others may write. A local user who made `/tmp/faultline` first, with links in it, would
otherwise have root truncate and append to files of their choosing."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from faultline.agent.domain.errors import FailedPrecondition

NOFOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC  # every file the agent opens in a trusted dir


def _why(st: os.stat_result, want_dir: bool) -> str:
    if stat.S_ISLNK(st.st_mode):
        return "is a symlink"
    if want_dir and not stat.S_ISDIR(st.st_mode):
        return "is not a directory"
    if not want_dir and not stat.S_ISREG(st.st_mode):
        return "is not a regular file"
    if st.st_uid != os.geteuid():
        return f"is owned by uid {st.st_uid}, not {os.geteuid()} (the agent's)"
    if st.st_mode & 0o022:
        who = {0o022: "group and others", 0o020: "group", 0o002: "others"}[st.st_mode & 0o022]
        return f"is writable by {who} (mode {stat.S_IMODE(st.st_mode):o})"
    return ""


def directory(path: Path, what: str, create: bool = False) -> None:
    """A trusted directory; `create`: made 0700 if missing (its parent must exist)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        if not create:
            raise FailedPrecondition(f"{what} {path} does not exist") from None
        try:
            os.mkdir(path, 0o700)
        except OSError as e:
            raise FailedPrecondition(f"{what} {path}: cannot create it: {e.strerror}") from None
        st = os.lstat(path)
    if why := _why(st, want_dir=True):
        raise FailedPrecondition(f"{what} {path} {why}: refusing it (root's alone, no links; e.g. "
                                 f"chown root: {path} && chmod 0700 {path})")


def file(path: Path, what: str) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise FailedPrecondition(f"{what} {path} does not exist") from None
    if why := _why(st, want_dir=False):
        raise FailedPrecondition(f"{what} {path} {why}: refusing it (root's alone, no links; e.g. "
                                 f"chown root: {path} && chmod go-w {path})")
