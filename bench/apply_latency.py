"""Apply latency: one DISCONNECT (eBPF) applied and healed, N cycles, p50 / p99, side by side:

- faultline end to end: controller client -> gRPC -> agent -> kernel; the call returns once
  the kernel has the change (filters attached, rule in the map);
- faultline's mechanism in-process (EbpfDropper, no gRPC, no agent): the floor of our stack.

Both on the same lab, same interface set-up (a standing clsact, as the agent keeps), in the
same run, so the ratio survives a noisy machine. The `tc` command and tcconfig need netem
or flower/gact, which this kernel lacks: they are the VM stage's part of issue 10.

    python -m bench.apply_latency [--n 500]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.results import append_result, table
from controller.client import AgentClient, fault_spec
from controller.lab import Lab, LabConfig

BENCH_LAB = LabConfig(prefix="flb", subnet4="10.75.0.0/24", subnet6="fd75::/64", run_dir=Path("/run/faultline-bench"))
GOAL = "faultline end to end p50 <= 2 ms, p99 <= 10 ms"


def pct(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def summary(apply_ms: list[float], heal_ms: list[float]) -> dict[str, float]:
    return {"apply_p50_ms": round(statistics.median(apply_ms), 3), "apply_p99_ms": round(pct(apply_ms, 0.99), 3),
            "heal_p50_ms": round(statistics.median(heal_ms), 3), "heal_p99_ms": round(pct(heal_ms, 0.99), 3)}


def floor(n: int, ifname: str, peer: str) -> dict[str, float]:
    """Run inside a lab host's namespace (no agent there): the mechanism alone."""
    from agent.domain.journal import Journal
    from agent.domain.spec import Direction, FaultKind
    from agent.domain.validation import Limits, RawSpec, validate
    from agent.kernel.ebpf import TcDropProgram
    from agent.kernel.ebpf_drop import EbpfDropper
    from agent.kernel.tc import TcHooks

    with tempfile.TemporaryDirectory() as state, TcHooks() as tc:
        prog = TcDropProgram((7070, 22))
        dropper = EbpfDropper(prog, tc, Journal(Path(state)), "", Journal(Path(state), Journal.HOOKS))
        index = tc.link_index(ifname)
        assert index is not None, ifname
        dropper.prepare(index, ifname)
        spec = validate(RawSpec(FaultKind.DISCONNECT, ifname, Direction.BOTH, [peer], lease_ms=60_000),
                        Limits(), lambda _: True)
        apply_ms, heal_ms = [], []
        try:
            for i in range(n):
                t0 = time.perf_counter_ns()
                dropper.apply(f"f-{i}", spec, index)
                t1 = time.perf_counter_ns()
                dropper.heal(f"f-{i}")
                t2 = time.perf_counter_ns()
                apply_ms.append((t1 - t0) / 1e6)
                heal_ms.append((t2 - t1) / 1e6)
        finally:
            dropper.close()
            prog.close()
    return summary(apply_ms, heal_ms)


def end_to_end(agent: str, ifname: str, peer: str, n: int) -> dict[str, float]:
    apply_ms, heal_ms = [], []
    with AgentClient(agent) as c:
        spec = fault_spec("disconnect", ifname, peers=[peer], lease_s=60)
        c.heal(c.apply(spec).fault_id)  # the first call sets up the channel
        for _ in range(n):
            t0 = time.perf_counter_ns()
            r = c.apply(spec)
            t1 = time.perf_counter_ns()
            c.heal(r.fault_id)
            t2 = time.perf_counter_ns()
            apply_ms.append((t1 - t0) / 1e6)
            heal_ms.append((t2 - t1) / 1e6)
    return summary(apply_ms, heal_ms)


def run(n: int, out: Path | None) -> dict[str, object]:
    lab = Lab(BENCH_LAB, progress=lambda m: print("  " + m, flush=True))
    lab.down()
    try:
        lab.state = lab.up(["trader", "gateway", "broker"], agents=["trader"])  # down below even if this fails
        hosts = lab.state.hosts
        e2e = end_to_end(hosts["trader"].agent, hosts["trader"].interface, hosts["gateway"].ipv4 + "/32", n)
        r = subprocess.run(lab.exec_argv("broker", [sys.executable, "-m", "bench.apply_latency", "--floor",
                                                    "--n", str(n), "--interface", hosts["broker"].interface,
                                                    "--peer", hosts["gateway"].ipv4 + "/32"]),
                           capture_output=True, text=True, check=True)
        base = json.loads(r.stdout.strip().splitlines()[-1])
    finally:
        lab.down()
    rows = [{"mode": "faultline end to end (gRPC)", **e2e}, {"mode": "faultline mechanism (no gRPC)", **base}]
    for row in rows:
        row["apply_p50_ratio_to_floor"] = round(row["apply_p50_ms"] / base["apply_p50_ms"], 2)
    result = {"bench": "apply_latency", "fault": "DISCONNECT (eBPF)", "cycles": n, "rows": rows, "goal": GOAL,
              "goal_met": e2e["apply_p50_ms"] <= 2 and e2e["apply_p99_ms"] <= 10}
    print(table(["MODE", "APPLY p50 ms", "APPLY p99 ms", "HEAL p50 ms", "HEAL p99 ms", "APPLY p50 / FLOOR"],
                [[r["mode"], r["apply_p50_ms"], r["apply_p99_ms"], r["heal_p50_ms"], r["heal_p99_ms"],
                  r["apply_p50_ratio_to_floor"]] for r in rows]))
    print(f"goal ({GOAL}): {'met' if result['goal_met'] else 'NOT met'}")
    if out is not None:
        append_result(out, result)
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=500, help="apply+heal cycles per mode (default 500)")
    ap.add_argument("--out", type=Path, default=Path("bench/results.json"), help="results file to append to")
    ap.add_argument("--floor", action="store_true", help=argparse.SUPPRESS)  # the in-namespace half
    ap.add_argument("--interface", default="lab0", help=argparse.SUPPRESS)
    ap.add_argument("--peer", default="", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.floor:
        print(json.dumps(floor(a.n, a.interface, a.peer)))
        return 0
    run(a.n, a.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
