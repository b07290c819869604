"""Certificates for N hosts under one CA, TLS mistakes in one line, and `faultline health` as a
monitoring check: the CLI against real gRPC agents with mTLS on fake mechanisms (no kernel)."""

from __future__ import annotations

import json
import shutil
import stat

import pytest

from faultline.agent.domain import policy as policies
from faultline.controller.agents.client import TLS_ENV, AgentClient, AgentUnreachable, Forbidden, agent_address
from faultline.controller.cli import main as cli
from faultline.controller.env import certs
from tests.fakes import fake_agent

ALLOWED = policies.Policy(allowed_clients=frozenset({"CN=qa"}))


def call(capsys, *argv: str) -> tuple[int, str, str]:
    rc = cli.main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.fixture
def fleet(tmp_path, capsys, monkeypatch):
    """One CA (made with the CLI), two agent hosts and a controller issued under it, and a stranger CA."""
    monkeypatch.delenv(TLS_ENV, raising=False)
    ca = tmp_path / "ca"
    assert call(capsys, "certs", "init", str(ca), "--controller-name", "qa")[0] == 0
    for host, ip in (("app1", "127.0.0.1"), ("db1", "127.0.0.2")):
        rc, out, _ = call(capsys, "certs", "issue-agent", str(ca), host, "--ip", ip, "--out", str(tmp_path / host))
        assert rc == 0 and str(tmp_path / host / "agent-key.pem") in out
    assert call(capsys, "certs", "issue-controller", str(ca), "qa", "--out", str(tmp_path / "qa"))[0] == 0
    certs.init(tmp_path / "stranger", [], controller_name="qa")
    return tmp_path


def test_issued_files_modes_and_names(fleet, capsys):
    for host, ip in (("app1", "127.0.0.1"), ("db1", "127.0.0.2")):
        d = fleet / host
        assert sorted(p.name for p in d.iterdir()) == ["agent-key.pem", "agent.pem", "ca.pem"]
        assert stat.S_IMODE((d / "agent-key.pem").stat().st_mode) == 0o600
        assert (d / "ca.pem").read_bytes() == (fleet / "ca" / "ca.pem").read_bytes()
        cert = certs.x509.load_pem_x509_certificate((d / "agent.pem").read_bytes())
        san = cert.extensions.get_extension_for_class(certs.x509.SubjectAlternativeName).value
        assert [str(v) for v in san.get_values_for_type(certs.x509.IPAddress)] == [ip]
        assert san.get_values_for_type(certs.x509.DNSName) == [host]
    rc, out, _ = call(capsys, "certs", "list", str(fleet / "ca"))
    lines = out.splitlines()
    assert rc == 0 and lines[0].split() == ["SERIAL", "ROLE", "SUBJECT", "NAMES", "EXPIRES"]
    assert sum(" agent " in x for x in lines) == 3 and sum(" controller " in x for x in lines) == 2  # init's too
    assert any("CN=db1" in x and "db1,127.0.0.2" in x for x in lines)
    rc, _, err = call(capsys, "certs", "init", str(fleet / "ca"))
    assert rc == 1 and "a CA is already there" in err and "issue-agent" in err


def test_the_controller_reaches_each_host_with_one_certificate_and_checks_its_name(fleet, capsys):
    with fake_agent(tls_dir=fleet / "app1", policy=ALLOWED) as (address, _):
        rc, _, err = call(capsys, "health", "--agent", address, "--json")
        assert rc == 2 and "requires mTLS but no TLS directory is set" in err and TLS_ENV in err
        assert len(err.splitlines()) == 1
        with AgentClient(address, tls_dir=fleet / "qa") as c:
            assert c.health().status == "SERVING"
    # db1's certificate served at app1's address (127.0.0.1): refused, the names said.
    with fake_agent(tls_dir=fleet / "db1", policy=ALLOWED) as (address, _):
        with AgentClient(address, tls_dir=fleet / "qa") as c, pytest.raises(AgentUnreachable) as e:
            c.health()
        assert "does not name 127.0.0.1 (it names db1, 127.0.0.2)" in e.value.message


@pytest.mark.parametrize("mistake", ["no-controller-pem", "no-ca-pem", "agent-from-another-ca",
                                     "ours-from-another-ca", "not-allowed", "plaintext-agent"])
def test_each_tls_mistake_is_one_line(fleet, capsys, monkeypatch, mistake):
    mine = fleet / "mine"
    shutil.copytree(fleet / "qa", mine)
    agent_dir, policy, want = fleet / "app1", ALLOWED, ""
    if mistake == "no-controller-pem":
        (mine / "controller.pem").unlink()
        want = f"TLS directory {mine} lacks controller.pem"
    elif mistake == "no-ca-pem":
        (mine / "ca.pem").unlink()
        want = f"TLS directory {mine} lacks ca.pem"
    elif mistake == "agent-from-another-ca":
        certs.issue_agent(fleet / "stranger", "app1", ["127.0.0.1"], [], fleet / "app1-stranger")
        agent_dir, want = fleet / "app1-stranger", "serves a certificate not signed by"
    elif mistake == "ours-from-another-ca":
        certs.issue_controller(fleet / "stranger", "qa", mine)
        shutil.copy(fleet / "ca" / "ca.pem", mine / "ca.pem")
        want = "refuses our certificate"
    elif mistake == "not-allowed":
        policy = policies.Policy(allowed_clients=frozenset({"CN=someone-else"}))
        want = "PERMISSION_DENIED: client O=faultline,CN=qa is not in this agent's allowed_clients"
    elif mistake == "plaintext-agent":
        agent_dir, want = None, "does not speak TLS"
    monkeypatch.setenv(TLS_ENV, str(mine))
    with fake_agent(tls_dir=agent_dir, policy=policy, audit=fleet / "audit.jsonl") as (address, _):
        rc, out, err = call(capsys, "list", "--agent", address)
    assert rc == 1 and out == "" and len(err.splitlines()) == 1, err
    assert want in err, err


def test_a_rotated_certificate_serves_new_connections_without_a_restart(fleet):
    with fake_agent(tls_dir=fleet / "db1", policy=ALLOWED) as (address, engine):
        with AgentClient(address, tls_dir=fleet / "qa") as c, pytest.raises(AgentUnreachable, match="does not name"):
            c.health()
        before = engine.server_tls.material.not_after_ns
        certs.issue_agent(fleet / "ca", "db1", ["127.0.0.1", "127.0.0.2"], [], fleet / "db1")  # what SIGHUP reads
        engine.server_tls.reload()
        with AgentClient(address, tls_dir=fleet / "qa") as c:
            h = c.health()
        assert h.status == "SERVING" and h.cert_not_after_realtime_ns >= before


def test_health_exit_codes_reasons_and_json(fleet, capsys):
    with fake_agent() as (address, _):
        rc, out, _ = call(capsys, "health", "--agent", address)
        assert rc == 0 and out.startswith("SERVING: ") and "plaintext" in out
    with fake_agent(pending_undos=["add_filter of f-1 (undo del_filter): NetlinkError: 19"]) as (address, _):
        rc, out, _ = call(capsys, "health", "--agent", address)
        assert rc == 1 and out.startswith("DEGRADED: ")
        assert "  - undo pending from an earlier run: add_filter of f-1" in out
        rc, out, _ = call(capsys, "health", "--json", "--agent", address)
        d = json.loads(out)
        assert rc == 1 and d["status"] == "DEGRADED" and d["reasons"][0].startswith("undo pending")
        assert "offset_ns" in d["offset"] and d["cert_days_left"] is None
    rc, _, err = call(capsys, "health", "--agent", "127.0.0.1:1", "--timeout", "2s")
    assert rc == 2 and "cannot connect to 127.0.0.1:1" in err


def test_agent_addresses_default_to_port_7070_and_refuse_a_bad_port(capsys):
    assert agent_address("10.1.0.5") == "10.1.0.5:7070"
    assert agent_address("db1:7171") == "db1:7171"
    assert agent_address("fd00::5") == "[fd00::5]:7070"
    assert agent_address("[fd00::5]:99") == "[fd00::5]:99"
    for bad in ("10.1.0.5:99999", "10.1.0.5:0", ":7070", "h:x"):
        with pytest.raises(ValueError):
            agent_address(bad)
    with pytest.raises(SystemExit, match="port 99999 outside 1-65535"):
        cli.main(["list", "--agent", "10.1.0.5:99999"])


def test_json_anywhere_caps_in_force_and_labels_in_list(capsys, tmp_path):
    p = tmp_path / "agent.yaml"
    p.write_text("max_lease_s: 300\nmax_loss_percent: 50\n")
    with fake_agent(policy=policies.load(p)) as (address, _):
        rc, out, _ = call(capsys, "inject", "--agent", address, "loss", "--percent", "10", "--peer", "10.77.0.3/32",
                          "--label", "db partition test", "--json")
        assert rc == 0 and json.loads(out)["fault_id"]
        rc, out, _ = call(capsys, "list", "--agent", address)
        assert rc == 0 and "LABEL" in out.splitlines()[0] and "db partition test" in out
        rc, out, _ = call(capsys, "caps", "--agent", address)
        assert rc == 0 and "to 300 s (the limit in force)" in out and "loss at most 50 %" in out


def test_an_allow_list_entry_is_compared_attribute_by_attribute(fleet):
    """`CN=qa,O=faultline` admits CN qa of O faultline, not a certificate whose one CN is the text
    `qa,O=faultline` (from the agents' own CA: a string compare let it in)."""
    from faultline.agent.domain import subjects

    ca_key, ca = certs.load_ca(fleet / "ca")
    for name, cn in (("sneaky", "qa,O=faultline"), ("real", "qa")):
        key, cert = certs.issue(ca_key, ca, cn, server=False)
        d = fleet / name
        d.mkdir()
        (d / "controller.pem").write_bytes(cert.public_bytes(certs.serialization.Encoding.PEM))
        (d / "controller-key.pem").write_bytes(certs._key_pem(key))
        shutil.copy(fleet / "ca" / "ca.pem", d / "ca.pem")
    policy = policies.Policy(allowed_clients=frozenset({"CN=qa,O=faultline"}))
    with fake_agent(tls_dir=fleet / "app1", policy=policy, audit=fleet / "audit.jsonl") as (address, _):
        with AgentClient(address, tls_dir=fleet / "sneaky") as c, pytest.raises(Forbidden):
            c.health()
        with AgentClient(address, tls_dir=fleet / "real") as c:
            assert c.health().status == "SERVING"
    assert subjects.parse(r"CN=qa\,O=faultline") == {("CN", "qa,O=faultline")}
    assert subjects.parse("cn=qa + ou=desk,2.5.4.10=faultline") == {("CN", "qa"), ("OU", "desk"), ("O", "faultline")}
    for bad in ("qa", "CN=", "=qa", ""):
        with pytest.raises(ValueError):
            subjects.parse(bad)


def test_a_policy_entry_that_is_no_name_is_refused_at_load(tmp_path):
    p = tmp_path / "agent.yaml"
    p.write_text("allowed_clients: [qa-controller]\n")
    with pytest.raises(policies.PolicyError, match="allowed_clients: 'qa-controller' is not TYPE=VALUE"):
        policies.load(p)
