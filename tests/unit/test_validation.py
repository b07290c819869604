import math

import pytest

from faultline.agent.domain.errors import InvalidArgument, PermissionDenied
from faultline.agent.domain.policy import Policy
from faultline.agent.domain.spec import Direction, FaultKind, Mechanism, ProcessAction, Protocol, TargetBy
from faultline.agent.domain.validation import Limits, RawSpec, validate


def ok(name: str) -> bool:
    return name == "lab0"


def raw(**kw):
    base = dict(kind=FaultKind.LOSS, interface="lab0", direction=Direction.BOTH, lease_ms=1000, loss_percent=20.0)
    base.update(kw)
    return RawSpec(**base)


def test_valid_loss_spec_parses_cidrs_and_dedupes_ports():
    spec = validate(raw(peer_cidrs=["10.0.0.0/24", "fd00::/64"], ports=[443, 443, 80]), Limits(), ok)
    assert [p.version for p in spec.selector.peers] == [4, 6]
    assert spec.selector.ports == (443, 80)
    assert spec.loss_percent == 20.0


@pytest.mark.parametrize(
    ("kw", "field", "allowed"),
    [
        ({"loss_percent": 0.0}, "spec.loss.percent", "0 < percent <= 100"),
        ({"loss_percent": 100.5}, "spec.loss.percent", "0 < percent <= 100"),
        ({"loss_percent": math.nan}, "spec.loss.percent", "0 < percent <= 100"),
        ({"loss_percent": None}, "spec.loss.percent", "0 < percent <= 100"),
        ({"lease_ms": 99}, "spec.lease_ms", "100 ms to 3600000 ms"),
        ({"lease_ms": 3_600_001}, "spec.lease_ms", "100 ms to 3600000 ms"),
        ({"peer_cidrs": ["10.0.0.1/24"]}, "spec.selector.peer_cidrs[0]", "no host bits"),
        ({"peer_cidrs": ["10.0.0.0/24", "nonsense"]}, "spec.selector.peer_cidrs[1]", "CIDR"),
        ({"ports": [0]}, "spec.selector.ports[0]", "1 to 65535"),
        ({"ports": [80, 65536]}, "spec.selector.ports[1]", "1 to 65535"),
        ({"ports": list(range(1, 10))}, "spec.selector.ports", "at most 8"),
        ({"interface": "eth9"}, "spec.selector.interface", "agent's network namespace"),
        ({"interface": ""}, "spec.selector.interface", "interface name"),
        ({"kind": None, "unknown_kind": 42}, "spec.kind", "DISCONNECT"),
        ({"kind": FaultKind.DISCONNECT, "loss_percent": 5.0}, "spec.loss", "only with kind LOSS"),
        ({"ports": [80], "protocol": Protocol.ICMP}, "spec.selector.protocol", "TCP, UDP or ANY"),
        ({"direction": None}, "spec.selector.direction", "EGRESS"),
    ],
)
def test_each_bad_field_is_named_with_its_range(kw, field, allowed):
    with pytest.raises(InvalidArgument) as e:
        validate(raw(**kw), Limits(), ok)
    assert e.value.field == field
    assert allowed in str(e.value)


def test_lease_ceiling_is_configurable():
    with pytest.raises(InvalidArgument, match="100 ms to 5000 ms"):
        validate(raw(lease_ms=6000), Limits(max_lease_ms=5000), ok)


def process(**kw):
    base = dict(kind=FaultKind.PROCESS, interface="", lease_ms=1000, loss_percent=None, params="process",
                process_action=ProcessAction.PAUSE, target_by=TargetBy.NAME, target_value="redis-server")
    base.update(kw)
    return RawSpec(**base)


def test_process_and_reset_specs_need_no_interface():
    spec = validate(process(), Limits(), ok)
    assert spec.process is not None and spec.process.value == "redis-server"
    reset = validate(RawSpec(kind=FaultKind.RESET, interface="", lease_ms=1000, params="reset", ports=[4002]),
                     Limits(), ok)
    assert reset.selector.ports == (4002,) and reset.selector.protocol is Protocol.TCP


@pytest.mark.parametrize(
    ("kw", "field", "allowed"),
    [
        ({"process_action": None}, "spec.process.action", "PAUSE, STOP, KILL or RESTART_UNIT"),
        ({"target_by": None}, "spec.process.target", "one of pid, name"),
        ({"target_by": TargetBy.PID, "target_value": "1"}, "spec.process.target.pid", "PID 1 is never"),
        ({"target_by": TargetBy.PID, "target_value": "5000000"}, "spec.process.target.pid", "2 to 4194304"),
        ({"target_value": "a-name-longer-than-15"}, "spec.process.target.name", "1 to 15"),
        ({"target_by": TargetBy.CGROUP, "target_value": "../etc"}, "spec.process.target.cgroup", "below"),
        ({"target_by": TargetBy.CGROUP, "target_value": "."}, "spec.process.target.cgroup", "no '.'"),
        ({"target_by": TargetBy.UNIT, "target_value": "x.timer"}, "spec.process.target.unit", ".service"),
        ({"process_action": ProcessAction.RESTART_UNIT}, "spec.process.target", "a unit for RESTART_UNIT"),
        ({"restart": "redis"}, "spec.process.restart", "only with action KILL"),
        ({"process_action": ProcessAction.KILL, "restart": "/bin/sh -c id"}, "spec.process.restart",
         "the name of one of the host policy's restart_commands"),
        ({"interface": "lab0"}, "spec.selector.interface", "empty for PROCESS"),
        ({"ports": [80]}, "spec.selector", "empty for PROCESS"),
        ({"params": None}, "spec.process", "action and target"),
        ({"mechanism": Mechanism.NETEM}, "spec.mechanism", "SIGNAL"),
    ],
)
def test_each_bad_process_field_is_named(kw, field, allowed):
    with pytest.raises(InvalidArgument) as e:
        validate(process(**kw), Limits(), ok)
    assert e.value.field == field
    assert allowed in str(e.value)


def test_policy_turns_process_faults_off_by_default():
    spec = validate(process(), Limits(), ok)
    with pytest.raises(PermissionDenied, match="allow_process_faults"):
        Policy().check(spec)
    Policy(allow_process_faults=True, interfaces=frozenset({"lab0"})).check(spec)  # no interface rule for it
