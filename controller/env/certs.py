"""`faultline certs`: one small CA on the controller, a certificate per agent host and per
controller under it. Keys are ECDSA P-256, written 0600 (replaced atomically: an agent reloading
on SIGHUP never reads half a file); the CA key never leaves DIR.

    init DIR             DIR/ca.pem ca-key.pem controller.pem controller-key.pem (+ agent.pem
                         agent-key.pem naming --agent-host, for a one-host setup)
    issue-agent DIR HOST OUT/ca.pem agent.pem agent-key.pem: that host's --tls-dir
    issue-controller DIR CN   OUT/ca.pem controller.pem controller-key.pem: FAULTLINE_TLS_DIR
    list DIR             every certificate issued (DIR/issued/SERIAL.pem keeps a copy of each)

An agent's certificate names every address it is reached by (the controller checks the one it
dialled); a controller's subject (CN=...) is what agents list in allowed_clients.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALID_DAYS = 825  # what browsers and most policies accept for leaf certificates
ORG = "faultline"


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn), x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORG)])


def _write(path: Path, data: bytes, secret: bool) -> None:
    """Write beside, then rename over: never a half-written file, never through a planted link."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600 if secret else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _record(ca_dir: Path, cert: x509.Certificate) -> None:
    """A copy of every certificate issued, for `certs list` (public: no key)."""
    issued = ca_dir / "issued"
    issued.mkdir(mode=0o700, exist_ok=True)
    _write(issued / f"{cert.serial_number:x}.pem", _pem(cert), False)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def issue(ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, cn: str, server: bool,
          hosts: Sequence[str] = ()) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    b = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(ca_cert.subject)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=VALID_DAYS))
         .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
         .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server
                                               else ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False))
    if hosts:
        b = b.add_extension(x509.SubjectAlternativeName([_san(h) for h in hosts]), critical=False)
    return key, b.sign(ca_key, hashes.SHA256())


def init(out: Path, agent_hosts: Sequence[str], controller_name: str = "faultline-controller",
         ca_name: str = "faultline CA") -> dict[str, Path]:
    """Make the CA and both certificates in `out`; refuses to overwrite an existing CA."""
    out.mkdir(parents=True, exist_ok=True)
    if (out / "ca-key.pem").exists():
        raise FileExistsError(f"{out / 'ca-key.pem'} exists: a CA is already there; `faultline certs issue-agent "
                              f"{out} HOST --ip ADDR --out DIR` issues another agent's certificate under it")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    ca = (x509.CertificateBuilder().subject_name(_name(ca_name)).issuer_name(_name(ca_name))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=3650))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    agent_key, agent = issue(ca_key, ca, "faultline-agent", True, ["faultline-agent", *agent_hosts])
    ctl_key, ctl = issue(ca_key, ca, controller_name, False)
    files = {"ca.pem": (_pem(ca), False),
             "ca-key.pem": (_key_pem(ca_key), True),
             "agent.pem": (_pem(agent), False),
             "agent-key.pem": (_key_pem(agent_key), True),
             "controller.pem": (_pem(ctl), False),
             "controller-key.pem": (_key_pem(ctl_key), True)}
    for name, (data, secret) in files.items():
        _write(out / name, data, secret)
    _record(out, agent)
    _record(out, ctl)
    return {name: out / name for name in files}


def load_ca(ca_dir: Path) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key_path = ca_dir / "ca-key.pem"
    if not key_path.exists():
        raise FileNotFoundError(f"{key_path}: no CA there (`faultline certs init {ca_dir}` makes one)")
    fd = os.open(key_path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    cert = x509.load_pem_x509_certificate((ca_dir / "ca.pem").read_bytes())
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{key_path}: not an ECDSA key")
    return key, cert


def _issue_into(ca_dir: Path, out: Path, role: str, cn: str, server: bool, names: Sequence[str]) -> dict[str, Path]:
    ca_key, ca = load_ca(ca_dir)
    key, cert = issue(ca_key, ca, cn, server, names)
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    files = {"ca.pem": (_pem(ca), False), f"{role}.pem": (_pem(cert), False), f"{role}-key.pem": (_key_pem(key), True)}
    for name, (data, secret) in files.items():
        _write(out / name, data, secret)
    _record(ca_dir, cert)
    return {name: out / name for name in files}


def issue_agent(ca_dir: Path, host: str, ips: Sequence[str], dns: Sequence[str], out: Path) -> dict[str, Path]:
    """OUT/ca.pem, agent.pem, agent-key.pem for one host: its certificate names the host and every
    --ip and --dns given (the controller checks that it names the address it dialled)."""
    for ip in ips:
        ipaddress.ip_address(ip)  # ValueError names it
    return _issue_into(ca_dir, out, "agent", host, True, list(dict.fromkeys([host, *ips, *dns])))


def issue_controller(ca_dir: Path, cn: str, out: Path) -> dict[str, Path]:
    """OUT/ca.pem, controller.pem, controller-key.pem for another controller or QA engineer; agents
    admit it when their allowed_clients name CN=cn."""
    return _issue_into(ca_dir, out, "controller", cn, False, ())


@dataclass(frozen=True)
class Issued:
    serial: str
    subject: str
    role: str  # agent | controller
    names: tuple[str, ...]
    not_after: dt.datetime


def _describe(cert: x509.Certificate) -> Issued:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = tuple(str(n.value) for n in san)
    except x509.ExtensionNotFound:
        names = ()
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    return Issued(f"{cert.serial_number:x}", cert.subject.rfc4514_string(),
                  "agent" if ExtendedKeyUsageOID.SERVER_AUTH in eku else "controller", names,
                  cert.not_valid_after.replace(tzinfo=dt.UTC))


def list_issued(ca_dir: Path) -> list[Issued]:
    load_ca(ca_dir)  # a clear error when DIR holds no CA
    certs = [x509.load_pem_x509_certificate(p.read_bytes()) for p in sorted((ca_dir / "issued").glob("*.pem"))]
    return sorted((_describe(c) for c in certs), key=lambda i: i.not_after)
