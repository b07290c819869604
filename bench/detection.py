"""Detection resolution: how soon after the kernel saw the reconnect the controller knew.

The reference workload (examples/trading: the lab's IB Gateway, filling orders itself, and the
ib_async trader placing 10 orders/s) in a lab; a 3 s partition between trader and gateway
(DISCONNECT on the trader's agent), then the heal, round after round. The kernel's moment: the
trader's connection to 4002 going ESTABLISHED again (inet_sock_set_state, timestamped in the kernel). Against it:

- faultline: the moment that event reached the controller over the watch stream; the mark
  itself carries the kernel's timestamp, so its error is zero and this is how late it is known;
- the peer: a probe that polls every 1 s, as a health check would (`ss` in the trader's
  namespace for an established connection to 4002); its mark is the poll that first saw it.

    python -m bench.detection [--rounds 5]
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench.common import bench_lab, parser, report
from faultline.controller.agents.client import WatchRecorder
from faultline.controller.agents.clocksync import now_ns
from faultline.controller.agents.events import TcpEvent
from faultline.controller.agents.spec import Disconnect, fault_spec, watch_filter
from faultline.controller.env.hosts import connect, lab_endpoints
from faultline.controller.env.lab import Lab
from faultline.v1 import agent_pb2 as pb
from testkit.netns import serving

PARTITION_S = 3.0
POLL_S = 1.0
PORT = 4002


def start_workload(lab: Lab, run_dir: Path) -> list[subprocess.Popen]:
    h = lab.state.hosts
    py = sys.executable
    shutil.rmtree(run_dir, ignore_errors=True)  # an earlier run's order logs are not this one's
    run_dir.mkdir(parents=True)
    argvs = [
        ("gateway", [py, "-m", "faultline.examples.trading.tws.gateway", "--bind", h["gateway"].ipv4,
                     "--dir", str(run_dir / "gateway")]),
        ("trader", [py, "-m", "faultline.examples.trading.tws.trader", "--connect", f"{h['gateway'].ipv4}:{PORT}",
                    "--dir", str(run_dir / "trader"), "--rate", "10"]),
    ]
    listens = {"gateway": PORT}
    procs = []
    for host, argv in argvs:
        procs.append(subprocess.Popen(lab.exec_argv(host, argv), stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL))
        if host in listens:  # each listens before the next connects to it
            serving(procs[-1].pid, h[host].netns, listens[host])
    return procs


def established(lab: Lab) -> bool:
    r = subprocess.run(lab.exec_argv("trader", ["ss", "-Htn", "state", "established", "dport", f"= :{PORT}"]),
                       capture_output=True, text=True, check=False)
    return bool(r.stdout.strip())


class Poller:
    """A probe every POLL_S: (controller time the answer was known, connected?)."""

    def __init__(self, lab: Lab) -> None:
        self.lab, self.samples = lab, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            ok = established(self.lab)
            self.samples.append((now_ns(), ok))
            self._stop.wait(POLL_S)

    def first_ok_after(self, t_ns: int) -> int | None:
        return next((t for t, ok in list(self.samples) if t > t_ns and ok), None)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def run(rounds: int, out: Path | None) -> dict[str, object]:
    lab = bench_lab()
    stream_ms: list[float] = []
    poll_ms: list[float] = []
    try:
        lab.state = lab.up(["trader", "gateway"], agents=["trader"])  # down below even if this fails
        h = lab.state.hosts
        start_workload(lab, Path(lab.config.run_dir) / "detection")
        [trader] = [connect(ep) for ep in lab_endpoints(lab.state, ["trader"]).values()]
        arrivals: dict[TcpEvent, int] = {}  # event -> controller time it arrived

        def arrived(event: TcpEvent) -> None:
            arrivals[event] = now_ns()

        rec = WatchRecorder(trader.client.watch(watch_filter(kinds=["state"], ports=[PORT])), on_tcp=arrived)
        poller = Poller(lab)
        deadline = time.monotonic() + 20
        while not established(lab):
            if time.monotonic() > deadline:
                raise RuntimeError("the trader never connected to the gateway")
            time.sleep(0.2)
        spec = fault_spec(Disconnect(), h["trader"].interface, peers=[h["gateway"].ipv4 + "/32"], lease_s=30)
        for i in range(rounds):
            mark = len(rec.items)
            fault = trader.client.apply(spec)
            time.sleep(PARTITION_S)
            t_heal = now_ns()
            trader.client.heal(fault.fault_id)
            ev = rec.wait_for(lambda it: it.WhichOneof("item") == "tcp"
                              and it.tcp.new_state == pb.TCP_STATE_ESTABLISHED, 20, after=mark)
            if ev is None:
                raise RuntimeError(f"round {i + 1}: no reconnect within 20 s of the heal")
            kernel_t = trader.clock.to_controller(ev.at.realtime_ns)
            time.sleep(POLL_S + 0.5)  # the poller has had its chance
            polled = poller.first_ok_after(t_heal)
            if polled is None:
                raise RuntimeError(f"round {i + 1}: the 1 s probe never saw the reconnect")
            if polled < kernel_t:  # it saw a connection the kernel had not made yet: a stale one
                raise RuntimeError(f"round {i + 1}: the probe saw a connection {(kernel_t - polled) / 1e6:.0f} ms "
                                   "before the kernel's reconnect (the old one still ESTABLISHED?)")
            stream_ms.append((arrivals[TcpEvent.of(ev)] - kernel_t) / 1e6)
            poll_ms.append((polled - kernel_t) / 1e6)
            print(f"  round {i + 1}/{rounds}: reconnect {(kernel_t - t_heal) / 1e9:.3f} s after heal; known "
                  f"{stream_ms[-1]:.1f} ms later (stream), {poll_ms[-1]:.0f} ms later (1 s probe)", flush=True)
            time.sleep(1.0)
        poller.stop()
        rec.stop()
    finally:
        lab.down()
    rows = [{"mode": "faultline (kernel event over the watch stream)",
             "median_ms": round(statistics.median(stream_ms), 2), "max_ms": round(max(stream_ms), 2),
             "samples_ms": [round(x, 2) for x in stream_ms]},
            {"mode": "probe polling every 1 s", "median_ms": round(statistics.median(poll_ms), 1),
             "max_ms": round(max(poll_ms), 1), "samples_ms": [round(x, 1) for x in poll_ms]}]
    ratio = round(rows[1]["median_ms"] / max(rows[0]["median_ms"], 0.001), 1)
    result = {"bench": "detection", "partition_s": PARTITION_S, "rounds": rounds, "rows": rows,
              "probe_to_faultline_ratio": ratio,
              "note": "faultline's mark carries the kernel's timestamp (error 0); the times are how late each knew"}
    report(result, ["MODE", "KNOWN AFTER THE KERNEL, median ms", "max ms"],
           [[r["mode"], r["median_ms"], r["max_ms"]] for r in rows], out)
    print(f"the 1 s probe knew {ratio}x later than faultline (medians)")
    return result


def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__)
    ap.add_argument("--rounds", type=int, default=5, help="partitions measured (default 5)")
    a = ap.parse_args(argv)
    run(a.rounds, a.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
