"""mTLS, the client allowlist, the audit log and the policy (issue 8 must-shows 1 and 2),
against a real gRPC server with TLS in front of an engine on a fake mechanism."""

from __future__ import annotations

import ipaddress
import json
import shutil
import stat

import pytest

from faultline.agent.domain import policy as policies
from faultline.controller.agents.client import AgentClient, AgentUnreachable, Forbidden
from faultline.controller.agents.spec import Disconnect, Loss, fault_spec
from faultline.controller.env import certs
from tests.fakes import fake_agent


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """Our CA with an allowed and an unknown controller, and a stranger's CA."""
    root = tmp_path_factory.mktemp("pki")
    ours = root / "ours"
    certs.init(ours, ["127.0.0.1"], controller_name="qa-controller")
    stranger = root / "stranger"
    certs.init(stranger, ["127.0.0.1"], controller_name="qa-controller")
    dirs = {"allowed": ours}
    for name, ca_dir, cn in (("unknown", ours, "intruder"), ("foreign", stranger, "qa-controller")):
        d = root / name
        d.mkdir()
        shutil.copy(ours / "ca.pem", d / "ca.pem")  # every client trusts our agents' CA
        ca_key = certs.serialization.load_pem_private_key((ca_dir / "ca-key.pem").read_bytes(), None)
        ca = certs.x509.load_pem_x509_certificate((ca_dir / "ca.pem").read_bytes())
        key, cert = certs.issue(ca_key, ca, cn, server=False)
        (d / "controller.pem").write_bytes(cert.public_bytes(certs.serialization.Encoding.PEM))
        (d / "controller-key.pem").write_bytes(certs._key_pem(key))
        dirs[name] = d
    nocert = root / "nocert"
    nocert.mkdir()
    shutil.copy(ours / "ca.pem", nocert / "ca.pem")
    dirs["nocert"] = nocert
    return ours, dirs


def audit_lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_certs_init_files_and_modes(pki, tmp_path):
    ours, _ = pki
    for name in ("ca-key.pem", "agent-key.pem", "controller-key.pem"):
        assert stat.S_IMODE((ours / name).stat().st_mode) == 0o600, name
    agent = certs.x509.load_pem_x509_certificate((ours / "agent.pem").read_bytes())
    san = agent.extensions.get_extension_for_class(certs.x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("127.0.0.1") in san.get_values_for_type(certs.x509.IPAddress)
    with pytest.raises(FileExistsError, match="a CA is already there"):
        certs.init(ours, [])


def test_no_certificate_unknown_and_allowed(pki, tmp_path):
    ours, dirs = pki
    audit = tmp_path / "audit.jsonl"
    policy = policies.Policy(allowed_clients=frozenset({"CN=qa-controller"}))
    with fake_agent(tls_dir=ours, policy=policy, audit=audit) as (address, engine):
        # No client certificate: refused before dialling, naming the missing file. One from another CA:
        # the TLS handshake fails, and the error says the agent refuses our certificate. No request exists.
        with pytest.raises(AgentUnreachable, match=r"lacks controller\.pem"):
            AgentClient(address, timeout_s=3, tls_dir=dirs["nocert"])
        with AgentClient(address, timeout_s=3, tls_dir=dirs["foreign"]) as c, \
                pytest.raises(AgentUnreachable, match="refuses our certificate"):
            c.health()
        assert audit_lines(audit) == []
        # Our CA, a subject not allowed: refused, and audited.
        with AgentClient(address, tls_dir=dirs["unknown"]) as c:
            with pytest.raises(Forbidden, match="client O=faultline,CN=intruder is not in this agent's allowed"):
                c.apply(fault_spec(Disconnect(), "lab0", peers=["10.0.0.2/32"]))
        assert engine.list() == []
        [refused] = audit_lines(audit)
        assert refused["verdict"] == "PERMISSION_DENIED" and refused["who"] == "O=faultline,CN=intruder"
        assert refused["method"] == "ApplyFault" and refused["request"]["spec"]["selector"]["peer_cidrs"]
        # Allowed: served, and each request audited with what it changed and how to undo it.
        with AgentClient(address, tls_dir=dirs["allowed"]) as c:
            assert c.health().status == "SERVING"
            r = c.apply(fault_spec(Disconnect(), "lab0", peers=["10.0.0.2/32"]))
            c.heal(r.fault_id)
    lines = audit_lines(audit)
    assert [(x["method"], x["verdict"]) for x in lines[1:]] == [("Health", "OK"), ("ApplyFault", "OK"),
                                                              ("HealFault", "OK")]
    assert lines[2]["change"] == f"fault {r.fault_id} in the kernel" and f"HealFault {r.fault_id}" in lines[2]["undo"]
    assert all(x["who"] == "O=faultline,CN=qa-controller" for x in lines[1:])
    assert "PRIVATE KEY" not in audit.read_text()


def test_a_fault_outside_policy_is_refused_naming_the_rule(tmp_path):
    p = tmp_path / "agent.yaml"
    p.write_text("interfaces: [lab0]\npeer_cidrs: [10.0.0.0/8]\nmax_lease_s: 60\nmax_loss_percent: 50\n")
    policy = policies.load(p)
    audit = tmp_path / "audit.jsonl"
    with fake_agent(policy=policy, audit=audit) as (address, engine), AgentClient(address) as c:
        for spec, rule in (
            (fault_spec(Disconnect(), "eth1", peers=["10.0.0.2/32"]), "interfaces"),
            (fault_spec(Disconnect(), "lab0", peers=["192.168.1.2/32"]), "peer_cidrs"),
            (fault_spec(Disconnect(), "lab0"), "peer_cidrs"),
            (fault_spec(Disconnect(), "lab0", peers=["10.0.0.2/32"], lease_s=120), "max_lease_s"),
            (fault_spec(Loss(percent=80), "lab0", peers=["10.0.0.2/32"]), "max_loss_percent"),
        ):
            with pytest.raises(Forbidden, match=f"policy rule {rule}: "):
                c.apply(spec)
        assert engine.list() == [] and engine._mechs  # nothing reached a mechanism
        ok = c.apply(fault_spec(Loss(percent=50), "lab0", peers=["10.1.2.3/32"], lease_s=60))
        c.heal(ok.fault_id)
    verdicts = [x["verdict"] for x in audit_lines(audit)]
    assert verdicts == ["PERMISSION_DENIED"] * 5 + ["OK", "OK"]


@pytest.mark.parametrize("text,error", [
    ("max_loss_percent: 150\n", "max_loss_percent: 0 to 100; got 150"),
    ("peer_cidrs: [10.0.0.0/33]\n", "peer_cidrs:"),
    ("interface: [eth1]\n", "interface: not a known key"),
    ("allow_process_faults: yes please\n", "allow_process_faults: true or false"),
])
def test_a_malformed_policy_names_the_key(tmp_path, text, error):
    p = tmp_path / "agent.yaml"
    p.write_text(text)
    with pytest.raises(policies.PolicyError, match=error):
        policies.load(p)


def test_audit_lines_are_bounded_and_refusals_rate_limited(tmp_path):
    from faultline.agent.domain import audit as audit_mod

    log = audit_mod.AuditLog(tmp_path / "audit.jsonl")
    log.write("CN=qa", "ApplyFault", "INVALID_ARGUMENT", sync=True, request={"label": "x" * 4_000_000})
    size = (tmp_path / "audit.jsonl").stat().st_size
    assert size < 2_000
    [line] = audit_lines(tmp_path / "audit.jsonl")
    assert "[4000000 chars, sha256 " in line["request"]["label"]
    for _ in range(audit_mod.REFUSALS_PER_MINUTE + 50):
        log.refusal("CN=intruder", "ApplyFault", "PERMISSION_DENIED", reason="not allowed")
    assert len(audit_lines(tmp_path / "audit.jsonl")) == 1 + audit_mod.REFUSALS_PER_MINUTE


def test_an_audit_write_that_fails_is_kept_for_health_not_raised(tmp_path):
    from faultline.agent.domain.audit import AuditLog

    (tmp_path / "ro").mkdir()
    log = AuditLog(tmp_path / "ro" / "audit.jsonl")
    (tmp_path / "ro" / "audit.jsonl").mkdir()  # writing it now fails (EISDIR), even as root
    log.write("CN=qa", "ApplyFault", "OK", sync=True)
    assert "Is a directory" in log.last_error


def test_the_audit_log_rotates_and_counts_health_instead_of_a_line_each(tmp_path):
    """Issue 32 item 2: a line for every Health and SyncClock, never rotated, is how a state dir fills."""
    from faultline.agent.domain.audit import AuditLog

    log = AuditLog(tmp_path / "audit.jsonl", max_bytes=4096, keep=2)
    for _ in range(1000):
        log.count("CN=monitor", "Health", "OK")
    for i in range(200):
        log.write("CN=qa", "ApplyFault", "OK", request={"n": i, "pad": "x" * 100})
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["audit.jsonl", "audit.jsonl.1", "audit.jsonl.2"]  # bounded: 3 files, each <= 4 kB
    assert all(p.stat().st_size <= 4096 for p in tmp_path.iterdir())
    oldest_first = [tmp_path / "audit.jsonl.2", tmp_path / "audit.jsonl.1", tmp_path / "audit.jsonl"]
    lines = [json.loads(x) for p in oldest_first for x in p.read_text().splitlines()]
    assert not log.last_error and lines[-1]["request"]["n"] == 199
    kept = [x["request"]["n"] for x in lines if "request" in x]
    assert kept == list(range(kept[0], 200))  # the newest kept, in order, none lost between files
    fresh = AuditLog(tmp_path / "b" / "audit.jsonl")
    for _ in range(50):
        fresh.count("CN=monitor", "Health", "OK")
    fresh.flush()
    [counted] = [json.loads(x) for x in (tmp_path / "b" / "audit.jsonl").read_text().splitlines()]
    assert counted["method"] == "Health" and counted["calls"] == 50
