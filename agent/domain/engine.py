"""The fault engine: validates, chooses a mechanism, applies, leases and heals faults.

Kernel work is delegated to mechanisms injected at construction (agent/kernel/...),
so the engine is tested without root against a fake mechanism.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from faultline.agent.domain import clock
from faultline.agent.domain.clock import Stamp
from faultline.agent.domain.errors import (
    FailedPrecondition,
    FaultlineError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from faultline.agent.domain.leases import Leases
from faultline.agent.domain.policy import Policy
from faultline.agent.domain.spec import (
    HOST_KINDS,
    MECHANISM_KINDS,
    Counters,
    Fault,
    FaultKind,
    FaultSpec,
    FaultState,
    Mechanism,
)
from faultline.agent.domain.validation import Limits, RawSpec, parse_cidr, validate

log = logging.getLogger(__name__)


# A coordinated start further off than this is a clock mix-up, not a plan.
MAX_START_AHEAD_NS = 60 * 10**9

# The last millisecond before a coordinated start is spun: a sleep overshoots by more.
START_SPIN_NS = 1_000_000

# How long apply waits, by default, for a mechanism's BPF program still compiling.
PROGRAM_WAIT_S = 30.0

# A failed heal is tried again after 0.5 s, then twice as long each time, at most a minute apart.
HEAL_RETRY_FIRST_S = 0.5
HEAL_RETRY_MAX_S = 60.0

class FaultMechanism(Protocol):
    mechanism: Mechanism
    kinds: tuple[FaultKind, ...]

    def refuses(self, spec: FaultSpec) -> str: ...  # why it cannot do this fault; "" if it can
    # Wait up to wait_s for what apply needs (a BPF program compiling); Unavailable after that.
    def ready(self, wait_s: float) -> None: ...
    # armed=False: made in the kernel but not yet seen by packets, until arm() (one map update)
    def apply(self, fault_id: str, spec: FaultSpec, ifindex: int, armed: bool = True) -> None: ...
    def arm(self, fault_id: str) -> None: ...
    # The lease's end, CLOCK_MONOTONIC ns, kept where it outlives the agent (the kernel's map).
    def lease(self, fault_id: str, deadline_ns: int) -> None: ...
    def heal(self, fault_id: str) -> Counters: ...
    def counters(self, fault_id: str) -> Counters: ...


class FaultEngine:
    def __init__(
        self,
        mechanisms: list[FaultMechanism],
        unavailable: Mapping[Mechanism, str],
        link_index: Callable[[str], int | None],
        route_interface: Callable[[str], str | None] = lambda _: None,
        limits: Limits | None = None,
        allowed_interfaces: frozenset[str] | None = None,
        history: int = 100,
        policy: Policy | None = None,
        audit: Callable[..., None] = lambda *_, **__: None,
    ) -> None:
        self._mechs = {m.mechanism: m for m in mechanisms}
        self._unavailable = dict(unavailable)
        self._link_index = link_index
        self._route_interface = route_interface
        self.limits = limits or Limits()
        self._allowed = allowed_interfaces
        self.policy = policy or Policy()
        self._lock = threading.RLock()
        self._active: dict[str, Fault] = {}
        self._healed: deque[Fault] = deque(maxlen=history)
        self._leases = Leases(self._expire)
        self._starts = Leases(self._arm, spin_ns=START_SPIN_NS, name="starts")  # PENDING faults' instants
        # audit(method, verdict, **fields): changes no request made (expiry, retries, shutdown).
        self._audit = audit

    # -- queries ---------------------------------------------------------
    def interface_allowed(self, name: str, found: dict[str, int | None] | None = None) -> bool:
        """May faults go on `name`, and does it exist; `found` keeps the index looked up."""
        if name == "lo" or (self._allowed is not None and name not in self._allowed):
            return False
        index = self._link_index(name)
        if found is not None:
            found[name] = index
        return index is not None

    def withdraw(self, mechanism: Mechanism, why: str) -> None:
        """A mechanism found unusable after start (its program did not compile): offered no more."""
        with self._lock:
            self._mechs.pop(mechanism, None)
            self._unavailable[mechanism] = why

    def unavailable(self) -> dict[Mechanism, str]:
        """Mechanisms this host lacks, with the reason."""
        return dict(self._unavailable)

    def why_not(self, kind: FaultKind) -> str:
        """Why no mechanism here offers `kind`."""
        reasons = [f"{m.name}: {why}" for m, why in self._unavailable.items() if kind in MECHANISM_KINDS.get(m, ())]
        return "; ".join(reasons) or "no mechanism of this agent version does it yet"

    def offered(self) -> dict[FaultKind, list[Mechanism]]:
        out: dict[FaultKind, list[Mechanism]] = {k: [] for k in FaultKind}
        for m in self._mechs.values():
            for k in m.kinds:
                out[k].append(m.mechanism)
        return out

    def list(self, include_healed: bool = False) -> list[Fault]:
        with self._lock:
            for f in self._active.values():
                if f.state is FaultState.ACTIVE:  # a failed heal keeps its last counters
                    f.counters = self._mechs[f.mechanism].counters(f.fault_id)
            faults = list(self._active.values())
            return faults + list(self._healed) if include_healed else faults

    def active_count(self) -> int:
        with self._lock:
            return len(self._active)

    # -- changes ---------------------------------------------------------
    def apply(self, raw: RawSpec, start_at_realtime_ns: int = 0, wait_s: float = PROGRAM_WAIT_S) -> Fault:
        """Validate, then apply now; or, for a coordinated start, make it in the kernel unarmed and
        return it PENDING: a timer arms it at start_at (no caller waits; any heal cancels it).

        wait_s: how long to wait for the mechanism's BPF program if it is still compiling
        (then Unavailable, nothing changed)."""
        if not raw.interface and raw.peer_cidrs and raw.kind not in HOST_KINDS:
            raw.interface = self._interface_for(raw.peer_cidrs)
        if raw.kind not in HOST_KINDS and raw.interface:
            self._interface_permitted(raw.interface)
        found: dict[str, int | None] = {}  # one netlink lookup per request (~1 ms each through pyroute2)
        spec = validate(raw, self.limits, lambda name: self.interface_allowed(name, found))
        self.policy.check(spec)  # well formed, but may this host be faulted like that?
        mech = self._choose(spec)
        starts_at = self._start_instant(start_at_realtime_ns) if start_at_realtime_ns else None
        mech.ready(wait_s)  # its program may still be compiling: wait here, outside the lock
        with self._lock:
            ifindex = 0 if spec.kind in HOST_KINDS else found.get(spec.selector.interface)
            if ifindex is None:
                raise InvalidArgument("spec.selector.interface", "an existing interface", spec.selector.interface)
            fault_id = "f-" + uuid.uuid4().hex[:10]
            # RESET and PROCESS act inside the call (a RST is on the wire before it returns):
            # their applied_at is when the call began acting, not when it came back.
            acting = clock.now()
            # A coordinated start does all the kernel work now and only arms the rule at its instant.
            mech.apply(fault_id, spec, ifindex, armed=starts_at is None)
            lease_ns = spec.lease_ms * 1_000_000
            if starts_at is not None:
                fault = Fault(fault_id, spec, mech.mechanism, None, starts_at.plus(lease_ns),
                              state=FaultState.PENDING, starts_at=starts_at)
                self._active[fault_id] = fault
                self._grant(mech, fault)
                self._starts.grant(fault_id, starts_at.monotonic_ns)
                log.info("pending %s %s on %s via %s, starts in %.3f s, lease %d ms", fault_id, spec.kind.name,
                         spec.selector.interface, mech.mechanism.name,
                         (starts_at.monotonic_ns - clock.monotonic_ns()) / 1e9, spec.lease_ms)
                return fault
            applied = acting if spec.kind in HOST_KINDS else clock.now()
            fault = Fault(fault_id, spec, mech.mechanism, applied, applied.plus(lease_ns))
            self._active[fault_id] = fault
            self._grant(mech, fault)
            log.info("applied %s %s on %s via %s, lease %d ms", fault_id, spec.kind.name,
                     spec.selector.interface, mech.mechanism.name, spec.lease_ms)
            return fault

    @staticmethod
    def _start_instant(start_at_realtime_ns: int) -> Stamp:
        """The start on both clocks, converted once: the timer runs on the monotonic one, so a
        realtime step after the accept neither hastens nor delays it."""
        now = clock.now()
        ahead_ns = start_at_realtime_ns - now.realtime_ns
        if abs(ahead_ns) > MAX_START_AHEAD_NS:
            raise InvalidArgument("start_at_realtime_ns",
                                  f"within {MAX_START_AHEAD_NS // 10**9} s of the agent's clock "
                                  f"(it is {ahead_ns / 1e9:+.3f} s from it)", start_at_realtime_ns)
        return Stamp(start_at_realtime_ns, now.monotonic_ns + ahead_ns)

    def _arm(self, fault_id: str) -> None:
        """A pending fault's instant: one map update (or the signal, the reset) and it acts."""
        with self._lock:
            fault = self._active.get(fault_id)
            if fault is None or fault.state is not FaultState.PENDING:
                return  # healed, expired or shut down while it waited
            mech = self._mechs[fault.mechanism]
            acting = clock.now()
            try:
                mech.arm(fault_id)
            except Exception as e:  # a target gone while it waited: nothing acted; undo what was made
                fault.heal_error = f"its start failed: {e}"
                log.error("start of %s failed: %s", fault_id, e)
                fault = self.heal(fault_id, FaultState.HEALED)
                self._audit_heal("StartFailed", fault)
                return
            fault.state = FaultState.ACTIVE
            fault.applied_at = acting if fault.spec.kind in HOST_KINDS else clock.now()
            fault.lease_expires_at = fault.applied_at.plus(fault.spec.lease_ms * 1_000_000)
            self._grant(mech, fault)
            late_ms = (fault.applied_at.monotonic_ns - (fault.starts_at or acting).monotonic_ns) / 1e6
        log.info("started %s %s (%.3f ms after its instant)", fault_id, fault.spec.kind.name, late_ms)

    def _interface_permitted(self, name: str) -> None:
        """lo and interfaces outside --allow-interface, each refused saying so (not as "missing")."""
        if name == "lo":
            raise InvalidArgument("spec.selector.interface", "not lo: loopback is never faulted (the agent's own "
                                  "API and the host's local traffic use it)", name)
        if self._allowed is not None and name not in self._allowed:
            raise InvalidArgument("spec.selector.interface", "one of the agent's --allow-interface: "
                                  f"{', '.join(sorted(self._allowed)) or 'none'}", name)

    def _interface_for(self, cidrs: Sequence[str]) -> str:
        """The one interface that routes to every peer; '' when there is none (validation says why)."""
        names = set()
        for i, text in enumerate(cidrs):
            net = parse_cidr(text, f"spec.selector.peer_cidrs[{i}]")
            name = self._route_interface(str(net.network_address))
            if name is None:
                raise InvalidArgument(f"spec.selector.peer_cidrs[{i}]", "a peer this host has a route to (or the "
                                      "interface given explicitly)", text)
            names.add(name)
        if len(names) > 1:
            raise InvalidArgument("spec.selector.interface",
                                  "given explicitly when the peers route through different interfaces",
                                  sorted(n or "-" for n in names))
        return names.pop() or ""

    def _choose(self, spec: FaultSpec) -> FaultMechanism:
        """The asked mechanism, or for AUTO the first that can (eBPF before netem: no qdisc swap)."""
        wanted = [spec.mechanism] if spec.mechanism is not Mechanism.AUTO else list(Mechanism)[1:]
        reasons: dict[Mechanism, str] = {}
        for m in wanted:
            mech = self._mechs.get(m)
            if mech is None:
                reasons[m] = self._unavailable.get(m, "not built into this agent")
            elif spec.kind not in mech.kinds:
                reasons[m] = f"does not do {spec.kind.name}"
            elif why := mech.refuses(spec):
                reasons[m] = why
            else:
                return mech
        if spec.mechanism is not Mechanism.AUTO:
            raise FailedPrecondition(f"spec.mechanism {spec.mechanism.name} unavailable: {reasons[spec.mechanism]}")
        detail = "; ".join(f"{m.name}: {r}" for m, r in reasons.items())
        raise FailedPrecondition(f"no mechanism on this host does {spec.kind.name} ({detail})")

    def heal(self, fault_id: str, state: FaultState = FaultState.HEALED) -> Fault:
        """Undo a fault. A heal that fails never wedges the engine: the fault stays listed as
        HEAL_FAILED with the error, and the lease timer retries it with backoff."""
        with self._lock:
            fault = self._active.get(fault_id)
            if fault is None:
                raise NotFound(f"no active fault {fault_id!r}")
            self._leases.revoke(fault_id)
            self._starts.revoke(fault_id)
            state = fault.heal_as or state
            try:
                counters = self._mechs[fault.mechanism].heal(fault_id)
            except Exception as e:  # a kernel refusal, a vanished target, a restart that cannot run
                fault.state, fault.heal_as = FaultState.HEAL_FAILED, state
                fault.heal_error = f"{type(e).__name__}: {e}" if not isinstance(e, FaultlineError) else str(e)
                fault.heal_attempts += 1
                backoff_s = min(HEAL_RETRY_MAX_S, HEAL_RETRY_FIRST_S * 2 ** (fault.heal_attempts - 1))
                self._leases.grant(fault_id, clock.now().plus(round(backoff_s * 1e9)).monotonic_ns)
                log.error("heal of %s failed (attempt %d): %s; retrying in %.1f s", fault_id,
                          fault.heal_attempts, fault.heal_error, backoff_s)
                return fault
            fault.counters = counters
            del self._active[fault_id]
            fault.state = state
            fault.healed_at = clock.now()
            self._healed.appendleft(fault)
            log.info("healed %s (%s): matched %d dropped %d", fault_id, state.value,
                     fault.counters.matched, fault.counters.dropped)
            return fault

    def heal_all(self, state: FaultState = FaultState.HEALED) -> list[Fault]:
        with self._lock:
            return [self.heal(fid, state) for fid in list(self._active)]

    def heal_failed_ids(self) -> list[str]:
        """Faults whose heal failed (no counters read: Health asks this on every call)."""
        with self._lock:
            return [f.fault_id for f in self._active.values() if f.state is FaultState.HEAL_FAILED]

    def heal_failed_count(self) -> int:
        return len(self.heal_failed_ids())

    def renew(self, fault_id: str, lease_ms: int) -> Fault:
        lim = self.limits
        max_ms = min(lim.max_lease_ms, round(self.policy.max_lease_s * 1000))
        if lease_ms > self.policy.max_lease_s * 1000:
            raise PermissionDenied("max_lease_s", f"lease {lease_ms / 1000:g} s is over {self.policy.max_lease_s:g} s")
        if not lim.min_lease_ms <= lease_ms <= max_ms:
            raise InvalidArgument("lease_ms", f"{lim.min_lease_ms} ms to {max_ms} ms", lease_ms)
        with self._lock:
            fault = self._active.get(fault_id)
            if fault is None:
                raise NotFound(f"no active fault {fault_id!r} (healed or lease already expired)")
            if fault.state is FaultState.HEAL_FAILED:
                raise FailedPrecondition(f"fault {fault_id} is being healed (its heal failed: {fault.heal_error}); "
                                         "its lease cannot be renewed")
            # A pending fault's lease still counts from its start.
            since = fault.starts_at if fault.state is FaultState.PENDING and fault.starts_at else clock.now()
            fault.lease_expires_at = since.plus(lease_ms * 1_000_000)
            self._grant(self._mechs[fault.mechanism], fault)
            return fault

    def _grant(self, mech: FaultMechanism, fault: Fault) -> None:
        """The lease on both sides: the kernel's (the fault stops acting at its end even with no
        agent left) and the timer's (which heals it, undoing the kernel objects)."""
        mech.lease(fault.fault_id, fault.lease_expires_at.monotonic_ns)
        self._leases.grant(fault.fault_id, fault.lease_expires_at.monotonic_ns)

    def _expire(self, fault_id: str) -> None:
        """A lease ran out, or a failed heal is due for another try."""
        with self._lock:
            fault = self._active.get(fault_id)
            retry = fault is not None and fault.state is FaultState.HEAL_FAILED
        try:
            fault = self.heal(fault_id, FaultState.EXPIRED)
        except NotFound:
            return  # healed by a request at the same moment
        self._audit_heal("HealRetry" if retry else "LeaseExpired", fault)

    def _audit_heal(self, method: str, fault: Fault) -> None:
        self._audit(method, fault.state.name, sync=True, fault_id=fault.fault_id, kind=fault.spec.kind.name,
                    interface=fault.spec.selector.interface, error=fault.heal_error,
                    change=f"healed {fault.fault_id}" if fault.state is not FaultState.HEAL_FAILED
                    else f"heal of {fault.fault_id} failed; retried")

    def close(self, state: FaultState = FaultState.SHUTDOWN) -> list[Fault]:
        """Heal everything (pending starts too) and stop the timers."""
        self._starts.stop()  # nothing arms while the shutdown heals
        self._leases.stop()  # no retry or expiry races the shutdown heals
        healed = self.heal_all(state)
        for fault in healed:
            self._audit_heal("Shutdown", fault)
        return healed
