"""RecoveryTimer: the chaos suite's timer, with marks set by the test or by the kernel.

    with RecoveryTimer(rto_target_s=30) as timer:      # start
        ...                                             # the fault
        timer.mark_detected()
        timer.mark_recovery_started()                   # the fault is gone
        timer.mark_recovery_completed()
    assert timer.metrics.meets_rto, timer.metrics

Fed by an agent (`follow(host, port)`) and a fault injector (which tells it when the fault
went in and out), the marks come from the kernel: detected at the first retransmit, reset or
connection leaving ESTABLISHED on that port; recovery started at the heal; completed when a
connection is ESTABLISHED again (or at the heal if it never broke). A mark the test sets
itself wins over the kernel's. All times are on the controller's clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

from faultline.controller.agents.client import WatchRecorder
from faultline.controller.agents.clocksync import now_ns
from faultline.controller.agents.spec import watch_filter
from faultline.controller.env.hosts import Host
from faultline.controller.run import recovery
from faultline.controller.run.recovery import KernelEvent, Mark


@dataclass(frozen=True)
class RecoveryMetrics:
    detection_time: float | None   # s, start -> detected
    recovery_time: float | None    # s, start -> recovery completed: what the RTO bounds
    time_after_heal: float | None  # s, recovery started -> completed
    rto_target: float
    meets_rto: bool
    data_loss: float | None        # ratio lost / sent, when recorded
    detected_by: str = ""
    recovered_by: str = ""
    sent_nothing: bool = False                  # record_data(sent=0, ...): no loss can be judged
    network_detection: float | None = None      # s, start -> the kernel's first symptom (with follow())
    application_detection: float | None = None  # s, start -> the test's mark_detected()

    def __str__(self) -> str:
        def s(x: float | None) -> str:
            return "n/a" if x is None else f"{x:.3f}s"
        loss = "nothing sent" if self.sent_nothing else "not measured" if self.data_loss is None \
            else f"{self.data_loss:.2%}"
        return (f"detection {s(self.detection_time)}, recovery {s(self.recovery_time)} "
                f"({s(self.time_after_heal)} after heal), RTO {self.rto_target:g}s "
                f"{'met' if self.meets_rto else 'MISSED'}, data loss {loss}")


class RecoveryTimer:
    def __init__(self, rto_target_s: float = 30.0, hosts: Callable[[str], Host] | None = None) -> None:
        self.rto_target_s = rto_target_s
        self._hosts = hosts  # resolves a host's name for follow() (the pytest plugin: its agents)
        self.started: int | None = None
        self.detected: int | None = None
        self.recovery_started: int | None = None
        self.completed: int | None = None
        self.sent: int | None = None
        self.received: int | None = None
        self._follow: tuple[Host, int, WatchRecorder] | None = None
        self._injected_ns: int | None = None   # from the injector: the first fault in
        self._healed_ns: int | None = None     # the last fault out
        self._faults_active = 0

    # -- the suite's interface ------------------------------------------------
    def start(self) -> None:
        self.started = now_ns()

    def mark_detected(self) -> None:
        self.detected = now_ns()

    def mark_recovery_started(self) -> None:
        self.recovery_started = now_ns()

    def mark_recovery_completed(self) -> None:
        self.completed = now_ns()

    def record_data(self, sent: int, received: int) -> None:
        self.sent, self.received = sent, received

    def __enter__(self) -> RecoveryTimer:
        self.start()
        return self

    def __exit__(self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    # -- fed by the kernel ----------------------------------------------------
    def follow(self, host: Host | str, port: int) -> None:
        """Take the marks from this host's kernel events on this port."""
        if isinstance(host, str):
            if self._hosts is None:
                raise ValueError(f"follow({host!r}): this timer knows no hosts by name; pass a Host")
            host = self._hosts(host)
        w = host.client.watch(watch_filter(recovery.WATCH_KINDS, [port], fault_counters=False), ready_timeout_s=30)
        self._follow = (host, port, WatchRecorder(w))

    def fault_applied(self, t_ns: int) -> None:
        """The injector: a fault is in. The first one is when the kernel-fed timer starts."""
        if self._injected_ns is None:
            self._injected_ns = t_ns
        self._faults_active += 1

    def fault_healed(self, t_ns: int) -> None:
        """The injector: a fault is out; when the last of nested ones is, recovery starts."""
        self._faults_active -= 1
        if self._faults_active == 0:
            self._healed_ns = t_ns

    def _start(self) -> int | None:
        first, second = (self._injected_ns, self.started) if self._follow else (self.started, self._injected_ns)
        return first if first is not None else second

    def _recovery_started(self) -> int | None:
        return self.recovery_started if self.recovery_started is not None else self._healed_ns

    def kernel_events(self) -> list[KernelEvent]:
        if self._follow is None:
            return []
        host, _, rec = self._follow
        return recovery.kernel_events(host.name, host.clock, rec.tcp())

    def _kernel_marks(self) -> tuple[Mark | None, Mark | None]:
        start, heal = self._start(), self._recovery_started()
        if self._follow is None or start is None:
            return None, None
        events = self.kernel_events()
        return recovery.detection(start, events, []), recovery.flow_recovery(heal, events) if heal else None

    def wait_recovered(self, timeout_s: float) -> bool:
        """With follow(): wait until the kernel shows recovery after the heal."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._kernel_marks()[1] is not None:
                return True
            time.sleep(0.05)
        return False

    def close(self) -> None:
        if self._follow is not None:
            self._follow[2].stop()

    # -- results --------------------------------------------------------------
    @property
    def metrics(self) -> RecoveryMetrics:
        """The suite's view of recovery.Metrics: the spans and the data loss are computed there,
        once, for the CLI's scorecard and this one alike."""
        k_detect, k_done = self._kernel_marks()
        detected = Mark(self.detected, "test") if self.detected is not None else k_detect
        completed = Mark(self.completed, "test") if self.completed is not None else k_done
        counters = {"sent": self.sent, "received": self.received} \
            if self.sent is not None and self.received is not None else {}
        m = recovery.Metrics(self.rto_target_s, self._start(), detected, self._recovery_started(), completed,
                             counters, rto_from="inject", t_detect_network=k_detect,
                             t_detect_app=Mark(self.detected, "test") if self.detected is not None else None)
        return RecoveryMetrics(m.detection_s, m.recovery_s, m.after_heal_s, self.rto_target_s, m.meets_rto,
                               m.data_loss_ratio, detected.source if detected else "",
                               completed.source if completed else "", m.sent_nothing,
                               m.since_inject_s(m.t_detect_network), m.since_inject_s(m.t_detect_app))
