"""Leases: every fault expires on its own, whether or not a controller is still there."""

from __future__ import annotations

import heapq
import logging
import threading
from collections.abc import Callable

from faultline.agent.domain.clock import monotonic_ns

log = logging.getLogger(__name__)


class Leases:
    """Calls `on_expire(fault_id)` from one timer thread when a lease runs out.

    Deadlines are on CLOCK_MONOTONIC so a wall-clock step (NTP) never shortens or
    extends a fault.
    """

    def __init__(self, on_expire: Callable[[str], None], clock: Callable[[], int] = monotonic_ns,
                 spin_ns: int = 0, name: str = "leases") -> None:
        self._on_expire = on_expire
        self._clock = clock
        # The last spin_ns before a deadline are spun (the lock let go each turn): a sleep can
        # overshoot by more than a coordinated start's skew allows.
        self._spin_ns = spin_ns
        self._deadlines: dict[str, int] = {}
        self._heap: list[tuple[int, str]] = []
        self._cv = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def grant(self, fault_id: str, deadline_ns: int) -> None:
        """Start or renew a lease; the later call wins."""
        with self._cv:
            self._deadlines[fault_id] = deadline_ns
            heapq.heappush(self._heap, (deadline_ns, fault_id))
            self._cv.notify()

    def revoke(self, fault_id: str) -> None:
        with self._cv:
            self._deadlines.pop(fault_id, None)

    def deadline(self, fault_id: str) -> int | None:
        with self._cv:
            return self._deadlines.get(fault_id)

    def _next_expired(self) -> str | None:
        """Wait until a live lease expires; None when stopped."""
        with self._cv:
            while not self._stopped:
                # Drop heap entries superseded by a renewal or a revoke.
                while self._heap and self._deadlines.get(self._heap[0][1]) != self._heap[0][0]:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._cv.wait()
                    continue
                deadline, fault_id = self._heap[0]
                remaining = deadline - self._clock()
                if remaining <= 0:
                    heapq.heappop(self._heap)
                    del self._deadlines[fault_id]
                    return fault_id
                self._cv.wait(max(0, remaining - self._spin_ns) / 1e9)
            return None

    def _run(self) -> None:
        while (fault_id := self._next_expired()) is not None:
            try:
                self._on_expire(fault_id)
            except Exception:
                log.exception("healing expired fault %s failed", fault_id)

    def stop(self) -> None:
        with self._cv:
            self._stopped = True
            self._cv.notify()
        self._thread.join(timeout=5)
