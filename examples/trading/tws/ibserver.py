"""The lab's IB back end (host `ibserver`): matching and market data, behind the gateway, as IB's
servers are behind IB Gateway. The gateway holds one connection to it (JSON lines, port 4001):

    gateway -> ibserver   {"op": "login"} first, then {"op": "order", "perm_id", "symbol", "action", "qty"}
    ibserver -> gateway   {"op": "fill", "perm_id", "price", "time"}   {"op": "tick", "symbol", "price"}
                          {"op": "hb"} every 100 ms, so a silent link is a lost link, also under a partition

An order is executed once per perm id, also when the gateway sends it again after a broken link
(it cannot know whether the first copy arrived): the fill is answered again, not repeated.
Executions are fsynced to executions.jsonl before the answer and read back on start.

    python -m faultline.examples.trading.tws.ibserver --bind 10.77.0.5 --dir run/ibserver
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import time
from pathlib import Path
from typing import Any

from faultline.examples.trading.wire import AppendLog, read_log, write_json

PORT = 4001
HEARTBEAT_S = 0.1
TICK_S = 0.05
LOGIN_S = 2.0  # a connection that has not logged in by then is closed
SYMBOLS = ("AAPL", "MSFT", "SPY")


class IbServer:
    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.dir = directory
        self.fills: dict[int, dict[str, Any]] = {r["perm_id"]: r for r in read_log(directory / "executions.jsonl")}
        self.log = AppendLog(directory / "executions.jsonl")
        self.prices = {s: 100.0 + 50 * i for i, s in enumerate(SYMBOLS)}
        self.link: asyncio.StreamWriter | None = None
        self.counts = {"links": 0, "orders": 0, "executed": len(self.fills), "repeats": 0}

    def _send(self, w: asyncio.StreamWriter, msg: dict[str, Any]) -> None:
        if not w.is_closing():
            w.write((json.dumps(msg, separators=(",", ":")) + "\n").encode())

    def order(self, msg: dict[str, Any]) -> dict[str, Any]:
        perm = int(msg["perm_id"])
        self.counts["orders"] += 1
        if perm in self.fills:
            self.counts["repeats"] += 1
            return self.fills[perm]
        fill = {"op": "fill", "perm_id": perm, "symbol": msg["symbol"], "action": msg["action"],
                "qty": float(msg["qty"]), "price": round(self.prices[msg["symbol"]], 2), "time": time.time_ns()}
        self.log.append(fill)  # durable before the gateway hears of it
        self.fills[perm] = fill
        self.counts["executed"] += 1
        return fill

    async def session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # The link is a gateway that logged in, not any TCP connection: a health check that
        # connects to the port and leaves must not cut the gateway off.
        hello: Any = None
        with contextlib.suppress(ConnectionError, TimeoutError, ValueError):
            hello = json.loads(await asyncio.wait_for(reader.readline(), LOGIN_S) or b"null")
        if not isinstance(hello, dict) or hello.get("op") != "login":
            writer.close()
            return
        if self.link is not None:  # one gateway session at a time: a new login replaces the old
            self.link.close()
        self.link = writer
        self.counts["links"] += 1
        self.save_stats()
        try:
            while line := await reader.readline():
                try:
                    msg = json.loads(line)
                    if msg.get("op") == "order" and msg.get("symbol") in self.prices:
                        self._send(writer, self.order(msg))
                except (ValueError, KeyError, TypeError):
                    continue  # a garbled line is the gateway's bug; the link stays
                self.save_stats()
        except ConnectionError:
            pass
        finally:
            if self.link is writer:
                self.link = None
            writer.close()

    async def pump(self) -> None:
        """Heartbeats and ticks to the connected gateway; the market moves with or without it."""
        next_hb = 0.0
        while True:
            for s in self.prices:
                self.prices[s] *= 1 + random.gauss(0, 0.0005)
            w = self.link
            if w is not None:
                for s, p in self.prices.items():
                    self._send(w, {"op": "tick", "symbol": s, "price": round(p, 2)})
                if time.monotonic() >= next_hb:
                    self._send(w, {"op": "hb"})
                    next_hb = time.monotonic() + HEARTBEAT_S
            await asyncio.sleep(TICK_S)

    def save_stats(self) -> None:
        write_json(self.dir / "stats.json", self.counts)

    async def serve(self, host: str, port: int, ready: asyncio.Event | None = None) -> None:
        server = await asyncio.start_server(self.session, host, port)
        self.port = server.sockets[0].getsockname()[1]
        pump = self.pump_task = asyncio.create_task(self.pump())
        self.save_stats()
        if ready is not None:
            ready.set()
        try:
            async with server:
                await server.serve_forever()
        finally:
            pump = self.pump_task  # the one running now (a test may have restarted it)
            pump.cancel()
            if self.link is not None:
                self.link.close()
            await asyncio.gather(pump, return_exceptions=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bind", required=True)
    ap.add_argument("--port", type=int, default=PORT, help="(default %(default)s)")
    ap.add_argument("--dir", type=Path, required=True, help="executions.jsonl and stats.json go here")
    args = ap.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(IbServer(args.dir).serve(args.bind, args.port))


if __name__ == "__main__":
    main()
