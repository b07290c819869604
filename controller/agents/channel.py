"""Where an agent is and how to speak to it: addresses (port 7070 unless given), the TLS
directory for an address (given, $FAULTLINE_TLS_DIR, or a lab's), its files checked before
dialling, and the gRPC channel."""

from __future__ import annotations

import ipaddress
import json
import os
from pathlib import Path

import grpc

from faultline.controller.agents.errors import AgentUnreachable

# A directory with ca.pem, controller.pem and controller-key.pem (`faultline certs init`): mTLS.
TLS_ENV = "FAULTLINE_TLS_DIR"
# Each lab that is up registers here its subnets and its certificates (root-only key):
# an address inside a lab's subnet is reached with that lab's mTLS, without being told.
LAB_INDEX = Path("/run/faultline-labs")
AGENT_NAME = "faultline-agent"  # every agent certificate names it: a lab agent is checked by it


DEFAULT_PORT = 7070  # the agent's --listen default, and the port an address without one means


def agent_address(text: str) -> str:
    """HOST, HOST:PORT, [V6], [V6]:PORT or a bare IPv6 address -> HOST:PORT (port 7070 unless given).
    ValueError, saying why, for an empty host or a port outside 1-65535."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.removeprefix(":") if rest.startswith(":") else ("" if not rest else None)
        host = f"[{host}]"
    elif text.count(":") > 1:  # a bare IPv6 address: no port can be told apart
        host, port = f"[{text}]", ""
    else:
        host, _, port = text.partition(":")
    if port is None or not host.strip("[]"):
        raise ValueError(f"{text!r}: an agent address is HOST, HOST:PORT or [IPv6]:PORT")
    if not port:
        return f"{host}:{DEFAULT_PORT}"
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"{text!r}: port {port} outside 1-65535")
    return f"{host}:{int(port)}"


def lab_tls_dir(address: str) -> Path | None:
    """The TLS dir of the lab whose subnet holds `address`, None if it is no lab's."""
    host = address.rsplit(":", 1)[0].strip("[]")
    try:
        ip = ipaddress.ip_address(host)
        entries = sorted(LAB_INDEX.glob("*.json"))
    except (ValueError, OSError):
        return None
    for entry in entries:
        try:
            lab = json.loads(entry.read_text())
            if any(ip in ipaddress.ip_network(n) for n in (lab["subnet4"], lab["subnet6"])):
                return Path(lab["tls_dir"])
        except (OSError, ValueError, KeyError):
            continue
    return None


def tls_for(address: str, tls_dir: Path | str | None = None) -> tuple[Path | None, str | None]:
    """(the TLS dir for `address`, the name its certificate must carry if not the host dialled):
    the one given, else $FAULTLINE_TLS_DIR, else the lab's whose subnet holds it, else (None, None)."""
    if tls_dir:
        return Path(tls_dir), None
    if os.environ.get(TLS_ENV):
        return Path(os.environ[TLS_ENV]), None
    if (lab := lab_tls_dir(address)) is not None:
        return lab, AGENT_NAME  # lab hosts come and go; the name stays
    return None, None


# What each file of a controller's TLS dir is, for the error that names a missing one.
TLS_FILES = {"ca.pem": "the CA that signed the agents' certificates",
             "controller.pem": "this controller's certificate", "controller-key.pem": "its key"}


def check_tls_dir(tls: Path, address: str) -> None:
    """Every file there and readable, or one line saying which is not (as AgentUnreachable)."""
    def fail(why: str) -> AgentUnreachable:
        return AgentUnreachable(address, grpc.StatusCode.UNAVAILABLE, why)

    unreadable = f"not readable by this user: the agents at {address} speak mTLS and only the key's owner " \
                 "(for a lab, root) holds it"
    try:
        if not tls.is_dir():
            raise fail(f"TLS directory {tls} does not exist (FAULTLINE_TLS_DIR or the TLS option names it)")
        for name, what in TLS_FILES.items():
            path = tls / name
            if not path.exists():
                raise fail(f"TLS directory {tls} lacks {name} ({what}): `faultline certs issue-controller CA_DIR "
                           f"CN --out {tls}` makes all three")
            if not os.access(path, os.R_OK):
                raise fail(f"{path}: {unreadable}")
    except PermissionError:  # the directory itself is closed to us (a lab's is root's, 0700)
        raise fail(f"{tls}: {unreadable}") from None


def open_channel(address: str, tls_dir: Path | str | None = None) -> grpc.Channel:
    """mTLS when a TLS dir is given (or in $FAULTLINE_TLS_DIR, or the address is a lab's), else plaintext.
    The agent's certificate must name the address dialled (a lab's: `faultline-agent`)."""
    tls, name = tls_for(address, tls_dir)
    if tls is None:
        return grpc.insecure_channel(address)
    check_tls_dir(tls, address)
    creds = grpc.ssl_channel_credentials(*((tls / n).read_bytes() for n in ("ca.pem", "controller-key.pem",
                                                                             "controller.pem")))
    options = [("grpc.ssl_target_name_override", name)] if name else []
    return grpc.secure_channel(address, creds, options=options)
