"""The TWS API socket protocol's framing, as IB's clients speak it (ib_async, ibapi).

A client opens with ``API\\0`` and one length-prefixed text, ``v<min>..<max>`` (maybe followed
by connect options); the server answers with one message of two fields, its version and its
connection time. From then on every message, both ways, is a 4-byte big-endian length and
that many bytes of fields, each ended by a NUL. A request's first field is its message id.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass

PREFIX = b"API\0"
# The server's versions. 178 is the highest ib_async 2.x speaks; IB's own client (100..2xx)
# negotiates down to it, as with a TWS of that release, and stays clear of the protobuf
# messages IB introduced at 201.
SERVER_MIN, SERVER_MAX = 157, 178
MAX_MESSAGE = 1 << 20  # a request larger than this is a broken length prefix, not a request


class FrameError(ValueError):
    """The byte stream cannot be split into messages any more: the connection must close."""


Field = str | int | float | bool | None


def encode(fields: Iterable[Field]) -> bytes:
    """One message: fields as IB writes them (bools as 1/0, None empty), NUL-terminated, prefixed."""
    out = []
    for f in fields:
        if f is None:
            out.append("")
        elif isinstance(f, bool):
            out.append("1" if f else "0")
        else:
            out.append(str(f))
    body = "".join(s + "\0" for s in out).encode()
    return struct.pack(">I", len(body)) + body


class Splitter:
    """Bytes in, whole messages (lists of fields) out; keeps a partial message for the next feed."""

    def __init__(self, limit: int = MAX_MESSAGE) -> None:
        self.buf = bytearray()
        self.limit = limit

    def feed(self, data: bytes) -> list[list[str]]:
        self.buf += data
        out = []
        while len(self.buf) >= 4:
            (n,) = struct.unpack(">I", self.buf[:4])
            if n == 0 or n > self.limit:
                raise FrameError(f"bad message length {n} (allowed 1..{self.limit})")
            if len(self.buf) < 4 + n:
                break
            body = bytes(self.buf[4:4 + n])
            del self.buf[:4 + n]
            text = body.decode("utf-8", errors="replace")
            fields = text.split("\0")
            if fields[-1] == "":
                fields.pop()  # the terminator of the last field
            out.append(fields)
        return out


@dataclass(frozen=True)
class Hello:
    min_version: int
    max_version: int
    options: str


_HELLO = re.compile(r"v(\d+)(?:\.\.(\d+))?(?: (.*))?", re.S)


def parse_hello(text: str) -> Hello:
    """The client's ``v<min>..<max> [options]``."""
    m = _HELLO.fullmatch(text.rstrip("\0"))
    if not m:
        raise FrameError(f"bad handshake {text[:40]!r} (expected 'v<min>..<max>')")
    lo = int(m.group(1))
    return Hello(lo, int(m.group(2) or lo), m.group(3) or "")


def negotiate(hello: Hello, lo: int = SERVER_MIN, hi: int = SERVER_MAX) -> int | None:
    """The highest version both ends speak, as TWS picks it; None when the ranges do not meet."""
    v = min(hi, hello.max_version)
    return v if v >= max(lo, hello.min_version) else None
