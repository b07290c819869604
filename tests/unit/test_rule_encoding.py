import ctypes as ct
import ipaddress
import socket
import struct

from faultline.agent.domain.spec import Direction, Protocol
from faultline.agent.kernel.ebpf import Rule, RuleC


def test_rule_layout_matches_the_c_struct():
    # struct rule in tc_drop.c: 16 bytes of scalars, 8 u16 ports, 8 cidrs of 36 bytes.
    assert ct.sizeof(RuleC) == 16 + 16 + 8 * 36


def test_addresses_are_in_packet_byte_order():
    r = Rule(ifindex=7, directions=(Direction.EGRESS, Direction.INGRESS), drop_probability=1.0,
             peers=(ipaddress.ip_network("10.77.0.2/32"), ipaddress.ip_network("fd77::/64")),
             ports=(4002,), protocol=Protocol.TCP).to_c()
    assert (r.ifindex, r.directions, r.always, r.protocol, r.n_ports, r.n_cidrs) == (7, 3, 1, 6, 1, 2)
    v4 = bytes(r.cidrs[0])[:16]
    assert v4[:4] == socket.inet_aton("10.77.0.2")
    assert struct.unpack("=I", bytes(r.cidrs[0])[16:20])[0] == 0xFFFFFFFF
    assert bytes(r.cidrs[1])[:16] == ipaddress.ip_address("fd77::").packed
    assert bytes(r.cidrs[1])[16:32] == b"\xff" * 8 + b"\0" * 8
    assert r.cidrs[1].family == 6


def test_loss_threshold_is_the_probability_of_u32_space():
    r = Rule(ifindex=1, directions=(Direction.EGRESS,), drop_probability=0.2).to_c()
    assert r.always == 0 and abs(r.threshold / 2**32 - 0.2) < 1e-9
