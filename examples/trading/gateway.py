"""The gateway (stands in for an IBKR TWS/Gateway on port 4002).

Accepts orders as JSON lines {"op": "order", "order_id", "ref", "symbol", "side", "qty"} and
answers {"op": "ack"} then {"op": "fill", "price"}. An order id it has executed before is
answered again with the same fill and executed no second time: a replay under the same id
is safe. Executions are fsynced to executions.jsonl before they are answered, and read back at
start, so a restarted gateway stays idempotent. Paces requests as IBKR does: the configured
requests per minute, at most one second's worth at once; the excess is rejected with reason
"rate_limit" and the time until the next request is allowed. Market data (sequence-numbered ticks) and fills go to the
broker; while it is down they wait in memory and are sent, in order, when it is back.

    python -m faultline.examples.trading.gateway --bind 10.77.0.3 --bus 10.77.0.4:6379 --dir run/gateway
"""

from __future__ import annotations

import argparse
import random
import socket
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from faultline.controller.model import config as resilience
from faultline.examples.trading import LAB_CONFIG
from faultline.examples.trading import bus as busmod
from faultline.examples.trading.wire import AppendLog, lines, read_log, send, write_json

SYMBOLS = ("AAPL", "MSFT", "ESZ6")
TICK_S = 0.05


class Pacer:
    """rate_limit_per_minute as a token bucket refilled at rate/60 per second and holding one
    second's worth: a client within the rate is never rejected, a burst beyond it is. One per
    gateway (an account's limit), so reconnecting does not reset it."""

    def __init__(self, rate_per_minute: int) -> None:
        self.per_s = rate_per_minute / 60
        self.capacity = max(1.0, self.per_s)
        self.tokens = self.capacity
        self.at = time.monotonic()

    def take(self) -> float:
        """0 when the request may go now, else the seconds until it may (caller holds the lock)."""
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.per_s)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.per_s


class Gateway:
    def __init__(self, directory: Path, bus: busmod.Bus, rate_per_minute: int) -> None:
        self.dir = directory
        self.bus = bus
        self.pacer = Pacer(rate_per_minute)
        self.lock = threading.Lock()
        self.executions = {e["order_id"]: e for e in read_log(directory / "executions.jsonl")}
        self.exec_log = AppendLog(directory / "executions.jsonl")
        self.prices = {s: 100.0 + 50 * i for i, s in enumerate(SYMBOLS)}
        self.outbox: deque[tuple[str, dict[str, Any]]] = deque(maxlen=200_000)
        self.md_seq = 0
        self.counts = {"orders": 0, "executed": len(self.executions), "replays": 0, "rate_limited": 0,
                       "connections": 0, "md_published": 0, "bus_down": 0, "outbox_max": 0}

    # -- orders ----------------------------------------------------------
    def serve(self, conn: socket.socket) -> None:
        with self.lock:
            self.counts["connections"] += 1
        try:
            for msg in lines(conn):
                if msg.get("op") != "order":
                    send(conn, {"op": "error", "reason": f"unknown op {msg.get('op')!r}"})
                    continue
                with self.lock:
                    wait = self.pacer.take()
                    self.counts["rate_limited"] += wait > 0
                if wait:
                    send(conn, {"op": "reject", "order_id": msg["order_id"], "reason": "rate_limit",
                                "retry_after_s": round(wait, 3)})
                    continue
                for reply in self.execute(msg):
                    send(conn, reply)
        except (OSError, ValueError):
            pass  # the trader went away or sent garbage: it reconnects and replays
        finally:
            conn.close()

    def execute(self, order: dict[str, Any]) -> list[dict[str, Any]]:
        oid = str(order["order_id"])
        with self.lock:
            self.counts["orders"] += 1
            done = self.executions.get(oid)
            if done is not None:
                self.counts["replays"] += 1
                return [{"op": "ack", "order_id": oid, "replay": True}, {"op": "fill", **done}]
            fill = {"order_id": oid, "ref": order.get("ref", oid), "symbol": order["symbol"], "side": order["side"],
                    "qty": int(order["qty"]), "price": round(self.prices[order["symbol"]], 2),
                    "t_ns": time.time_ns()}
            self.exec_log.append(fill)  # durable before the trader hears of it
            self.executions[oid] = fill
            self.counts["executed"] += 1
            self._queue("fills", fill)
        return [{"op": "ack", "order_id": oid}, {"op": "fill", **fill}]

    # -- market data and the broker ---------------------------------------
    def tick(self) -> None:
        with self.lock:
            for s in SYMBOLS:
                self.prices[s] *= 1 + random.gauss(0, 0.0005)
                self.md_seq += 1
                self._queue("md", {"seq": self.md_seq, "symbol": s, "price": round(self.prices[s], 4),
                                   "t_ns": time.time_ns()})
            self.counts["md_published"] = self.md_seq

    def _queue(self, stream: str, msg: dict[str, Any]) -> None:
        """For the broker, in order (caller holds the lock); the peak is the buffering the
        suite reports (how much waited while the broker was unreachable)."""
        self.outbox.append((stream, msg))
        self.counts["outbox_max"] = max(self.counts["outbox_max"], len(self.outbox))

    def flush(self) -> None:
        """Send what waits, in order; stop at the first failure (the rest waits for the next try)."""
        while self.outbox:
            stream, msg = self.outbox[0]
            try:
                self.bus.publish(stream, msg)
            except busmod.BusDown:
                with self.lock:
                    self.counts["bus_down"] += 1
                return
            self.outbox.popleft()

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {**self.counts, "outbox": len(self.outbox)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bind", required=True)
    ap.add_argument("--port", type=int, default=4002)
    ap.add_argument("--bus", required=True, help="broker HOST:PORT")
    ap.add_argument("--dir", type=Path, required=True, help="executions.jsonl and stats.json go here")
    ap.add_argument("--config", type=Path, default=LAB_CONFIG,
                    help="resilience config (default: the lab's, examples/trading/lab_config.yaml)")
    args = ap.parse_args()
    cfg = resilience.load(args.config)
    args.dir.mkdir(parents=True, exist_ok=True)
    gw = Gateway(args.dir, busmod.connect(args.bus), cfg.rate_limit_per_minute)
    srv = socket.create_server((args.bind, args.port), reuse_port=False)

    # Ticks and publishing are separate threads: the market moves while the broker is slow or
    # down (its ticks wait in the outbox with their time), it does not wait for the broker.
    def ticker() -> None:
        next_tick = time.monotonic()
        while True:
            gw.tick()
            write_json(args.dir / "stats.json", gw.stats())
            next_tick += TICK_S
            time.sleep(max(0.0, next_tick - time.monotonic()))

    def publisher() -> None:
        while True:
            gw.flush()
            time.sleep(0.005)

    threading.Thread(target=ticker, name="ticker", daemon=True).start()
    threading.Thread(target=publisher, name="publisher", daemon=True).start()
    while True:
        conn, _ = srv.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=gw.serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
