"""Observation cost: TCP throughput between two lab hosts with and without the agent's probes.

iperf3 from trader to gateway, rounds alternating "no watcher" and "watched", so a noisy
machine shifts both alike; the figure is the ratio of medians measured in the same run.
Watched means a watch stream open on the sender's agent: the default probes (state,
retransmit, resets), then every probe with RTT sampled every 100 ms, then RTT on every segment.

Then the most events the agent streams for 10 s with none lost: see event_rate.

    python -m bench.observe_cost [--seconds 5] [--rounds 5] [--rate-seconds 10]
"""

from __future__ import annotations

import json
import statistics
import subprocess
from collections.abc import Sequence
from pathlib import Path

from bench.common import bench_lab, parser, report
from faultline.controller.agents.client import AgentClient, WatchRecorder
from faultline.controller.agents.spec import watch_filter
from faultline.controller.env.lab import Lab
from testkit.netns import serving

PORT = 5201
SEGMENT = 1000  # bytes per write in the event-rate load
ALL = ["state", "retransmit", "reset-sent", "reset-received", "rtt"]
MODES = {
    "no watcher": None,
    "watched (default: state, retransmit, resets)": watch_filter(),
    "watched (all probes, RTT every 100 ms)": watch_filter(kinds=ALL, rtt_interval_ms=100),
    "watched (all probes, RTT every segment)": watch_filter(kinds=ALL, rtt_interval_ms=0),
}


def iperf(lab: Lab, seconds: int, extra: Sequence[str] = ()) -> float:
    """Bits per second received by the gateway in one iperf3 run from the trader."""
    gw = lab.state.hosts["gateway"]
    server = subprocess.Popen(lab.exec_argv("gateway", ["iperf3", "-s", "-1", "-B", gw.ipv4, "-p", str(PORT)]),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        serving(server.pid, gw.netns, PORT)
        argv = ["iperf3", "-c", gw.ipv4, "-p", str(PORT), "-t", str(seconds), "-J", *extra]
        r = subprocess.run(lab.exec_argv("trader", argv), capture_output=True, text=True, timeout=seconds + 30)
        if r.returncode != 0:
            raise RuntimeError(f"iperf3 failed: {r.stdout[-500:]} {r.stderr[-500:]}")
        return float(json.loads(r.stdout)["end"]["sum_received"]["bits_per_second"])
    finally:
        server.kill()
        server.wait()


def event_rate(lab: Lab, seconds: int, rates: Sequence[int]) -> list[dict[str, object]]:
    """Events streamed per second with none lost, on a ladder of offered rates.

    RTT on every segment of one iperf3 flow paced to `rate` segments of 1000 bytes per
    second (0: unpaced), each ACK the sender gets one event; the events a step carries are
    counted, not assumed from the pace (delayed ACKs, coalescing). A step counts as
    sustained when the stream carried no Lost notice (kernel buffer full or this watcher's
    queue full) for the whole run; the ladder stops at the first step that lost any.
    """
    rows: list[dict[str, object]] = []
    with AgentClient(lab.state.hosts["trader"].agent) as c:
        for rate in rates:
            rec = WatchRecorder(c.watch(watch_filter(kinds=["rtt"], ports=[PORT], rtt_interval_ms=0,
                                                     fault_counters=False)))
            iperf(lab, seconds, ["-b", str(rate * SEGMENT * 8), "-l", str(SEGMENT)])
            items = rec.stop()
            events = sum(1 for i in items if i.WhichOneof("item") == "tcp")
            lost = sum(i.lost.count for i in items if i.WhichOneof("item") == "lost")
            rows.append({"offered_segments_per_s": rate, "events_per_s": round(events / seconds), "events": events,
                         "lost": lost, "seconds": seconds})
            print(f"  offered {rate or 'unpaced'} segments/s: streamed {events / seconds:.0f} events/s, lost {lost}",
                  flush=True)
            if lost:
                break
    return rows


def run(seconds: int, rounds: int, out: Path | None, rate_seconds: int = 10,
        rates: Sequence[int] = (5000, 20_000, 80_000, 0)) -> dict[str, object]:
    lab = bench_lab()
    samples: dict[str, list[float]] = {m: [] for m in MODES}
    events: dict[str, int] = {m: 0 for m in MODES}
    try:
        lab.state = lab.up(["trader", "gateway"], agents=["trader"])  # down below even if this fails
        with AgentClient(lab.state.hosts["trader"].agent) as c:
            for i in range(rounds):
                for mode, f in MODES.items():
                    rec = WatchRecorder(c.watch(f)) if f is not None else None
                    bps = iperf(lab, seconds)
                    if rec is not None:
                        events[mode] += len(rec.stop())
                    samples[mode].append(bps)
                    print(f"round {i + 1}/{rounds}  {mode:42} {bps / 1e9:7.3f} Gbit/s", flush=True)
        ladder = event_rate(lab, rate_seconds, rates)
    finally:
        lab.down()
    base = statistics.median(samples["no watcher"])
    rows = []
    for mode, s in samples.items():
        med = statistics.median(s)
        rows.append({"mode": mode, "median_gbps": round(med / 1e9, 3), "ratio_to_unwatched": round(med / base, 4),
                     "slower_percent": round((1 - med / base) * 100, 2), "events_streamed": events[mode],
                     "samples_gbps": [round(x / 1e9, 3) for x in s]})
    sustained = [r for r in ladder if not r["lost"]]
    result = {"bench": "observe_cost", "seconds_per_run": seconds, "rounds": rounds, "rows": rows,
              "goal": "watched <= 3 % slower than unwatched", "event_rate": ladder,
              "max_sustained_events_per_s": max((int(r["events_per_s"]) for r in sustained), default=0),
              "event_rate_limited_by": "the agent (a step lost events)" if len(sustained) < len(ladder)
              else "the offered load (no step lost any)"}
    report(result, ["MODE", "MEDIAN Gbit/s", "RATIO", "SLOWER %", "EVENTS"],
           [[r["mode"], r["median_gbps"], r["ratio_to_unwatched"], r["slower_percent"], r["events_streamed"]]
            for r in rows], None)
    print(f"events streamed for {rate_seconds} s with none lost: up to {result['max_sustained_events_per_s']}/s, "
          f"limited by {result['event_rate_limited_by']}")
    return report(result, ["OFFERED SEGMENTS/s", "EVENTS/s STREAMED", "LOST"],
                  [[r["offered_segments_per_s"], r["events_per_s"], r["lost"]] for r in ladder], out)


def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__)
    ap.add_argument("--seconds", type=int, default=5, help="length of each iperf3 run, whole seconds (default 5)")
    ap.add_argument("--rounds", type=int, default=5, help="rounds of every mode, interleaved (default 5)")
    ap.add_argument("--rate-seconds", type=int, default=10, help="length of each event-rate step (default 10)")
    a = ap.parse_args(argv)
    run(a.seconds, a.rounds, a.out, a.rate_seconds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
