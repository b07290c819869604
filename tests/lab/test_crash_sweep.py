"""Issue 32's crash sweep on the real kernel: kill -9 at random moments inside bursts of applies,
heals and pending starts, while each agent's state dir (a tiny tmpfs) fills and empties.

After every kill the agent is started again on the same state dir and must serve (0 wedged);
once it serves, its recovery is done, and the kernel must hold nothing of the killed run (no tc
filter on the interface, no process left stopped: 0 leftovers, so 0 lost undo records) and
Health must name no undo it could not do. Three lanes, one per lab host, run side by side.
FAULTLINE_SWEEP_ROUNDS sets the total (200 by default), FAULTLINE_SWEEP_SEED the randomness.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from faultline.controller.agents.client import AgentClient, AgentError
from faultline.controller.agents.spec import Disconnect, Loss, fault_spec, process_spec
from testkit.netns import proc_state, tc_state
from tests.lab.test_component_faults import start_in
from tests.lab.test_full_state_dir import fill

ROUNDS = int(os.environ.get("FAULTLINE_SWEEP_ROUNDS", "200"))
SEED = int(os.environ.get("FAULTLINE_SWEEP_SEED", str(time.time_ns() % 10**6)))
# Where a kill lands: within KILL_EARLY_S of serving (the classifier still compiling: process
# faults, pending starts, the standing clsact), or, in a share of the rounds, within
# KILL_LATE_S of the classifier being ready (filters being made and removed).
KILL_EARLY_S, KILL_LATE_S, LATE_SHARE = 3.0, 2.0, 0.35
SERVE_WITHIN_S = 60.0
# What a burst may be refused with and still be right (a full disk, the compile not done, a
# limit, a fault already healed by another op); anything else is a finding.
EXPECTED = {grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.NOT_FOUND,
            grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.DEADLINE_EXCEEDED,
            grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.CANCELLED}


@dataclass
class Tally:
    rounds: int = 0
    killed_with: dict[str, int] = field(default_factory=lambda: {"filter": 0, "pause": 0, "pending": 0})
    full_disk_rounds: int = 0
    exhausted: int = 0
    applied: int = 0
    findings: list[str] = field(default_factory=list)
    refused: dict[str, int] = field(default_factory=dict)  # expected refusals by code and op, for the print


@pytest.fixture
def tmpfs_dirs(tmp_path):
    mounts = []
    for name in ("trader", "gateway", "broker"):
        d = tmp_path / f"{name}-state"
        d.mkdir(mode=0o700)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96k,mode=0700", "tmpfs", str(d)], check=True)
        mounts.append(d)
    tmp_path.chmod(0o755)
    yield dict(zip(("trader", "gateway", "broker"), mounts, strict=True))
    for d in mounts:
        subprocess.run(["umount", str(d)], check=False)


def _filters(host) -> list[object]:
    state = tc_state(host.netns, host.interface)
    return [*state["ingress"], *state["egress"]]


def _serving(c: AgentClient, agent: subprocess.Popen) -> str:
    """'' once the agent answers Health; else why not (it exited, or not within the deadline)."""
    deadline = time.monotonic() + SERVE_WITHIN_S
    while time.monotonic() < deadline:
        if agent.poll() is not None:
            return f"exited {agent.returncode}"
        try:
            c.health(timeout_s=1.0)
            return ""
        except AgentError:
            time.sleep(0.05)
    return f"not serving within {SERVE_WITHIN_S:g} s"


class Burst:
    """Random applies, heals and pending starts until the agent dies under them."""

    def __init__(self, c: AgentClient, rng: random.Random, peer: str, victims: list[subprocess.Popen],
                 tally: Tally) -> None:
        self.c, self.rng, self.peer, self.victims, self.tally = c, rng, peer, victims, tally
        self.active: dict[str, str] = {}  # fault id -> filter | pause | pending
        self.ready = False  # the classifier compiled: network faults are tried from then on

    def op(self) -> None:
        rng, c = self.rng, self.c
        weights = {"pause": 3, "pending": 3, "heal": 1.5, "heal_all": 0.3,
                   **({"disconnect": 3, "loss": 2} if self.ready else {})}
        what = rng.choices(list(weights), list(weights.values()))[0]
        if what == "heal" and self.active:
            fid = rng.choice(list(self.active))
            self.active.pop(fid)
            c.heal(fid)
        elif what == "heal_all":
            self.active.clear()
            c.heal_all()
        elif what in ("disconnect", "loss"):
            params = Disconnect() if what == "disconnect" else Loss(percent=30)
            r = c.apply(fault_spec(params, "lab0", peers=[self.peer + "/32"], lease_s=30))
            self.active[r.fault_id] = "filter"
        elif what == "pause":
            r = c.apply(process_spec("pause", 30, pid=rng.choice(self.victims).pid))
            self.active[r.fault_id] = "pause"
        elif what == "pending":
            start = time.clock_gettime_ns(time.CLOCK_REALTIME) + int(rng.uniform(0.1, 1.0) * 1e9)
            spec = (process_spec("pause", 30, pid=rng.choice(self.victims).pid) if not self.ready or rng.random() < 0.5
                    else fault_spec(Disconnect(), "lab0", peers=[self.peer + "/32"], lease_s=30))
            r = c.apply(spec, start, wait_s=2)
            self.active[r.fault_id] = "pending"
        self.tally.applied += what not in ("heal", "heal_all")

    def program_ready(self) -> bool:
        return any(p.name == "tc_drop.c" and p.state == "ready" for p in self.c.health().programs)

    def run(self, agent: subprocess.Popen) -> None:
        while agent.poll() is None:
            try:
                self.ready = self.ready or self.program_ready()
                self.op()
            except AgentError as e:
                if agent.poll() is not None:
                    return
                if e.code is grpc.StatusCode.RESOURCE_EXHAUSTED:
                    self.tally.exhausted += 1
                elif e.code not in EXPECTED:
                    self.tally.findings.append(f"{e.code.name}: {e.message}")
                key = f"{e.code.name} {e.message[:18]}"
                self.tally.refused[key] = self.tally.refused.get(key, 0) + 1
            # Paced: a burst is a client's pace, not a spin that starves the agent's compile.
            time.sleep(self.rng.uniform(0.005, 0.03))


def _check_clean(host, victims: list[subprocess.Popen], c: AgentClient, round_: int) -> list[str]:
    out = []
    if left := _filters(host):
        out.append(f"round {round_}: {host.name}: tc filters left: {left}")
    if stopped := [v.pid for v in victims if proc_state(v.pid) == "T"]:
        out.append(f"round {round_}: {host.name}: processes left stopped: {stopped}")
    if undos := list(c.health().pending_undos):
        out.append(f"round {round_}: {host.name}: undos not done: {undos}")
    return out


def _kill_later(agent: subprocess.Popen, burst: Burst, late: bool, after_s: float) -> None:
    """SIGKILL after_s from now, or (late) from when the burst saw the classifier ready."""
    deadline = time.monotonic() + SERVE_WITHIN_S
    while late and not burst.ready and agent.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(after_s)  # the random moment itself: what the sweep varies, not a wait for a condition
    if agent.poll() is None:
        agent.send_signal(signal.SIGKILL)


def _lane(lab, name: str, peer: str, state_dir: Path, rounds: int, rng: random.Random, tally: Tally) -> None:
    host = lab.state.hosts[name]
    log = state_dir.parent / f"{name}-sweep.log"
    victims = [start_in(lab, name, "/bin/sleep", str(3000 + i)) for i in range(3)]
    ballast: Path | None = None
    try:
        for round_ in range(rounds + 1):  # the last start only checks, then stops cleanly
            if ballast is None and rng.random() < 0.2:
                ballast = fill(state_dir)
            elif ballast is not None and rng.random() < 0.5:
                ballast.unlink()
                ballast = None
            tally.full_disk_rounds += ballast is not None
            with open(log, "ab") as out:
                # The audit log apart: the ballast alone decides when the journal's disk is full.
                argv = lab.agent_argv(host, str(state_dir), ["--audit-log", str(state_dir.parent / f"{name}-audit")])
                agent = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            with AgentClient(host.agent, timeout_s=3.0) as c:
                if why := _serving(c, agent):
                    tally.findings.append(f"round {round_}: {name}: agent wedged: {why} (see {log})")
                    agent.kill()
                    agent.wait()
                    return
                tally.findings += _check_clean(host, victims, c, round_)
                if round_ == rounds:
                    agent.send_signal(signal.SIGTERM)
                    if agent.wait(timeout=60) != 0:
                        tally.findings.append(f"{name}: the last agent's SIGTERM exit was {agent.returncode}")
                    break
                burst = Burst(c, rng, peer, victims, tally)
                late = rng.random() < LATE_SHARE
                killer = threading.Thread(target=_kill_later, args=(agent, burst, late, rng.uniform(
                    0, KILL_LATE_S if late else KILL_EARLY_S)), daemon=True)
                killer.start()
                burst.run(agent)
                agent.wait()
                killer.join()
                tally.refused["(rounds the classifier was ready in)"] = \
                    tally.refused.get("(rounds the classifier was ready in)", 0) + burst.ready
                for kind in set(burst.active.values()):
                    tally.killed_with[kind] += 1
                tally.rounds += 1
    finally:
        if ballast is not None:
            ballast.unlink()
        for v in victims:
            if proc_state(v.pid) == "T":
                tally.findings.append(f"{name}: pid {v.pid} stopped at the end")
                os.kill(v.pid, signal.SIGCONT)
            v.kill()
            v.wait()


def test_200_kill_9_at_random_moments_leave_nothing_and_wedge_nothing(lab, agents, tmpfs_dirs):
    names = ["trader", "gateway", "broker"]
    peers = {"trader": "gateway", "gateway": "broker", "broker": "trader"}
    tallies = {n: Tally() for n in names}
    for n in names:  # the lab's own agents make room: one agent per namespace
        os.kill(lab.state.hosts[n].pid, signal.SIGTERM)
        os.waitpid(lab.state.hosts[n].pid, 0)
    try:
        lanes = [threading.Thread(target=_lane, args=(lab, n, lab.state.hosts[peers[n]].ipv4, tmpfs_dirs[n],
                                                      ROUNDS // 3 + (i < ROUNDS % 3), random.Random(SEED + i),
                                                      tallies[n]))
                 for i, n in enumerate(names)]
        for t in lanes:
            t.start()
        for t in lanes:
            t.join()
    finally:
        for n in names:
            lab.state.hosts[n] = lab.restart_agent(n)
            agents[n] = AgentClient(lab.state.hosts[n].agent)
    findings = [f for t in tallies.values() for f in t.findings]
    total = Tally(rounds=sum(t.rounds for t in tallies.values()),
                  full_disk_rounds=sum(t.full_disk_rounds for t in tallies.values()),
                  exhausted=sum(t.exhausted for t in tallies.values()),
                  applied=sum(t.applied for t in tallies.values()))
    for t in tallies.values():
        for k, v in t.killed_with.items():
            total.killed_with[k] += v
    for t in tallies.values():
        for k, v in t.refused.items():
            total.refused[k] = total.refused.get(k, 0) + v
    print(f"\ncrash sweep (seed {SEED}): {total}")
    assert findings == [], f"seed {SEED}: {findings}"
    assert total.rounds >= ROUNDS, total
    # Not vacuous: kills landed with each kind of change in the kernel, and on a full disk.
    assert min(total.killed_with.values()) >= ROUNDS // 10, total.killed_with
    assert total.full_disk_rounds >= ROUNDS // 10 and total.exhausted > 0, total
