"""The trader on IB's API (ib_async), as a trading team writes one against IB Gateway.

Connects with a client id; when the connection drops, reconnects with exponential backoff
(base and max from the resilience config). After every connect, before placing anything new,
it reconciles: reqOpenOrders and reqExecutions say which of its orders IB has, filled or
working; one IB has neither of is placed again, under the same orderRef and a new order id.
Once a second, with nothing in flight, IB's positions (its position messages) are compared
with the trader's own fills; a difference is logged and counted (position_mismatches).
Every intent is fsynced to orders.jsonl (its ref) when the strategy makes it, each sending of it
(ref, order id) before it goes, every fill when it arrives; a restarted trader reads the log back.
An order IB has not answered within the request timeout means the connection is dead (a
half-open one never closes): it disconnects and reconnects. Error 100 (pacing) on an order is
detected, not a failure: it is sent again after a second, at half IB's limit. SIGTERM is a
graceful shutdown: nothing new, what is out gets filled, then a "shutdown" record.
Market data: a subscription per symbol, made again on 1101 (IB lost it), left alone on 1102;
ticks are counted per second in md.jsonl. IB's errors (code, text, time) go to errors.jsonl,
as a team's client logs them.

    python -m faultline.examples.trading.tws.trader --connect 10.77.0.2:4002 --client-id 11 --dir run/trader

For the chaos suite: --queue-while-down (an OMS that keeps taking orders while IB is away, then
sends the backlog at once), --unthrottled (ib_async's own pacing off, so that burst meets IB's),
--unsafe-replay (a deliberate bug: resends after a reconnect without asking IB what it filled).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import logging
import signal
import time
from collections import deque
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
                 client_id: int, rate: float, queue_while_down: bool = False, unsafe_replay: bool = False) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.dir, self.cfg, self.host, self.port, self.client_id, self.rate = (
            directory, cfg, host, port, client_id, rate)
        self.queue_while_down, self.unsafe = queue_while_down, unsafe_replay
        # A gateway holds a client id until it sees the old connection close, which a partition
        # can delay for tens of seconds (error 326): the trader then connects under its second id.
        self.client_ids = [client_id, client_id + 1]
        self.ib = ib_async.IB()
        self.log = AppendLog(directory / "orders.jsonl")
        self.errors = AppendLog(directory / "errors.jsonl")
        self.md = AppendLog(directory / "md.jsonl")
        self.intents: dict[str, dict[str, Any]] = {}
        self.filled: dict[str, float] = {}  # ref -> shares
        self.exec_ids: set[str] = set()
        self.position: dict[str, float] = dict.fromkeys(CONTRACTS, 0.0)  # from its own log
        for r in read_log(directory / "orders.jsonl"):
            if r["op"] == "intent":
                self.intents[r["ref"]] = r
            elif r["op"] == "fill":
                self._book(r["ref"], r["shares"])
                self.exec_ids.add(r["exec_id"])
        self.seq = itertools.count(len(self.intents) + 1)
        self.contracts = {s: ib_async.Stock(s, "SMART", "USD", conId=c) for s, c in CONTRACTS.items()}
        self.tickers: dict[str, ib_async.Ticker] = {}
        self.ticks_this_s: dict[str, int] = dict.fromkeys(CONTRACTS, 0)
        self.reconciled = False
        self.draining = False                   # SIGTERM: nothing new, what is out gets filled
        self.sent: dict[int, tuple[str, int]] = {}  # order id -> (ref, time sent): this connection's
        self.unacked: dict[int, float] = {}     # order id -> when sent, until IB's first answer to it
        self.retry: deque[str] = deque()        # refs refused with error 100, sent again paced
        self.pause_until = 0.0
        # Resends after error 100 at half IB's limit, so they and new orders stay under it.
        self.retry_gap_s = 2 / cfg.api_pacing_per_s
        self.counts = {"connects": 0, "reconnect_attempts": 0, "replayed": 0, "resubscribed": 0,
                       "placed": 0, "rate_limited": 0, "timeouts": 0, "restored": len(self.intents),
                       "position_checks": 0, "position_mismatches": 0}
        self.ib.errorEvent += self.on_error
        self.ib.execDetailsEvent += self.on_fill
        self.ib.orderStatusEvent += self.on_answer
        self.ib.openOrderEvent += self.on_answer
        self.ib.pendingTickersEvent += self.on_ticks
        self.ib.disconnectedEvent += lambda: self.stats()

    # -- IB's events ----------------------------------------------------------------------
    def on_error(self, req_id: int, code: int, text: str, contract: Any) -> None:
        self.errors.append({"t_ns": time.time_ns(), "req_id": req_id, "code": code, "text": text})
        self.unacked.pop(req_id, None)  # an error naming an order is IB's answer to it
        if code == 326:  # our old session is still held (its close was lost): the other id next
            self.client_id = self.client_ids[(self.client_ids.index(self.client_id) + 1) % len(self.client_ids)]
        elif code == 1101:  # IB dropped our market data: request it again
            self.counts["resubscribed"] += 1
            self.subscribe(again=True)
        elif code == 100 and req_id in self.sent:
            # Pacing: the order was refused, not lost. Hold back, then send it again (same ref,
            # a new id: IB cancelled this one) no faster than half the limit.
            self.counts["rate_limited"] += 1
            ref = self.sent.pop(req_id)[0]
            if ref not in self.filled and ref not in self.retry:
                self.retry.append(ref)
            self.pause_until = max(self.pause_until, time.monotonic() + 1.0)  # IB counts per second

    def on_answer(self, trade: ib_async.Trade) -> None:
        self.unacked.pop(trade.order.orderId, None)

    def on_fill(self, trade: ib_async.Trade, fill: ib_async.Fill) -> None:
        ref = fill.execution.orderRef
        if ref not in self.intents or fill.execution.execId in self.exec_ids:
            return
        self.exec_ids.add(fill.execution.execId)
        self._book(ref, fill.execution.shares)
        sent = self.sent.get(fill.execution.orderId, (ref, 0))[1]
        self.log.append({"op": "fill", "ref": ref, "order_id": fill.execution.orderId, "exec_id": fill.execution.execId,
                         "perm_id": fill.execution.permId, "shares": fill.execution.shares,
                         "price": fill.execution.price, "recv_ns": time.time_ns(),
                         "rtt_ms": round((time.time_ns() - sent) / 1e6, 3) if sent else None})

    def _book(self, ref: str, shares: float) -> None:
        self.filled[ref] = self.filled.get(ref, 0) + shares
        intent = self.intents[ref]
        self.position[intent["symbol"]] += shares if intent["side"] == "BUY" else -shares

    def on_ticks(self, tickers: set[ib_async.Ticker]) -> None:
        for t in tickers:
            self.ticks_this_s[t.contract.symbol] = self.ticks_this_s.get(t.contract.symbol, 0) + 1

    # -- what a team's client does ----------------------------------------------------------
    def subscribe(self, again: bool = False) -> None:
        for s, c in self.contracts.items():
            if again and s in self.tickers:
                self.ib.cancelMktData(c)
            self.tickers[s] = self.ib.reqMktData(c)

    async def connect(self, stop: asyncio.Event) -> None:
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
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                if stop.is_set():
                    return

    async def reconcile(self) -> None:
        """IB's word on every order of ours: filled (reqExecutions), working (reqOpenOrders), or
        unknown to it (placed again, same ref, new id). Nothing new before this is done."""
        timeout = self.cfg.request_timeout_s * 4
        fills = await asyncio.wait_for(self.ib.reqExecutionsAsync(), timeout)
        # All clients' orders and executions: some may have been placed under the other client id.
        working = {t.order.orderRef for t in await asyncio.wait_for(self.ib.reqAllOpenOrdersAsync(), timeout)}
        for f in fills:  # fills that came while we were away (on_fill skips those already logged)
            self.on_fill(None, f)  # type: ignore[arg-type]
        self.retry.clear()  # what waited to be resent is decided here, once
        for ref in self.intents:
            if ref not in self.filled and ref not in working:
                self.counts["replayed"] += 1
                self.send(ref)
        self.reconciled = True

    def replay_blindly(self, refs: list[str]) -> None:
        """--unsafe-replay, the bug the suite must catch: what this trader had not seen filled
        when the connection broke is sent again without asking IB, which may have filled it."""
        self.retry.clear()
        for ref in refs:
            self.counts["replayed"] += 1
            self.send(ref)
        self.reconciled = True

    def intent(self, symbol: str, side: str) -> str:
        ref = f"T{next(self.seq):06d}"
        intent = {"op": "intent", "ref": ref, "symbol": symbol, "side": side, "qty": QTY, "t_ns": time.time_ns()}
        self.log.append(intent)  # durable before anything is sent
        self.intents[ref] = intent
        return ref

    def send(self, ref: str) -> None:
        """One transmission of an intent, under a new order id (IB's ids are per placeOrder)."""
        intent = self.intents[ref]
        order = ib_async.MarketOrder(intent["side"], intent["qty"], orderRef=ref)
        order.orderId = self.ib.client.getReqId()
        now = time.time_ns()
        self.log.append({"op": "send", "ref": ref, "order_id": order.orderId, "t_ns": now})  # durable first
        self.sent[order.orderId] = (ref, now)
        self.unacked[order.orderId] = time.monotonic()
        self.ib.placeOrder(self.contracts[intent["symbol"]], order)
        self.counts["placed"] += 1

    def place(self, symbol: str, side: str) -> None:
        self.send(self.intent(symbol, side))

    def unfilled(self) -> int:
        return sum(1 for r in self.intents if r not in self.filled)

    def compare_positions(self) -> None:
        """IB's positions (its position messages) against the trader's own fills, when nothing
        is in flight (else a fill and its position message may be read a moment apart)."""
        if not (self.reconciled and self.ib.isConnected()) or self.unfilled() or self.retry:
            return
        ib = {p.contract.symbol: p.position for p in self.ib.positions()}
        self.counts["position_checks"] += 1
        wrong = {s: (q, ib.get(s, 0.0)) for s, q in self.position.items() if q != ib.get(s, 0.0)}
        if wrong:
            self.counts["position_mismatches"] += 1
            self.errors.append({"t_ns": time.time_ns(), "req_id": -1, "code": 0,
                                "text": f"positions differ (own log, IB): {wrong}"})

    def stats(self) -> None:
        write_json(self.dir / "stats.json", {**self.counts, "reconnects": max(0, self.counts["connects"] - 1),
                                             "connected": self.ib.isConnected(),
                                             "reconciled": self.reconciled, "unfilled": self.unfilled(),
                                             "retrying": len(self.retry), "orders": len(self.intents)})

    def timed_out(self) -> bool:
        """An order unanswered past the request timeout: the connection is taken for dead (a
        half-open one never closes by itself)."""
        oldest = min(self.unacked.values(), default=None)
        return oldest is not None and time.monotonic() - oldest > self.cfg.request_timeout_s

    async def strategy(self, stop: asyncio.Event) -> None:
        """New orders at the rate, resends of refused ones paced, a stats line every second."""
        symbols = itertools.cycle(CONTRACTS)
        sides = itertools.cycle(("BUY", "SELL", "BUY"))
        next_order = time.monotonic()
        next_second = next_order + 1  # a line per whole second
        while not stop.is_set():
            now = time.monotonic()
            if now >= next_second:
                self.md.append({"t_ns": time.time_ns(), "ticks": dict(self.ticks_this_s)})
                self.ticks_this_s = dict.fromkeys(CONTRACTS, 0)
                self.compare_positions()
                self.stats()
                next_second += 1
            ready = self.reconciled and self.ib.isConnected()
            if ready and self.retry and now >= self.pause_until:
                self.send(self.retry.popleft())
                self.pause_until = now + self.retry_gap_s
            elif self.rate > 0 and now >= next_order:
                # After a pause no burst to catch up: at most a second's worth.
                next_order = max(next_order + 1 / self.rate, now - 1)
                if self.draining:
                    pass
                elif ready and not self.retry and now >= self.pause_until:
                    self.place(next(symbols), next(sides))
                elif self.queue_while_down and not ready:
                    self.intent(next(symbols), next(sides))  # an OMS queues; the reconnect sends
            # Asleep until the next thing is due (an order, a resend, the stats line), but at most
            # 50 ms: a reconnect or a drain changes what is due.
            due = min(next_second, next_order if self.rate > 0 else next_second,
                      self.pause_until if self.retry else next_second)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), min(0.05, max(0.0, due - time.monotonic())))

    async def session(self, stop: asyncio.Event) -> None:
        """(Re)connect, subscribe, reconcile; then watch the connection until it is lost."""
        self.reconciled = False
        seen_unfilled = [r for r in self.intents if r not in self.filled]
        self.sent.clear()
        self.unacked.clear()
        await self.connect(stop)
        if stop.is_set():
            return
        self.subscribe()
        try:
            if self.unsafe:
                self.replay_blindly(seen_unfilled)
            else:
                await self.reconcile()
        except (TimeoutError, ConnectionError):
            self.ib.disconnect()  # IB did not answer: start over
            return
        while self.ib.isConnected() and not stop.is_set():
            if self.timed_out():
                self.counts["timeouts"] += 1
                self.errors.append({"t_ns": time.time_ns(), "req_id": -1, "code": 0,
                                    "text": f"no answer within {self.cfg.request_timeout_s} s: reconnecting"})
                self.ib.disconnect()
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.05)

    async def shutdown(self) -> None:
        """SIGTERM: nothing new; what is out is filled (up to three request timeouts); a
        "shutdown" record says how it ended, so a restart knows it has nothing to replay."""
        self.draining = True
        deadline = time.monotonic() + 3 * self.cfg.request_timeout_s
        while self.unfilled() and self.ib.isConnected() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        self.log.append({"op": "shutdown", "unfilled": self.unfilled(), "t_ns": time.time_ns()})

    async def run(self, stop: asyncio.Event, term: asyncio.Event | None = None) -> None:
        """Until `stop`; `term` (SIGTERM) first drains what is out, then stops."""
        strategy = asyncio.create_task(self.strategy(stop))
        sessions = asyncio.create_task(self._sessions(stop))
        if term is not None:
            await asyncio.wait([asyncio.create_task(term.wait()), sessions], return_when=asyncio.FIRST_COMPLETED)
            if term.is_set():
                await self.shutdown()
                stop.set()
        await asyncio.gather(strategy, sessions)
        self.stats()
        self.ib.disconnect()

    async def _sessions(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.session(stop)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--connect", required=True, metavar="HOST:PORT", help="the gateway (4002: IB Gateway paper)")
    ap.add_argument("--client-id", type=int, default=11)
    ap.add_argument("--dir", type=Path, required=True, help="orders.jsonl, errors.jsonl, md.jsonl, stats.json")
    ap.add_argument("--rate", type=float, default=5, help="orders per second (default %(default)s)")
    ap.add_argument("--config", type=Path, default=LAB_CONFIG, help="resilience config (default: the lab's)")
    ap.add_argument("--queue-while-down", action="store_true",
                    help="keep taking the strategy's orders while disconnected; the reconnect sends them all at once")
    ap.add_argument("--unthrottled", action="store_true",
                    help="turn off ib_async's own 45 requests/s throttle, so a burst meets IB's pacing (error 100)")
    ap.add_argument("--unsafe-replay", action="store_true",
                    help="the deliberate bug: after a reconnect, resend what it had not seen filled without asking IB")
    args = ap.parse_args(argv)
    host, _, port = args.connect.rpartition(":")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    trader = Trader(args.dir, resilience.load(args.config), host, int(port), args.client_id, args.rate,
                    args.queue_while_down, args.unsafe_replay)
    if args.unthrottled:
        trader.ib.client.MaxRequests = 0

    async def go() -> None:
        stop, term = asyncio.Event(), asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, term.set)  # graceful: drain first
        loop.add_signal_handler(signal.SIGINT, stop.set)
        await trader.run(stop, term)

    asyncio.run(go())


if __name__ == "__main__":
    main()
