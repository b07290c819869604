"""A fake mechanism for testing the engine and servicer without root."""

from __future__ import annotations

from agent.domain.spec import Counters, FaultKind, FaultSpec, Mechanism


class FakeMechanism:
    mechanism = Mechanism.EBPF_TC
    kinds = (FaultKind.DISCONNECT, FaultKind.LOSS)

    def __init__(self) -> None:
        self.installed: dict[str, tuple[FaultSpec, int]] = {}
        self.log: list[tuple[str, str]] = []

    def refuses(self, spec: FaultSpec) -> str:
        return spec.ebpf_cannot

    def apply(self, fault_id: str, spec: FaultSpec, ifindex: int) -> None:
        self.installed[fault_id] = (spec, ifindex)
        self.log.append(("apply", fault_id))

    def heal(self, fault_id: str) -> Counters:
        del self.installed[fault_id]
        self.log.append(("heal", fault_id))
        return Counters(10, 3)

    def counters(self, fault_id: str) -> Counters:
        return Counters(5, 1)


LINKS = {"lab0": 2, "eth1": 3, "lo": 1}
