"""Fuzzing ApplyFault on a real agent (issue 8 must-show 3): 2,000 FaultSpecs drawn over every
field, valid and not. Each is answered OK or with a clear INVALID_ARGUMENT /
FAILED_PRECONDITION / PERMISSION_DENIED naming a field or rule; the agent keeps serving; and
after each case the kernel holds exactly what the answer claims: on OK, faultline's filter on
each direction the fault covers, and after its heal the state as before; on a refusal,
nothing changed."""

from __future__ import annotations

import ipaddress
import os
import signal
from pathlib import Path

import grpc
import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from pyroute2 import NetNS

from faultline.agent.kernel.tc import FILTER_HANDLE, FILTER_PRIO
from faultline.controller.agents.client import AgentClient, AgentError, Forbidden, UnknownFault
from faultline.controller.agents.spec import Corrupt, Delay, Disconnect, Duplicate, Loss, Rate, fault_spec, process_spec
from faultline.controller.env.lab import agent_alive
from faultline.v1 import agent_pb2 as pb
from tests.lab.test_nothing_left_behind import agent_stopped_by

CASES = int(os.environ.get("FAULTLINE_FUZZ_CASES", "2000"))
CLEAR = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.PERMISSION_DENIED}
PARENTS = {0xFFFFFFF2: "ingress", 0xFFFFFFF3: "egress"}  # clsact's hooks

floats = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(-1, 150), st.sampled_from([0.0, 100.0]))
percents = st.one_of(st.floats(0.001, 100), floats)


def cidrs() -> st.SearchStrategy[str]:
    v4 = st.builds(lambda a, n: f"{ipaddress.IPv4Address(a)}/{n}", st.integers(0, 2**32 - 1), st.integers(0, 33))
    v6 = st.builds(lambda a, n: f"{ipaddress.IPv6Address(a)}/{n}", st.integers(0, 2**128 - 1), st.integers(0, 129))
    lab = st.sampled_from(["10.78.0.2/32", "10.78.0.3/32", "fd78::2/128", "10.78.0.0/24"])
    return st.one_of(lab, v4, v6, st.text(max_size=20))


@st.composite
def specs(draw: st.DrawFn) -> pb.FaultSpec:
    spec = pb.FaultSpec(
        kind=draw(st.sampled_from([0, 1, 2, 3, 4, 5, 6, 7, 99])),
        selector=pb.Selector(
            interface=draw(st.sampled_from(["lab0", "lab0", "lab0", "", "lo", "eth0", "nope0"]) | st.text(max_size=16)),
            direction=draw(st.sampled_from([0, 1, 2, 3, 9])),
            peer_cidrs=draw(st.lists(cidrs(), max_size=10)),
            ports=draw(st.lists(st.sampled_from([4002, 9999, 0, 65535, 65536, 7070]) | st.integers(0, 2**32 - 1),
                                max_size=10)),
            protocol=draw(st.sampled_from([0, 1, 2, 3, 8])),
        ),
        lease_ms=draw(st.sampled_from([0, 50, 100, 5000, 3_600_000, 3_600_001]) | st.integers(0, 2**64 - 1)),
        mechanism=draw(st.sampled_from([0, 1, 2, 7])),
        label=draw(st.text(max_size=250)),
        queue_limit_packets=draw(st.sampled_from([0, 1000]) | st.integers(0, 2**32 - 1)),
    )
    params = draw(st.sampled_from(["none", "disconnect", "loss", "delay", "duplicate", "corrupt", "reorder", "rate"]))
    if params == "disconnect":
        spec.disconnect.SetInParent()
    elif params == "loss":
        spec.loss.percent = draw(percents)
        spec.loss.correlation_percent = draw(floats)
        if draw(st.booleans()):
            spec.loss.gilbert_elliott.CopyFrom(pb.GilbertElliott(p_percent=draw(percents), r_percent=draw(percents),
                                                                 loss_in_bad_percent=draw(floats),
                                                                 loss_in_good_percent=draw(floats)))
    elif params == "delay":
        spec.delay.CopyFrom(pb.DelayParams(delay_ms=draw(floats), jitter_ms=draw(floats),
                                           correlation_percent=draw(floats), distribution=draw(st.integers(0, 5)),
                                           preserve_order=draw(st.booleans())))
    elif params in ("duplicate", "corrupt"):
        getattr(spec, params).percent = draw(percents)
        getattr(spec, params).correlation_percent = draw(floats)
    elif params == "reorder":
        spec.reorder.CopyFrom(pb.ReorderParams(percent=draw(percents), correlation_percent=draw(floats),
                                               delay_ms=draw(floats), gap=draw(st.integers(0, 2**32 - 1))))
    elif params == "rate":
        spec.rate.CopyFrom(pb.RateParams(bits_per_second=draw(st.integers(0, 2**64 - 1)),
                                         packet_overhead_bytes=draw(st.integers(-(2**31), 2**31 - 1))))
    return spec


@st.composite
def valid_specs(draw: st.DrawFn) -> pb.FaultSpec:
    """Well-formed eBPF faults, so that many cases reach the kernel."""
    kind = draw(st.sampled_from([pb.FAULT_KIND_DISCONNECT, pb.FAULT_KIND_LOSS]))
    spec = pb.FaultSpec(
        kind=kind,
        selector=pb.Selector(interface="lab0", direction=draw(st.sampled_from([0, 1, 2, 3])),
                             peer_cidrs=draw(st.lists(st.sampled_from(["10.78.0.2/32", "10.78.0.3/32", "fd78::2/128",
                                                                       "10.78.0.0/25"]), max_size=3, unique=True)),
                             ports=draw(st.lists(st.integers(1, 65535), max_size=4, unique=True)),
                             protocol=draw(st.sampled_from([0, 1, 2]))),
        lease_ms=draw(st.integers(100, 600_000)), mechanism=draw(st.sampled_from([0, 1])),
        label=draw(st.text(max_size=40)))
    if kind == pb.FAULT_KIND_LOSS:
        spec.loss.percent = draw(st.floats(0.01, 100))
    else:
        spec.disconnect.SetInParent()
    return spec


@st.composite
def mutated_specs(draw: st.DrawFn) -> pb.FaultSpec:
    """A well-formed fault with one field taken from the wild generator."""
    spec, wild = draw(valid_specs()), draw(specs())
    field = draw(st.sampled_from(["kind", "lease_ms", "mechanism", "label", "queue_limit_packets", "interface",
                                  "direction", "peer_cidrs", "ports", "protocol", "params"]))
    if field in ("interface", "direction", "protocol"):
        setattr(spec.selector, field, getattr(wild.selector, field))
    elif field in ("peer_cidrs", "ports"):
        getattr(spec.selector, field)[:] = getattr(wild.selector, field)
    elif field == "params":
        which = wild.WhichOneof("params")
        if which:
            getattr(spec, which).CopyFrom(getattr(wild, which))
        else:
            spec.ClearField("params")
    else:
        setattr(spec, field, getattr(wild, field))
    return spec


def kernel(ns: str, ifname: str) -> tuple[tuple[str, ...], dict[str, list[tuple[int, int]]]]:
    """Qdisc kinds and every filter's (prio, handle) per clsact hook, read through netlink."""
    with NetNS(ns) as ipr:
        idx = ipr.link_lookup(ifname=ifname)[0]
        qdiscs = tuple(sorted(q.get_attr("TCA_KIND") for q in ipr.get_qdiscs(idx)))
        filters: dict[str, list[tuple[int, int]]] = {}
        for parent, hook in PARENTS.items():
            filters[hook] = sorted({(f["info"] >> 16, f["handle"]) for f in ipr.get_filters(idx, parent=parent)
                                    if f.get_attr("TCA_KIND")})
    return qdiscs, filters


def covers(direction: int) -> set[str]:
    return {pb.DIRECTION_EGRESS: {"egress"}, pb.DIRECTION_INGRESS: {"ingress"}}.get(direction, {"ingress", "egress"})


def test_every_answer_is_clear_and_the_kernel_matches_it(lab, agents):
    host = lab.state.hosts["trader"]
    trader = agents["trader"]
    baseline = kernel(host.netns, host.interface)
    seen: dict[str, int] = {}

    @seed(20261126)
    @settings(max_examples=CASES, deadline=None, database=None, derandomize=False,
              suppress_health_check=list(HealthCheck))
    @given(st.one_of(valid_specs(), mutated_specs(), specs()))
    def case(spec: pb.FaultSpec) -> None:
        try:
            r = trader.apply(spec)
        except AgentError as e:
            seen[e.code.name] = seen.get(e.code.name, 0) + 1
            assert e.code in CLEAR, (e, spec)
            assert e.message and ":" in e.message, e  # names a field or rule
            assert kernel(host.netns, host.interface) == baseline, spec
            return
        seen["OK"] = seen.get("OK", 0) + 1
        try:
            _, filters = kernel(host.netns, host.interface)
            # Still active after the kernel was read (a heal holds the engine's lock until the filters
            # are gone): then they were there. A lease as short as 100 ms may have ended meanwhile.
            for f in [f for f in trader.list() if f.fault_id == r.fault_id]:
                for hook in covers(f.spec.selector.direction):
                    assert (FILTER_PRIO, FILTER_HANDLE) in filters[hook], (hook, filters, spec)
        finally:
            try:
                trader.heal(r.fault_id)
            except UnknownFault:
                [f] = [f for f in trader.list(include_healed=True) if f.fault_id == r.fault_id]
                assert f.state == pb.FAULT_STATE_EXPIRED, f  # healed by its lease, not lost
        assert kernel(host.netns, host.interface) == baseline, spec

    case()
    assert sum(seen.values()) >= CASES and min(seen.get("OK", 0), seen.get("INVALID_ARGUMENT", 0)) >= CASES // 20, seen
    assert agent_alive(host) and trader.health().status == "SERVING"
    assert trader.list() == []
    print(f"fuzz answers over {CASES} cases: {seen}")



def test_a_fault_outside_the_hosts_policy_is_refused_and_the_kernel_untouched(lab, agents):
    """Issue 8 must-show 2, on the real kernel: the broker's agent restarted with a tight policy."""
    host = lab.state.hosts["broker"]
    policy = Path(host.log).parent / "policy.yaml"
    original = policy.read_text()
    policy.write_text("interfaces: [lab0]\npeer_cidrs: [10.78.0.0/24]\nmax_lease_s: 30\nmax_loss_percent: 25\n"
                      "max_delay_ms: 200\nmin_rate_bps: 1000000\nallow_process_faults: true\n"
                      "restart_commands: {redis: [/usr/bin/redis-server]}\nunits: [redis-server.service]\n"
                      "cgroups: [system.slice/redis-server.service]\n")
    gateway = lab.state.hosts["gateway"].ipv4 + "/32"
    # Issue 19: the policy caps the effect, not one field: every way to the same harm is refused.
    refused = [(fault_spec(Disconnect(), "lab0", peers=["fd78::1/128"]), "peer_cidrs"),
               (fault_spec(Disconnect(), "lab0", peers=[gateway], lease_s=60), "max_lease_s"),
               (fault_spec(Loss(percent=50), "lab0", peers=[gateway]), "max_loss_percent"),
               (fault_spec(Loss(gilbert_elliott=(50, 10, 100, 0)), "lab0", peers=[gateway]),
                "max_loss_percent"),
               (fault_spec(Corrupt(percent=100), "lab0", peers=[gateway]), "max_loss_percent"),
               (fault_spec(Duplicate(percent=100), "lab0", peers=[gateway]), "max_loss_percent"),
               (fault_spec(Delay(delay_ms=150, jitter_ms=100), "lab0", peers=[gateway]), "max_delay_ms"),
               (fault_spec(Rate(bits_per_second=8), "lab0", peers=[gateway]), "min_rate_bps"),
               (process_spec("kill", 5, name="sleep", restart="sh"), "restart_commands"),
               (process_spec("restart-unit", 5, unit="ssh.service"), "units"),
               (process_spec("pause", 5, cgroup="system.slice"), "cgroups")]
    try:
        with agent_stopped_by(lab, "broker", signal.SIGTERM):
            pass  # it starts again with the tight policy
        before = kernel(host.netns, host.interface)
        with AgentClient(lab.state.hosts["broker"].agent) as c:
            for spec, rule in refused:
                with pytest.raises(Forbidden, match=f"^.*: PERMISSION_DENIED: policy rule {rule}: "):
                    c.apply(spec)
                assert kernel(host.netns, host.interface) == before
            r = c.apply(fault_spec(Loss(percent=25), "lab0", peers=[gateway], lease_s=30))
            with pytest.raises(Forbidden, match="policy rule max_lease_s: lease 60 s is over 30 s"):
                c.renew(r.fault_id, 60)  # a renewal is no way round the lease cap either
            c.heal(r.fault_id)
    finally:
        policy.write_text(original)
        with agent_stopped_by(lab, "broker", signal.SIGTERM):
            pass
    assert kernel(host.netns, host.interface) == before


MB = 1 << 20
huge = st.sampled_from(["x" * MB, "\0" * 1000, "../" * 300, "a", ""]) | st.text(max_size=64)
RESTRICTIVE = ("interfaces: [lab0]\npeer_cidrs: [10.78.0.0/24]\nmax_lease_s: 30\nmax_loss_percent: 25\n"
               "max_delay_ms: 200\nmin_rate_bps: 1000000\nallow_process_faults: true\nmax_processes: 2\n"
               "restart_commands: {ok: [/bin/true]}\nunits: [redis-server.service]\n"
               "cgroups: [system.slice/redis-server.service]\n")


@st.composite
def other_specs(draw: st.DrawFn) -> pb.FaultSpec:
    """RESET and PROCESS, with strings up to 1 MB in every text field."""
    if draw(st.integers(0, 4)) == 0:  # well formed and allowed: reset whatever is connected to 4002 (nothing)
        return pb.FaultSpec(kind=pb.FAULT_KIND_RESET, lease_ms=1000, reset=pb.ResetParams(), label=draw(huge),
                            selector=pb.Selector(ports=[4002], peer_cidrs=["10.78.0.2/32"]))
    kind = draw(st.sampled_from([pb.FAULT_KIND_RESET, pb.FAULT_KIND_PROCESS]))
    spec = pb.FaultSpec(kind=kind, lease_ms=draw(st.sampled_from([100, 5000, 60_000]) | st.integers(0, 2**64 - 1)),
                        label=draw(huge), selector=pb.Selector(
                            interface=draw(st.sampled_from(["", "lab0"]) | huge),
                            peer_cidrs=draw(st.lists(cidrs() | huge, max_size=3)),
                            ports=draw(st.lists(st.integers(0, 70000), max_size=3))))
    if kind == pb.FAULT_KIND_RESET:
        spec.reset.SetInParent()
    else:
        target = draw(st.sampled_from(["pid", "name", "cmdline", "cgroup", "unit"]))
        value = draw(st.integers(0, 2**32 - 1)) if target == "pid" else draw(huge | st.sampled_from(
            ["sleep", "redis-server.service", ".", "system.slice", "system.slice/redis-server.service"]))
        spec.process.CopyFrom(pb.ProcessParams(action=draw(st.integers(0, 5)), target=pb.ProcessTarget(
            **{target: value}), restart=draw(st.sampled_from(["", "ok", "sh"]) | huge)))
    return spec


def test_every_call_fuzzed_under_a_restrictive_policy(lab, agents):
    """Issue 19 must-show 6: ApplyFault of every kind (RESET and PROCESS too), RenewLease,
    HealFault and WatchEvents, strings up to 1 MB, with a restrictive policy in place. Every
    answer is OK or a clear refusal (or NOT_FOUND), the kernel matches it after each case,
    the agent serves throughout, and the audit log stays bounded."""
    host = lab.state.hosts["broker"]
    policy = Path(host.log).parent / "policy.yaml"
    original = policy.read_text()
    policy.write_text(RESTRICTIVE)
    audit = Path(host.state_dir) / "audit.jsonl"
    cases = max(CASES // 8, 100)
    seen: dict[str, int] = {}
    try:
        with agent_stopped_by(lab, "broker", signal.SIGTERM):
            pass  # it starts again with the restrictive policy
        audit_before = audit.stat().st_size if audit.exists() else 0
        baseline = kernel(host.netns, host.interface)
        with AgentClient(lab.state.hosts["broker"].agent) as c:
            @seed(20261130)
            @settings(max_examples=cases, deadline=None, database=None, suppress_health_check=list(HealthCheck))
            @given(st.sampled_from(["apply", "renew", "heal", "watch"]), st.one_of(other_specs(), specs()),
                   huge, st.integers(0, 2**64 - 1))
            def case(call: str, spec: pb.FaultSpec, text: str, number: int) -> None:
                try:
                    if call == "apply":
                        r = c.apply(spec)
                        seen["OK"] = seen.get("OK", 0) + 1
                        c.heal(r.fault_id)
                    elif call == "renew":
                        c.renew(text, number / 1000)
                    elif call == "heal":
                        c.heal(text)
                    else:
                        port = number % 70000
                        with c.watch(pb.WatchFilter(peer_cidrs=[text] if text else [],
                                                    ports=[port] if port % 2 else []), ready_timeout_s=5):
                            seen["OK"] = seen.get("OK", 0) + 1
                except AgentError as e:
                    seen[e.code.name] = seen.get(e.code.name, 0) + 1
                    assert e.code in CLEAR | {grpc.StatusCode.NOT_FOUND}, (e, call, str(spec)[:300])
                    assert e.message and len(e.message) < 2000, e  # bounded, whatever was sent
                    assert ":" in e.message or e.code == grpc.StatusCode.NOT_FOUND, e  # names a field or rule
                except ValueError as e:  # the controller's own check (a renew past 2**64 ms)
                    seen["client ValueError"] = seen.get("client ValueError", 0) + 1
                    assert "lease" in str(e) or "out of range" in str(e), e
                assert kernel(host.netns, host.interface) == baseline, (call, str(spec)[:300])

            case()
            assert c.health().status == "SERVING" and c.list() == []
        grown = audit.stat().st_size - audit_before
        print(f"extended fuzz over {cases} cases: {seen}; audit log grew {grown} bytes "
              f"({grown / cases:.0f} per case)")
        assert grown < cases * 4096, grown  # each line bounded, whatever a request carried (1 MB strings)
        assert agent_alive(lab.state.hosts["broker"])
    finally:
        policy.write_text(original)
        with agent_stopped_by(lab, "broker", signal.SIGTERM):
            pass
