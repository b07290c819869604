"""The agent's mTLS material: DIR/agent.pem, agent-key.pem and ca.pem, read at start and again on
SIGHUP (a rotated certificate, key or CA serves new handshakes without a restart; connections
already open keep theirs). A reload that fails keeps what is in force, and says why."""

from __future__ import annotations

import datetime as dt
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization

FILES = ("agent.pem", "agent-key.pem", "ca.pem")


class TlsError(Exception):
    """The TLS directory cannot serve: a file missing, unreadable, or a key that is not the certificate's."""


def _read(path: Path) -> bytes:
    # Root trusts these files: never through a link someone else planted.
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise TlsError(f"{path}: missing (`faultline certs issue-agent` makes it)") from None
    except OSError as e:
        raise TlsError(f"{path}: {e.strerror}" + (" (a symlink: refused)" if e.errno == 40 else "")) from None
    with os.fdopen(fd, "rb") as f:
        return f.read()


@dataclass(frozen=True)
class Material:
    cert: bytes
    key: bytes
    ca: bytes
    not_after_ns: int
    subject: str
    names: tuple[str, ...]


def load(tls_dir: Path) -> Material:
    cert, key, ca = (_read(tls_dir / name) for name in FILES)
    try:
        c = x509.load_pem_x509_certificate(cert)
        k = serialization.load_pem_private_key(key, password=None)
        x509.load_pem_x509_certificate(ca)  # the first of the bundle (cryptography 38: one at a time)
    except ValueError as e:
        raise TlsError(f"{tls_dir}: not PEM certificates and key: {e}") from None
    if k.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) != \
            c.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo):
        raise TlsError(f"{tls_dir}: agent-key.pem is not the key of agent.pem")
    try:
        san = c.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = tuple(str(n.value) for n in san)
    except x509.ExtensionNotFound:
        names = ()
    after = c.not_valid_after.replace(tzinfo=dt.UTC)  # naive UTC in cryptography 38 (Debian 12's)
    return Material(cert, key, ca, int(after.timestamp()) * 10**9,
                    c.subject.rfc4514_string(), names)


class ServerTls:
    """Server credentials whose certificate can be swapped (grpc's dynamic credentials: the fetcher
    is asked at each new handshake)."""

    def __init__(self, tls_dir: Path) -> None:
        self.dir = tls_dir
        self.material = load(tls_dir)
        self._lock = threading.Lock()
        self._new: Material | None = None

    @staticmethod
    def _config(m: Material) -> grpc.ServerCertificateConfiguration:
        return grpc.ssl_server_certificate_configuration([(m.key, m.cert)], root_certificates=m.ca)

    def _fetch(self) -> grpc.ServerCertificateConfiguration | None:
        with self._lock:
            new, self._new = self._new, None
        return None if new is None else self._config(new)

    def credentials(self) -> grpc.ServerCredentials:
        return grpc.dynamic_ssl_server_credentials(self._config(self.material), self._fetch,
                                                   require_client_authentication=True)

    def reload(self) -> Material:
        """Read the files again; raises TlsError (and keeps the old material) when they cannot serve."""
        m = load(self.dir)
        with self._lock:
            self.material = self._new = m
        return m
