"""The ib_async trader against the lab gateway and ibserver on 127.0.0.1: through a back-end
outage (1100, orders held, 1102) and its own kill and restart (reconciled with reqExecutions
and reqOpenOrders), every order it meant is executed exactly once; after 1101 it resubscribes."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from faultline.controller.suite.ibkr import run_until
from faultline.examples.trading.tws.gateway import Gateway
from faultline.examples.trading.tws.ibserver import IbServer
from faultline.examples.trading.wire import read_log
from testkit.netns import wait_until
from testkit.tws import Running, codes, exactly_once, silence, speak, stats

ib_async = pytest.importorskip("ib_async", reason="ib-async is a dev dependency (pip install -e .[dev])")


def trader(port: int, d: Path, rate: int = 20) -> subprocess.Popen:
    d.mkdir(parents=True, exist_ok=True)
    with (d / "trader.log").open("a") as log:  # ib_async logs every IB error: a pipe could fill
        return subprocess.Popen([sys.executable, "-m", "faultline.examples.trading.tws.trader", "--connect",
                                 f"127.0.0.1:{port}", "--dir", str(d), "--rate", str(rate)],
                                stdout=log, stderr=subprocess.STDOUT)


@pytest.fixture
def lab(tmp_path):
    r = Running()
    ibs = r.start(IbServer(tmp_path / "ibserver"))
    gw = r.start(Gateway(tmp_path / "gw", upstream=("127.0.0.1", ibs.port), keep_s=5))
    yield r, ibs, gw, tmp_path
    r.stop()


def test_outage_then_kill_and_restart_every_order_once(lab):
    r, ibs, gw, tmp = lab
    d = tmp / "trader"
    p = trader(gw.port, d)
    try:
        wait_until(lambda: stats(d).get("reconciled") and stats(d).get("orders", 0) >= 10, 15, "trading")
        silence(r, ibs)
        wait_until(lambda: gw.counts.get("held", 0) >= 5, 10, "orders held during the outage")
        speak(r, ibs)
        wait_until(lambda: codes(d) == [1100, 1102], 10, "1100 then 1102 in the trader's error log")
        held = gw.counts["held"]
        wait_until(lambda: not gw.pending and gw.counts["executed"] >= stats(d).get("orders", 0) - 2, 10,
                   "the held orders filled")
        assert held >= 5
        p.send_signal(signal.SIGKILL)  # no goodbye: restart from the log, reconcile with IB
        p.wait(10)
        before, md_before = len(read_log(d / "orders.jsonl")), len(read_log(d / "md.jsonl"))
        p = trader(gw.port, d)
        wait_until(lambda: stats(d).get("connects") == 1 and stats(d).get("reconciled")
                   and len(read_log(d / "orders.jsonl")) > before + 20, 15, "trading again after the restart")
        # streaming after all that: a whole second of the restarted trader's with ticks in it
        wait_until(lambda: any(sum(x["ticks"].values()) for x in read_log(d / "md.jsonl")[md_before:]), 5,
                   "ticks counted by the restarted trader")
        p.send_signal(signal.SIGTERM)
        assert p.wait(10) == 0, (d / "trader.log").read_text()[-2000:]
        wait_until(lambda: not gw.pending, 5, "nothing in flight")
        twice, never = exactly_once(tmp / "gw", d)
        assert twice == [] and never == [], (twice, never)
        # IB's position messages agreed with the trader's own fills every time they were compared
        assert stats(d)["position_checks"] > 0 and stats(d)["position_mismatches"] == 0, stats(d)
    finally:
        p.kill()
        p.wait(10)


def test_after_1101_the_trader_resubscribes_and_ticks_come_back(tmp_path):
    r = Running()
    ibs = r.start(IbServer(tmp_path / "ibserver"))
    gw = r.start(Gateway(tmp_path / "gw", upstream=("127.0.0.1", ibs.port), keep_s=0.2))
    d = tmp_path / "trader"
    p = trader(gw.port, d, rate=0)
    try:
        wait_until(lambda: stats(d).get("reconciled") and gw.counts.get("ticks_sent", 0) > 10, 15, "ticks")
        silence(r, ibs)
        wait_until(lambda: codes(d) == [1100], 5, "1100")
        wait_until(lambda: gw.lost_at is not None, 5, "the link lost")
        wait_until(lambda: time.monotonic() - gw.lost_at > 0.3, 5, "an outage longer than keep_s")
        speak(r, ibs)
        wait_until(lambda: codes(d) == [1100, 1101], 5, "1101")
        sent = gw.counts["ticks_sent"]
        wait_until(lambda: stats(d).get("resubscribed") == 1 and gw.counts["ticks_sent"] > sent + 10, 5,
                   "ticks again, after resubscribing")
    finally:
        p.kill()
        p.wait(10)
        r.stop()


def test_a_position_the_trader_did_not_make_is_reported(tmp_path):
    """Another client trades the same account: IB's positions no longer match the trader's
    own fills, and the trader says so (the comparison is not blind)."""
    r = Running()
    ibs = r.start(IbServer(tmp_path / "ibserver"))
    gw = r.start(Gateway(tmp_path / "gw", upstream=("127.0.0.1", ibs.port)))
    d = tmp_path / "trader"
    p = trader(gw.port, d, rate=0)
    other = ib_async.IB()
    try:
        wait_until(lambda: stats(d).get("position_checks", 0) >= 1, 15, "positions compared")
        assert stats(d)["position_mismatches"] == 0
        other.connect("127.0.0.1", gw.port, clientId=2, timeout=5)
        trade = other.placeOrder(ib_async.Stock("AAPL", "SMART", "USD", conId=265598),
                                 ib_async.MarketOrder("BUY", 7, orderRef="not-the-traders"))
        run_until(other, trade.isDone, 5, "the other client's fill")
        wait_until(lambda: stats(d).get("position_mismatches", 0) >= 1, 5, "the difference reported")
        assert any("positions differ" in e["text"] and "AAPL" in e["text"] for e in read_log(d / "errors.jsonl"))
    finally:
        other.disconnect()
        p.kill()
        p.wait(10)
        r.stop()
