"""Footprint: the agent's resident memory idle and with every probe attached, its start-up time
to the first served request and to its BPF programs compiled (they compile behind a serving
agent), and a four-agent lab's time to serving and to compiled. The peer, in the same run: a
bare interpreter importing what the agent imports (bcc, grpc, pyroute2), so the figures
separate faultline's own cost from its libraries'.

    python -m bench.footprint [--starts 3]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.common import bench_lab
from bench.results import append_result, table
from faultline.controller.agents.client import AgentClient, WatchRecorder
from faultline.controller.agents.spec import watch_filter

IMPORTS = "import bcc, grpc, pyroute2, faultline.v1.agent_pb2_grpc, time; print('ready', flush=True); time.sleep(30)"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def baseline() -> tuple[float, float]:
    """(seconds to import, RSS MB) of a bare interpreter with the agent's libraries."""
    t0 = time.monotonic()
    p = subprocess.Popen([sys.executable, "-c", IMPORTS], stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    took = time.monotonic() - t0
    mb = rss_mb(p.pid)
    p.kill()
    p.wait()
    return took, mb


def run(starts: int, out: Path | None) -> dict[str, object]:
    lab = bench_lab()
    serving, compiled, idle, watched = [], [], [], []
    try:
        lab.state = lab.up(["trader", "gateway"], agents=["trader"])  # down below even if this fails
        for _ in range(starts):
            host = lab.state.hosts["trader"]
            os.kill(host.pid, signal.SIGTERM)  # it heals, removes its clsact, exits
            os.waitpid(host.pid, 0)  # our child (the lab started it here): reap it
            t0 = time.monotonic()
            host = lab.restart_agent("trader", programs=False)
            serving.append(time.monotonic() - t0)
            lab.wait_programs([host])
            compiled.append(time.monotonic() - t0)
            lab.state.hosts["trader"] = host
            idle.append(rss_mb(host.pid))
            with AgentClient(host.agent) as c:
                rec = WatchRecorder(c.watch(watch_filter(kinds=["state", "retransmit", "reset-sent",
                                                                "reset-received", "rtt"], rtt_interval_ms=100)))
                watched.append(rss_mb(host.pid))
                rec.stop()
        base_s, base_mb = baseline()
    finally:
        lab.down()
    four_serving, four_compiled = four_agent_lab()
    rows = [
        {"what": "agent start to first served request", "faultline": round(statistics.median(serving), 3),
         "peer": round(base_s, 3), "unit": "s"},
        {"what": "agent start to its BPF programs compiled", "faultline": round(statistics.median(compiled), 3),
         "peer": round(base_s, 3), "unit": "s"},
        {"what": "four-agent lab: every agent serving", "faultline": round(four_serving, 2),
         "peer": round(base_s, 3), "unit": "s"},
        {"what": "four-agent lab: every BPF program compiled", "faultline": round(four_compiled, 2),
         "peer": round(base_s, 3), "unit": "s"},
        {"what": "agent RSS idle", "faultline": round(statistics.median(idle), 1), "peer": round(base_mb, 1),
         "unit": "MB"},
        {"what": "agent RSS, every probe attached", "faultline": round(statistics.median(watched), 1),
         "peer": round(base_mb, 1), "unit": "MB"},
    ]
    for r in rows:
        r["ratio"] = round(r["faultline"] / r["peer"], 2) if r["peer"] else None
    result = {"bench": "footprint", "starts": starts, "peer": "a bare interpreter importing bcc, grpc, pyroute2",
              "rows": rows}
    print(table(["WHAT", "FAULTLINE", "PEER", "UNIT", "RATIO"],
                [[r["what"], r["faultline"], r["peer"], r["unit"], r["ratio"]] for r in rows]))
    if out is not None:
        append_result(out, result)
    return result


def four_agent_lab() -> tuple[float, float]:
    """(seconds until all four agents serve, until all their programs are compiled), from lab up."""
    lab = bench_lab()
    t0 = time.monotonic()
    try:
        lab.state = lab.up(["trader", "gateway", "broker", "risk"], programs=False)
        serving = time.monotonic() - t0
        lab.wait_programs(lab.state.hosts.values())
        return serving, time.monotonic() - t0
    finally:
        lab.down()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--starts", type=int, default=3, help="agent restarts measured (default 3)")
    ap.add_argument("--out", type=Path, default=Path("bench/results.json"), help="results file to append to")
    a = ap.parse_args(argv)
    run(a.starts, a.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
