"""The agent's gRPC server, built in one place: the servicer, the gate, TLS and the thread pool.

Flag parsing stays in agent/cli.py; this module only wires what the runtime and the listen
address need into a started-or-not server.
"""

from __future__ import annotations

from concurrent import futures
from typing import TYPE_CHECKING

import grpc

from faultline.agent.kernel.tcp_watch import MAX_WATCHERS
from faultline.agent.rpc.gate import Gate
from faultline.agent.rpc.servicer import AgentServicer
from faultline.v1 import agent_pb2_grpc as pb_grpc

if TYPE_CHECKING:  # cryptography loads only where TLS is used
    from faultline.agent.rpc.tls import ServerTls
    from faultline.agent.runtime import AgentRuntime

# Keepalives: a watch stream whose controller vanished (no FIN: a partition) is noticed and freed.
KEEPALIVE = [("grpc.keepalive_time_ms", 20_000), ("grpc.keepalive_timeout_ms", 10_000),
             ("grpc.keepalive_permit_without_calls", 1)]


def build(runtime: AgentRuntime, listen: str, tls: ServerTls | None) -> tuple[grpc.Server, int]:
    """The server for `runtime` bound to `listen` (mTLS from `tls`, reloadable; else plaintext), not started.

    Returns it and the bound port (0: the address could not be bound).
    """
    # Each watch stream holds a worker for its life: room for every watch slot and 8 calls besides.
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8 + MAX_WATCHERS), options=KEEPALIVE,
                         interceptors=[Gate(lambda: runtime.policy, runtime.audit, tls=tls is not None)])
    pb_grpc.add_AgentServicer_to_server(AgentServicer(runtime, tls), server)
    if tls is None:
        return server, server.add_insecure_port(listen)
    return server, server.add_secure_port(listen, tls.credentials())
