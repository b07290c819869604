"""The trader on IB's API (ib_async), as a trading team writes one against IB Gateway.

Connects with a client id; when the connection drops, reconnects with exponential backoff
(base and max from the resilience config). After every connect, before placing anything new,
it reconciles: reqOpenOrders and reqExecutions say which of its orders IB has, filled or
working; one IB has neither of is placed again, under the same orderRef and a new order id.
Every intent is fsynced to orders.jsonl (ref, order id) before it is sent, every fill when it
arrives; a restarted trader reads the log back. Market data: a subscription per symbol, made
again on 1101 (IB lost it), left alone on 1102; ticks are counted per second in md.jsonl. IB's
errors (code, text, time) go to errors.jsonl, as a team's client logs them.

    python -m faultline.examples.trading.tws.trader --connect 10.77.0.2:4002 --client-id 11 --dir run/trader
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import logging
import signal
import time
from pathlib import Path
from typing import Any

import ib_async

from faultline.controller.model import config as resilience
from faultline.examples.trading import LAB_CONFIG
from faultline.examples.trading.wire import AppendLog, read_log, write_json

CONTRACTS = {"AAPL": 265598, "MSFT": 272093, "SPY": 756733}
QTY = 10


class Trader:
    def __init__(self, directory: Path, cfg: resilience.ResilienceConfig, host: str, port: int,
                 client_id: int, rate: float) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.dir, self.cfg, self.host, self.port, self.client_id, self.rate = (
            directory, cfg, host, port, client_id, rate)
        self.ib = ib_async.IB()
        self.log = AppendLog(directory / "orders.jsonl")
        self.errors = AppendLog(directory / "errors.jsonl")
        self.md = AppendLog(directory / "md.jsonl")
        self.intents: dict[str, dict[str, Any]] = {}
        self.filled: dict[str, float] = {}  # ref -> shares
        self.exec_ids: set[str] = set()
        for r in read_log(directory / "orders.jsonl"):
            if r["op"] == "intent":
                self.intents[r["ref"]] = r
            elif r["op"] == "fill":
                self.filled[r["ref"]] = self.filled.get(r["ref"], 0) + r["shares"]
                self.exec_ids.add(r["exec_id"])
        self.seq = itertools.count(len(self.intents) + 1)
        self.contracts = {s: ib_async.Stock(s, "SMART", "USD", conId=c) for s, c in CONTRACTS.items()}
        self.tickers: dict[str, ib_async.Ticker] = {}
        self.ticks_this_s: dict[str, int] = dict.fromkeys(CONTRACTS, 0)
        self.reconciled = False
        self.counts = {"connects": 0, "reconnect_attempts": 0, "replaced": 0, "resubscribed": 0, "placed": 0}
        self.ib.errorEvent += self.on_error
        self.ib.execDetailsEvent += self.on_fill
        self.ib.pendingTickersEvent += self.on_ticks
        self.ib.disconnectedEvent += lambda: self.stats()

    # -- IB's events ----------------------------------------------------------------------
    def on_error(self, req_id: int, code: int, text: str, contract: Any) -> None:
        self.errors.append({"t_ns": time.time_ns(), "req_id": req_id, "code": code, "text": text})
        if code == 1101:  # IB dropped our market data: request it again
            self.counts["resubscribed"] += 1
            self.subscribe(again=True)

    def on_fill(self, trade: ib_async.Trade, fill: ib_async.Fill) -> None:
        ref = fill.execution.orderRef
        if ref not in self.intents or fill.execution.execId in self.exec_ids:
            return
        self.exec_ids.add(fill.execution.execId)
        self.filled[ref] = self.filled.get(ref, 0) + fill.execution.shares
        sent = self.intents[ref].get("sent_ns", 0)
        self.log.append({"op": "fill", "ref": ref, "order_id": fill.execution.orderId, "exec_id": fill.execution.execId,
                         "shares": fill.execution.shares, "price": fill.execution.price, "recv_ns": time.time_ns(),
                         "rtt_ms": round((time.time_ns() - sent) / 1e6, 3) if sent else None})

    def on_ticks(self, tickers: set[ib_async.Ticker]) -> None:
        for t in tickers:
            self.ticks_this_s[t.contract.symbol] = self.ticks_this_s.get(t.contract.symbol, 0) + 1

    # -- what a team's client does ----------------------------------------------------------
    def subscribe(self, again: bool = False) -> None:
        for s, c in self.contracts.items():
            if again and s in self.tickers:
                self.ib.cancelMktData(c)
            self.tickers[s] = self.ib.reqMktData(c)

    async def connect(self) -> None:
        """Until connected: exponential backoff between attempts, from the config."""
        for attempt in itertools.count():
            self.counts["reconnect_attempts"] += attempt > 0
            try:
                await self.ib.connectAsync(self.host, self.port, clientId=self.client_id,
                                           timeout=self.cfg.connection_timeout_s)
                self.counts["connects"] += 1
                return
            except (OSError, TimeoutError, ConnectionError):
                delay = min(self.cfg.base_retry_delay_s * 2 ** attempt, self.cfg.max_retry_delay_s)
                self.errors.append({"t_ns": time.time_ns(), "req_id": -1, "code": 0,
                                    "text": f"connect failed (attempt {attempt + 1}), next in {delay} s"})
                await asyncio.sleep(delay)

    async def reconcile(self) -> None:
        """IB's word on every order of ours: filled (reqExecutions), working (reqOpenOrders), or
        unknown to it (placed again, same ref, new id). Nothing new before this is done."""
        timeout = self.cfg.request_timeout_s * 4
        fills = await asyncio.wait_for(self.ib.reqExecutionsAsync(), timeout)
        working = {t.order.orderRef for t in await asyncio.wait_for(self.ib.reqOpenOrdersAsync(), timeout)}
        for f in fills:  # fills that came while we were away (on_fill skips those already logged)
            self.on_fill(None, f)  # type: ignore[arg-type]
        for ref, intent in self.intents.items():
            if ref not in self.filled and ref not in working:
                self.counts["replaced"] += 1
                self.place(intent["symbol"], intent["side"], ref)
        self.reconciled = True

    def place(self, symbol: str, side: str, ref: str | None = None) -> None:
        ref = ref or f"T{next(self.seq):06d}"
        order = ib_async.MarketOrder(side, QTY, orderRef=ref)
        order.orderId = self.ib.client.getReqId()
        intent = {"op": "intent", "ref": ref, "order_id": order.orderId, "symbol": symbol, "side": side,
                  "qty": QTY, "t_ns": time.time_ns(), "sent_ns": time.time_ns()}
        self.log.append(intent)  # durable before it is sent
        self.intents[ref] = intent
        self.ib.placeOrder(self.contracts[symbol], order)
        self.counts["placed"] += 1

    def unfilled(self) -> int:
        return sum(1 for r in self.intents if r not in self.filled)

    def stats(self) -> None:
        write_json(self.dir / "stats.json", {**self.counts, "connected": self.ib.isConnected(),
                                             "reconciled": self.reconciled, "unfilled": self.unfilled(),
                                             "orders": len(self.intents)})

    async def run(self, stop: asyncio.Event) -> None:
        symbols = itertools.cycle(CONTRACTS)
        sides = itertools.cycle(("BUY", "SELL", "BUY"))
        next_order = next_second = time.monotonic()
        while not stop.is_set():
            if not self.ib.isConnected():
                self.reconciled = False
                await self.connect()
                self.subscribe()
                await self.reconcile()
            now = time.monotonic()
            if now >= next_order and self.rate > 0:
                self.place(next(symbols), next(sides))
                next_order += 1 / self.rate
            if now >= next_second:
                self.md.append({"t_ns": time.time_ns(), "ticks": dict(self.ticks_this_s)})
                self.ticks_this_s = dict.fromkeys(CONTRACTS, 0)
                self.stats()
                next_second += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, min(next_order, next_second) - time.monotonic()))
        self.stats()
        self.ib.disconnect()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--connect", required=True, metavar="HOST:PORT", help="the gateway (4002: IB Gateway paper)")
    ap.add_argument("--client-id", type=int, default=11)
    ap.add_argument("--dir", type=Path, required=True, help="orders.jsonl, errors.jsonl, md.jsonl, stats.json")
    ap.add_argument("--rate", type=float, default=5, help="orders per second (default %(default)s)")
    ap.add_argument("--config", type=Path, default=LAB_CONFIG, help="resilience config (default: the lab's)")
    args = ap.parse_args(argv)
    host, _, port = args.connect.rpartition(":")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    trader = Trader(args.dir, resilience.load(args.config), host, int(port), args.client_id, args.rate)

    async def go() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await trader.run(stop)

    asyncio.run(go())


if __name__ == "__main__":
    main()
