"""The lab's IB Gateway speaks the TWS API: IB's own clients (ib_async, ibapi) connect, sync,
trade and stream against it on 127.0.0.1; malformed requests get IB's errors and hurt no other
client; pacing refuses the excess with error 100 and drops a client that goes on."""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from faultline.controller.suite.ibkr import run_until
from faultline.examples.trading.tws import messages as m
from faultline.examples.trading.tws.gateway import Gateway
from faultline.examples.trading.tws.ibserver import IbServer
from faultline.examples.trading.tws.wire import (
    FrameError,
    Hello,
    Splitter,
    encode,
    negotiate,
    parse_hello,
)
from testkit.tws import Raw, Running, silence, speak

ib_async = pytest.importorskip("ib_async", reason="ib-async is a dev dependency (pip install -e .[dev])")


# -- the wire, alone -------------------------------------------------------------------------
def test_frames_round_trip_and_split_anywhere():
    data = encode([3, 17, "AAPL", 1.5, True, None]) + encode([49, 1])
    for cut in range(len(data)):
        sp = Splitter()
        got = sp.feed(data[:cut]) + sp.feed(data[cut:])
        assert got == [["3", "17", "AAPL", "1.5", "1", ""], ["49", "1"]]


@pytest.mark.parametrize("n", [0, (1 << 20) + 1])
def test_a_broken_length_prefix_is_a_frame_error(n):
    with pytest.raises(FrameError, match=f"bad message length {n}"):
        Splitter().feed(struct.pack(">I", n) + b"x")


def test_the_version_is_the_highest_bothspeak():
    assert negotiate(parse_hello("v157..178")) == 178          # ib_async 2.x
    assert negotiate(parse_hello("v100..226")) == 178          # ibapi-stable 10.50
    assert negotiate(parse_hello("v100..160 +PACEAPI")) == 160
    assert negotiate(Hello(100, 150, "")) is None               # too old for this gateway
    with pytest.raises(FrameError, match="bad handshake"):
        parse_hello("hello")


# -- the gateway on 127.0.0.1 ----------------------------------------------------------------
@pytest.fixture
def gateway(tmp_path) -> Iterator[Running]:
    r = Running(tmp_path / "gw")
    yield r
    r.stop()


def connect(port: int, client_id: int, **kw) -> ib_async.IB:
    ib = ib_async.IB()
    ib.errors = []  # type: ignore[attr-defined]
    ib.errorEvent += lambda req, code, text, contract: ib.errors.append((code, text))
    ib.connect("127.0.0.1", port, clientId=client_id, timeout=4, **kw)
    return ib


def test_ib_async_connects_and_syncs_in_under_a_second_with_no_timeout(gateway, caplog):
    caplog.set_level(logging.INFO, logger="ib_async")
    t = time.monotonic()
    ib = connect(gateway.port, 1)
    took = time.monotonic() - t
    try:
        assert took < 1.0, took
        assert ib.isConnected() and ib.client.serverVersion() == 178
        assert ib.managedAccounts() == ["DU1234567"]
        assert not [r for r in caplog.records if "timed out" in r.getMessage()]
        assert any("Synchronization complete" in r.getMessage() for r in caplog.records)
        assert [c for c, _ in ib.errors] == [2104, 2106, 2158]  # the farm notices, as TWS sends them
        assert ib.reqCurrentTime().year >= 2025
    finally:
        ib.disconnect()


def test_ibapi_negotiates_down_and_gets_next_valid_id_and_a_tick(gateway):
    from ibapi.client import EClient
    from ibapi.contract import Contract
    from ibapi.wrapper import EWrapper

    got: dict[str, object] = {}
    valid, ticked = threading.Event(), threading.Event()

    class App(EWrapper, EClient):
        def __init__(self) -> None:
            EClient.__init__(self, self)

        def nextValidId(self, orderId: int) -> None:
            got["next_id"] = orderId
            valid.set()

        def tickPrice(self, reqId, tickType, price, attrib) -> None:
            got["tick"] = (reqId, tickType, price)
            ticked.set()

    app = App()
    app.connect("127.0.0.1", gateway.port, clientId=2)
    reader = threading.Thread(target=app.run, daemon=True)
    reader.start()
    try:
        assert app.serverVersion() == 178  # its 100..226 met the gateway's 157..178 at the top
        assert valid.wait(5) and got["next_id"] == 1
        c = Contract()
        c.symbol, c.secType, c.exchange, c.currency = "MSFT", "STK", "SMART", "USD"
        app.reqMktData(9, c, "", False, False, [])
        assert ticked.wait(5)
        assert got["tick"][0] == 9 and got["tick"][2] > 0
    finally:
        app.disconnect()
        reader.join(5)


def test_an_order_fills_once_and_is_there_after_a_reconnect_and_a_restart(tmp_path):
    r = Running(tmp_path / "gw")
    ib = connect(r.port, 5)
    try:
        [aapl] = ib.qualifyContracts(ib_async.Stock("AAPL", "SMART", "USD"))
        trade = ib.placeOrder(aapl, ib_async.MarketOrder("BUY", 10, orderRef="ref-1"))
        run_until(ib, trade.isDone, 5, "fill")
        assert trade.orderStatus.status == "Filled" and trade.orderStatus.filled == 10
        assert [f.execution.shares for f in trade.fills] == [10]
        assert run_until(ib, ib.positions, 5, "position update")[0].position == 10
        # The same id again (a careless replay, below ib_async's own guard): refused, not executed twice.
        ib.client.placeOrder(trade.order.orderId, aapl, ib_async.MarketOrder("BUY", 10, orderRef="ref-1"))
        run_until(ib, lambda: 103 in [c for c, _ in ib.errors], 5, "error 103")
        ib.disconnect()
        ib = connect(r.port, 5)
        assert [(f.execution.orderRef, f.execution.shares) for f in ib.reqExecutions()] == [("ref-1", 10)]
    finally:
        ib.disconnect()
        r.stop()
    # A restarted gateway read its executions back: the fill, the position, the next id.
    r = Running(tmp_path / "gw")
    ib = connect(r.port, 5)
    try:
        assert [f.execution.orderRef for f in ib.reqExecutions()] == ["ref-1"]
        assert [(p.contract.symbol, p.position) for p in ib.positions()] == [("AAPL", 10)]
        assert r.gw.book.next_id == trade.order.orderId + 1
    finally:
        ib.disconnect()
        r.stop()


def test_malformed_requests_get_ib_errors_and_leave_other_clients_streaming(gateway):
    ib = connect(gateway.port, 1)
    try:
        ticker = ib.reqMktData(ib_async.Stock("SPY", "SMART", "USD", conId=756733))
        raw = Raw(gateway.port, 2)
        raw.send([777, 1])                                   # unknown message id
        assert raw.until(lambda f: f[:1] == ["4"] and f[3] == "320", "error 320")[4].endswith("unknown message id 777")
        raw.send([m.PLACE_ORDER, 42, 265598])                # truncated fields
        err = raw.until(lambda f: f[:1] == ["4"] and f[3] == "321", "error 321")
        assert "field" in err[4] and "missing" in err[4]
        raw.send([m.REQ_MKT_DATA, 11, 5, 0, "NOPE", "STK"])  # a contract IB does not know
        err = raw.until(lambda f: f[:1] == ["4"] and f[3] == "200", "error 200")
        assert err[2] == "5" and err[4] == "No security definition has been found for the request"
        raw.send([m.REQ_CURRENT_TIME, 1])                    # still connected, still answered
        assert raw.until(lambda f: f[0] == "49", "currentTime")
        raw.sock.sendall(struct.pack(">I", 0xFFFFFFF0) + b"garbage")  # framing broken: closed
        assert raw.closed()
        run_until(ib, lambda: ticker.time, 5, "first tick")
        seen = ticker.time
        run_until(ib, lambda: ticker.time != seen, 5, "a tick after the bad client was closed")
        assert ib.isConnected()
        assert gateway.gw.counts["framing_closed"] == 1
    finally:
        ib.disconnect()


def test_pacing_refuses_the_excess_with_error_100_and_drops_a_client_that_keeps_on_for_2_s(tmp_path):
    r = Running(tmp_path / "gw", pacing=50)
    try:
        raw = Raw(r.port, 3)
        raw.until(lambda f: f[0] == "9", "nextValidId")
        raw.sock.sendall(b"".join(encode([m.REQ_CURRENT_TIME, 1]) for _ in range(60)))
        answered, refused = 0, []
        while answered + len(refused) < 59:  # START_API was the first of this second's 50
            f = raw.next()
            answered += f[0] == "49"
            if f[0] == "4" and f[3] == "100":
                refused.append(f[4])
        assert (answered, len(refused)) == (49, 10)
        assert refused[0].startswith("Max rate of messages per second has been exceeded:max=50 rec=")
        assert r.gw.counts.get("pacing_disconnects", 0) == 0  # one burst is refused, not punished
        # Going on past the limit (60 more every 100 ms, ignoring the 100s): disconnected after 2 s.
        t0 = time.monotonic()
        with pytest.raises(OSError):
            while time.monotonic() - t0 < 10:
                raw.sock.sendall(b"".join(encode([m.REQ_CURRENT_TIME, 1]) for _ in range(60)))
                raw.sock.settimeout(0.1)
                with contextlib.suppress(TimeoutError):
                    while True:  # read what came (answers, 100s) until 100 ms of quiet or the close
                        raw.next()
        assert 2.0 <= time.monotonic() - t0 < 6.0  # after PERSIST_S, not at the first refusal
        assert r.gw.counts["pacing_disconnects"] == 1
        # A client within the limit is served as before.
        ib = connect(r.port, 4)
        assert ib.reqCurrentTime()
        ib.disconnect()
    finally:
        r.stop()


def test_a_client_id_in_use_is_refused_with_326(gateway):
    ib = connect(gateway.port, 8)
    try:
        raw = Raw(gateway.port, 8)
        err = raw.until(lambda f: f[0] == "4", "an error")
        assert err[3] == "326" and "client id is already in use" in err[4]
        assert raw.closed()
        assert ib.isConnected()
    finally:
        ib.disconnect()


# -- IB's back end behind the gateway: 1100, then 1102 or 1101 -------------------------------
def _with_backend(tmp_path: Path, keep_s: float) -> tuple[Running, IbServer, Gateway]:
    r = Running()
    ibs = r.start(IbServer(tmp_path / "ibserver"))
    gw = r.start(Gateway(tmp_path / "gw", upstream=("127.0.0.1", ibs.port), keep_s=keep_s))
    return r, ibs, gw


def codes(ib: ib_async.IB) -> list[int]:
    return [c for c, _ in ib.errors if c in (1100, 1101, 1102)]


def test_a_short_outage_1100_then_1102_held_order_filled_once_ticks_resume(tmp_path):
    r, ibs, gw = _with_backend(tmp_path, keep_s=5)
    ib = connect(gw.port, 1)
    try:
        run_until(ib, lambda: gw.link is not None, 5, "the gateway's link to the back end")
        ticker = ib.reqMktData(ib_async.Stock("AAPL", "SMART", "USD", conId=265598))
        run_until(ib, lambda: ticker.last == ticker.last and ticker.last > 0, 5, "a tick from the back end")
        first = ib.placeOrder(ticker.contract, ib_async.MarketOrder("BUY", 5, orderRef="a"))
        run_until(ib, first.isDone, 5, "a fill from the back end")
        assert ibs.counts["executed"] == 1
        t0 = time.monotonic()
        silence(r, ibs)
        run_until(ib, lambda: 1100 in codes(ib), 5, "error 1100")
        assert time.monotonic() - t0 < 1.0, "1100 within a second of the link going silent"
        assert ib.errors[-1][1] == "Connectivity between IB and Trader Workstation has been lost."
        held = ib.placeOrder(ticker.contract, ib_async.MarketOrder("SELL", 5, orderRef="b"))
        run_until(ib, lambda: held.orderStatus.status == "PreSubmitted", 5, "the order held")
        speak(r, ibs)
        run_until(ib, lambda: 1102 in codes(ib), 5, "error 1102")
        run_until(ib, held.isDone, 5, "the held order filled after the restore")
        assert codes(ib) == [1100, 1102]
        assert [f.execution.shares for f in held.fills] == [5] and ibs.counts["executed"] == 2
        before = ticker.time
        run_until(ib, lambda: ticker.time != before, 5, "ticks without resubscribing (1102: kept)")
    finally:
        ib.disconnect()
        r.stop()


def test_a_long_outage_1101_drops_subscriptions_until_the_client_resubscribes(tmp_path):
    r, ibs, gw = _with_backend(tmp_path, keep_s=0.2)
    ib = connect(gw.port, 1)
    try:
        run_until(ib, lambda: gw.link is not None, 5, "the gateway's link to the back end")
        contract = ib_async.Stock("MSFT", "SMART", "USD", conId=272093)
        ticker = ib.reqMktData(contract)
        run_until(ib, lambda: ticker.last == ticker.last and ticker.last > 0, 5, "a tick")
        silence(r, ibs)
        run_until(ib, lambda: 1100 in codes(ib), 5, "error 1100")
        run_until(ib, lambda: gw.lost_at is not None and time.monotonic() - gw.lost_at > 0.2, 5, "a long outage")
        speak(r, ibs)
        run_until(ib, lambda: 1101 in codes(ib), 5, "error 1101")
        assert ib.errors[-1][1] == "Connectivity between IB and Trader Workstation has been restored - data lost."
        sent = gw.counts["ticks_sent"]
        run_until(ib, lambda: gw.link is not None and ibs.counts["links"] == 2, 5, "the link back")
        assert gw.counts["ticks_sent"] == sent, "no ticks for the dropped subscription"
        ib.cancelMktData(contract)
        again = ib.reqMktData(contract)
        run_until(ib, lambda: gw.counts["ticks_sent"] > sent + 3 and again.last > 0, 5, "ticks after resubscribing")
    finally:
        ib.disconnect()
        r.stop()


def test_a_health_check_connecting_to_the_back_end_does_not_cut_the_gateway_off(tmp_path):
    """Only a gateway that logs in takes the back end's one link: a TCP probe of port 4001 (the
    scenarios' steady-state check) once replaced the gateway's link, and every client got 1100."""
    r, ibs, gw = _with_backend(tmp_path, keep_s=5)
    ib = connect(gw.port, 1)
    try:
        run_until(ib, lambda: gw.link is not None and ibs.counts["links"] == 1, 5, "the gateway's link")
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", ibs.port), timeout=2):
                pass  # connect and leave, as a port check does
        with socket.create_connection(("127.0.0.1", ibs.port), timeout=2) as s:
            s.sendall(b'{"op": "order", "perm_id": 1, "symbol": "AAPL", "action": "BUY", "qty": 1}\n')
            assert s.recv(100) == b""  # not logged in: closed, nothing executed
        ib.reqCurrentTime()  # a round trip, so a 1100 would have arrived
        assert codes(ib) == [] and ibs.counts["links"] == 1 and ibs.counts["executed"] == 0
        assert gw.counts.get("link_lost", 0) == 0
    finally:
        ib.disconnect()
        r.stop()
