"""Why a call could not reach an agent, in one line, when gRPC only says "Socket closed".

gRPC reports every TLS mistake as UNAVAILABLE with a transport message. When a call fails so,
the client asks here once: a fresh TCP connection and TLS handshakes with the stdlib say whether
the agent speaks TLS at all, whether its certificate chains to our CA and names the address
dialled, and whether it accepts our certificate. Read-only: a handshake, nothing sent after it.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from pathlib import Path

from cryptography import x509

TLS_HINT = ("set FAULTLINE_TLS_DIR (or `faultline run --tls-dir`, pytest's --faultline-tls-dir) to a directory "
            "with ca.pem, controller.pem and controller-key.pem (`faultline certs issue-controller`)")
# OpenSSL verify codes (x509_vfy.h) that mean "not signed by a CA we trust".
UNKNOWN_ISSUER = {2, 7, 18, 19, 20, 21}  # 7: signed by a key that is not our CA's (same CA name)
EXPIRED, NAME_MISMATCH = 10, {62, 64}  # 62 host name, 64 IP address


def split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def _names(der: bytes | None) -> str:
    if not der:
        return "nothing"
    try:
        cert = x509.load_der_x509_certificate(der)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        return ", ".join(str(n.value) for n in san) or "no names"
    except (ValueError, x509.ExtensionNotFound):
        return "no subjectAltName"


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


def _connect(host: str, port: int, timeout_s: float) -> socket.socket:
    return socket.create_connection((host, port), timeout=timeout_s)


def _peer_cert(host: str, port: int, timeout_s: float) -> bytes | None:
    """The agent's certificate (unverified), or None when it does not answer TLS."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    try:
        with _connect(host, port, timeout_s) as raw, ctx.wrap_socket(raw) as s:
            return s.getpeercert(binary_form=True) or b""
    except (ssl.SSLError, OSError):
        return None


def diagnose(address: str, tls_dir: Path | None, name: str | None = None, timeout_s: float = 3.0) -> str | None:
    """One line saying what is wrong between us and `address`, or None if TLS is not the problem.
    `name`: the name the agent's certificate is checked against (default: the host dialled)."""
    try:
        host, port = split(address)
        _connect(host, port, timeout_s).close()
    except ValueError:
        return None
    except OSError as e:
        return f"cannot connect to {address}: {e.strerror or e} (is the agent running and listening there?)"
    der = _peer_cert(host, port, timeout_s)
    if tls_dir is None:
        return f"the agent at {address} requires mTLS but no TLS directory is set: {TLS_HINT}" if der is not None \
            else None
    if der is None:
        return (f"the agent at {address} does not speak TLS (started with --insecure?) but TLS directory {tls_dir} "
                f"is set: unset FAULTLINE_TLS_DIR for it")
    want = name or host
    ctx = ssl.create_default_context(cafile=str(tls_dir / "ca.pem"))
    ctx.load_cert_chain(str(tls_dir / "controller.pem"), str(tls_dir / "controller-key.pem"))
    ctx.set_alpn_protocols(["h2"])
    try:
        with _connect(host, port, timeout_s) as raw, ctx.wrap_socket(raw, server_hostname=want) as s:
            s.settimeout(timeout_s)
            # TLS 1.3: the agent checks our certificate after the handshake; refused, it closes (or
            # alerts) at once, where an agent that accepts it sends its HTTP/2 settings.
            if s.recv(1) == b"":
                raise ssl.SSLError("UNKNOWN_CA: the agent closed the connection after the handshake")
    except ssl.SSLCertVerificationError as e:
        if e.verify_code in UNKNOWN_ISSUER:
            return (f"the agent at {address} serves a certificate not signed by {tls_dir / 'ca.pem'} (another CA): "
                    "issue it from this CA (`faultline certs issue-agent`)")
        if e.verify_code in NAME_MISMATCH:
            return (f"the agent at {address} serves a certificate that does not name {want} (it names "
                    f"{_names(der)}): issue one for this host (`faultline certs issue-agent CA_DIR HOST "
                    f"{'--ip' if _is_ip(want) else '--dns'} {want}`)")
        if e.verify_code == EXPIRED:
            return f"the agent at {address} serves an expired certificate: issue a new one and SIGHUP the agent"
        return f"the agent at {address}: its certificate is refused: {e.verify_message}"
    except ssl.SSLError as e:
        if "UNKNOWN_CA" in str(e) or "CERTIFICATE" in str(e).upper():
            return (f"the agent at {address} refuses our certificate ({tls_dir / 'controller.pem'}): it is not "
                    "signed by the CA the agent trusts (its --tls-dir ca.pem)")
        return f"TLS with the agent at {address} failed: {e.reason or e}"
    except (TimeoutError, OSError):
        return None
    return None
