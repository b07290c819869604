"""Every command that talks to one agent, end to end: the CLI against a real gRPC agent on fake
mechanisms (no kernel), human and --json output, and what the agent ends up holding."""

from __future__ import annotations

import json

from faultline.controller.cli import main as cli
from tests.fakes import fake_agent


def call(capsys, *argv: str) -> tuple[int, str, str]:
    rc = cli.main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_inject_list_renew_heal_health_caps_watch(capsys) -> None:
    with fake_agent() as (address, engine):
        a = ("--agent", address)
        rc, out, _ = call(capsys, "health", *a)
        assert rc == 0 and out.startswith("SERVING: agent ") and "offset from this host" in out
        rc, out, _ = call(capsys, "caps", *a)
        assert rc == 0 and "this kernel has no netem" in out
        rc, out, _ = call(capsys, "inject", *a, "disconnect", "--peer", "10.77.0.2/32", "--duration", "20s",
                         "--label", "cli test")
        assert rc == 0 and " applied at " in out and "heals by itself at" in out, out
        fid = out.split()[0]
        assert [f.fault_id for f in engine.list()] == [fid]
        rc, out, _ = call(capsys, "inject", *a, "--json", "loss", "--percent", "20", "--peer", "10.77.0.3/32",
                         "--port", "4002")
        loss = json.loads(out)
        assert rc == 0 and loss["fault_id"] and len(engine.list()) == 2
        rc, out, _ = call(capsys, "list", *a)
        assert rc == 0 and fid in out and loss["fault_id"] in out
        rc, out, _ = call(capsys, "renew", *a, fid, "--duration", "1m")
        assert rc == 0 and out.startswith(f"{fid} now heals at ")
        rc, out, _ = call(capsys, "heal", *a, fid)
        assert rc == 0 and fid in out and [f.fault_id for f in engine.list()] == [loss["fault_id"]]
        rc, out, _ = call(capsys, "heal", *a, "--all", "--json")
        assert rc == 0 and [f["fault_id"] for f in json.loads(out)] == [loss["fault_id"]] and engine.list() == []
        rc, out, _ = call(capsys, "watch", *a, "--json", "--for", "300ms")
        first = json.loads(out.splitlines()[0])
        assert rc == 0 and first["watching"]["local_addrs"] == ["10.77.0.1"]
        rc, out, _ = call(capsys, "flows", *a)
        assert rc == 0


def test_an_agent_error_is_one_line_and_exit_1(capsys) -> None:
    with fake_agent() as (address, engine):
        rc, out, err = call(capsys, "inject", "--agent", address, "loss", "--percent", "150", "--peer", "10.0.0.1")
        assert rc == 1 and out == "" and err.startswith("faultline: error: ") and len(err.splitlines()) == 1, err
        assert "INVALID_ARGUMENT" in err and "percent" in err and engine.list() == []
