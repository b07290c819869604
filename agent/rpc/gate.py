"""Who may call, and the audit line of every call: a server interceptor in front of the servicer.

With mTLS the caller is its certificate's subject (gRPC has verified it against the CA
before any request arrives; a client without a certificate never gets that far). A subject
not in the policy's allowed_clients gets PERMISSION_DENIED. Every request that reaches the
agent is audited: who, which method, what it asked, the verdict, the kernel change and how
it is undone. Changes and refusals are fsynced before the answer leaves.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any

import grpc
from google.protobuf.json_format import MessageToDict

from faultline.agent.domain import subjects
from faultline.agent.domain.audit import COUNTED, AuditLog
from faultline.agent.domain.policy import Policy

# Calls that change the kernel: their audit lines are fsynced. The rest are appended.
CHANGES = {"ApplyFault", "HealFault", "HealAll", "RenewLease"}


def identity(context: grpc.ServicerContext, tls: bool) -> tuple[str, frozenset[subjects.Attribute]]:
    """(who, for the audit; the certificate subject's attributes, which allow-list entries are
    compared with attribute by attribute: never the subject as one string)."""
    if not tls:
        return f"insecure {context.peer()}", frozenset()
    auth = context.auth_context()
    subject = b"".join(auth.get("x509_subject", [])).decode(errors="replace")
    pem = b"".join(auth.get("x509_pem_cert", []))
    return subject or f"unauthenticated {context.peer()}", _subject_of(pem) if pem else frozenset()


@functools.lru_cache(maxsize=64)
def _subject_of(pem: bytes) -> frozenset[subjects.Attribute]:
    """A certificate's subject attributes, parsed once per certificate (not on every call)."""
    from cryptography import x509  # only with mTLS

    cert = x509.load_pem_x509_certificate(pem)
    return frozenset((subjects.normal_type(a.rfc4514_attribute_name), str(a.value)) for a in cert.subject)


def _summary(message: Any) -> dict[str, Any]:
    return MessageToDict(message, preserving_proto_field_name=True)


def _change(method: str, response: Any) -> dict[str, Any]:
    """The kernel change a successful call made, and its undo."""
    if method == "ApplyFault":
        pending = f", armed at {response.starts_at.realtime_ns} ns (realtime)" if response.HasField("starts_at") else ""
        return {"change": f"fault {response.fault_id} in the kernel{pending}",
                "undo": f"HealFault {response.fault_id}, or its lease at {response.lease_expires_at.realtime_ns} ns "
                        "(realtime), or SIGTERM / faultline-agent cleanup"}
    if method in ("HealFault", "HealAll"):
        faults = [response.fault] if method == "HealFault" else list(response.faults)
        return {"change": f"healed {', '.join(f.fault_id for f in faults) or 'nothing'}", "undo": "none needed"}
    if method == "RenewLease":
        return {"change": f"lease now ends at {response.lease_expires_at.realtime_ns} ns", "undo": "none needed"}
    return {}


class Gate(grpc.ServerInterceptor):
    def __init__(self, policy: Policy | Callable[[], Policy], audit: AuditLog, tls: bool) -> None:
        # A callable: the policy in force now (the agent reloads it on SIGHUP).
        self._policy = policy if callable(policy) else (lambda: policy)
        self.audit, self.tls = audit, tls

    def intercept_service(self, continuation: Callable[[Any], Any], details: Any) -> Any:
        handler = continuation(details)
        if handler is None:
            return None
        method = details.method.rsplit("/", 1)[-1]
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(method, handler.unary_unary), request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer)
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                self._stream(method, handler.unary_stream), request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer)
        return handler

    def _admit(self, method: str, request: Any, context: grpc.ServicerContext) -> str:
        who, names = identity(context, self.tls)
        if self.tls and not self._policy().allows_client(names):
            why = (f"client {who or 'without a name'} is not in this agent's allowed_clients (the host's policy "
                   "file, or faultline-agent --allow-client): ask its admin to add it")
            self.audit.refusal(who, method, "PERMISSION_DENIED", reason=why, request=_summary(request))
            context.abort(grpc.StatusCode.PERMISSION_DENIED, why)
        return who

    def _verdict(self, context: grpc.ServicerContext, unset: str) -> tuple[str, str]:
        """The status the call ends with; `unset` when no code was set (OK, or an unexpected raise)."""
        code = context.code()
        return (code.name if isinstance(code, grpc.StatusCode) else unset), str(context.details() or "")

    def _unary(self, method: str, fn: Callable[[Any, grpc.ServicerContext], Any]) -> Callable[..., Any]:
        def call(request: Any, context: grpc.ServicerContext) -> Any:
            who = self._admit(method, request, context)
            try:
                response = fn(request, context)
            except BaseException:
                verdict, message = self._verdict(context, "INTERNAL")
                self.audit.write(who, method, verdict, message=message, request=_summary(request), sync=True)
                raise
            if method in COUNTED:  # a monitoring check every few seconds: counted, not a line each
                self.audit.count(who, method, "OK")
            else:
                self.audit.write(who, method, "OK", request=_summary(request), **_change(method, response),
                                 sync=method in CHANGES)
            return response
        return call

    def _stream(self, method: str, fn: Callable[[Any, grpc.ServicerContext], Iterator[Any]]) -> Callable[..., Any]:
        def call(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            who = self._admit(method, request, context)
            self.audit.write(who, method, "OPENED", request=_summary(request))
            try:
                yield from fn(request, context)
            finally:
                verdict, message = self._verdict(context, "OK")
                self.audit.write(who, method, "CLOSED", status=verdict, message=message)
        return call
