"""What an agent's refusal or failure becomes on this side: one exception type per status."""

from __future__ import annotations

import grpc


class AgentError(Exception):
    """The agent refused or failed a call. `code` is the gRPC status."""

    def __init__(self, agent: str, code: grpc.StatusCode, message: str) -> None:
        self.agent, self.code, self.message = agent, code, message
        super().__init__(f"{agent}: {code.name}: {message}")


class InvalidRequest(AgentError): ...
class Unsupported(AgentError): ...
class UnknownFault(AgentError): ...
class AgentUnreachable(AgentError): ...
class Forbidden(AgentError): ...  # the agent's policy or client allowlist says no


# The one table on this side: status -> exception type.
ERRORS: dict[grpc.StatusCode, type[AgentError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidRequest,
    grpc.StatusCode.FAILED_PRECONDITION: Unsupported,
    grpc.StatusCode.NOT_FOUND: UnknownFault,
    grpc.StatusCode.UNAVAILABLE: AgentUnreachable,
    grpc.StatusCode.PERMISSION_DENIED: Forbidden,
    grpc.StatusCode.DEADLINE_EXCEEDED: AgentUnreachable,
}

def error_of(address: str, e: grpc.RpcError) -> AgentError:
    code = e.code()  # type: ignore[attr-defined]
    return ERRORS.get(code, AgentError)(address, code, e.details() or "")  # type: ignore[attr-defined]
