"""Issue 19 finding 1: the lab is secure by default. Its agents speak mTLS on their lab address
only; a local user who cannot read the lab's key gets nothing, whatever they try."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from faultline.controller.agents.client import AgentClient

ASK = """
import grpc, sys
from faultline.v1 import agent_pb2 as pb, agent_pb2_grpc as g
ch = grpc.insecure_channel(sys.argv[1])
try:
    g.AgentStub(ch).Health(pb.HealthRequest(), timeout=5)
    print("SERVED")
except grpc.RpcError as e:
    print("REFUSED", e.code().name)
"""


def as_nobody(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), user="nobody", group="nogroup", extra_groups=[], cwd="/",
                          capture_output=True, text=True, timeout=120, check=False)


def test_a_user_without_the_labs_key_gets_nothing_from_a_lab_agent(lab):
    host = lab.state.hosts["trader"]
    plain = as_nobody(sys.executable, "-c", ASK, host.agent)
    assert plain.stdout.strip() == "REFUSED UNAVAILABLE", plain.stdout + plain.stderr  # no plaintext to talk to
    cli = as_nobody(str(Path(sys.executable).parent / "faultline"), "health", "--agent", host.agent)
    assert cli.returncode != 0 and "Traceback" not in cli.stderr, cli.stderr
    assert "not readable by this user" in cli.stderr and "mTLS" in cli.stderr, cli.stderr
    with AgentClient(host.agent) as c:  # root, the lab's owner: mTLS without being told
        assert c.health().status == "SERVING"


def test_lab_agents_listen_on_their_lab_address_only(lab):
    for host in lab.state.hosts.values():
        args = Path(f"/proc/{host.pid}/cmdline").read_bytes().split(b"\0")
        listen = args[args.index(b"--listen") + 1].decode()
        assert listen == host.agent and not listen.startswith("0.0.0.0"), listen
        assert b"--insecure" not in args and b"--tls-dir" in args
