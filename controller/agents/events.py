"""What a watch stream reports, as plain values: the controller past this package reads these,
never protobuf messages."""

from __future__ import annotations

from dataclasses import dataclass

from faultline.v1 import agent_pb2 as pb

ESTABLISHED = "ESTABLISHED"


@dataclass(frozen=True)
class TcpEvent:
    realtime_ns: int     # the agent's clock (kernel monotonic + its offset)
    monotonic_ns: int    # the agent's kernel clock
    kind: str            # STATE, RETRANSMIT, RESET_SENT, RESET_RECEIVED, RTT
    socket: int          # the kernel's socket address: tells two connections on one 4-tuple apart
    old_state: str       # STATE events: e.g. ESTABLISHED
    new_state: str       # STATE: the new state; RETRANSMIT, RESET_SENT: the socket's state
    local_addr: str
    local_port: int
    remote_addr: str
    remote_port: int
    pid: int = 0
    comm: str = ""
    srtt_us: int = 0     # RTT events
    snd_cwnd: int = 0

    @property
    def flow(self) -> str:
        return f"{self.local_addr}:{self.local_port} -> {self.remote_addr}:{self.remote_port}"

    @classmethod
    def of(cls, item: pb.WatchEvent) -> TcpEvent:
        ev, f = item.tcp, item.tcp.flow
        return cls(item.at.realtime_ns, item.at.monotonic_ns, pb.EventKind.Name(ev.kind).removeprefix("EVENT_KIND_"),
                   ev.socket, pb.TcpState.Name(ev.old_state).removeprefix("TCP_STATE_"),
                   pb.TcpState.Name(ev.new_state).removeprefix("TCP_STATE_"), f.local_addr, f.local_port,
                   f.remote_addr, f.remote_port, ev.pid, ev.comm, ev.srtt_us, ev.snd_cwnd)
