"""BPF programs (or anything slow to build) compiled on a background thread after the agent serves, one at a time.

A bcc compile takes 0.5-3 s on a host and ~35 s under TCG; compiling every program before
serving made a start take that long per program (four lab agents under TCG: > 300 s). Now
the agent answers at once and compiles behind: one worker thread, niced so that a trading
host's own processes come first. A fault or watch that needs a program waits for it within
its deadline; Health lists each program's state.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from faultline.agent.domain.errors import FailedPrecondition, Unavailable

log = logging.getLogger(__name__)
T = TypeVar("T")
COMPILE_NICE = 10  # the worker thread's nice value (Linux: per thread)


@dataclass(frozen=True)
class BuildStatus:
    name: str
    state: str  # queued | compiling | ready | failed
    seconds: float
    error: str


class Deferred(Generic[T]):
    """One program built once by the worker; get() waits for it."""

    def __init__(self, name: str, build: Callable[[], T], close: Callable[[T], None] = lambda _v: None) -> None:
        self.name = name
        self._build, self._close = build, close
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._value: T | None = None
        self._error = ""
        self._started = self._ended = 0.0
        self._closed = False

    def skip(self, why: str) -> None:
        """Never build it: every get() fails with `why`."""
        self._closed, self._error = True, why
        self._done.set()

    def run(self) -> None:
        """Build it (on the worker thread). A failure is kept as the reason, never raised."""
        if self._closed:  # the agent is stopping: no compile nobody will use
            self.skip(self._error or "not compiled: the agent stopped first")
            return
        self._started = time.monotonic()
        try:
            value: T | None = self._build()
        except FailedPrecondition as e:
            value, self._error = None, str(e)
        except Exception as e:  # a bug must not kill the worker: every later get() names it
            if self._closed:  # the agent stopped under it: not a bug, and nobody will use it
                log.info("compiling %s abandoned, the agent is stopping: %s", self.name, e)
            else:
                log.exception("compiling %s failed", self.name)
            value, self._error = None, f"{type(e).__name__}: {e}"
        with self._lock:
            self._ended = time.monotonic()
            if self._closed and value is not None:
                self._close(value)  # the agent stopped while it compiled
                value = None
            self._value = value
        self._done.set()
        log.info("%s %s in %.2f s%s", self.name, "ready" if value is not None else "FAILED",
                 self._ended - self._started, f": {self._error}" if self._error else "")

    def get(self, wait_s: float) -> T:
        """The program, waiting up to wait_s for its compile. FailedPrecondition if it failed to
        build; Unavailable if still compiling when the wait ends."""
        if not self._done.wait(max(wait_s, 0.0)):
            s = self.status()
            raise Unavailable(f"{self.name} is still {s.state} ({s.seconds:.0f} s so far, started when the agent "
                              "did): retry shortly; Health lists it ready when it is")
        if self._value is None:
            raise FailedPrecondition(f"{self.name}: {self._error or 'closed'}")
        return self._value

    def ready(self) -> T | None:
        """The program if it is built, without waiting."""
        return self._value if self._done.is_set() else None

    def failed(self) -> str:
        return self._error if self._done.is_set() else ""

    def status(self) -> BuildStatus:
        if self._done.is_set():
            return BuildStatus(self.name, "ready" if self._value is not None else "failed",
                               self._ended - self._started, self._error)
        if self._started:
            return BuildStatus(self.name, "compiling", time.monotonic() - self._started, "")
        return BuildStatus(self.name, "queued", 0.0, "")

    def close(self) -> None:
        with self._lock:
            self._closed = True
            value, self._value = self._value, None
        if value is not None:
            self._close(value)


def compile_in_background(builds: Sequence[Deferred], nice: int = COMPILE_NICE,
                          on_built: Callable[[Deferred], None] = lambda _b: None) -> threading.Thread:
    """Start the worker: each build in order, on one daemon thread; on_built(b) after each."""
    def work() -> None:
        # The stop signals go to the main thread: one landing here would interrupt bcc's
        # perf_event and tracefs calls mid-attach (EINTR: "Failed to detach BPF from tracepoint").
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT, signal.SIGHUP})
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
        except OSError as e:
            log.warning("compile thread keeps its priority: %s", e)
        for b in builds:
            b.run()
            on_built(b)

    t = threading.Thread(target=work, name="bpf-compile", daemon=True)
    t.start()
    return t
