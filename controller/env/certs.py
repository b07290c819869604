"""`faultline certs init DIR`: a small CA, an agent certificate and a controller certificate,
for a lab or a first install. Keys are ECDSA P-256, written 0600; the CA key stays in DIR.

    DIR/ca.pem  ca-key.pem  agent.pem  agent-key.pem  controller.pem  controller-key.pem

The agent's certificate names every address it is reached by (--agent-host, repeatable:
names and IPs); the controller's subject (CN=...) is what agents list in allowed_clients.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Sequence
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
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if secret else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


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
        raise FileExistsError(f"{out / 'ca-key.pem'} exists: a CA is already there (remove it to start over)")
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
    files = {"ca.pem": (ca.public_bytes(serialization.Encoding.PEM), False),
             "ca-key.pem": (_key_pem(ca_key), True),
             "agent.pem": (agent.public_bytes(serialization.Encoding.PEM), False),
             "agent-key.pem": (_key_pem(agent_key), True),
             "controller.pem": (ctl.public_bytes(serialization.Encoding.PEM), False),
             "controller-key.pem": (_key_pem(ctl_key), True)}
    for name, (data, secret) in files.items():
        _write(out / name, data, secret)
    return {name: out / name for name in files}
