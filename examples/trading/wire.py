"""JSON lines over TCP, and small file helpers both ends share."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def send(sock: socket.socket, msg: dict[str, Any]) -> None:
    sock.sendall((json.dumps(msg, separators=(",", ":")) + "\n").encode())


def lines(sock: socket.socket) -> Iterator[dict[str, Any]]:
    """Messages until the peer closes (a socket error propagates)."""
    buf = b""
    while data := sock.recv(65536):
        buf += data
        *complete, buf = buf.split(b"\n")
        for line in complete:
            if line.strip():
                yield json.loads(line)


class AppendLog:
    """JSON lines appended and fsynced: what is in the file happened, also after a kill -9."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def append(self, rec: dict[str, Any]) -> None:
        os.write(self._fd, (json.dumps(rec, separators=(",", ":")) + "\n").encode())
        os.fsync(self._fd)


def read_log(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            pass  # a torn last line: the write it announced never completed
    return out


def write_json(path: Path, value: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(value))
    tmp.replace(path)  # a reader never sees half a file
