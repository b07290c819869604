"""Accuracy: what was asked for against what the packets show, across two lab hosts.

- Loss 5 / 20 / 50 %: numbered UDP datagrams to the targeted peer, counted where they
  arrive; the measured rate with its 99 % Wilson interval, and whether the requested rate
  lies inside it. eBPF on this kernel; netem in the VM.
- Delay 100 / 500 ms, without and with jitter (normal, 10 % of the delay): the rise of the
  median ping RTT over the same path unfaulted, and the RTT standard deviation against the
  jitter asked for. netem only, so in the VM, for faultline; tcconfig (`tcset --loss`,
  `--delay --delay-distro`) for 20 % and 100 ms +- 10 ms only: each call is a Python start,
  ~20 s under the VM's TCG.

faultline runs from the trader (its agent), tcconfig from the broker (no agent there), both
towards the gateway, in the same lab and the same run.

    python -m bench.accuracy [--packets 5000]          # eBPF loss, this kernel
    python -m bench.vm                                 # the netem half, in the VM
"""

from __future__ import annotations

import math
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.common import bench_lab, parser, report
from faultline.controller.agents.client import AgentClient
from faultline.controller.agents.spec import Delay, Loss, fault_spec
from faultline.controller.env.lab import Lab
from testkit.netns import ping_ms, udp_delivered

LOSS_PERCENT = (5, 20, 50)
DELAYS = ((100, 0), (100, 10), (500, 0), (500, 50))  # (delay, jitter) ms
TCCONFIG_LOSS, TCCONFIG_DELAY = 20, (100, 10)
Z99 = 2.5758
PORT = 5310


def wilson(lost: int, n: int, z: float = Z99) -> tuple[float, float]:
    """Interval for a proportion lost/n (Wilson score), in percent."""
    p = lost / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return round(100 * (centre - half), 2), round(100 * (centre + half), 2)


def loss_row(tool: str, mechanism: str, percent: float, sent: int, delivered: int) -> dict[str, Any]:
    lo, hi = wilson(sent - delivered, sent)
    return {"tool": tool, "mechanism": mechanism, "fault": f"loss {percent:g} %", "requested": percent,
            "measured": round(100 * (sent - delivered) / sent, 2), "unit": "%", "samples": sent,
            "interval_99": [lo, hi], "requested_within": lo <= percent <= hi}


def delay_rows(tool: str, delay_ms: int, jitter_ms: int, base: list[float], rtts: list[float]) -> list[dict]:
    if not rtts or not base:
        raise RuntimeError(f"{tool}: no ping came back (delay {delay_ms} ms)")
    name = f"delay {delay_ms} ms" + (f" jitter {jitter_ms} ms normal" if jitter_ms else "")
    rows = [{"tool": tool, "mechanism": "netem", "fault": name, "requested": delay_ms,
             "measured": round(statistics.median(rtts) - statistics.median(base), 2), "unit": "ms (RTT rise)",
             "samples": len(rtts)}]
    if jitter_ms:
        rows.append({"tool": tool, "mechanism": "netem", "fault": name + " (spread)", "requested": jitter_ms,
                     "measured": round(statistics.stdev(rtts), 2), "unit": "ms (RTT stdev)", "samples": len(rtts)})
    return rows


def faultline_loss(lab: Lab, mechanism: str, packets: int) -> list[dict[str, Any]]:
    h = lab.state.hosts
    rows = []
    with AgentClient(h["trader"].agent, timeout_s=30) as c:
        for p in LOSS_PERCENT:
            r = c.apply(fault_spec(Loss(percent=p), h["trader"].interface, peers=[h["gateway"].ipv4 + "/32"],
                                   ports=[PORT], protocol="udp", direction="egress", mechanism=mechanism, lease_s=120))
            try:
                seen = udp_delivered(h["trader"].netns, h["gateway"].netns, h["gateway"].ipv4, PORT, packets)
            finally:
                c.heal(r.fault_id)
            rows.append(loss_row("faultline", "eBPF" if mechanism == "ebpf" else "netem", p, packets, len(seen)))
            print(f"  faultline {mechanism} loss {p} %: measured {rows[-1]['measured']} %", flush=True)
    return rows


def faultline_delay(lab: Lab, pings: int) -> list[dict[str, Any]]:
    h = lab.state.hosts
    gw = h["gateway"].ipv4
    rows = []
    with AgentClient(h["trader"].agent, timeout_s=30) as c:
        for delay, jitter in DELAYS:
            base = ping_ms(lab, "trader", gw, 40)
            shape = Delay(delay_ms=delay, jitter_ms=jitter, distribution="normal" if jitter else "uniform")
            r = c.apply(fault_spec(shape, h["trader"].interface, peers=[gw + "/32"], direction="egress", lease_s=120))
            try:
                rtts = ping_ms(lab, "trader", gw, pings)
            finally:
                c.heal(r.fault_id)
            made = delay_rows("faultline", delay, jitter, base, rtts)
            rows += made
            print(f"  faultline delay {delay} ms jitter {jitter} ms: RTT rise {made[0]['measured']} ms", flush=True)
    return rows


def _tcconfig(lab: Lab, *args: str) -> None:
    bindir = Path(sys.executable).parent
    cmd = [str(bindir / args[0]), lab.state.hosts["broker"].interface, *args[1:]]
    r = subprocess.run(lab.exec_argv("broker", cmd), capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {r.stderr.strip()[-500:]}")


def tcconfig_rows(lab: Lab, packets: int, pings: int) -> list[dict[str, Any]]:
    """One loss rate and one delay with jitter: each tcset is a Python start, ~20 s under TCG."""
    h = lab.state.hosts
    gw = h["gateway"].ipv4
    ifname = h["broker"].interface
    clear = ["tc", "qdisc", "del", "dev", ifname, "root"]  # tcdel costs another Python start
    _tcconfig(lab, "tcset", "--loss", f"{TCCONFIG_LOSS}%", "--network", gw + "/32")
    try:
        seen = udp_delivered(h["broker"].netns, h["gateway"].netns, gw, PORT, packets)
    finally:
        subprocess.run(lab.exec_argv("broker", clear), check=True)
    rows = [loss_row("tcconfig", "netem", TCCONFIG_LOSS, packets, len(seen))]
    delay, jitter = TCCONFIG_DELAY
    base = ping_ms(lab, "broker", gw, 40)
    _tcconfig(lab, "tcset", "--delay", f"{delay}ms", "--delay-distro", f"{jitter}ms", "--network", gw + "/32")
    try:
        rtts = ping_ms(lab, "broker", gw, pings)
    finally:
        subprocess.run(lab.exec_argv("broker", clear), check=True)
    return rows + delay_rows("tcconfig", delay, jitter, base, rtts)


def print_and_record(result: dict[str, Any], out: Path | None) -> dict[str, object]:
    return report(result, ["TOOL", "MECHANISM", "FAULT", "REQUESTED", "MEASURED", "UNIT", "99 % INTERVAL", "N"],
                  [[r["tool"], r["mechanism"], r["fault"], r["requested"], r["measured"], r["unit"],
                    r.get("interval_99", ""), r["samples"]] for r in result["rows"]], out)


def measure_netem(lab: Lab, packets: int, pings: int) -> dict[str, Any]:
    """The VM half, on a lab that is up (trader with an agent; gateway; broker)."""
    rows = faultline_loss(lab, "netem", packets) + faultline_delay(lab, pings) + tcconfig_rows(lab, packets, pings)
    return {"bench": "accuracy", "where": "netem (VM)", "rows": rows,
            "peer": "tcconfig tcset (PyPI), same lab, same run"}


def run(packets: int, out: Path | None) -> dict[str, object]:
    lab = bench_lab()
    try:
        lab.state = lab.up(["trader", "gateway"], agents=["trader"])  # down below even if this fails
        rows = faultline_loss(lab, "ebpf", packets)
    finally:
        lab.down()
    result = {"bench": "accuracy", "where": "eBPF (this kernel)", "rows": rows,
              "peer": "none on this kernel: tcset and the tc command need netem (see the VM run)"}
    return print_and_record(result, out)


def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__)
    ap.add_argument("--packets", type=int, default=5000, help="UDP datagrams per loss rate (default 5000)")
    a = ap.parse_args(argv)
    run(a.packets, a.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
