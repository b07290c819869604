"""Observation cost: TCP throughput between two lab hosts with and without the agent's probes.

iperf3 from trader to gateway, rounds alternating "no watcher" and "watched", so a noisy
machine shifts both alike; the figure is the ratio of medians measured in the same run.
Watched means a watch stream open on the sender's agent: the default probes (state,
retransmit, resets), then every probe with RTT sampled every 100 ms, then RTT on every segment.

    python -m bench.observe_cost [--seconds 5] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import time
from pathlib import Path

from bench.results import append_result, table
from controller.client import AgentClient, WatchRecorder, watch_filter
from controller.lab import Lab, LabConfig

BENCH_LAB = LabConfig(prefix="flb", subnet4="10.75.0.0/24", subnet6="fd75::/64", run_dir=Path("/run/faultline-bench"))
PORT = 5201
ALL = ["state", "retransmit", "reset-sent", "reset-received", "rtt"]
MODES = {
    "no watcher": None,
    "watched (default: state, retransmit, resets)": watch_filter(),
    "watched (all probes, RTT every 100 ms)": watch_filter(kinds=ALL, rtt_interval_ms=100),
    "watched (all probes, RTT every segment)": watch_filter(kinds=ALL, rtt_interval_ms=0),
}


def iperf(lab: Lab, seconds: int) -> float:
    """Bits per second received by the gateway in one iperf3 run from the trader."""
    gw = lab.state.hosts["gateway"]
    server = subprocess.Popen(lab.exec_argv("gateway", ["iperf3", "-s", "-1", "-B", gw.ipv4, "-p", str(PORT)]),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)  # the server binds
        r = subprocess.run(lab.exec_argv("trader", ["iperf3", "-c", gw.ipv4, "-p", str(PORT), "-t", str(seconds),
                                                    "-J"]), capture_output=True, text=True, timeout=seconds + 30)
        if r.returncode != 0:
            raise RuntimeError(f"iperf3 failed: {r.stdout[-500:]} {r.stderr[-500:]}")
        return float(json.loads(r.stdout)["end"]["sum_received"]["bits_per_second"])
    finally:
        server.kill()
        server.wait()


def run(seconds: int, rounds: int, out: Path | None) -> dict[str, object]:
    lab = Lab(BENCH_LAB, progress=lambda m: print("  " + m, flush=True))
    lab.down()
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
    finally:
        lab.down()
    base = statistics.median(samples["no watcher"])
    rows = []
    for mode, s in samples.items():
        med = statistics.median(s)
        rows.append({"mode": mode, "median_gbps": round(med / 1e9, 3), "ratio_to_unwatched": round(med / base, 4),
                     "slower_percent": round((1 - med / base) * 100, 2), "events_streamed": events[mode],
                     "samples_gbps": [round(x / 1e9, 3) for x in s]})
    result = {"bench": "observe_cost", "seconds_per_run": seconds, "rounds": rounds, "rows": rows,
              "goal": "watched <= 3 % slower than unwatched"}
    print(table(["MODE", "MEDIAN Gbit/s", "RATIO", "SLOWER %", "EVENTS"],
                [[r["mode"], r["median_gbps"], r["ratio_to_unwatched"], r["slower_percent"], r["events_streamed"]]
                 for r in rows]))
    if out is not None:
        append_result(out, result)
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=5, help="length of each iperf3 run, whole seconds (default 5)")
    ap.add_argument("--rounds", type=int, default=5, help="rounds of every mode, interleaved (default 5)")
    ap.add_argument("--out", type=Path, default=Path("bench/results.json"), help="results file to append to")
    a = ap.parse_args(argv)
    run(a.seconds, a.rounds, a.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
