"""WatchHub and FlowTable on a fake probe: fan-out, attach/detach, losses reported, summaries."""

from __future__ import annotations

import time
from ipaddress import ip_address

import pytest

from faultline.agent.domain import watch as watch_mod
from faultline.agent.domain.clock import Stamp, measure_offset, now
from faultline.agent.domain.errors import Exhausted, FailedPrecondition, InvalidArgument
from faultline.agent.domain.events import EventKind, Flow, Lost, TcpEvent, Watching, watch_filter
from faultline.agent.domain.flows import FlowTable, percentile
from faultline.agent.domain.spec import Counters
from faultline.agent.domain.watch import WatchHub
from tests.fakes import FakeProbe

FLOW = Flow("10.77.0.1", 40000, "10.77.0.2", 4002)


def ev(kind: EventKind = EventKind.STATE, flow: Flow = FLOW, sock: int = 1, new: int = 1, **kw) -> TcpEvent:
    return TcpEvent(kind, now(), flow, sock, 2, new, **kw)


def drain(w, n: int, timeout_s: float = 5) -> list:
    out, deadline = [], time.monotonic() + timeout_s
    while len(out) < n and time.monotonic() < deadline:
        item = w.next(0.05)
        if item is not None:
            out.append(item)
    return out


@pytest.fixture
def hub():
    probe = FakeProbe(kinds=[EventKind.STATE, EventKind.RETRANSMIT, EventKind.RTT])
    counters: list[tuple[str, Counters]] = []
    h = WatchHub(probe, "", lambda: [ip_address("10.77.0.1")], lambda: counters)
    h.counters = counters  # type: ignore[attr-defined]
    yield h
    h.close()


def test_each_watcher_gets_what_its_slot_matched(hub):
    a = hub.open(watch_filter([EventKind.STATE], [4002], [], 100))
    b = hub.open(watch_filter([EventKind.STATE, EventKind.RETRANSMIT], [], ["10.77.0.0/24"], 100))
    assert isinstance(drain(a, 1)[0], Watching) and isinstance(drain(b, 1)[0], Watching)
    other = Flow("10.77.0.1", 40001, "10.77.0.3", 5000)
    hub.probe.push(ev(), ev(EventKind.RETRANSMIT), ev(flow=other, sock=2))
    got_a, got_b = drain(a, 1), drain(b, 3)
    assert [(e.kind, e.flow) for e in got_a] == [(EventKind.STATE, FLOW)]
    assert [(e.kind, e.flow) for e in got_b] == [(EventKind.STATE, FLOW), (EventKind.RETRANSMIT, FLOW),
                                                 (EventKind.STATE, other)]
    assert a.next(0.1) is None  # nothing else reached a


def test_probes_follow_the_watchers_and_detach_with_the_last(hub):
    a = hub.open(watch_filter([EventKind.STATE], [], [], 100))
    b = hub.open(watch_filter([EventKind.RTT], [], [], 250))
    assert hub.probe.attached() == {EventKind.STATE, EventKind.RTT} and hub.probe.rtt_interval_ns == 250_000_000
    hub.close_watcher(b)
    assert hub.probe.attached() == {EventKind.STATE}
    hub.close_watcher(a)
    assert hub.probe.attached() == frozenset() and hub.watching() == 0
    assert a.closed.is_set() and a.next(0.01) is not None  # its Watching notice, then nothing
    assert a.next(0.01) is None


def test_a_kind_this_kernel_cannot_observe_is_refused(hub):
    with pytest.raises(FailedPrecondition, match="RESET_SENT"):
        hub.open(watch_filter([EventKind.RESET_SENT], [], [], 100))


def test_no_probe_program_means_failed_precondition():
    h = WatchHub(None, "bcc (python3-bpfcc) is not importable", lambda: [], lambda: [])
    with pytest.raises(FailedPrecondition, match="bcc"):
        h.open(watch_filter([], [], [], 100))


def test_slots_run_out_with_a_clear_error(hub):
    watchers = [hub.open(watch_filter([], [], [], 100)) for _ in range(hub.probe.slots)]
    with pytest.raises(Exhausted, match=f"all {hub.probe.slots} watch slots"):
        hub.open(watch_filter([], [], [], 100))
    for w in watchers:
        hub.close_watcher(w)


def test_a_slow_watcher_is_told_how_many_events_it_missed(hub, monkeypatch):
    monkeypatch.setattr(watch_mod, "QUEUE_SIZE", 3)
    w = hub.open(watch_filter([], [], [], 100))
    drain(w, 1)
    hub.probe.push(*[ev(sock=i) for i in range(10)])
    assert hub.probe.polled.wait(5)
    time.sleep(0.2)
    lost = w.next(0.1)
    assert isinstance(lost, Lost) and lost.count == 7 and lost.where.startswith("agent queue")
    assert len(drain(w, 3)) == 3 and w.received == 3


def test_kernel_losses_reach_every_watcher(hub):
    w = hub.open(watch_filter([], [], [], 100))
    drain(w, 1)
    hub.probe.lost = 42
    item = drain(w, 1)[0]
    assert isinstance(item, Lost) and (item.count, item.total) == (42, 42) and "kernel" in item.where


def test_fault_counters_stream_when_they_change(hub):
    w = hub.open(watch_filter([], [], [], 100))
    drain(w, 1)
    hub.counters.append(("f-1", Counters(5, 5)))
    item = drain(w, 1)[0]
    assert (item.fault_id, item.counters) == ("f-1", Counters(5, 5))
    assert w.next(0.8) is None  # unchanged: not sent again


def test_filter_validation_names_fields():
    with pytest.raises(InvalidArgument, match=r"filter.ports: at most 8"):
        watch_filter([], list(range(1, 10)), [], 100)
    with pytest.raises(InvalidArgument, match=r"filter.peer_cidrs\[1\]"):
        watch_filter([], [], ["10.0.0.0/8", "nonsense"], 100)
    f = watch_filter([], [4002, 4002], ["fd77::/64"], 0)
    assert f.kinds == frozenset(EventKind) - {EventKind.RTT} and f.ports == (4002,)
    assert f.matches(Flow("fd77::1", 1, "fd77::2", 4002)) and not f.matches(Flow("fd77::1", 1, "fd78::2", 4002))


def test_flow_table_keys_by_socket_until_close():
    t = FlowTable()
    pre = Flow("10.77.0.1", 0, "10.77.0.2", 4002)  # CLOSE -> SYN_SENT comes before the port is picked
    t.record(ev(flow=pre, sock=9, new=2))
    t.record(ev(sock=9, new=1))
    for us in (100, 200, 300, 400):
        t.record(ev(EventKind.RTT, sock=9, srtt_us=us))
    t.record(ev(sock=9, new=7))
    t.record(ev(sock=9, new=2))  # same socket memory, a new connection
    t.record(ev(EventKind.RTT, sock=0, srtt_us=900))  # no socket named: joins the live 4-tuple
    first, second = t.summary(watch_filter([], [], [], 100))
    assert first.flow == FLOW and [n for _, _, n in first.transitions] == [2, 1, 7]
    assert (first.rtt_samples, first.rtt_p50_us, first.rtt_p99_us) == (4, 200, 400)
    assert [n for _, _, n in second.transitions] == [2] and second.rtt_samples == 1


def test_percentile_nearest_rank():
    assert percentile([], 50) == 0
    assert percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 90) == 9 and percentile([5], 99) == 5


def test_offset_brackets_the_monotonic_read():
    o = measure_offset()
    s = o.stamp(time.clock_gettime_ns(time.CLOCK_MONOTONIC))
    assert abs(s.realtime_ns - time.clock_gettime_ns(time.CLOCK_REALTIME)) < 50_000_000
    assert 0 <= o.uncertainty_ns < 10_000_000 and isinstance(s, Stamp)


def test_a_failed_attach_leaves_no_watcher_behind(hub, monkeypatch):
    a = hub.open(watch_filter([EventKind.STATE], [], [], 100))

    def refuse(kinds):
        if EventKind.RTT in set(kinds):
            raise OSError("attach refused")
        hub.probe._attached = frozenset(kinds)

    monkeypatch.setattr(hub.probe, "attach", refuse)
    with pytest.raises(OSError):
        hub.open(watch_filter([EventKind.RTT], [], [], 100))
    assert hub.watching() == 1 and set(hub.probe.filters) == {a.slot}
    assert hub.probe.attached() == {EventKind.STATE}
