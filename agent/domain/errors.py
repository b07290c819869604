"""Domain errors. The servicer maps each to exactly one gRPC status (agent/rpc/errors.py)."""

from __future__ import annotations


class FaultlineError(Exception):
    """Base of every error the agent reports on purpose."""


class InvalidArgument(FaultlineError):
    """A request field is malformed or out of range. Nothing was changed."""

    def __init__(self, field: str, allowed: str, got: object) -> None:
        self.field, self.allowed, self.got = field, allowed, got
        super().__init__(f"{field}: {allowed}; got {got!r}")


class FailedPrecondition(FaultlineError):
    """The request is well formed but this host cannot do it (missing kernel feature, ...)."""


class NotFound(FaultlineError):
    """No such fault."""


class Exhausted(FaultlineError):
    """A resource is exhausted: no free slot for another fault, a state dir that cannot take a record."""


class KernelError(FaultlineError):
    """The kernel refused a change; carries its errno when known."""

    def __init__(self, message: str, errno: int | None = None) -> None:
        self.errno = errno
        super().__init__(message if errno is None else f"{message} (errno {errno})")


class PermissionDenied(FaultlineError):
    """The request is well formed but this agent's policy (or its client allowlist) forbids it."""

    def __init__(self, rule: str, why: str) -> None:
        self.rule = rule
        super().__init__(f"policy rule {rule}: {why}")


class Unavailable(FaultlineError):
    """Not yet: what the request needs is still being prepared (a BPF compile). Retry later."""
