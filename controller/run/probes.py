"""Scenario probes: is the system in its steady state, right now? Each returns a ProbeResult
stamped on the controller's clock.

tcp: a TCP connect; command: exit status 0 (its stdout JSON is the counters when asked);
http: a GET answered 2xx; established: the agent's kernel probes (a watch stream on that host:
FlowStates) have seen at least `min` connections on the port ESTABLISHED and not yet closed, at
some instant of the last `stable_for_s` (0: now). A client that opens a connection per request
holds none between requests: with stable_for_s longer than its gap it passes while requests go
through and fails once none has got through for that long (its detection is that much later).
"""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from faultline.controller.agents.clocksync import now_ns
from faultline.controller.agents.events import ESTABLISHED, TcpEvent
from faultline.controller.model.scenario import Probe


@dataclass(frozen=True)
class ProbeResult:
    probe: str
    ok: bool
    started_ns: int
    ended_ns: int
    detail: str
    counters: dict[str, int] = field(default_factory=dict)


class FlowStates:
    """Last known TCP state of each socket an agent reported, from its watch stream, and per port
    the highest count of ESTABLISHED connections in each moment (for `stable_for_s`)."""

    HISTORY = 4096  # count changes kept per port: minutes of a busy connection-per-request client

    def __init__(self, clock: Callable[[], int] = now_ns) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._state: dict[int, tuple[str, int, int]] = {}  # socket -> (state, local port, remote port)
        self._changes: dict[int, deque[tuple[int, int]]] = {}  # port -> (t_ns, count from then)

    def feed(self, ev: TcpEvent) -> None:
        if ev.kind != "STATE":
            return
        with self._lock:
            self._state[ev.socket] = (ev.new_state, ev.local_port, ev.remote_port)
            t = self._clock()
            for port in {ev.local_port, ev.remote_port}:
                n = self._count(port)
                hist = self._changes.setdefault(port, deque(maxlen=self.HISTORY))
                if not hist or hist[-1][1] != n:
                    hist.append((t, n))

    def _count(self, port: int) -> int:
        return sum(1 for st, lp, rp in self._state.values() if st == ESTABLISHED and port in (lp, rp))

    def established(self, port: int, within_s: float = 0.0) -> int:
        """Connections on `port` ESTABLISHED now; with within_s, the most at any instant since then."""
        with self._lock:
            now = self._count(port)
            if within_s <= 0:
                return now
            since = self._clock() - int(within_s * 1e9)
            hist = self._changes.get(port, ())
            # The count in force at `since` (the last change before it), and every change after it.
            before = [n for t, n in hist if t <= since][-1:]
            return max([now, *before, *(n for t, n in hist if t > since)])


class Prober:
    """Runs probes. `resolve` fills placeholders, `in_host` wraps an argv to run in a lab host,
    `flows` gives the FlowStates of a host whose agent is watched."""

    def __init__(self, resolve: Callable[[str], str], in_host: Callable[[str, Sequence[str]], list[str]],
                 flows: Callable[[str], FlowStates | None],
                 tcp_from: Callable[[str, str, int, float], list[str]] | None = None) -> None:
        """in_host: argv -> argv run on that host; tcp_from: the argv of a TCP connect check taken on
        a host (host, address, port, timeout)."""
        self.resolve, self.in_host, self.flows = resolve, in_host, flows
        self._tcp_from = tcp_from

    def on_host(self, host: str, address: str, port: int, timeout_s: float) -> list[str]:
        if self._tcp_from is None:
            raise RuntimeError(f"no way to take a probe on {host} here")
        return self._tcp_from(host, address, port, timeout_s)

    def run(self, probe: Probe) -> ProbeResult:
        start = now_ns()
        try:
            ok, detail, counters = getattr(self, "_" + probe.kind)(probe)
        except Exception as e:  # a probe that cannot run has failed, and says why
            ok, detail, counters = False, f"{type(e).__name__}: {e}", {}
        return ProbeResult(probe.name, ok, start, now_ns(), detail, counters)

    def _tcp(self, p: Probe) -> tuple[bool, str, dict[str, int]]:
        host, port = self.resolve(p.params["host"]), p.params["port"]
        if p.params.get("from"):  # taken on that host: what its own processes would see
            argv = self.on_host(p.params["from"], host, port, p.timeout_s)
            try:
                r = subprocess.run(argv, capture_output=True, text=True, timeout=p.timeout_s + 10, check=False)
            except subprocess.TimeoutExpired:
                return False, f"from {p.params['from']}: no answer over ssh", {}
            if r.returncode == 0:
                return True, f"from {p.params['from']}: connected to {host}:{port}", {}
            why = (r.stdout.strip() or r.stderr.strip())[-200:]
            return False, f"from {p.params['from']}: connect {host}:{port}: {why or f'exit {r.returncode}'}", {}
        try:
            with socket.create_connection((host, port), timeout=p.timeout_s):
                return True, f"connected to {host}:{port}", {}
        except OSError as e:
            return False, f"connect {host}:{port}: {e.strerror or type(e).__name__}", {}

    def _http(self, p: Probe) -> tuple[bool, str, dict[str, int]]:
        url = self.resolve(p.params["url"])
        try:
            with urllib.request.urlopen(url, timeout=p.timeout_s) as r:
                return 200 <= r.status < 300, f"GET {url}: {r.status}", {}
        except urllib.error.HTTPError as e:
            return False, f"GET {url}: {e.code}", {}
        except (urllib.error.URLError, OSError) as e:
            return False, f"GET {url}: {getattr(e, 'reason', e)}", {}

    def _command(self, p: Probe) -> tuple[bool, str, dict[str, int]]:
        argv = [self.resolve(a) for a in p.params["argv"]]
        if p.params.get("from"):
            argv = self.in_host(p.params["from"], argv)
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=p.timeout_s, check=False)
        except subprocess.TimeoutExpired:
            return False, f"timed out after {p.timeout_s:g} s", {}
        out = (r.stdout.strip() or r.stderr.strip())[-200:]
        if r.returncode != 0:
            return False, f"exit {r.returncode}: {out}", {}
        if not p.counters:
            return True, "exit 0", {}
        try:
            raw = json.loads(r.stdout)
            counters = {k: int(v) for k, v in raw.items() if isinstance(v, int | float) and not isinstance(v, bool)}
        except (ValueError, AttributeError):
            return False, f"counters: stdout is not a JSON object: {out}", {}
        return True, ", ".join(f"{k} {v}" for k, v in counters.items()), counters

    def _established(self, p: Probe) -> tuple[bool, str, dict[str, int]]:
        host, port = p.params["host"], p.params["port"]
        flows = self.flows(host)
        if flows is None:
            return False, f"no watch on {host}", {}
        least, window = p.params.get("min", 1), p.params.get("stable_for_s", 0.0)
        n = flows.established(port, window)
        when = f" at most, within the last {window:g} s" if window else ""
        return n >= least, f"{host}: {n} connection(s) on port {port} ESTABLISHED{when} (min {least})", {}
