from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FaultKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FAULT_KIND_UNSPECIFIED: _ClassVar[FaultKind]
    FAULT_KIND_DISCONNECT: _ClassVar[FaultKind]
    FAULT_KIND_LOSS: _ClassVar[FaultKind]
    FAULT_KIND_DELAY: _ClassVar[FaultKind]
    FAULT_KIND_DUPLICATE: _ClassVar[FaultKind]
    FAULT_KIND_CORRUPT: _ClassVar[FaultKind]
    FAULT_KIND_REORDER: _ClassVar[FaultKind]
    FAULT_KIND_RATE: _ClassVar[FaultKind]
    FAULT_KIND_RESET: _ClassVar[FaultKind]
    FAULT_KIND_PROCESS: _ClassVar[FaultKind]

class Direction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DIRECTION_UNSPECIFIED: _ClassVar[Direction]
    DIRECTION_EGRESS: _ClassVar[Direction]
    DIRECTION_INGRESS: _ClassVar[Direction]
    DIRECTION_BOTH: _ClassVar[Direction]

class Protocol(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROTOCOL_ANY: _ClassVar[Protocol]
    PROTOCOL_TCP: _ClassVar[Protocol]
    PROTOCOL_UDP: _ClassVar[Protocol]
    PROTOCOL_ICMP: _ClassVar[Protocol]

class Mechanism(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MECHANISM_UNSPECIFIED: _ClassVar[Mechanism]
    MECHANISM_EBPF_TC: _ClassVar[Mechanism]
    MECHANISM_NETEM: _ClassVar[Mechanism]

class DelayDistribution(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DELAY_DISTRIBUTION_UNIFORM: _ClassVar[DelayDistribution]
    DELAY_DISTRIBUTION_NORMAL: _ClassVar[DelayDistribution]
    DELAY_DISTRIBUTION_PARETO: _ClassVar[DelayDistribution]
    DELAY_DISTRIBUTION_PARETONORMAL: _ClassVar[DelayDistribution]

class FaultState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FAULT_STATE_UNSPECIFIED: _ClassVar[FaultState]
    FAULT_STATE_ACTIVE: _ClassVar[FaultState]
    FAULT_STATE_HEALED: _ClassVar[FaultState]
    FAULT_STATE_EXPIRED: _ClassVar[FaultState]
    FAULT_STATE_SHUTDOWN: _ClassVar[FaultState]
FAULT_KIND_UNSPECIFIED: FaultKind
FAULT_KIND_DISCONNECT: FaultKind
FAULT_KIND_LOSS: FaultKind
FAULT_KIND_DELAY: FaultKind
FAULT_KIND_DUPLICATE: FaultKind
FAULT_KIND_CORRUPT: FaultKind
FAULT_KIND_REORDER: FaultKind
FAULT_KIND_RATE: FaultKind
FAULT_KIND_RESET: FaultKind
FAULT_KIND_PROCESS: FaultKind
DIRECTION_UNSPECIFIED: Direction
DIRECTION_EGRESS: Direction
DIRECTION_INGRESS: Direction
DIRECTION_BOTH: Direction
PROTOCOL_ANY: Protocol
PROTOCOL_TCP: Protocol
PROTOCOL_UDP: Protocol
PROTOCOL_ICMP: Protocol
MECHANISM_UNSPECIFIED: Mechanism
MECHANISM_EBPF_TC: Mechanism
MECHANISM_NETEM: Mechanism
DELAY_DISTRIBUTION_UNIFORM: DelayDistribution
DELAY_DISTRIBUTION_NORMAL: DelayDistribution
DELAY_DISTRIBUTION_PARETO: DelayDistribution
DELAY_DISTRIBUTION_PARETONORMAL: DelayDistribution
FAULT_STATE_UNSPECIFIED: FaultState
FAULT_STATE_ACTIVE: FaultState
FAULT_STATE_HEALED: FaultState
FAULT_STATE_EXPIRED: FaultState
FAULT_STATE_SHUTDOWN: FaultState

class Selector(_message.Message):
    __slots__ = ("interface", "direction", "peer_cidrs", "ports", "protocol")
    INTERFACE_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    PEER_CIDRS_FIELD_NUMBER: _ClassVar[int]
    PORTS_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    interface: str
    direction: Direction
    peer_cidrs: _containers.RepeatedScalarFieldContainer[str]
    ports: _containers.RepeatedScalarFieldContainer[int]
    protocol: Protocol
    def __init__(self, interface: _Optional[str] = ..., direction: _Optional[_Union[Direction, str]] = ..., peer_cidrs: _Optional[_Iterable[str]] = ..., ports: _Optional[_Iterable[int]] = ..., protocol: _Optional[_Union[Protocol, str]] = ...) -> None: ...

class DisconnectParams(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class LossParams(_message.Message):
    __slots__ = ("percent", "correlation_percent", "gilbert_elliott")
    PERCENT_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_PERCENT_FIELD_NUMBER: _ClassVar[int]
    GILBERT_ELLIOTT_FIELD_NUMBER: _ClassVar[int]
    percent: float
    correlation_percent: float
    gilbert_elliott: GilbertElliott
    def __init__(self, percent: _Optional[float] = ..., correlation_percent: _Optional[float] = ..., gilbert_elliott: _Optional[_Union[GilbertElliott, _Mapping]] = ...) -> None: ...

class GilbertElliott(_message.Message):
    __slots__ = ("p_percent", "r_percent", "loss_in_bad_percent", "loss_in_good_percent")
    P_PERCENT_FIELD_NUMBER: _ClassVar[int]
    R_PERCENT_FIELD_NUMBER: _ClassVar[int]
    LOSS_IN_BAD_PERCENT_FIELD_NUMBER: _ClassVar[int]
    LOSS_IN_GOOD_PERCENT_FIELD_NUMBER: _ClassVar[int]
    p_percent: float
    r_percent: float
    loss_in_bad_percent: float
    loss_in_good_percent: float
    def __init__(self, p_percent: _Optional[float] = ..., r_percent: _Optional[float] = ..., loss_in_bad_percent: _Optional[float] = ..., loss_in_good_percent: _Optional[float] = ...) -> None: ...

class DelayParams(_message.Message):
    __slots__ = ("delay_ms", "jitter_ms", "correlation_percent", "distribution", "preserve_order")
    DELAY_MS_FIELD_NUMBER: _ClassVar[int]
    JITTER_MS_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_PERCENT_FIELD_NUMBER: _ClassVar[int]
    DISTRIBUTION_FIELD_NUMBER: _ClassVar[int]
    PRESERVE_ORDER_FIELD_NUMBER: _ClassVar[int]
    delay_ms: float
    jitter_ms: float
    correlation_percent: float
    distribution: DelayDistribution
    preserve_order: bool
    def __init__(self, delay_ms: _Optional[float] = ..., jitter_ms: _Optional[float] = ..., correlation_percent: _Optional[float] = ..., distribution: _Optional[_Union[DelayDistribution, str]] = ..., preserve_order: bool = ...) -> None: ...

class DuplicateParams(_message.Message):
    __slots__ = ("percent", "correlation_percent")
    PERCENT_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_PERCENT_FIELD_NUMBER: _ClassVar[int]
    percent: float
    correlation_percent: float
    def __init__(self, percent: _Optional[float] = ..., correlation_percent: _Optional[float] = ...) -> None: ...

class CorruptParams(_message.Message):
    __slots__ = ("percent", "correlation_percent")
    PERCENT_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_PERCENT_FIELD_NUMBER: _ClassVar[int]
    percent: float
    correlation_percent: float
    def __init__(self, percent: _Optional[float] = ..., correlation_percent: _Optional[float] = ...) -> None: ...

class ReorderParams(_message.Message):
    __slots__ = ("percent", "correlation_percent", "delay_ms", "gap")
    PERCENT_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_PERCENT_FIELD_NUMBER: _ClassVar[int]
    DELAY_MS_FIELD_NUMBER: _ClassVar[int]
    GAP_FIELD_NUMBER: _ClassVar[int]
    percent: float
    correlation_percent: float
    delay_ms: float
    gap: int
    def __init__(self, percent: _Optional[float] = ..., correlation_percent: _Optional[float] = ..., delay_ms: _Optional[float] = ..., gap: _Optional[int] = ...) -> None: ...

class RateParams(_message.Message):
    __slots__ = ("bits_per_second", "packet_overhead_bytes")
    BITS_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    PACKET_OVERHEAD_BYTES_FIELD_NUMBER: _ClassVar[int]
    bits_per_second: int
    packet_overhead_bytes: int
    def __init__(self, bits_per_second: _Optional[int] = ..., packet_overhead_bytes: _Optional[int] = ...) -> None: ...

class FaultSpec(_message.Message):
    __slots__ = ("kind", "selector", "lease_ms", "mechanism", "label", "disconnect", "loss", "delay", "duplicate", "corrupt", "reorder", "rate", "queue_limit_packets")
    KIND_FIELD_NUMBER: _ClassVar[int]
    SELECTOR_FIELD_NUMBER: _ClassVar[int]
    LEASE_MS_FIELD_NUMBER: _ClassVar[int]
    MECHANISM_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    DISCONNECT_FIELD_NUMBER: _ClassVar[int]
    LOSS_FIELD_NUMBER: _ClassVar[int]
    DELAY_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    CORRUPT_FIELD_NUMBER: _ClassVar[int]
    REORDER_FIELD_NUMBER: _ClassVar[int]
    RATE_FIELD_NUMBER: _ClassVar[int]
    QUEUE_LIMIT_PACKETS_FIELD_NUMBER: _ClassVar[int]
    kind: FaultKind
    selector: Selector
    lease_ms: int
    mechanism: Mechanism
    label: str
    disconnect: DisconnectParams
    loss: LossParams
    delay: DelayParams
    duplicate: DuplicateParams
    corrupt: CorruptParams
    reorder: ReorderParams
    rate: RateParams
    queue_limit_packets: int
    def __init__(self, kind: _Optional[_Union[FaultKind, str]] = ..., selector: _Optional[_Union[Selector, _Mapping]] = ..., lease_ms: _Optional[int] = ..., mechanism: _Optional[_Union[Mechanism, str]] = ..., label: _Optional[str] = ..., disconnect: _Optional[_Union[DisconnectParams, _Mapping]] = ..., loss: _Optional[_Union[LossParams, _Mapping]] = ..., delay: _Optional[_Union[DelayParams, _Mapping]] = ..., duplicate: _Optional[_Union[DuplicateParams, _Mapping]] = ..., corrupt: _Optional[_Union[CorruptParams, _Mapping]] = ..., reorder: _Optional[_Union[ReorderParams, _Mapping]] = ..., rate: _Optional[_Union[RateParams, _Mapping]] = ..., queue_limit_packets: _Optional[int] = ...) -> None: ...

class Timestamp(_message.Message):
    __slots__ = ("realtime_ns", "monotonic_ns")
    REALTIME_NS_FIELD_NUMBER: _ClassVar[int]
    MONOTONIC_NS_FIELD_NUMBER: _ClassVar[int]
    realtime_ns: int
    monotonic_ns: int
    def __init__(self, realtime_ns: _Optional[int] = ..., monotonic_ns: _Optional[int] = ...) -> None: ...

class Counters(_message.Message):
    __slots__ = ("matched", "dropped", "shaped")
    MATCHED_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    SHAPED_FIELD_NUMBER: _ClassVar[int]
    matched: int
    dropped: int
    shaped: int
    def __init__(self, matched: _Optional[int] = ..., dropped: _Optional[int] = ..., shaped: _Optional[int] = ...) -> None: ...

class Fault(_message.Message):
    __slots__ = ("fault_id", "spec", "mechanism", "state", "applied_at", "lease_expires_at", "healed_at", "counters")
    FAULT_ID_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    MECHANISM_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    APPLIED_AT_FIELD_NUMBER: _ClassVar[int]
    LEASE_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    HEALED_AT_FIELD_NUMBER: _ClassVar[int]
    COUNTERS_FIELD_NUMBER: _ClassVar[int]
    fault_id: str
    spec: FaultSpec
    mechanism: Mechanism
    state: FaultState
    applied_at: Timestamp
    lease_expires_at: Timestamp
    healed_at: Timestamp
    counters: Counters
    def __init__(self, fault_id: _Optional[str] = ..., spec: _Optional[_Union[FaultSpec, _Mapping]] = ..., mechanism: _Optional[_Union[Mechanism, str]] = ..., state: _Optional[_Union[FaultState, str]] = ..., applied_at: _Optional[_Union[Timestamp, _Mapping]] = ..., lease_expires_at: _Optional[_Union[Timestamp, _Mapping]] = ..., healed_at: _Optional[_Union[Timestamp, _Mapping]] = ..., counters: _Optional[_Union[Counters, _Mapping]] = ...) -> None: ...

class GetCapabilitiesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Feature(_message.Message):
    __slots__ = ("name", "available", "reason")
    NAME_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    name: str
    available: bool
    reason: str
    def __init__(self, name: _Optional[str] = ..., available: bool = ..., reason: _Optional[str] = ...) -> None: ...

class KindSupport(_message.Message):
    __slots__ = ("kind", "mechanisms", "reason")
    KIND_FIELD_NUMBER: _ClassVar[int]
    MECHANISMS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    kind: FaultKind
    mechanisms: _containers.RepeatedScalarFieldContainer[Mechanism]
    reason: str
    def __init__(self, kind: _Optional[_Union[FaultKind, str]] = ..., mechanisms: _Optional[_Iterable[_Union[Mechanism, str]]] = ..., reason: _Optional[str] = ...) -> None: ...

class Capabilities(_message.Message):
    __slots__ = ("agent_version", "kernel_release", "features", "kinds", "excluded_ports", "max_lease_ms", "min_lease_ms")
    AGENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    KERNEL_RELEASE_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    KINDS_FIELD_NUMBER: _ClassVar[int]
    EXCLUDED_PORTS_FIELD_NUMBER: _ClassVar[int]
    MAX_LEASE_MS_FIELD_NUMBER: _ClassVar[int]
    MIN_LEASE_MS_FIELD_NUMBER: _ClassVar[int]
    agent_version: str
    kernel_release: str
    features: _containers.RepeatedCompositeFieldContainer[Feature]
    kinds: _containers.RepeatedCompositeFieldContainer[KindSupport]
    excluded_ports: _containers.RepeatedScalarFieldContainer[int]
    max_lease_ms: int
    min_lease_ms: int
    def __init__(self, agent_version: _Optional[str] = ..., kernel_release: _Optional[str] = ..., features: _Optional[_Iterable[_Union[Feature, _Mapping]]] = ..., kinds: _Optional[_Iterable[_Union[KindSupport, _Mapping]]] = ..., excluded_ports: _Optional[_Iterable[int]] = ..., max_lease_ms: _Optional[int] = ..., min_lease_ms: _Optional[int] = ...) -> None: ...

class ApplyFaultRequest(_message.Message):
    __slots__ = ("spec",)
    SPEC_FIELD_NUMBER: _ClassVar[int]
    spec: FaultSpec
    def __init__(self, spec: _Optional[_Union[FaultSpec, _Mapping]] = ...) -> None: ...

class ApplyFaultResponse(_message.Message):
    __slots__ = ("fault_id", "mechanism", "applied_at", "lease_expires_at")
    FAULT_ID_FIELD_NUMBER: _ClassVar[int]
    MECHANISM_FIELD_NUMBER: _ClassVar[int]
    APPLIED_AT_FIELD_NUMBER: _ClassVar[int]
    LEASE_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    fault_id: str
    mechanism: Mechanism
    applied_at: Timestamp
    lease_expires_at: Timestamp
    def __init__(self, fault_id: _Optional[str] = ..., mechanism: _Optional[_Union[Mechanism, str]] = ..., applied_at: _Optional[_Union[Timestamp, _Mapping]] = ..., lease_expires_at: _Optional[_Union[Timestamp, _Mapping]] = ...) -> None: ...

class HealFaultRequest(_message.Message):
    __slots__ = ("fault_id",)
    FAULT_ID_FIELD_NUMBER: _ClassVar[int]
    fault_id: str
    def __init__(self, fault_id: _Optional[str] = ...) -> None: ...

class HealFaultResponse(_message.Message):
    __slots__ = ("fault",)
    FAULT_FIELD_NUMBER: _ClassVar[int]
    fault: Fault
    def __init__(self, fault: _Optional[_Union[Fault, _Mapping]] = ...) -> None: ...

class HealAllRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class HealAllResponse(_message.Message):
    __slots__ = ("faults",)
    FAULTS_FIELD_NUMBER: _ClassVar[int]
    faults: _containers.RepeatedCompositeFieldContainer[Fault]
    def __init__(self, faults: _Optional[_Iterable[_Union[Fault, _Mapping]]] = ...) -> None: ...

class ListFaultsRequest(_message.Message):
    __slots__ = ("include_healed",)
    INCLUDE_HEALED_FIELD_NUMBER: _ClassVar[int]
    include_healed: bool
    def __init__(self, include_healed: bool = ...) -> None: ...

class ListFaultsResponse(_message.Message):
    __slots__ = ("faults", "now")
    FAULTS_FIELD_NUMBER: _ClassVar[int]
    NOW_FIELD_NUMBER: _ClassVar[int]
    faults: _containers.RepeatedCompositeFieldContainer[Fault]
    now: Timestamp
    def __init__(self, faults: _Optional[_Iterable[_Union[Fault, _Mapping]]] = ..., now: _Optional[_Union[Timestamp, _Mapping]] = ...) -> None: ...

class RenewLeaseRequest(_message.Message):
    __slots__ = ("fault_id", "lease_ms")
    FAULT_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_MS_FIELD_NUMBER: _ClassVar[int]
    fault_id: str
    lease_ms: int
    def __init__(self, fault_id: _Optional[str] = ..., lease_ms: _Optional[int] = ...) -> None: ...

class RenewLeaseResponse(_message.Message):
    __slots__ = ("lease_expires_at",)
    LEASE_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    lease_expires_at: Timestamp
    def __init__(self, lease_expires_at: _Optional[_Union[Timestamp, _Mapping]] = ...) -> None: ...

class HealthRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class HealthResponse(_message.Message):
    __slots__ = ("status", "agent_version", "active_faults", "now", "started_at_realtime_ns", "netns")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    AGENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FAULTS_FIELD_NUMBER: _ClassVar[int]
    NOW_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_REALTIME_NS_FIELD_NUMBER: _ClassVar[int]
    NETNS_FIELD_NUMBER: _ClassVar[int]
    status: str
    agent_version: str
    active_faults: int
    now: Timestamp
    started_at_realtime_ns: int
    netns: str
    def __init__(self, status: _Optional[str] = ..., agent_version: _Optional[str] = ..., active_faults: _Optional[int] = ..., now: _Optional[_Union[Timestamp, _Mapping]] = ..., started_at_realtime_ns: _Optional[int] = ..., netns: _Optional[str] = ...) -> None: ...
