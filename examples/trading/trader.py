"""The trader (the orchestrator): places orders, survives the gateway going away.

Every order intent is fsynced to orders.jsonl before it is sent, and every fill when it
arrives; a restarted trader reads the log back: positions restored, unfilled orders replayed.
After a disconnect (or an order unanswered within the request timeout) it reconnects with
exponential backoff (base and max from the resilience config) and replays every unfilled
order under the same order id, which the gateway executes at most once. SIGTERM is a
graceful shutdown: no new orders, what is in flight is filled, then a "shutdown" record.

A gateway's rate-limit reject is detected, not treated as a failure: the order is sent again
under the same id after the wait the gateway names, and every retry after it no faster than
the configured rate limit; new orders wait until the retries are through.

--queue-while-down keeps placing orders while the gateway is unreachable (an OMS that accepts
a strategy's orders and forwards them when the link is back): the reconnect replays the
whole backlog at once, which is how real clients trip a gateway's pacing.

--unsafe-replay is a deliberate bug for the chaos suite to catch: replays get a new order
id (the ref stays), as a client that allocates ids at send time would do.

    python -m faultline.examples.trading.trader --connect 10.77.0.3:4002 --dir run/trader --rate 20
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import random
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

from faultline.controller.model import config as resilience
from faultline.examples.trading import LAB_CONFIG
from faultline.examples.trading.wire import AppendLog, lines, read_log, send, write_json

SYMBOLS = ("AAPL", "MSFT", "ESZ6")


class Trader:
    def __init__(self, directory: Path, cfg: resilience.ResilienceConfig, unsafe_replay: bool = False,
                 queue_while_down: bool = False) -> None:
        self.dir = directory
        self.cfg = cfg
        self.unsafe = unsafe_replay
        self.queue_while_down = queue_while_down
        self.retry_gap_s = 60 / cfg.rate_limit_per_minute  # retries go no faster than the contract allows
        self.lock = threading.Lock()
        self.intents: dict[str, dict[str, Any]] = {}   # ref -> order
        self.filled: dict[str, dict[str, Any]] = {}    # ref -> fill
        self.positions: dict[str, int] = {}
        for rec in read_log(directory / "orders.jsonl"):  # state restored from the log
            if rec["op"] == "intent":
                self.intents[rec["ref"]] = rec
            elif rec["op"] == "fill" and rec["ref"] not in self.filled:
                self._book(rec)
        self.log = AppendLog(directory / "orders.jsonl")
        self.sent_at: dict[str, float] = {}            # order_id -> when sent on this connection
        self.seq = itertools.count(len(self.intents) + 1)
        self.counts = {"placed": len(self.intents), "filled": len(self.filled), "replayed": 0, "rate_limited": 0,
                       "reconnects": 0, "timeouts": 0, "restored": len(self.intents)}
        self.connected = False
        self.draining = False                          # shutting down: no new orders
        self.next_at = time.monotonic()                # when the strategy places its next order
        self.pause_until = 0.0
        self.retry: list[dict[str, Any]] = []  # rejected for the rate limit: sent again after the pause

    def _book(self, fill: dict[str, Any]) -> None:
        self.filled[fill["ref"]] = fill
        sign = 1 if fill["side"] == "buy" else -1
        self.positions[fill["symbol"]] = self.positions.get(fill["symbol"], 0) + sign * int(fill["qty"])

    def new_order(self) -> dict[str, Any]:
        ref = f"T{next(self.seq):06d}"
        order = {"op": "intent", "ref": ref, "order_id": ref, "symbol": random.choice(SYMBOLS),
                 "side": random.choice(("buy", "sell")), "qty": random.randint(1, 10), "t_ns": time.time_ns()}
        self.log.append(order)  # durable before it can reach the gateway
        with self.lock:
            self.intents[ref] = order
            self.counts["placed"] += 1
        return order

    def unfilled(self) -> list[dict[str, Any]]:
        with self.lock:
            return [o for ref, o in self.intents.items() if ref not in self.filled]

    def wire(self, order: dict[str, Any], replay: bool) -> dict[str, Any]:
        oid = order["order_id"]
        if replay and self.unsafe:
            oid = f"{order['ref']}-{time.monotonic_ns()}"  # the bug: a fresh id for the same order
        return {"op": "order", "order_id": oid, "ref": order["ref"], "symbol": order["symbol"],
                "side": order["side"], "qty": order["qty"]}

    def on_message(self, msg: dict[str, Any]) -> None:
        with self.lock:
            if msg["op"] == "fill":
                sent = self.sent_at.pop(msg["order_id"], None)
                if msg["ref"] not in self.filled:
                    # rtt: this send to its fill, the order path's latency (plane isolation)
                    rtt = {"rtt_ms": round((time.monotonic() - sent) * 1e3, 3)} if sent is not None else {}
                    self.log.append({"op": "fill", **msg, **rtt, "recv_ns": time.time_ns()})
                    self._book(msg)
                    self.counts["filled"] += 1
            elif msg["op"] == "reject" and msg.get("reason") == "rate_limit":
                # Rate limit detected: hold new orders back, then send this one again (same id).
                self.counts["rate_limited"] += 1
                self.sent_at.pop(msg["order_id"], None)
                wait = min(float(msg.get("retry_after_s", 1.0)), 1.0)
                self.pause_until = max(self.pause_until, time.monotonic() + wait)
                ref = msg["order_id"].split("-")[0]
                if ref in self.intents and self.intents[ref] not in self.retry:
                    self.retry.append(self.intents[ref])

    def session(self, conn: socket.socket, rate: float, stop: threading.Event) -> None:
        """One connection: replay what is unfilled, then place orders until it breaks."""
        self.retry = []
        reader_done = threading.Event()

        def reader() -> None:
            try:
                for msg in lines(conn):
                    self.on_message(msg)
            except (OSError, ValueError):
                pass
            reader_done.set()

        threading.Thread(target=reader, daemon=True).start()
        pending = self.unfilled()
        for order in pending:
            self._send(conn, order, replay=True)
        self.counts["replayed"] += len(pending)
        while not stop.is_set() and not reader_done.is_set():
            now = time.monotonic()
            with self.lock:
                oldest = min(self.sent_at.values(), default=now)
            if now - oldest > self.cfg.request_timeout_s:
                self.counts["timeouts"] += 1  # unanswered: treat the connection as dead
                return
            with self.lock:
                retry = self.retry.pop(0) if self.retry and now >= self.pause_until else None
                if retry:
                    self.pause_until = now + self.retry_gap_s
                held = bool(self.retry) or now < self.pause_until
            if retry:
                self._send(conn, retry, replay=False)
            elif rate and not held and not self.draining and self.due(rate, now):
                self._send(conn, self.new_order(), replay=False)
            time.sleep(0.005)

    def due(self, rate: float, now: float) -> bool:
        """The strategy's clock: True when an order is due (and moves the clock on to the next)."""
        if now < self.next_at:
            return False
        self.next_at = max(self.next_at + 1 / rate, now - 1)  # after a pause, no burst to catch up
        return True

    def idle(self, seconds: float, rate: float, stop: threading.Event) -> None:
        """Wait while disconnected; with --queue-while-down the strategy keeps placing orders,
        logged as intents and sent by the next connection's replay."""
        end = time.monotonic() + seconds
        while not stop.is_set() and (now := time.monotonic()) < end:
            if self.queue_while_down and rate and not self.draining and self.due(rate, now):
                self.new_order()
            stop.wait(min(0.005, max(0.0, end - now)))

    def _send(self, conn: socket.socket, order: dict[str, Any], replay: bool) -> None:
        msg = self.wire(order, replay)
        with self.lock:
            self.sent_at[msg["order_id"]] = time.monotonic()
        send(conn, msg)

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {**self.counts, "connected": self.connected, "unfilled": len(self.intents) - len(self.filled),
                    "retrying": len(self.retry),
                    "positions": dict(self.positions)}

    def shutdown(self, stop: threading.Event, worker: threading.Thread) -> None:
        """SIGTERM: place nothing new, let what is in flight be filled (up to three request
        timeouts), close, and log how it ended: a restart then has nothing to replay."""
        self.draining = True
        deadline = time.monotonic() + 3 * self.cfg.request_timeout_s
        while self.unfilled() and self.connected and time.monotonic() < deadline:
            time.sleep(0.01)
        stop.set()
        worker.join(timeout=2)
        left = len(self.unfilled())
        self.log.append({"op": "shutdown", "unfilled": left, "t_ns": time.time_ns()})
        self.counts["shutdown_unfilled"] = left


def run(trader: Trader, host: str, port: int, rate: float, stop: threading.Event) -> None:
    cfg = trader.cfg
    attempt = 0
    while not stop.is_set():
        try:
            conn = socket.create_connection((host, port), timeout=cfg.connection_timeout_s)
        except OSError:
            # Exponential backoff, never giving up: a trader must come back when the gateway does.
            trader.idle(min(cfg.base_retry_delay_s * 2 ** attempt, cfg.max_retry_delay_s), rate, stop)
            attempt += 1
            continue
        conn.settimeout(None)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        attempt = 0
        trader.connected = True
        try:
            trader.session(conn, rate, stop)
        except OSError:
            pass
        finally:
            trader.connected = False
            with trader.lock:
                trader.sent_at.clear()
            # shutdown first: close() alone leaves the kernel socket ESTABLISHED while the
            # reader thread sits in recv() on it, so the dead connection would look alive.
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
            if not stop.is_set():
                trader.counts["reconnects"] += 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--connect", required=True, help="gateway HOST:PORT")
    ap.add_argument("--dir", type=Path, required=True, help="orders.jsonl and stats.json go here")
    ap.add_argument("--rate", type=float, default=10.0, help="new orders per second (default 10)")
    ap.add_argument("--config", type=Path, default=LAB_CONFIG,
                    help="resilience config (default: the lab's, examples/trading/lab_config.yaml)")
    ap.add_argument("--queue-while-down", action="store_true",
                    help="keep placing orders while disconnected; the reconnect replays them all at once")
    ap.add_argument("--unsafe-replay", action="store_true", help="the deliberate bug: replays under new ids")
    args = ap.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    trader = Trader(args.dir, resilience.load(args.config), args.unsafe_replay, args.queue_while_down)
    host, _, port = args.connect.rpartition(":")
    stop, term = threading.Event(), threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: term.set())
    worker = threading.Thread(target=run, args=(trader, host, int(port), args.rate, stop), daemon=True)
    worker.start()
    while not term.is_set():
        write_json(args.dir / "stats.json", trader.stats())
        term.wait(0.1)
    trader.shutdown(stop, worker)
    write_json(args.dir / "stats.json", trader.stats())


if __name__ == "__main__":
    main()
