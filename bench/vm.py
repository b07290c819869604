"""The benchmarks that need netem, in one boot of the VM (Debian's kernel; see controller/env/vm.py).

Inside: one lab (trader with an agent, gateway, broker), then DELAY apply latency
(faultline end to end, its mechanism, the tc command, tcconfig) and netem accuracy
(faultline and tcconfig). The results come out through the VM's shared directory and are
appended to bench/results.json with the VM's kernel named, so they never pass for this
host's figures. Under TCG (no KVM here) everything in the VM is several times slower than
on the host: compare rows of one run with each other, not with the host's table.

    python -m bench.vm [--n 100] [--peer-n 3] [--packets 5000] [--pings 60]
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path

from bench import accuracy, apply_latency
from bench.common import BENCH_LAB, bench_lab, parser
from bench.results import append_result, context
from faultline.controller.env import vm

OUT = Path("build/bench-vm")
RESULTS = "bench-results.json"


def inside(n: int, peer_n: int, packets: int, pings: int) -> int:
    out = Path(os.environ.get("FAULTLINE_VM_OUT", OUT))
    lab = bench_lab(dataclasses.replace(BENCH_LAB, ready_timeout_s=300))  # bcc compiles ~35 s under TCG
    results = []
    try:
        lab.state = lab.up(["trader", "gateway", "broker"], agents=["trader"])
        delay = apply_latency.measure(lab, "delay", n, peer_n, absolute=False)  # TCG: ratios only
        results.append(apply_latency.print_and_record(delay, None))
        results.append(accuracy.print_and_record(accuracy.measure_netem(lab, packets, pings), None))
    finally:
        lab.down()
        (out / RESULTS).write_text(json.dumps([{**context(), "where_run": "VM (TCG)", **r} for r in results],
                                              indent=2))
    return 0


def run(n: int, peer_n: int, packets: int, pings: int, out: Path | None) -> list[dict[str, object]]:
    (OUT / RESULTS).unlink(missing_ok=True)
    rc = vm.run([sys.executable, "-m", "bench.vm", "--inside", "--n", str(n), "--peer-n", str(peer_n),
                 "--packets", str(packets), "--pings", str(pings)], OUT,
                progress=lambda m: print("  " + m, flush=True))
    log = OUT / "output.log"
    print(log.read_text() if log.exists() else "(no output from the VM)", flush=True)
    if rc != 0 or not (OUT / RESULTS).exists():
        raise RuntimeError(f"the VM benchmarks failed (exit {rc}); see {log} and {OUT / 'console.log'}")
    results = json.loads((OUT / RESULTS).read_text())
    for r in results:
        if out is not None:
            append_result(out, r)  # the VM's kernel, not this host's: its context is already in r
    return results


def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__)
    ap.add_argument("--n", type=int, default=100, help="DELAY cycles, faultline and tc (default 100: TCG is slow)")
    ap.add_argument("--peer-n", type=int, default=3, help="cycles for tcconfig, ~20 s per call under TCG (default 3)")
    ap.add_argument("--packets", type=int, default=5000, help="UDP datagrams per loss rate (default 5000)")
    ap.add_argument("--pings", type=int, default=60, help="pings per delay measured (default 60)")
    ap.add_argument("--inside", action="store_true", help="run the benchmarks here (the VM does this)")
    a = ap.parse_args(argv)
    if a.inside:
        return inside(a.n, a.peer_n, a.packets, a.pings)
    try:
        run(a.n, a.peer_n, a.packets, a.pings, a.out)
    except vm.VmUnavailable as e:
        print(f"bench.vm: no VM here: {e}", file=sys.stderr)
        return vm.EX_UNAVAILABLE
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
