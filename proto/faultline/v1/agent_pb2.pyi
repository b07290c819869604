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
    MECHANISM_SIGNAL: _ClassVar[Mechanism]
    MECHANISM_SOCK_DESTROY: _ClassVar[Mechanism]

class DelayDistribution(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DELAY_DISTRIBUTION_UNIFORM: _ClassVar[DelayDistribution]
    DELAY_DISTRIBUTION_NORMAL: _ClassVar[DelayDistribution]
    DELAY_DISTRIBUTION_PARETO: _ClassVar[DelayDistribution]
    DELAY_DISTRIBUTION_PARETONORMAL: _ClassVar[DelayDistribution]

class ProcessAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROCESS_ACTION_UNSPECIFIED: _ClassVar[ProcessAction]
    PROCESS_ACTION_PAUSE: _ClassVar[ProcessAction]
    PROCESS_ACTION_KILL: _ClassVar[ProcessAction]
    PROCESS_ACTION_RESTART_UNIT: _ClassVar[ProcessAction]
    PROCESS_ACTION_STOP: _ClassVar[ProcessAction]

class FaultState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FAULT_STATE_UNSPECIFIED: _ClassVar[FaultState]
    FAULT_STATE_ACTIVE: _ClassVar[FaultState]
    FAULT_STATE_HEALED: _ClassVar[FaultState]
    FAULT_STATE_EXPIRED: _ClassVar[FaultState]
    FAULT_STATE_SHUTDOWN: _ClassVar[FaultState]
    FAULT_STATE_HEAL_FAILED: _ClassVar[FaultState]
    FAULT_STATE_PENDING: _ClassVar[FaultState]

class EventKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVENT_KIND_UNSPECIFIED: _ClassVar[EventKind]
    EVENT_KIND_STATE: _ClassVar[EventKind]
    EVENT_KIND_RETRANSMIT: _ClassVar[EventKind]
    EVENT_KIND_RESET_SENT: _ClassVar[EventKind]
    EVENT_KIND_RESET_RECEIVED: _ClassVar[EventKind]
    EVENT_KIND_RTT: _ClassVar[EventKind]

class TcpState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TCP_STATE_UNSPECIFIED: _ClassVar[TcpState]
    TCP_STATE_ESTABLISHED: _ClassVar[TcpState]
    TCP_STATE_SYN_SENT: _ClassVar[TcpState]
    TCP_STATE_SYN_RECV: _ClassVar[TcpState]
    TCP_STATE_FIN_WAIT1: _ClassVar[TcpState]
    TCP_STATE_FIN_WAIT2: _ClassVar[TcpState]
    TCP_STATE_TIME_WAIT: _ClassVar[TcpState]
    TCP_STATE_CLOSE: _ClassVar[TcpState]
    TCP_STATE_CLOSE_WAIT: _ClassVar[TcpState]
    TCP_STATE_LAST_ACK: _ClassVar[TcpState]
    TCP_STATE_LISTEN: _ClassVar[TcpState]
    TCP_STATE_CLOSING: _ClassVar[TcpState]
    TCP_STATE_NEW_SYN_RECV: _ClassVar[TcpState]
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
MECHANISM_SIGNAL: Mechanism
MECHANISM_SOCK_DESTROY: Mechanism
DELAY_DISTRIBUTION_UNIFORM: DelayDistribution
DELAY_DISTRIBUTION_NORMAL: DelayDistribution
DELAY_DISTRIBUTION_PARETO: DelayDistribution
DELAY_DISTRIBUTION_PARETONORMAL: DelayDistribution
PROCESS_ACTION_UNSPECIFIED: ProcessAction
PROCESS_ACTION_PAUSE: ProcessAction
PROCESS_ACTION_KILL: ProcessAction
PROCESS_ACTION_RESTART_UNIT: ProcessAction
PROCESS_ACTION_STOP: ProcessAction
FAULT_STATE_UNSPECIFIED: FaultState
FAULT_STATE_ACTIVE: FaultState
FAULT_STATE_HEALED: FaultState
FAULT_STATE_EXPIRED: FaultState
FAULT_STATE_SHUTDOWN: FaultState
FAULT_STATE_HEAL_FAILED: FaultState
FAULT_STATE_PENDING: FaultState
EVENT_KIND_UNSPECIFIED: EventKind
EVENT_KIND_STATE: EventKind
EVENT_KIND_RETRANSMIT: EventKind
EVENT_KIND_RESET_SENT: EventKind
EVENT_KIND_RESET_RECEIVED: EventKind
EVENT_KIND_RTT: EventKind
TCP_STATE_UNSPECIFIED: TcpState
TCP_STATE_ESTABLISHED: TcpState
TCP_STATE_SYN_SENT: TcpState
TCP_STATE_SYN_RECV: TcpState
TCP_STATE_FIN_WAIT1: TcpState
TCP_STATE_FIN_WAIT2: TcpState
TCP_STATE_TIME_WAIT: TcpState
TCP_STATE_CLOSE: TcpState
TCP_STATE_CLOSE_WAIT: TcpState
TCP_STATE_LAST_ACK: TcpState
TCP_STATE_LISTEN: TcpState
TCP_STATE_CLOSING: TcpState
TCP_STATE_NEW_SYN_RECV: TcpState

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

class ResetParams(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ProcessTarget(_message.Message):
    __slots__ = ("pid", "name", "cmdline", "cgroup", "unit")
    PID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CMDLINE_FIELD_NUMBER: _ClassVar[int]
    CGROUP_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    pid: int
    name: str
    cmdline: str
    cgroup: str
    unit: str
    def __init__(self, pid: _Optional[int] = ..., name: _Optional[str] = ..., cmdline: _Optional[str] = ..., cgroup: _Optional[str] = ..., unit: _Optional[str] = ...) -> None: ...

class ProcessParams(_message.Message):
    __slots__ = ("action", "target", "restart")
    ACTION_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    RESTART_FIELD_NUMBER: _ClassVar[int]
    action: ProcessAction
    target: ProcessTarget
    restart: str
    def __init__(self, action: _Optional[_Union[ProcessAction, str]] = ..., target: _Optional[_Union[ProcessTarget, _Mapping]] = ..., restart: _Optional[str] = ...) -> None: ...

class FaultSpec(_message.Message):
    __slots__ = ("kind", "selector", "lease_ms", "mechanism", "label", "disconnect", "loss", "delay", "duplicate", "corrupt", "reorder", "rate", "reset", "process", "queue_limit_packets")
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
    RESET_FIELD_NUMBER: _ClassVar[int]
    PROCESS_FIELD_NUMBER: _ClassVar[int]
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
    reset: ResetParams
    process: ProcessParams
    queue_limit_packets: int
    def __init__(self, kind: _Optional[_Union[FaultKind, str]] = ..., selector: _Optional[_Union[Selector, _Mapping]] = ..., lease_ms: _Optional[int] = ..., mechanism: _Optional[_Union[Mechanism, str]] = ..., label: _Optional[str] = ..., disconnect: _Optional[_Union[DisconnectParams, _Mapping]] = ..., loss: _Optional[_Union[LossParams, _Mapping]] = ..., delay: _Optional[_Union[DelayParams, _Mapping]] = ..., duplicate: _Optional[_Union[DuplicateParams, _Mapping]] = ..., corrupt: _Optional[_Union[CorruptParams, _Mapping]] = ..., reorder: _Optional[_Union[ReorderParams, _Mapping]] = ..., rate: _Optional[_Union[RateParams, _Mapping]] = ..., reset: _Optional[_Union[ResetParams, _Mapping]] = ..., process: _Optional[_Union[ProcessParams, _Mapping]] = ..., queue_limit_packets: _Optional[int] = ...) -> None: ...

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
    __slots__ = ("fault_id", "spec", "mechanism", "state", "applied_at", "lease_expires_at", "healed_at", "counters", "heal_error", "starts_at")
    FAULT_ID_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    MECHANISM_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    APPLIED_AT_FIELD_NUMBER: _ClassVar[int]
    LEASE_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    HEALED_AT_FIELD_NUMBER: _ClassVar[int]
    COUNTERS_FIELD_NUMBER: _ClassVar[int]
    HEAL_ERROR_FIELD_NUMBER: _ClassVar[int]
    STARTS_AT_FIELD_NUMBER: _ClassVar[int]
    fault_id: str
    spec: FaultSpec
    mechanism: Mechanism
    state: FaultState
    applied_at: Timestamp
    lease_expires_at: Timestamp
    healed_at: Timestamp
    counters: Counters
    heal_error: str
    starts_at: Timestamp
    def __init__(self, fault_id: _Optional[str] = ..., spec: _Optional[_Union[FaultSpec, _Mapping]] = ..., mechanism: _Optional[_Union[Mechanism, str]] = ..., state: _Optional[_Union[FaultState, str]] = ..., applied_at: _Optional[_Union[Timestamp, _Mapping]] = ..., lease_expires_at: _Optional[_Union[Timestamp, _Mapping]] = ..., healed_at: _Optional[_Union[Timestamp, _Mapping]] = ..., counters: _Optional[_Union[Counters, _Mapping]] = ..., heal_error: _Optional[str] = ..., starts_at: _Optional[_Union[Timestamp, _Mapping]] = ...) -> None: ...

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
    __slots__ = ("agent_version", "kernel_release", "features", "kinds", "excluded_ports", "max_lease_ms", "min_lease_ms", "policy_source", "max_loss_percent", "max_delay_ms", "max_processes", "allowed_interfaces", "allowed_peer_cidrs", "process_faults_allowed")
    AGENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    KERNEL_RELEASE_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    KINDS_FIELD_NUMBER: _ClassVar[int]
    EXCLUDED_PORTS_FIELD_NUMBER: _ClassVar[int]
    MAX_LEASE_MS_FIELD_NUMBER: _ClassVar[int]
    MIN_LEASE_MS_FIELD_NUMBER: _ClassVar[int]
    POLICY_SOURCE_FIELD_NUMBER: _ClassVar[int]
    MAX_LOSS_PERCENT_FIELD_NUMBER: _ClassVar[int]
    MAX_DELAY_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_PROCESSES_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_INTERFACES_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_PEER_CIDRS_FIELD_NUMBER: _ClassVar[int]
    PROCESS_FAULTS_ALLOWED_FIELD_NUMBER: _ClassVar[int]
    agent_version: str
    kernel_release: str
    features: _containers.RepeatedCompositeFieldContainer[Feature]
    kinds: _containers.RepeatedCompositeFieldContainer[KindSupport]
    excluded_ports: _containers.RepeatedScalarFieldContainer[int]
    max_lease_ms: int
    min_lease_ms: int
    policy_source: str
    max_loss_percent: float
    max_delay_ms: float
    max_processes: int
    allowed_interfaces: _containers.RepeatedScalarFieldContainer[str]
    allowed_peer_cidrs: _containers.RepeatedScalarFieldContainer[str]
    process_faults_allowed: bool
    def __init__(self, agent_version: _Optional[str] = ..., kernel_release: _Optional[str] = ..., features: _Optional[_Iterable[_Union[Feature, _Mapping]]] = ..., kinds: _Optional[_Iterable[_Union[KindSupport, _Mapping]]] = ..., excluded_ports: _Optional[_Iterable[int]] = ..., max_lease_ms: _Optional[int] = ..., min_lease_ms: _Optional[int] = ..., policy_source: _Optional[str] = ..., max_loss_percent: _Optional[float] = ..., max_delay_ms: _Optional[float] = ..., max_processes: _Optional[int] = ..., allowed_interfaces: _Optional[_Iterable[str]] = ..., allowed_peer_cidrs: _Optional[_Iterable[str]] = ..., process_faults_allowed: bool = ...) -> None: ...

class ApplyFaultRequest(_message.Message):
    __slots__ = ("spec", "start_at_realtime_ns")
    SPEC_FIELD_NUMBER: _ClassVar[int]
    START_AT_REALTIME_NS_FIELD_NUMBER: _ClassVar[int]
    spec: FaultSpec
    start_at_realtime_ns: int
    def __init__(self, spec: _Optional[_Union[FaultSpec, _Mapping]] = ..., start_at_realtime_ns: _Optional[int] = ...) -> None: ...

class ApplyFaultResponse(_message.Message):
    __slots__ = ("fault_id", "mechanism", "applied_at", "lease_expires_at", "state", "starts_at")
    FAULT_ID_FIELD_NUMBER: _ClassVar[int]
    MECHANISM_FIELD_NUMBER: _ClassVar[int]
    APPLIED_AT_FIELD_NUMBER: _ClassVar[int]
    LEASE_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STARTS_AT_FIELD_NUMBER: _ClassVar[int]
    fault_id: str
    mechanism: Mechanism
    applied_at: Timestamp
    lease_expires_at: Timestamp
    state: FaultState
    starts_at: Timestamp
    def __init__(self, fault_id: _Optional[str] = ..., mechanism: _Optional[_Union[Mechanism, str]] = ..., applied_at: _Optional[_Union[Timestamp, _Mapping]] = ..., lease_expires_at: _Optional[_Union[Timestamp, _Mapping]] = ..., state: _Optional[_Union[FaultState, str]] = ..., starts_at: _Optional[_Union[Timestamp, _Mapping]] = ...) -> None: ...

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
    __slots__ = ("status", "agent_version", "active_faults", "now", "started_at_realtime_ns", "netns", "programs", "heal_failed", "pending_undos", "audit_error", "reasons", "cert_not_after_realtime_ns")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    AGENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FAULTS_FIELD_NUMBER: _ClassVar[int]
    NOW_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_REALTIME_NS_FIELD_NUMBER: _ClassVar[int]
    NETNS_FIELD_NUMBER: _ClassVar[int]
    PROGRAMS_FIELD_NUMBER: _ClassVar[int]
    HEAL_FAILED_FIELD_NUMBER: _ClassVar[int]
    PENDING_UNDOS_FIELD_NUMBER: _ClassVar[int]
    AUDIT_ERROR_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    CERT_NOT_AFTER_REALTIME_NS_FIELD_NUMBER: _ClassVar[int]
    status: str
    agent_version: str
    active_faults: int
    now: Timestamp
    started_at_realtime_ns: int
    netns: str
    programs: _containers.RepeatedCompositeFieldContainer[ProgramStatus]
    heal_failed: int
    pending_undos: _containers.RepeatedScalarFieldContainer[str]
    audit_error: str
    reasons: _containers.RepeatedScalarFieldContainer[str]
    cert_not_after_realtime_ns: int
    def __init__(self, status: _Optional[str] = ..., agent_version: _Optional[str] = ..., active_faults: _Optional[int] = ..., now: _Optional[_Union[Timestamp, _Mapping]] = ..., started_at_realtime_ns: _Optional[int] = ..., netns: _Optional[str] = ..., programs: _Optional[_Iterable[_Union[ProgramStatus, _Mapping]]] = ..., heal_failed: _Optional[int] = ..., pending_undos: _Optional[_Iterable[str]] = ..., audit_error: _Optional[str] = ..., reasons: _Optional[_Iterable[str]] = ..., cert_not_after_realtime_ns: _Optional[int] = ...) -> None: ...

class ProgramStatus(_message.Message):
    __slots__ = ("name", "state", "seconds", "error")
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    name: str
    state: str
    seconds: float
    error: str
    def __init__(self, name: _Optional[str] = ..., state: _Optional[str] = ..., seconds: _Optional[float] = ..., error: _Optional[str] = ...) -> None: ...

class WatchFilter(_message.Message):
    __slots__ = ("kinds", "ports", "peer_cidrs", "rtt_interval_ms", "no_fault_counters")
    KINDS_FIELD_NUMBER: _ClassVar[int]
    PORTS_FIELD_NUMBER: _ClassVar[int]
    PEER_CIDRS_FIELD_NUMBER: _ClassVar[int]
    RTT_INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    NO_FAULT_COUNTERS_FIELD_NUMBER: _ClassVar[int]
    kinds: _containers.RepeatedScalarFieldContainer[EventKind]
    ports: _containers.RepeatedScalarFieldContainer[int]
    peer_cidrs: _containers.RepeatedScalarFieldContainer[str]
    rtt_interval_ms: int
    no_fault_counters: bool
    def __init__(self, kinds: _Optional[_Iterable[_Union[EventKind, str]]] = ..., ports: _Optional[_Iterable[int]] = ..., peer_cidrs: _Optional[_Iterable[str]] = ..., rtt_interval_ms: _Optional[int] = ..., no_fault_counters: bool = ...) -> None: ...

class WatchEventsRequest(_message.Message):
    __slots__ = ("filter",)
    FILTER_FIELD_NUMBER: _ClassVar[int]
    filter: WatchFilter
    def __init__(self, filter: _Optional[_Union[WatchFilter, _Mapping]] = ...) -> None: ...

class Flow(_message.Message):
    __slots__ = ("local_addr", "local_port", "remote_addr", "remote_port")
    LOCAL_ADDR_FIELD_NUMBER: _ClassVar[int]
    LOCAL_PORT_FIELD_NUMBER: _ClassVar[int]
    REMOTE_ADDR_FIELD_NUMBER: _ClassVar[int]
    REMOTE_PORT_FIELD_NUMBER: _ClassVar[int]
    local_addr: str
    local_port: int
    remote_addr: str
    remote_port: int
    def __init__(self, local_addr: _Optional[str] = ..., local_port: _Optional[int] = ..., remote_addr: _Optional[str] = ..., remote_port: _Optional[int] = ...) -> None: ...

class TcpEvent(_message.Message):
    __slots__ = ("kind", "flow", "socket", "old_state", "new_state", "pid", "comm", "srtt_us", "snd_cwnd")
    KIND_FIELD_NUMBER: _ClassVar[int]
    FLOW_FIELD_NUMBER: _ClassVar[int]
    SOCKET_FIELD_NUMBER: _ClassVar[int]
    OLD_STATE_FIELD_NUMBER: _ClassVar[int]
    NEW_STATE_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    COMM_FIELD_NUMBER: _ClassVar[int]
    SRTT_US_FIELD_NUMBER: _ClassVar[int]
    SND_CWND_FIELD_NUMBER: _ClassVar[int]
    kind: EventKind
    flow: Flow
    socket: int
    old_state: TcpState
    new_state: TcpState
    pid: int
    comm: str
    srtt_us: int
    snd_cwnd: int
    def __init__(self, kind: _Optional[_Union[EventKind, str]] = ..., flow: _Optional[_Union[Flow, _Mapping]] = ..., socket: _Optional[int] = ..., old_state: _Optional[_Union[TcpState, str]] = ..., new_state: _Optional[_Union[TcpState, str]] = ..., pid: _Optional[int] = ..., comm: _Optional[str] = ..., srtt_us: _Optional[int] = ..., snd_cwnd: _Optional[int] = ...) -> None: ...

class Watching(_message.Message):
    __slots__ = ("transport", "probes", "local_addrs", "offset_uncertainty_ns")
    TRANSPORT_FIELD_NUMBER: _ClassVar[int]
    PROBES_FIELD_NUMBER: _ClassVar[int]
    LOCAL_ADDRS_FIELD_NUMBER: _ClassVar[int]
    OFFSET_UNCERTAINTY_NS_FIELD_NUMBER: _ClassVar[int]
    transport: str
    probes: _containers.RepeatedScalarFieldContainer[str]
    local_addrs: _containers.RepeatedScalarFieldContainer[str]
    offset_uncertainty_ns: int
    def __init__(self, transport: _Optional[str] = ..., probes: _Optional[_Iterable[str]] = ..., local_addrs: _Optional[_Iterable[str]] = ..., offset_uncertainty_ns: _Optional[int] = ...) -> None: ...

class LostEvents(_message.Message):
    __slots__ = ("where", "count", "total")
    WHERE_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    where: str
    count: int
    total: int
    def __init__(self, where: _Optional[str] = ..., count: _Optional[int] = ..., total: _Optional[int] = ...) -> None: ...

class FaultCountersUpdate(_message.Message):
    __slots__ = ("fault_id", "counters")
    FAULT_ID_FIELD_NUMBER: _ClassVar[int]
    COUNTERS_FIELD_NUMBER: _ClassVar[int]
    fault_id: str
    counters: Counters
    def __init__(self, fault_id: _Optional[str] = ..., counters: _Optional[_Union[Counters, _Mapping]] = ...) -> None: ...

class WatchEvent(_message.Message):
    __slots__ = ("at", "tcp", "watching", "lost", "fault_counters")
    AT_FIELD_NUMBER: _ClassVar[int]
    TCP_FIELD_NUMBER: _ClassVar[int]
    WATCHING_FIELD_NUMBER: _ClassVar[int]
    LOST_FIELD_NUMBER: _ClassVar[int]
    FAULT_COUNTERS_FIELD_NUMBER: _ClassVar[int]
    at: Timestamp
    tcp: TcpEvent
    watching: Watching
    lost: LostEvents
    fault_counters: FaultCountersUpdate
    def __init__(self, at: _Optional[_Union[Timestamp, _Mapping]] = ..., tcp: _Optional[_Union[TcpEvent, _Mapping]] = ..., watching: _Optional[_Union[Watching, _Mapping]] = ..., lost: _Optional[_Union[LostEvents, _Mapping]] = ..., fault_counters: _Optional[_Union[FaultCountersUpdate, _Mapping]] = ...) -> None: ...

class SummarizeFlowsRequest(_message.Message):
    __slots__ = ("filter", "since_realtime_ns")
    FILTER_FIELD_NUMBER: _ClassVar[int]
    SINCE_REALTIME_NS_FIELD_NUMBER: _ClassVar[int]
    filter: WatchFilter
    since_realtime_ns: int
    def __init__(self, filter: _Optional[_Union[WatchFilter, _Mapping]] = ..., since_realtime_ns: _Optional[int] = ...) -> None: ...

class StateChange(_message.Message):
    __slots__ = ("at", "old_state", "new_state")
    AT_FIELD_NUMBER: _ClassVar[int]
    OLD_STATE_FIELD_NUMBER: _ClassVar[int]
    NEW_STATE_FIELD_NUMBER: _ClassVar[int]
    at: Timestamp
    old_state: TcpState
    new_state: TcpState
    def __init__(self, at: _Optional[_Union[Timestamp, _Mapping]] = ..., old_state: _Optional[_Union[TcpState, str]] = ..., new_state: _Optional[_Union[TcpState, str]] = ...) -> None: ...

class FlowSummary(_message.Message):
    __slots__ = ("flow", "first_seen", "last_seen", "state", "transitions", "retransmits", "first_retransmit", "last_retransmit", "resets_sent", "resets_received", "rtt_samples", "rtt_p50_us", "rtt_p90_us", "rtt_p99_us")
    FLOW_FIELD_NUMBER: _ClassVar[int]
    FIRST_SEEN_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    TRANSITIONS_FIELD_NUMBER: _ClassVar[int]
    RETRANSMITS_FIELD_NUMBER: _ClassVar[int]
    FIRST_RETRANSMIT_FIELD_NUMBER: _ClassVar[int]
    LAST_RETRANSMIT_FIELD_NUMBER: _ClassVar[int]
    RESETS_SENT_FIELD_NUMBER: _ClassVar[int]
    RESETS_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    RTT_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    RTT_P50_US_FIELD_NUMBER: _ClassVar[int]
    RTT_P90_US_FIELD_NUMBER: _ClassVar[int]
    RTT_P99_US_FIELD_NUMBER: _ClassVar[int]
    flow: Flow
    first_seen: Timestamp
    last_seen: Timestamp
    state: TcpState
    transitions: _containers.RepeatedCompositeFieldContainer[StateChange]
    retransmits: int
    first_retransmit: Timestamp
    last_retransmit: Timestamp
    resets_sent: int
    resets_received: int
    rtt_samples: int
    rtt_p50_us: int
    rtt_p90_us: int
    rtt_p99_us: int
    def __init__(self, flow: _Optional[_Union[Flow, _Mapping]] = ..., first_seen: _Optional[_Union[Timestamp, _Mapping]] = ..., last_seen: _Optional[_Union[Timestamp, _Mapping]] = ..., state: _Optional[_Union[TcpState, str]] = ..., transitions: _Optional[_Iterable[_Union[StateChange, _Mapping]]] = ..., retransmits: _Optional[int] = ..., first_retransmit: _Optional[_Union[Timestamp, _Mapping]] = ..., last_retransmit: _Optional[_Union[Timestamp, _Mapping]] = ..., resets_sent: _Optional[int] = ..., resets_received: _Optional[int] = ..., rtt_samples: _Optional[int] = ..., rtt_p50_us: _Optional[int] = ..., rtt_p90_us: _Optional[int] = ..., rtt_p99_us: _Optional[int] = ...) -> None: ...

class SummarizeFlowsResponse(_message.Message):
    __slots__ = ("flows", "watchers", "events_matched", "events_lost")
    FLOWS_FIELD_NUMBER: _ClassVar[int]
    WATCHERS_FIELD_NUMBER: _ClassVar[int]
    EVENTS_MATCHED_FIELD_NUMBER: _ClassVar[int]
    EVENTS_LOST_FIELD_NUMBER: _ClassVar[int]
    flows: _containers.RepeatedCompositeFieldContainer[FlowSummary]
    watchers: int
    events_matched: int
    events_lost: int
    def __init__(self, flows: _Optional[_Iterable[_Union[FlowSummary, _Mapping]]] = ..., watchers: _Optional[int] = ..., events_matched: _Optional[int] = ..., events_lost: _Optional[int] = ...) -> None: ...

class SyncClockRequest(_message.Message):
    __slots__ = ("t1_realtime_ns",)
    T1_REALTIME_NS_FIELD_NUMBER: _ClassVar[int]
    t1_realtime_ns: int
    def __init__(self, t1_realtime_ns: _Optional[int] = ...) -> None: ...

class SyncClockResponse(_message.Message):
    __slots__ = ("t1_realtime_ns", "received", "sent")
    T1_REALTIME_NS_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_FIELD_NUMBER: _ClassVar[int]
    SENT_FIELD_NUMBER: _ClassVar[int]
    t1_realtime_ns: int
    received: Timestamp
    sent: Timestamp
    def __init__(self, t1_realtime_ns: _Optional[int] = ..., received: _Optional[_Union[Timestamp, _Mapping]] = ..., sent: _Optional[_Union[Timestamp, _Mapping]] = ...) -> None: ...
