"""Coordinated start: one fault started on 5, 10 and 20 agents (lab hosts) at one instant T.

Each agent is sent T on its own clock (offset from SyncClock) and waits for it itself
(controller/agents/coordinate.py). Per round, the apply times come back corrected to the
controller's clock; the skew is their spread. The peer: the same faults sent from one
thread each with no start instant ("as fast as the controller can send"), measured in the
same run, so the table says what waiting for T buys.

    python -m bench.coordinated_start [--rounds 20] [--agents 5,10,20]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
from pathlib import Path

from bench.common import BENCH_LAB, bench_lab, pct
from bench.results import append_result, table
from faultline.controller.agents import coordinate
from faultline.controller.agents.spec import Disconnect, fault_spec
from faultline.controller.env.hosts import connect, lab_endpoints

GOAL = "skew <= 5 ms at 20 agents"
# A lab address no host has: the fault matches nothing that flows, so rounds stay independent.
NOBODY = "10.75.0.250/32"


def rounds_of(hosts: list, rounds: int, coordinated: bool) -> list[float]:
    skews = []
    for _ in range(rounds):
        targets = [coordinate.Target(h.name, h.client, h.clock, fault_spec(Disconnect(), h.endpoint.interface,
                                                                           peers=[NOBODY], lease_s=30))
                   for h in hosts]
        if coordinated:
            applied, refused = coordinate.apply_at(targets)
        else:  # no instant: each agent applies when its request arrives
            applied, refused = coordinate.apply_at(targets, start_ns=0)
        if refused:
            raise RuntimeError(f"refused: {refused}")
        skews.append(coordinate.skew_ns(applied) / 1e6)
        for a in applied:
            next(h for h in hosts if h.name == a.host).client.heal(a.fault_id)
    return skews


def run(counts: list[int], rounds: int, out: Path | None) -> dict[str, object]:
    names = [f"h{i:02d}" for i in range(1, max(counts) + 1)]
    # Twenty agents compile their BPF programs at once on this machine's two CPUs: allow for it.
    lab = bench_lab(dataclasses.replace(BENCH_LAB, ready_timeout_s=600))
    rows = []
    try:
        lab.state = lab.up(names)
        hosts = [connect(ep) for ep in lab_endpoints(lab.state, names).values()]
        for k in counts:
            for mode, coordinated in (("at one instant T", True), ("sent at once, no T", False)):
                s = rounds_of(hosts[:k], rounds, coordinated)
                rows.append({"agents": k, "mode": mode, "skew_p50_ms": round(statistics.median(s), 3),
                             "skew_p99_ms": round(pct(s, 0.99), 3), "skew_max_ms": round(max(s), 3)})
                r = rows[-1]
                print(f"{k:3} agents  {mode:20}  skew p50 {r['skew_p50_ms']} ms  max {r['skew_max_ms']} ms", flush=True)
        for h in hosts:
            h.client.close()
    finally:
        lab.down()
    at20 = next(r for r in rows if r["agents"] == max(counts) and r["mode"] == "at one instant T")
    result = {"bench": "coordinated_start", "rounds": rounds, "rows": rows, "goal": GOAL,
              "goal_met": max(counts) >= 20 and at20["skew_max_ms"] <= 5}
    print(table(["AGENTS", "MODE", "SKEW p50 ms", "p99 ms", "max ms"],
                [[r["agents"], r["mode"], r["skew_p50_ms"], r["skew_p99_ms"], r["skew_max_ms"]] for r in rows]))
    if out is not None:
        append_result(out, result)
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=20, help="starts per agent count and mode (default 20)")
    ap.add_argument("--agents", default="5,10,20", help="agent counts (default 5,10,20)")
    ap.add_argument("--out", type=Path, default=Path("bench/results.json"), help="results file to append to")
    a = ap.parse_args(argv)
    run([int(x) for x in a.agents.split(",")], a.rounds, a.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
