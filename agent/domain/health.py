"""What Health says: SERVING only when everything the agent promises works; DEGRADED with one
reason per line otherwise. A monitoring check reads the status (`faultline health` exits 1 on
DEGRADED), so nothing that makes the agent do less than it says may leave it SERVING."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from faultline.agent.domain.deferred import BuildStatus

SERVING, DEGRADED = "SERVING", "DEGRADED"
CERT_WARN_DAYS = 7  # a certificate closer than this to its end is a reason (time to rotate it)
NS_PER_DAY = 86_400 * 10**9


@dataclass(frozen=True)
class Verdict:
    status: str
    reasons: tuple[str, ...]


def cert_days_left(not_after_ns: int, now_ns: int) -> float:
    return (not_after_ns - now_ns) / NS_PER_DAY


def judge(programs: Sequence[BuildStatus], observation: Sequence[str], pending_undos: Sequence[str],
          heal_failed: Sequence[str], audit_error: str, cert_not_after_ns: int, now_ns: int) -> Verdict:
    """`observation`: why TCP observation cannot work (empty when it can or is still compiling);
    `heal_failed`: the ids of faults whose heal failed; `cert_not_after_ns`: 0 without TLS."""
    reasons = [f"{p.name} did not compile: {p.error}" for p in programs if p.state == "failed"]
    reasons += [f"TCP observation: {why}" for why in observation]
    reasons += [f"undo pending from an earlier run: {u}" for u in pending_undos]
    if heal_failed:
        reasons.append(f"{len(heal_failed)} fault(s) HEAL_FAILED, being retried: {', '.join(heal_failed)}")
    if audit_error:
        reasons.append(f"audit log cannot be written: {audit_error}")
    if cert_not_after_ns:
        days = cert_days_left(cert_not_after_ns, now_ns)
        if days < 0:
            reasons.append(f"the agent's certificate expired {-days:.1f} days ago")
        elif days < CERT_WARN_DAYS:
            reasons.append(f"the agent's certificate expires in {days:.1f} days (rotate it: "
                           "`faultline certs issue-agent`, then SIGHUP)")
    return Verdict(DEGRADED if reasons else SERVING, tuple(reasons))
