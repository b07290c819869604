"""Apply latency: one fault applied and healed, N cycles, p50 / p99, side by side.

DISCONNECT (eBPF, on this kernel) and DELAY 100 ms (netem, in the VM: `--fault delay`),
towards one peer, each with the same lab in the same run, so ratios survive a noisy machine:

- faultline end to end: controller client -> gRPC -> agent -> kernel; the call returns once
  the kernel has the change (filters attached and the rule in the map; for DELAY the netem
  class verified too);
- faultline's mechanism in-process (no gRPC, no agent): the floor of our stack;
- the `tc` command doing the same change, one process per command, as Pumba, Chaos Mesh's
  daemon and AWS FIS's scripts run it. DISCONNECT: a direct-action BPF object dropping the
  peer (bench/peers/tc_peer_drop.c, compiled by clang once) added on egress and ingress,
  then deleted. DELAY: prio root + netem on its fourth band + a u32 filter for the peer,
  then the root deleted;
- tcconfig's `tcset` / `tcdel` (PyPI), DELAY only: it drives netem, which this kernel lacks.
  A Python start per call, so fewer cycles (`--peer-n`); the JSON says how many.

    python -m bench.apply_latency [--fault disconnect|delay] [--n 500] [--peer-n 30]
"""

from __future__ import annotations

import argparse
import json
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import bench_lab, latency, parser, report
from faultline.controller.agents.client import AgentClient
from faultline.controller.agents.spec import Delay, Disconnect, fault_spec
from faultline.controller.env.lab import Lab

GOAL = "faultline end to end p50 <= 2 ms, p99 <= 10 ms; >= 2x faster than the tc command"
GOAL_RATIO = ">= 2x faster than the tc command (absolute times under TCG say nothing of a host)"
PEER_PROGRAM = Path(__file__).parent / "peers" / "tc_peer_drop.c"
DELAY_MS = 100
PREF = 49152  # the tc command's filters: a priority faultline never uses


def cycles(n: int, apply: Callable[[int], Any], heal: Callable[[Any], None]) -> dict[str, float]:
    apply_ms, heal_ms = [], []
    for i in range(n):
        t0 = time.perf_counter_ns()
        handle = apply(i)
        t1 = time.perf_counter_ns()
        heal(handle)
        t2 = time.perf_counter_ns()
        apply_ms.append((t1 - t0) / 1e6)
        heal_ms.append((t2 - t1) / 1e6)
    return latency(apply_ms, heal_ms)


def end_to_end(agent: str, fault: str, ifname: str, peer: str, n: int) -> dict[str, float]:
    spec = (fault_spec(Disconnect(), ifname, peers=[peer], lease_s=60) if fault == "disconnect" else
            fault_spec(Delay(delay_ms=DELAY_MS), ifname, peers=[peer], direction="egress", lease_s=60))
    with AgentClient(agent, timeout_s=30) as c:
        c.heal(c.apply(spec).fault_id)  # the first call sets up the channel
        return cycles(n, lambda _i: c.apply(spec).fault_id, c.heal)


# -- inside a lab host's namespace (no agent there) ------------------------------------------
def mechanism(fault: str, ifname: str, peer: str, n: int) -> dict[str, float]:
    from faultline.agent.domain.deferred import Deferred
    from faultline.agent.domain.journal import Journal
    from faultline.agent.domain.spec import Direction, FaultKind
    from faultline.agent.domain.validation import Limits, RawSpec, validate
    from faultline.agent.kernel.ebpf import TcDropProgram
    from faultline.agent.kernel.ebpf_drop import EbpfDropper
    from faultline.agent.kernel.netem_shape import NetemShaper
    from faultline.agent.kernel.tc import TcHooks

    with tempfile.TemporaryDirectory() as state, TcHooks() as tc:
        prog = Deferred("tc_drop.c", lambda: TcDropProgram((7070, 22)), TcDropProgram.close)
        prog.run()  # compiled here, before the cycles: the agent does it in the background
        journal = Journal(Path(state))
        index = tc.link_index(ifname)
        assert index is not None, ifname
        if fault == "disconnect":
            dropper = EbpfDropper(prog, tc, journal, "", Journal(Path(state), Journal.HOOKS))
            dropper.prepare(index, ifname)  # the standing clsact the agent keeps
            raw = RawSpec(FaultKind.DISCONNECT, ifname, Direction.BOTH, [peer], lease_ms=60_000)
        else:
            dropper = NetemShaper(prog, tc, journal, "")
            raw = RawSpec(FaultKind.DELAY, ifname, Direction.EGRESS, [peer], lease_ms=60_000, delay_ms=DELAY_MS,
                          params="delay")
        spec = validate(raw, Limits(), lambda _: True)

        def apply(i: int) -> str:
            dropper.apply(f"f-{i}", spec, index)
            return f"f-{i}"

        try:
            return cycles(n, apply, dropper.heal)
        finally:
            if fault == "disconnect":
                dropper.close()
            prog.close()


def _tc(*args: str) -> None:
    subprocess.run(["tc", *args], check=True, stdout=subprocess.DEVNULL)


def tc_command(fault: str, ifname: str, peer: str, n: int) -> dict[str, float]:
    address = peer.split("/")[0]
    if fault == "delay":
        def apply_delay(_i: int) -> None:
            _tc("qdisc", "add", "dev", ifname, "root", "handle", "1:", "prio", "bands", "4")
            _tc("qdisc", "add", "dev", ifname, "parent", "1:4", "handle", "40:", "netem", "delay", f"{DELAY_MS}ms")
            _tc("filter", "add", "dev", ifname, "parent", "1:", "protocol", "ip", "prio", "1", "u32",
                "match", "ip", "dst", peer, "flowid", "1:4")

        return cycles(n, apply_delay, lambda _h: _tc("qdisc", "del", "dev", ifname, "root"))
    with tempfile.TemporaryDirectory() as tmp:
        obj = str(Path(tmp) / "drop.o")
        peer_be = struct.unpack("=I", socket.inet_aton(address))[0]
        subprocess.run(["clang", "-O2", "-target", "bpf", "-I/usr/include/x86_64-linux-gnu",
                        f"-DPEER_BE={peer_be:#x}", "-c", str(PEER_PROGRAM), "-o", obj], check=True)
        _tc("qdisc", "add", "dev", ifname, "clsact")  # standing, as the agent's
        hooks = ("egress", "ingress")

        def apply_drop(_i: int) -> None:
            for hook in hooks:
                _tc("filter", "add", "dev", ifname, hook, "pref", str(PREF), "bpf", "da", "obj", obj,
                    "sec", "classifier")

        def heal_drop(_h: None) -> None:
            for hook in hooks:
                _tc("filter", "del", "dev", ifname, hook, "pref", str(PREF))

        try:
            return cycles(n, apply_drop, heal_drop)
        finally:
            _tc("qdisc", "del", "dev", ifname, "clsact")


def tcconfig(ifname: str, peer: str, n: int) -> dict[str, float]:
    bindir = Path(sys.executable).parent

    def apply(_i: int) -> None:
        subprocess.run([str(bindir / "tcset"), ifname, "--delay", f"{DELAY_MS}ms", "--network", peer],
                       check=True, stdout=subprocess.DEVNULL)

    return cycles(n, apply, lambda _h: subprocess.run([str(bindir / "tcdel"), ifname, "--all"], check=True,
                                                      stdout=subprocess.DEVNULL))


INNER = {"mechanism": mechanism, "tc": tc_command, "tcconfig": lambda _f, i, p, n: tcconfig(i, p, n)}


def _inner(lab: Lab, host: str, mode: str, fault: str, peer: str, n: int) -> dict[str, float]:
    """One mode run in `host`'s namespace, where no agent is: nothing else touches its tc."""
    ifname = lab.state.hosts[host].interface
    r = subprocess.run(lab.exec_argv(host, [sys.executable, "-m", "bench.apply_latency", "--inner", mode,
                                            "--fault", fault, "--n", str(n), "--interface", ifname,
                                            "--peer", peer]), capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise RuntimeError(f"{mode} ({fault}) failed: {r.stderr.strip()[-800:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def measure(lab: Lab, fault: str, n: int, peer_n: int, absolute: bool = True) -> dict[str, object]:
    """The table for one fault on a lab that is up (trader with an agent; gateway; broker).

    absolute=False (the VM under TCG, many times slower): the goal is judged on the ratio only.
    """
    hosts = lab.state.hosts
    peer = hosts["gateway"].ipv4 + "/32"
    rows: list[dict[str, Any]] = []

    def row(mode: str, figures: dict[str, float], cycles_run: int) -> None:
        rows.append({"mode": mode, "cycles": cycles_run, **figures})
        print(f"  {mode}: apply p50 {figures['apply_p50_ms']} ms", flush=True)

    row("faultline end to end (gRPC)", end_to_end(hosts["trader"].agent, fault, hosts["trader"].interface, peer, n), n)
    row("faultline mechanism (no gRPC)", _inner(lab, "broker", "mechanism", fault, peer, n), n)
    row("tc command", _inner(lab, "broker", "tc", fault, peer, n), n)
    if fault == "delay":
        k = min(n, peer_n)
        row("tcconfig tcset / tcdel", _inner(lab, "broker", "tcconfig", fault, peer, k), k)
    floor = rows[1]["apply_p50_ms"]
    e2e = rows[0]
    for r in rows:
        r["apply_p50_ratio_to_floor"] = round(r["apply_p50_ms"] / floor, 2)
        r["apply_p50_ratio_to_faultline"] = round(r["apply_p50_ms"] / e2e["apply_p50_ms"], 2)
    tc_ratio = rows[2]["apply_p50_ms"] / e2e["apply_p50_ms"]
    return {"bench": "apply_latency",
            "fault": "DISCONNECT (eBPF)" if fault == "disconnect" else f"DELAY {DELAY_MS} ms (netem)",
            "cycles": n, "rows": rows, "goal": GOAL if absolute else GOAL_RATIO,
            "goal_met": tc_ratio >= 2 and (not absolute or (e2e["apply_p50_ms"] <= 2 and e2e["apply_p99_ms"] <= 10))}


def print_and_record(result: dict[str, Any], out: Path | None) -> dict[str, object]:
    print(f"apply latency, {result['fault']}, kernel-side ratios against faultline's floor and end to end")
    report(result, ["MODE", "CYCLES", "APPLY p50 ms", "APPLY p99 ms", "HEAL p50 ms", "HEAL p99 ms",
                    "/ FLOOR", "/ FAULTLINE"],
           [[r["mode"], r["cycles"], r["apply_p50_ms"], r["apply_p99_ms"], r["heal_p50_ms"], r["heal_p99_ms"],
             r["apply_p50_ratio_to_floor"], r["apply_p50_ratio_to_faultline"]] for r in result["rows"]], out)
    print(f"goal ({result['goal']}): {'met' if result['goal_met'] else 'NOT met'}", flush=True)
    return result


def run(n: int, out: Path | None, fault: str = "disconnect", peer_n: int = 30) -> dict[str, object]:
    lab = bench_lab()
    try:
        lab.state = lab.up(["trader", "gateway", "broker"], agents=["trader"])  # down below even if this fails
        result = measure(lab, fault, n, peer_n)
    finally:
        lab.down()
    return print_and_record(result, out)


def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__)
    ap.add_argument("--fault", choices=["disconnect", "delay"], default="disconnect",
                    help="disconnect (eBPF, any kernel) or delay (netem: the VM stage, bench/vm.py)")
    ap.add_argument("--n", type=int, default=500, help="apply+heal cycles per mode (default 500)")
    ap.add_argument("--peer-n", type=int, default=30, help="cycles for tcconfig, a Python start per call (default 30)")
    ap.add_argument("--inner", choices=sorted(INNER), help=argparse.SUPPRESS)
    ap.add_argument("--interface", default="lab0", help=argparse.SUPPRESS)
    ap.add_argument("--peer", default="", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.inner:
        print(json.dumps(INNER[a.inner](a.fault, a.interface, a.peer, a.n)))
        return 0
    run(a.n, a.out, a.fault, a.peer_n)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
