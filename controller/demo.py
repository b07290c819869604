"""`make demo`: lab up -> TCP stream trader->gateway -> 3 s DISCONNECT -> heal -> timings -> lab down."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from controller.client import AgentClient, fault_spec
from controller.format import when
from controller.lab import Lab, LabConfig

FAULT_S = 3.0
# Its own lab, so the demo never reuses or removes a lab someone brought up by hand.
DEMO_LAB = LabConfig(prefix="fld", subnet4="10.76.0.0/24", subnet6="fd76::/64", run_dir=Path("/run/faultline-demo"))


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def run_demo() -> int:
    t0 = time.monotonic()
    lab = Lab(DEMO_LAB, progress=lambda m: say("  " + m))
    say("lab up: trader, gateway, broker (network namespaces, one agent each)")
    state = lab.up(["trader", "gateway", "broker"])
    server = client = None
    try:
        gw, tr = state.hosts["gateway"], state.hosts["trader"]
        wl = [sys.executable, "-m", "controller.workload"]
        server = subprocess.Popen(lab.exec_argv("gateway", [*wl, "server", "--bind", gw.ipv4, "--port", "4002"]),
                                  stdout=subprocess.DEVNULL)
        time.sleep(1.0)
        say(f"trader streams to gateway {gw.ipv4}:4002 (heartbeat every 50 ms, reconnects after 0.5 s silence)")
        client = subprocess.Popen(lab.exec_argv("trader", [*wl, "client", "--connect", gw.ipv4, "--port", "4002",
                                                           "--seconds", "9"]), stdout=subprocess.PIPE, text=True)
        time.sleep(2.5)
        with AgentClient(tr.agent) as agent:
            say(f"inject DISCONNECT trader <-> gateway ({gw.ipv4}/32, both directions) for {FAULT_S:g} s")
            r = agent.apply(fault_spec("disconnect", tr.interface, peers=[gw.ipv4 + "/32"], lease_s=30,
                                       label="demo"))
            time.sleep(FAULT_S)
            healed = agent.heal(r.fault_id)
        say(f"healed: the kernel dropped {healed.counters.dropped} of {healed.counters.matched} matched packets")
        out, _ = client.communicate(timeout=30)
        events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        applied, healed_ns = r.applied_at.realtime_ns, healed.healed_at.realtime_ns
        lost = next((e for e in events if e["event"] == "disconnected" and e["t_ns"] >= applied), None)
        back = next((e for e in events if e["event"] == "connected" and e["t_ns"] >= healed_ns), None)
        print()
        print(f"  fault applied (agent)      {when(r.applied_at)}")
        if lost:
            print(f"  client saw link dead       +{(lost['t_ns'] - applied) / 1e9:.3f} s after apply")
        print(f"  fault healed  (agent)      {when(healed.healed_at)}  (+{(healed_ns - applied) / 1e9:.3f} s)")
        if back:
            print(f"  client reconnected         +{(back['t_ns'] - healed_ns) / 1e9:.3f} s after heal")
        else:
            print("  client did NOT reconnect before the end of the run")
        print()
        return 0 if back else 1
    finally:
        for p in (client, server):
            if p and p.poll() is None:
                p.terminate()
                p.wait(timeout=5)
        say("lab down")
        for line in lab.down():
            say("  " + line)
        say(f"done in {time.monotonic() - t0:.1f} s")
