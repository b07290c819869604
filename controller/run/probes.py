"""Scenario probes: is the system in its steady state, right now? Each returns a ProbeResult
stamped on the controller's clock.

tcp: a TCP connect; command: exit status 0 (its stdout JSON is the counters when asked);
http: a GET answered 2xx; established: the agent's kernel probes have seen a connection on
the port reach ESTABLISHED and not leave it (FlowStates, fed by a watch stream).
"""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import urllib.error
import urllib.request
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
    """Last known TCP state of each socket an agent reported, from its watch stream."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state: dict[int, tuple[str, int, int]] = {}  # socket -> (state, local port, remote port)

    def feed(self, ev: TcpEvent) -> None:
        if ev.kind != "STATE":
            return
        with self._lock:
            self._state[ev.socket] = (ev.new_state, ev.local_port, ev.remote_port)

    def established(self, port: int) -> int:
        with self._lock:
            return sum(1 for st, lp, rp in self._state.values()
                       if st == ESTABLISHED and port in (lp, rp))


class Prober:
    """Runs probes. `resolve` fills placeholders, `in_host` wraps an argv to run in a lab host,
    `flows` gives the FlowStates of a host whose agent is watched."""

    def __init__(self, resolve: Callable[[str], str], in_host: Callable[[str, Sequence[str]], list[str]],
                 flows: Callable[[str], FlowStates | None]) -> None:
        self.resolve, self.in_host, self.flows = resolve, in_host, flows

    def run(self, probe: Probe) -> ProbeResult:
        start = now_ns()
        try:
            ok, detail, counters = getattr(self, "_" + probe.kind)(probe)
        except Exception as e:  # a probe that cannot run has failed, and says why
            ok, detail, counters = False, f"{type(e).__name__}: {e}", {}
        return ProbeResult(probe.name, ok, start, now_ns(), detail, counters)

    def _tcp(self, p: Probe) -> tuple[bool, str, dict[str, int]]:
        host, port = self.resolve(p.params["host"]), p.params["port"]
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
        if p.params.get("host"):
            argv = self.in_host(p.params["host"], argv)
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
        n = flows.established(port)
        return n > 0, f"{host}: {n} connection(s) on port {port} ESTABLISHED", {}
