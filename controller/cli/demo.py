"""`make demo`: the trading lab under a representative set of faults, then the RECOVERY SCORECARD.

For each scenario: lab up (trader, gateway, ibserver, broker, risk: one agent each) -> workload
up (Redis broker, IB's back end, the TWS-protocol gateway, consumer, the ib_async trader placing
orders) -> the fault, with live progress ->
its verdicts, journal and timeline -> lab down, nothing left. The set: a 3 s partition
trader<->gateway, 500 ms latency on the gateway's answers (netem; on a kernel without it
this says why and skips it: `faultline vm -- faultline demo` runs the set in the VM), 20 %
loss on the gateway-broker link, and the broker killed and restarted.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from faultline import contracts
from faultline.controller.cli.scenarios import run_scenarios
from faultline.controller.env.lab import LabConfig
from faultline.controller.env.programs import require
from faultline.controller.model import scenario

TRADING = contracts.HERE / "scenarios" / "trading"
DEMO_SET = ("partition_trader_gateway_3s", "latency_gateway_500ms", "loss_broker_link_20", "broker_kill_restart")
# Its own lab, so the demo never reuses or removes a lab someone brought up by hand.
DEMO_LAB = LabConfig(prefix="fld", subnet4="10.76.0.0/24", subnet6="fd76::/64", run_dir=Path("/run/faultline-demo"))


def why_no_netem() -> str | None:
    if not Path("/sys/module/sch_netem").exists():
        subprocess.run([require("modprobe"), "-q", "sch_netem"], check=False, capture_output=True)
    if Path("/sys/module/sch_netem").exists():
        return None
    return f"this kernel ({Path('/proc/sys/kernel/osrelease').read_text().strip()}) has no sch_netem"


def run_demo(out: Path | None = None) -> int:
    t0 = time.monotonic()
    out = out or Path("build/demo") / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    chosen = []
    for name in DEMO_SET:
        if name.startswith("latency") and (why := why_no_netem()):
            print(f"SKIPPED {name}: {why}; `faultline vm -- faultline demo` runs it with Debian's kernel\n")
            continue
        chosen.append(scenario.load(TRADING / f"{name}.yaml"))
    rc = run_scenarios(chosen, out, lab_config=DEMO_LAB)
    print(f"demo: {len(chosen)} scenario(s) in {time.monotonic() - t0:.0f} s; results under {out}/")
    return rc
