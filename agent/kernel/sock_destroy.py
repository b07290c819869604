"""RESET: destroy established TCP connections through sock_diag (SOCK_DESTROY, as `ss -K`).

The kernel aborts each socket: the peer gets a RST ("connection reset by peer"), the local
owner ECONNABORTED. It is done once, when the fault applies; there is nothing to undo, so
nothing is journalled. Only the agent's network namespace is seen, and connections on the
agent's own port or SSH are never touched.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import socket
import struct
import threading
from dataclasses import dataclass

from faultline.agent.domain.errors import FailedPrecondition, KernelError
from faultline.agent.domain.spec import MECHANISM_KINDS, Counters, FaultSpec, Mechanism

log = logging.getLogger(__name__)

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY, SOCK_DESTROY = 20, 21
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_ACK, NLM_F_DUMP = 0x1, 0x4, 0x300
TCP_ESTABLISHED = 1
NLMSG_HDR = struct.Struct("=IHHII")
REQ_HEAD = struct.Struct("=BBBBI")  # inet_diag_req_v2 up to its inet_diag_sockid
SOCKID_LEN = 48                     # sport, dport, src[16], dst[16], if, cookie[8]
MSG_HEAD = 4                        # inet_diag_msg: family, state, timer, retrans


@dataclass(frozen=True)
class Connection:
    family: int
    local: ipaddress.IPv4Address | ipaddress.IPv6Address
    local_port: int
    remote: ipaddress.IPv4Address | ipaddress.IPv6Address
    remote_port: int
    sockid: bytes  # the kernel's inet_diag_sockid, cookie included: names this socket exactly

    def __str__(self) -> str:
        return f"{self.local}:{self.local_port}->{self.remote}:{self.remote_port}"


def _address(family: int, raw: bytes) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.IPv4Address(raw[:4]) if family == socket.AF_INET else ipaddress.IPv6Address(raw[:16])


class SockDiag:
    """One NETLINK_SOCK_DIAG socket: lists established TCP connections, destroys one."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG)
        self._sock.bind((0, 0))
        self._seq = 0
        self._lock = threading.Lock()

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> SockDiag:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _send(self, msg_type: int, flags: int, family: int, sockid: bytes) -> int:
        self._seq += 1
        body = REQ_HEAD.pack(family, socket.IPPROTO_TCP, 0, 0, 1 << TCP_ESTABLISHED) + sockid
        self._sock.send(NLMSG_HDR.pack(NLMSG_HDR.size + len(body), msg_type, flags, self._seq, 0) + body)
        return self._seq

    def _replies(self, seq: int):  # type: ignore[no-untyped-def]
        """(type, payload) of each reply to `seq` until DONE or an error/ack."""
        while True:
            data = self._sock.recv(1 << 16)
            off = 0
            while off + NLMSG_HDR.size <= len(data):
                length, mtype, _flags, mseq, _pid = NLMSG_HDR.unpack_from(data, off)
                payload = data[off + NLMSG_HDR.size: off + length]
                off += (length + 3) & ~3
                if mseq != seq:
                    continue
                yield mtype, payload
                if mtype in (NLMSG_DONE, NLMSG_ERROR):
                    return

    def established(self) -> list[Connection]:
        out = []
        with self._lock:
            for family in (socket.AF_INET, socket.AF_INET6):
                seq = self._send(SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, family, bytes(SOCKID_LEN))
                for mtype, payload in self._replies(seq):
                    if mtype == NLMSG_ERROR:
                        (err,) = struct.unpack_from("=i", payload)
                        if err:
                            raise KernelError("sock_diag dump of TCP connections", -err)
                        continue
                    if mtype == NLMSG_DONE or payload[1] != TCP_ESTABLISHED:
                        continue
                    fam = payload[0]
                    sid = payload[MSG_HEAD: MSG_HEAD + SOCKID_LEN]
                    sport, dport = struct.unpack_from("!HH", sid)
                    out.append(Connection(fam, _address(fam, sid[4:20]), sport, _address(fam, sid[20:36]), dport,
                                          bytes(sid)))
        return out

    def destroy(self, family: int, sockid: bytes) -> int:
        """0 when destroyed, else the errno (ENOENT: already gone)."""
        with self._lock:
            seq = self._send(SOCK_DESTROY, NLM_F_REQUEST | NLM_F_ACK, family, sockid)
            for mtype, payload in self._replies(seq):
                if mtype == NLMSG_ERROR:
                    (err,) = struct.unpack_from("=i", payload)
                    return -err
        return errno.EIO

    def destroy_supported(self) -> str:
        """"" when the kernel can destroy sockets, else why not (asks for a socket that cannot exist)."""
        fake = struct.pack("!HH", 1, 1) + bytes(SOCKID_LEN - 4)
        err = self.destroy(socket.AF_INET, fake)
        if err in (errno.ENOENT, 0):
            return ""
        if err == errno.EOPNOTSUPP:
            return "kernel built without CONFIG_INET_DIAG_DESTROY"
        return f"SOCK_DESTROY probe failed: {errno.errorcode.get(err, err)}"


class SocketResetter:
    mechanism = Mechanism.SOCK_DESTROY
    kinds = MECHANISM_KINDS[Mechanism.SOCK_DESTROY]

    def __init__(self, diag: SockDiag, excluded_ports: tuple[int, ...]) -> None:
        self._diag = diag
        self._excluded = frozenset(excluded_ports)
        self._waiting: dict[str, FaultSpec] = {}
        self._done: dict[str, Counters] = {}

    def ready(self, wait_s: float) -> None:
        """Nothing to compile: always ready."""

    def refuses(self, spec: FaultSpec) -> str:
        return ""

    def matching(self, spec: FaultSpec) -> list[Connection]:
        sel = spec.selector
        out = []
        for c in self._diag.established():
            if c.local_port in self._excluded or c.remote_port in self._excluded:
                continue  # the agent's own API and SSH
            if sel.ports and c.local_port not in sel.ports and c.remote_port not in sel.ports:
                continue
            if sel.peers and not any(c.remote.version == n.version and c.remote in n for n in sel.peers):
                continue
            out.append(c)
        return out

    def apply(self, fault_id: str, spec: FaultSpec, ifindex: int, armed: bool = True) -> None:
        if armed:
            self._reset(fault_id, spec)
        else:
            self._waiting[fault_id] = spec

    def arm(self, fault_id: str) -> None:
        self._reset(fault_id, self._waiting.pop(fault_id))

    def lease(self, fault_id: str, deadline_ns: int) -> None:
        """A reset acts once, at arm: nothing lasts for a lease to end."""

    def _reset(self, fault_id: str, spec: FaultSpec) -> None:
        found = self.matching(spec)
        destroyed = 0
        for c in found:
            err = self._diag.destroy(c.family, c.sockid)
            if err == errno.EOPNOTSUPP:
                raise FailedPrecondition("RESET: kernel built without CONFIG_INET_DIAG_DESTROY")
            if err == 0:
                destroyed += 1
                log.info("%s: reset %s", fault_id, c)
            elif err != errno.ENOENT:  # ENOENT: it closed by itself meanwhile
                raise KernelError(f"SOCK_DESTROY {c}", err)
        self._done[fault_id] = Counters(matched=len(found), dropped=destroyed)

    def heal(self, fault_id: str) -> Counters:
        self._waiting.pop(fault_id, None)
        return self._done.pop(fault_id, Counters())

    def counters(self, fault_id: str) -> Counters:
        return self._done.get(fault_id, Counters())
