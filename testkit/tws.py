"""The lab's TWS gateway and ibserver run in-process on 127.0.0.1 for tests: an asyncio loop in
a thread (Running), a bare TWS API client (Raw), and a back end that falls silent and speaks
again (silence / speak) as under a partition, without the kernel."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import threading
import time
from collections import Counter
from pathlib import Path

from faultline.examples.trading.tws import messages as m
from faultline.examples.trading.tws.gateway import Gateway
from faultline.examples.trading.tws.ibserver import IbServer
from faultline.examples.trading.tws.wire import Splitter, encode
from faultline.examples.trading.wire import read_log


class Running:
    """Servers (the gateway, an ibserver) on one asyncio loop in a thread, on 127.0.0.1."""

    def __init__(self, directory: Path | None = None, pacing: int = 50) -> None:
        self.loop = asyncio.new_event_loop()
        self.tasks: list[asyncio.Task[None]] = []
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        if directory is not None:
            self.gw = self.start(Gateway(directory, pacing))
            self.port = self.gw.port

    def start(self, server):
        ev = threading.Event()

        async def go() -> None:
            ready = asyncio.Event()
            self.tasks.append(asyncio.create_task(server.serve("127.0.0.1", 0, ready)))
            await ready.wait()
            ev.set()

        self.call(go)
        assert ev.wait(10), f"{type(server).__name__} did not start"
        return server

    def call(self, fn) -> None:
        """Run fn (a coroutine function or a plain one) on the servers' loop, and wait for it."""
        async def wrap() -> None:
            r = fn()
            if asyncio.iscoroutine(r):
                await r
        asyncio.run_coroutine_threadsafe(wrap(), self.loop).result(10)

    def stop(self) -> None:
        async def down() -> None:
            for t in self.tasks:
                t.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
        self.call(down)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


class Raw:
    """A bare TWS API client: the handshake and START_API, then whatever bytes a test sends."""

    def __init__(self, port: int, client_id: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.split = Splitter()
        self.pending: list[list[str]] = []
        body = b"v157..178"
        self.sock.sendall(b"API\0" + struct.pack(">I", len(body)) + body)
        self.version = int(self.next()[0])
        self.send([m.START_API, 2, client_id, ""])

    def send(self, fields: list) -> None:
        self.sock.sendall(encode(fields))

    def next(self) -> list[str]:
        while not self.pending:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionResetError("closed by the gateway")
            self.pending += self.split.feed(data)
        return self.pending.pop(0)

    def until(self, pred, what: str) -> list[str]:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            msg = self.next()
            if pred(msg):
                return msg
        raise AssertionError(f"no {what} within 5 s")

    def errors(self, code: int) -> list[list[str]]:
        return [f for f in self.pending if f[0] == "4" and f[3] == str(code)]

    def closed(self) -> bool:
        """True once the gateway closed the connection (within the socket's 5 s timeout)."""
        try:
            while True:
                self.next()
        except TimeoutError:
            return False
        except OSError:  # reset or closed
            return True


def silence(r: Running, ibs: IbServer) -> None:
    """The back end goes quiet without closing anything, as under a partition: no heartbeat, no
    tick, no fill reaches the gateway (what it receives meanwhile it still executes)."""
    def mute() -> None:
        ibs.pump_task.cancel()
        ibs._send = lambda w, msg: None  # type: ignore[method-assign]
    r.call(mute)


def speak(r: Running, ibs: IbServer) -> None:
    def again() -> None:
        del ibs._send
        ibs.pump_task = asyncio.get_running_loop().create_task(ibs.pump())
    r.call(again)


# -- the trader's logs (examples/trading/tws/trader.py --dir) ----------------------------------
def stats(d: Path) -> dict:
    p = d / "stats.json"
    return json.loads(p.read_text()) if p.exists() else {}


def codes(d: Path) -> list[int]:
    return [e["code"] for e in read_log(d / "errors.jsonl") if e["code"] in (1100, 1101, 1102)]


def exactly_once(gw_dir: Path, trader_dir: Path) -> tuple[list[str], list[str]]:
    """(refs executed more than once, refs never executed) of what the trader logged as intents."""
    refs = {r["ref"] for r in read_log(trader_dir / "orders.jsonl") if r["op"] == "intent"}
    ex = Counter(e["order_ref"] for e in read_log(gw_dir / "executions.jsonl"))
    return sorted(r for r, n in ex.items() if n > 1), sorted(r for r in refs if ex[r] == 0)
