"""The lab's IB Gateway: the TWS API socket protocol on port 4002 (IB's paper port), so a team's
own IB API client (ib_async, ibapi) is what the faults hit.

    python -m faultline.examples.trading.tws.gateway --bind 10.77.0.2 --dir run/gateway

What it models of IB Gateway: the handshake and version negotiation, START_API (a client id in
use is refused with 326), the start-up messages (managedAccounts, nextValidId, the farm-status
notices 2104/2106/2158), orders (placeOrder -> openOrder, orderStatus, execDetails,
commissionReport; cancelOrder; a duplicate order id refused with 103), reqIds, open orders,
executions, positions, account updates and summary, contract details, streaming market data, current time, and
pacing (error 100 past the limit per second; refused without a break for 2 s: disconnected). A request
it cannot read gets error 320 or 321, as TWS answers, and the connection stays; a broken length
prefix closes that connection only. Every execution is fsynced to executions.jsonl before any
client hears of it, and read back on start: a restarted gateway keeps its fills and positions.

IB's back end is another host (`--upstream`, ibserver.py): matching and market data come from
there over one connection, as IB Gateway's from IB's servers. When that link closes or falls
silent every client gets 1100; when it is back, 1102 (subscriptions kept) if the outage was
short, else 1101 (subscriptions dropped: the client must request market data again). An order
placed while the link is down is held (PreSubmitted) and transmitted when it is back, as TWS
does with an order it accepted: a client that gives up on it and places it again under a new id
executes it twice, which is what the chaos suite must catch. Without `--upstream` orders fill
here at once. With `--bus` every fill and every price move is also published to the broker
(Redis streams `fills` and `md`, as the risk host reads them), through an outbox that keeps
them while the broker is away. Not modelled: completed orders (reqCompletedOrders answers with its end only),
combos, algos, FA accounts, held orders across a gateway restart.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import random
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from faultline.controller.model import config as resilience
from faultline.examples.trading import LAB_CONFIG
from faultline.examples.trading.bus import Outbox, connect
from faultline.examples.trading.tws import messages as m
from faultline.examples.trading.tws.wire import (
    PREFIX,
    SERVER_MAX,
    SERVER_MIN,
    Field,
    FrameError,
    Splitter,
    encode,
    negotiate,
    parse_hello,
)
from faultline.examples.trading.wire import AppendLog, read_log, write_json

ACCOUNT = "DU1234567"  # a paper account's shape
INSTRUMENTS = {i.symbol: i for i in (m.Instrument(265598, "AAPL"), m.Instrument(272093, "MSFT"),
                                     m.Instrument(756733, "SPY"))}
BY_CON_ID = {i.con_id: i for i in INSTRUMENTS.values()}
TICK_S = 0.05           # each subscribed symbol ticks 20 times a second
PACING_PER_S = 50       # IB's documented API limit per client
PERSIST_S = 2.0         # refused without a break for this long: disconnected
COMMISSION = 1.0
MAX_BUFFERED = 4 << 20  # a client this far behind on reading is dropped, as TWS drops slow readers
LINK_SILENT_S = 0.5     # no heartbeat from the back end this long: the link is lost (1100)
KEEP_S = 5.0            # restored within this: subscriptions kept (1102); later: lost (1101)
RETRY_S = 0.2           # reconnects to the back end
STATS_S = 0.1           # stats.json rewritten this often (the chaos suite's checks read it)


class BadRequest(ValueError):
    """A request with fields it cannot have: answered with 321, the connection stays."""


@dataclass
class Pacing:
    """Messages per rolling second; past the limit each one is refused (error 100). A client
    that goes on being refused for more than PERSIST_S (refusals never a second apart: it
    ignored the error 100s) is disconnected; one burst that then backs off is not."""

    limit: int
    times: deque[float] = field(default_factory=deque)
    refused: int = 0                  # in the current run of refusals
    first_refused: float | None = None
    last_refused: float = 0.0

    def admit(self, now: float) -> bool:
        while self.times and now - self.times[0] >= 1.0:
            self.times.popleft()
        if len(self.times) >= self.limit:
            if self.first_refused is None or now - self.last_refused > 1.0:  # a new run
                self.first_refused, self.refused = now, 0
            self.last_refused = now
            self.refused += 1
            return False
        self.times.append(now)
        return True

    @property
    def persistent(self) -> bool:
        return self.first_refused is not None and self.last_refused - self.first_refused > PERSIST_S


class Book:
    """Orders, executions and positions; executions durable in executions.jsonl."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.exec_path = directory / "executions.jsonl"
        self.executions: list[m.ExecutionRecord] = []
        # Kept as executions arrive, not recomputed from all of them on every fill.
        self.positions: dict[str, tuple[float, float]] = {}  # symbol -> (position, average cost)
        self.executed_ids: set[int] = set()
        self.cash = 1_000_000.0
        for r in read_log(self.exec_path):
            self._book(m.ExecutionRecord(**{**r, "instrument": INSTRUMENTS[r["instrument"]]}))
        self.log = AppendLog(self.exec_path)
        self.orders: dict[int, m.OrderRecord] = {}
        self.next_id = max((e.order_id for e in self.executions), default=0) + 1
        self.perm = itertools.count(max((e.perm_id for e in self.executions), default=1_000_000) + 1)
        self.exec_seq = itertools.count(len(self.executions) + 1)

    def _book(self, e: m.ExecutionRecord) -> None:
        self.executions.append(e)
        self.executed_ids.add(e.order_id)
        qty, avg = self.positions.get(e.instrument.symbol, (0.0, 0.0))
        signed = e.shares if e.side == "BOT" else -e.shares
        new = qty + signed
        # The average cost moves when the position grows; a reduction keeps it.
        avg = (avg * qty + e.price * signed) / new if new and (qty == 0 or (qty > 0) == (signed > 0)) else avg
        self.positions[e.instrument.symbol] = (new, avg if new else 0.0)
        self.cash -= signed * e.price

    def execute(self, o: m.OrderRecord, price: float) -> m.ExecutionRecord:
        t = time.gmtime()
        e = m.ExecutionRecord(exec_id=f"0000e{next(self.exec_seq):07d}.01.01", order_id=o.order_id,
                              perm_id=o.perm_id, client_id=o.client_id, instrument=o.instrument,
                              side="BOT" if o.action == "BUY" else "SLD", shares=o.qty, price=price,
                              time=time.strftime("%Y%m%d %H:%M:%S UTC", t), account=o.account, order_ref=o.order_ref)
        self.log.append({**asdict(e), "instrument": e.instrument.symbol})  # durable before anyone hears of it
        self._book(e)
        o.status, o.filled, o.avg_price = "Filled", o.qty, price
        return e


class Session:
    """One API client's connection."""

    def __init__(self, gw: Gateway, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.gw, self.reader, self.writer = gw, reader, writer
        self.version = 0
        self.client_id: int | None = None
        self.subscriptions: dict[int, str] = {}  # reqId -> symbol
        self.positions = False  # reqPositions subscribes to updates, until cancelPositions
        self.pacing = Pacing(gw.pacing_per_s)
        self.peer = writer.get_extra_info("peername")

    def send(self, fields: list[Field]) -> None:
        if self.writer.is_closing():
            return
        self.writer.write(encode(fields))
        if self.writer.transport.get_write_buffer_size() > MAX_BUFFERED:
            self.gw.count("slow_clients_dropped")
            self.writer.close()

    def error(self, req_id: int, code: int, detail: str = "") -> None:
        self.send(m.error(req_id, code, detail=detail))
        self.gw.count(f"error_{code}")

    async def run(self) -> None:
        splitter = Splitter()
        try:
            if not await self._handshake(splitter):
                return
            while data := await self.reader.read(65536):
                for fields in splitter.feed(data):
                    self.gw.handle(self, fields)
                    if self.pacing.persistent:
                        self.gw.count("pacing_disconnects")
                        return
                await self.writer.drain()
        except FrameError as e:
            self.error(m.NO_REQ, 320, detail=str(e))
            self.gw.count("framing_closed")
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.gw.sessions.discard(self)
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()

    async def _handshake(self, splitter: Splitter) -> bool:
        head = await self.reader.readexactly(len(PREFIX))
        if head != PREFIX:
            raise FrameError(f"not the TWS API: first bytes {head!r}")
        hello = None
        while hello is None:
            data = await self.reader.read(4096)
            if not data:
                return False
            msgs = splitter.feed(data)
            if msgs:
                hello = parse_hello(msgs[0][0] if msgs[0] else "")
                rest = msgs[1:]
        v = negotiate(hello)
        if v is None:
            # As TWS: nothing to agree on, so say which versions it speaks and close.
            self.error(m.NO_REQ, 503 if hello.max_version < SERVER_MIN else 321,
                       detail=f"client versions {hello.min_version}..{hello.max_version}, "
                              f"this gateway {SERVER_MIN}..{SERVER_MAX}")
            return False
        self.version = v
        self.send([v, time.strftime("%Y%m%d %H:%M:%S UTC", time.gmtime())])
        for fields in rest:
            self.gw.handle(self, fields)
        return True


class Gateway:
    def __init__(self, directory: Path, pacing_per_s: int = PACING_PER_S,
                 upstream: tuple[str, int] | None = None, keep_s: float = KEEP_S,
                 outbox: Outbox | None = None) -> None:
        self.dir = directory
        self.outbox = outbox
        self.upstream, self.keep_s = upstream, keep_s
        self.link: asyncio.StreamWriter | None = None
        self.lost_at: float | None = None
        self.pending: dict[int, m.OrderRecord] = {}  # perm id -> sent to the back end, not filled yet
        self.book = Book(directory)
        self.pacing_per_s = pacing_per_s
        self.sessions: set[Session] = set()
        self.port = 0
        self.prices = {s: 100.0 + 50 * i for i, s in enumerate(INSTRUMENTS)}
        self.counts: dict[str, int] = {"connections": 0, "orders": 0, "executed": len(self.book.executions),
                                       "ticks_sent": 0, "rate_limited": 0, "md_published": 0}
        self.handlers = {
            m.START_API: self.start_api, m.PLACE_ORDER: self.place_order, m.CANCEL_ORDER: self.cancel_order,
            m.REQ_IDS: self.req_ids, m.REQ_OPEN_ORDERS: self.open_orders, m.REQ_ALL_OPEN_ORDERS: self.open_orders,
            m.REQ_AUTO_OPEN_ORDERS: lambda s, f: None, m.REQ_EXECUTIONS: self.req_executions,
            m.REQ_POSITIONS: self.req_positions, m.CANCEL_POSITIONS: self.cancel_positions,
            m.REQ_ACCT_DATA: self.account_updates, m.REQ_ACCOUNT_UPDATES_MULTI: self.account_updates_multi,
            m.CANCEL_ACCOUNT_UPDATES_MULTI: lambda s, f: None, m.REQ_ACCOUNT_SUMMARY: self.account_summary,
            m.CANCEL_ACCOUNT_SUMMARY: lambda s, f: None, m.REQ_MKT_DATA: self.req_mkt_data,
            m.CANCEL_MKT_DATA: self.cancel_mkt_data, m.REQ_CURRENT_TIME: self.current_time,
            m.REQ_MANAGED_ACCTS: lambda s, f: s.send(m.managed_accounts([ACCOUNT])),
            m.REQ_MARKET_DATA_TYPE: lambda s, f: None,
            m.REQ_COMPLETED_ORDERS: lambda s, f: s.send(m.completed_orders_end()),
            m.REQ_CONTRACT_DATA: self.contract_data,
        }

    def count(self, key: str, n: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + n

    # -- dispatch ------------------------------------------------------------------------------
    def handle(self, s: Session, fields: list[str]) -> None:
        try:
            msg_id = int(fields[0])
        except (IndexError, ValueError):
            s.error(m.NO_REQ, 320, detail=f"message id {fields[:1]!r} is not a number")
            return
        if not s.pacing.admit(time.monotonic()):
            self.count("rate_limited")
            req = _int(fields, 1) if msg_id == m.PLACE_ORDER else m.NO_REQ
            s.error(req, 100, detail=f":max={self.pacing_per_s} rec={len(s.pacing.times) + s.pacing.refused}")
            return
        handler = self.handlers.get(msg_id)
        if handler is None:
            s.error(m.NO_REQ, 320, detail=f"unknown message id {msg_id}")
            return
        if s.client_id is None and msg_id != m.START_API:
            s.error(m.NO_REQ, 321, detail=f"message {msg_id} before START_API")
            return
        try:
            handler(s, fields)
        except BadRequest as e:
            s.error(m.NO_REQ, 321, detail=str(e))

    # -- start-up ------------------------------------------------------------------------------
    def start_api(self, s: Session, f: list[str]) -> None:
        client_id = _int(f, 2)
        if any(o.client_id == client_id for o in self.sessions if o is not s):
            s.error(m.NO_REQ, 326)
            s.writer.close()
            return
        s.client_id = client_id
        self.sessions.add(s)
        self.count("connections")
        s.send(m.managed_accounts([ACCOUNT]))
        s.send(m.next_valid_id(self.book.next_id))
        for code in m.FARMS_OK:
            s.error(m.NO_REQ, code)

    # -- orders --------------------------------------------------------------------------------
    def place_order(self, s: Session, f: list[str]) -> None:
        # placeOrder at 178: id, the contract's 12 fields (conId .. tradingClass, with
        # primaryExchange), secIdType, secId, action, totalQuantity, orderType, lmtPrice,
        # auxPrice, tif, ocaGroup, account, openClose, origin, orderRef, ...
        order_id = _int(f, 1)
        instrument = _instrument(f, 2, 3)
        action, qty, order_type = _str(f, 16), _float(f, 17), _str(f, 18)
        if action not in ("BUY", "SELL") or qty <= 0:
            raise BadRequest(f"order {order_id}: action {action!r} (BUY or SELL), quantity {qty} (> 0)")
        if order_id in self.book.orders or order_id in self.book.executed_ids:
            s.error(order_id, 103)
            return
        if instrument is None:
            s.error(order_id, 200)
            return
        lmt = f[19] if len(f) > 19 and f[19] else None
        held = self.upstream is not None and self.link is None
        o = m.OrderRecord(order_id=order_id, client_id=s.client_id or 0, perm_id=next(self.book.perm),
                          instrument=instrument, action=action, qty=qty, order_type=order_type,
                          lmt_price=float(lmt) if lmt else None, order_ref=_str(f, 26), account=ACCOUNT,
                          status="PreSubmitted" if held else "Submitted")
        self.book.orders[order_id] = o
        self.book.next_id = max(self.book.next_id, order_id + 1)
        self.count("orders")
        s.send(m.open_order(o))
        s.send(m.order_status(o))
        if self.upstream is None:  # standalone: filled here, at once
            self.filled(o, round(self.prices[instrument.symbol], 2))
            return
        # Held while the back end is unreachable, transmitted when it is back (see _link).
        self.pending[o.perm_id] = o
        self.count("held" if held else "transmitted")
        self._transmit(o)

    def _transmit(self, o: m.OrderRecord) -> None:
        if self.link is not None and not self.link.is_closing():
            self.link.write((json.dumps({"op": "order", "perm_id": o.perm_id, "symbol": o.instrument.symbol,
                                         "action": o.action, "qty": o.qty}) + "\n").encode())

    def filled(self, o: m.OrderRecord, price: float) -> None:
        """The execution, durable first, then to the order's client (if connected) and position
        subscribers; a client that is away finds it with reqExecutions."""
        e = self.book.execute(o, price)
        self.count("executed")
        if self.outbox is not None:
            self.outbox.put("fills", {"order_id": str(o.perm_id), "ref": o.order_ref, "symbol": o.instrument.symbol,
                                      "action": o.action, "qty": o.qty, "price": price, "t_ns": time.time_ns()})
        for s in [x for x in self.sessions if x.client_id == o.client_id]:
            s.send(m.exec_details(-1, e, o.filled, o.avg_price))
            s.send(m.commission_report(e.exec_id, COMMISSION))
            s.send(m.order_status(o, price))
            s.send(m.open_order(o))
        qty, avg = self.book.positions[o.instrument.symbol]
        for other in list(self.sessions):
            if other.positions:
                other.send(m.position(ACCOUNT, o.instrument, qty, avg))

    def cancel_order(self, s: Session, f: list[str]) -> None:
        order_id = _int(f, 2)
        o = self.book.orders.get(order_id)
        if o is None or o.status in ("Filled", "Cancelled") or o.perm_id in self.pending:
            s.error(order_id, 10147, detail=f"(order {order_id})")
            return
        o.status = "Cancelled"
        s.send(m.order_status(o))

    def req_ids(self, s: Session, f: list[str]) -> None:
        s.send(m.next_valid_id(self.book.next_id))

    def open_orders(self, s: Session, f: list[str]) -> None:
        mine = int(f[0]) == m.REQ_OPEN_ORDERS
        for o in self.book.orders.values():
            if o.status not in ("Filled", "Cancelled") and (not mine or o.client_id == s.client_id):
                s.send(m.open_order(o))
                s.send(m.order_status(o))
        s.send(m.open_order_end())

    def req_executions(self, s: Session, f: list[str]) -> None:
        # reqExecutions: version, reqId, then the filter: clientId, account, time, symbol, secType,
        # exchange, side. A client id of 0 and empty fields filter nothing.
        req_id, client, symbol = _int(f, 2), _int(f, 3, 0), _str(f, 6)
        cum: dict[int, float] = {}
        for e in self.book.executions:
            cum[e.order_id] = cum.get(e.order_id, 0.0) + e.shares
            if (client and e.client_id != client) or (symbol and e.instrument.symbol != symbol):
                continue
            s.send(m.exec_details(req_id, e, cum[e.order_id], e.price))
            s.send(m.commission_report(e.exec_id, COMMISSION))
        s.send(m.exec_details_end(req_id))

    def req_positions(self, s: Session, f: list[str]) -> None:
        s.positions = True
        for symbol, (qty, avg) in self.book.positions.items():
            s.send(m.position(ACCOUNT, INSTRUMENTS[symbol], qty, avg))
        s.send(m.position_end())

    def cancel_positions(self, s: Session, f: list[str]) -> None:
        s.positions = False

    def _account_values(self) -> list[tuple[str, str]]:
        cash = self.book.cash
        value = sum(q * self.prices[sym] for sym, (q, _) in self.book.positions.items())
        return [("TotalCashValue", f"{cash:.2f}"), ("NetLiquidation", f"{cash + value:.2f}"),
                ("BuyingPower", f"{4 * (cash + value):.2f}")]

    def account_updates(self, s: Session, f: list[str]) -> None:
        if _str(f, 2) != "1":  # unsubscribe
            return
        for k, v in self._account_values():
            s.send(m.account_value(k, v, "USD", ACCOUNT))
        s.send(m.account_time(time.strftime("%H:%M", time.gmtime())))
        s.send(m.account_download_end(ACCOUNT))

    def account_updates_multi(self, s: Session, f: list[str]) -> None:
        req_id = _int(f, 2)
        for k, v in self._account_values():
            s.send(m.account_update_multi(req_id, ACCOUNT, k, v, "USD"))
        s.send(m.account_update_multi_end(req_id))

    def account_summary(self, s: Session, f: list[str]) -> None:
        req_id, tags = _int(f, 2), set(_str(f, 4).split(","))
        for k, v in self._account_values():
            if k in tags or "All" in tags:
                s.send(m.account_summary(req_id, ACCOUNT, k, v, "USD"))
        s.send(m.account_summary_end(req_id))

    def current_time(self, s: Session, f: list[str]) -> None:
        s.send(m.current_time(int(time.time())))

    def _requested(self, s: Session, f: list[str]) -> tuple[int, m.Instrument | None]:
        """reqContractDetails and reqMktData: version, reqId, the contract's 12 fields, ...; an
        unknown contract is answered with 200 (None)."""
        req_id = _int(f, 2)
        instrument = _instrument(f, 3, 4)
        if instrument is None:
            s.error(req_id, 200)
        return req_id, instrument

    def contract_data(self, s: Session, f: list[str]) -> None:
        req_id, instrument = self._requested(s, f)
        if instrument is None:
            return
        s.send(m.contract_details(req_id, instrument))
        s.send(m.contract_details_end(req_id))

    # -- market data ---------------------------------------------------------------------------
    def req_mkt_data(self, s: Session, f: list[str]) -> None:
        req_id, instrument = self._requested(s, f)
        if instrument is None:
            return
        s.subscriptions[req_id] = instrument.symbol
        s.send(m.market_data_type(req_id))
        self._tick_one(s, req_id, instrument.symbol)

    def cancel_mkt_data(self, s: Session, f: list[str]) -> None:
        req_id = _int(f, 2)
        if s.subscriptions.pop(req_id, None) is None:
            s.error(req_id, 300)

    def _tick_one(self, s: Session, req_id: int, symbol: str) -> None:
        p = self.prices[symbol]
        s.send(m.tick_price(req_id, m.BID, round(p - 0.01, 2), 100))
        s.send(m.tick_price(req_id, m.ASK, round(p + 0.01, 2), 100))
        s.send(m.tick_price(req_id, m.LAST, round(p, 2), 10))
        self.count("ticks_sent")

    def _published(self, symbol: str) -> None:
        """A price move, to the broker's market-data stream with its sequence and time: the
        consumer counts gaps by the sequence and the plane's latency by the time."""
        self.count("md_published")
        if self.outbox is not None:
            self.outbox.put("md", {"seq": self.counts["md_published"], "symbol": symbol,
                                   "price": round(self.prices[symbol], 4), "t_ns": time.time_ns()})

    async def ticker(self) -> None:
        while True:
            for sym in self.prices:
                self.prices[sym] *= 1 + random.gauss(0, 0.0005)
                self._published(sym)
            for s in list(self.sessions):
                for req_id, sym in list(s.subscriptions.items()):
                    self._tick_one(s, req_id, sym)
            await asyncio.sleep(TICK_S)

    # -- the link to IB's back end -------------------------------------------------------------
    def _broadcast_error(self, code: int) -> None:
        for s in list(self.sessions):
            s.error(m.NO_REQ, code)

    def _lost(self) -> None:
        self.link = None
        self.lost_at = time.monotonic()
        self.count("link_lost")
        self._broadcast_error(1100)

    def _restored(self) -> None:
        if self.lost_at is None:
            return  # the first connection: nothing was lost
        kept = time.monotonic() - self.lost_at <= self.keep_s
        if not kept:  # as IB after a long outage: market-data requests must be made again
            for s in self.sessions:
                s.subscriptions.clear()
        self.lost_at = None
        self._broadcast_error(1102 if kept else 1101)
        self.count("link_restored")

    def _from_backend(self, msg: dict[str, Any]) -> None:
        op = msg.get("op")
        if op == "tick" and msg.get("symbol") in self.prices:
            self.prices[msg["symbol"]] = float(msg["price"])
            self._published(msg["symbol"])
            for s in list(self.sessions):
                for req_id, sym in list(s.subscriptions.items()):
                    if sym == msg["symbol"]:
                        self._tick_one(s, req_id, sym)
        elif op == "fill" and (o := self.pending.pop(int(msg["perm_id"]), None)) is not None:
            self.filled(o, float(msg["price"]))

    async def _link(self) -> None:
        """One connection to the back end at a time; lost when it closes or falls silent
        (a partition closes nothing), then retried until it is back."""
        assert self.upstream is not None
        while True:
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(*self.upstream), LINK_SILENT_S)
            except (OSError, TimeoutError):
                await asyncio.sleep(RETRY_S)
                continue
            writer.write(b'{"op":"login"}\n')
            try:
                # Up when the back end speaks, not when TCP connects: the login, as it were.
                first = await asyncio.wait_for(reader.readline(), LINK_SILENT_S)
            except (OSError, TimeoutError):
                first = b""
            if not first:
                writer.close()
                await asyncio.sleep(RETRY_S)
                continue
            self.link = writer
            self.count("link_up")
            self._restored()
            for o in list(self.pending.values()):  # held ones, and any the break left unanswered
                self._transmit(o)
            try:
                line = first
                while line:
                    with contextlib.suppress(ValueError, KeyError, TypeError):
                        self._from_backend(json.loads(line))
                    line = await asyncio.wait_for(reader.readline(), LINK_SILENT_S)
            except (OSError, TimeoutError):
                pass
            finally:
                writer.close()
                self._lost()

    def save_stats(self) -> None:
        outbox = self.outbox.counts if self.outbox is not None else {}
        write_json(self.dir / "stats.json", {**self.counts, **outbox, "clients": len(self.sessions)})

    async def stats_loop(self) -> None:
        """stats.json every STATS_S, not on each event: fills and ticks are the hot path."""
        try:
            while True:
                self.save_stats()
                await asyncio.sleep(STATS_S)
        finally:
            self.save_stats()  # the last counts, when the gateway stops

    async def serve(self, host: str, port: int, ready: asyncio.Event | None = None) -> None:
        clients: set[asyncio.Task[None]] = set()

        async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            clients.add(task)
            try:
                await Session(self, reader, writer).run()
            finally:
                clients.discard(task)
                self.save_stats()

        server = await asyncio.start_server(client, host, port)
        self.port = server.sockets[0].getsockname()[1]  # the one bound, when asked for port 0
        tick = asyncio.create_task(self.ticker() if self.upstream is None else self._link())
        stats = asyncio.create_task(self.stats_loop())
        if ready is not None:
            ready.set()
        try:
            async with server:
                await server.serve_forever()
        finally:
            tick.cancel()
            stats.cancel()
            for t in list(clients):  # every connection closed before the loop goes
                t.cancel()
            await asyncio.gather(tick, stats, *clients, return_exceptions=True)


def _str(f: list[str], i: int) -> str:
    if i >= len(f):
        raise BadRequest(f"message {f[0]}: field {i} missing ({len(f)} fields)")
    return f[i]


def _int(f: list[str], i: int, default: int | None = None) -> int:
    v = f[i] if i < len(f) else None
    if not v and default is not None:
        return default
    try:
        return int(_str(f, i))
    except ValueError:
        raise BadRequest(f"message {f[0]}: field {i} {f[i]!r} is not an integer") from None


def _float(f: list[str], i: int) -> float:
    try:
        return float(_str(f, i))
    except ValueError:
        raise BadRequest(f"message {f[0]}: field {i} {f[i]!r} is not a number") from None


def _order_id_or_none(f: list[str]) -> int:
    """The order id error 100 names, when the refused request is an order that has one."""
    return int(f[1]) if len(f) > 1 and f[1].lstrip("-").isdigit() else m.NO_REQ


def _instrument(f: list[str], con_id_at: int, symbol_at: int) -> m.Instrument | None:
    con_id = _int(f, con_id_at, 0)
    return BY_CON_ID.get(con_id) if con_id else INSTRUMENTS.get(_str(f, symbol_at))


def _host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: expected HOST:PORT")
    return host, int(port)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bind", required=True, help="address to listen on")
    ap.add_argument("--port", type=int, default=4002, help="API port (default %(default)s, IB Gateway's paper port)")
    ap.add_argument("--dir", type=Path, required=True, help="executions.jsonl and stats.json go here")
    ap.add_argument("--config", type=Path, default=LAB_CONFIG,
                    help="resilience config: rate_limit.api_pacing_per_s is the pacing (default: the lab's)")
    ap.add_argument("--pacing", type=int, metavar="N",
                    help="API messages per second per client before error 100 (default: from --config)")
    ap.add_argument("--upstream", type=_host_port, metavar="HOST:PORT",
                    help="IB's back end (the lab's ibserver, port 4001); without it orders fill here, at once")
    ap.add_argument("--keep-s", type=float, default=KEEP_S, metavar="S",
                    help="a link restored within S keeps subscriptions (1102), later loses them (1101) "
                         "(default %(default)s)")
    ap.add_argument("--bus", metavar="HOST:PORT",
                    help="the broker (Redis, port 6379): fills and market data are published there too")
    args = ap.parse_args(argv)
    pacing = args.pacing or resilience.load(args.config).api_pacing_per_s
    outbox, stop = None, threading.Event()
    if args.bus:
        outbox = Outbox(connect(args.bus))
        # Its own thread: the API and the market never wait for a slow or absent broker.
        threading.Thread(target=outbox.run, args=(stop,), name="publisher", daemon=True).start()
    gw = Gateway(args.dir, pacing, args.upstream, args.keep_s, outbox)
    gw.save_stats()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(gw.serve(args.bind, args.port))
    stop.set()


if __name__ == "__main__":
    main()

