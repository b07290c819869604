"""Certificate subjects as RFC 4514 names, compared attribute by attribute.

An allow-list entry `CN=qa,O=faultline` admits a certificate whose subject has an attribute CN
equal to `qa` and one O equal to `faultline`. Compared as strings, it also admitted a
certificate whose one CN was the text `qa,O=faultline`; parsed, that is a single CN attribute
with another value, and is refused.
"""

from __future__ import annotations

import re

Attribute = tuple[str, str]  # (type, upper case: CN, O, OU...; value, unescaped)
# The short names RFC 4514 and OpenSSL use, for the OIDs a subject may carry in dotted form.
_OID_NAMES = {"2.5.4.3": "CN", "2.5.4.10": "O", "2.5.4.11": "OU", "2.5.4.6": "C", "2.5.4.7": "L",
              "2.5.4.8": "ST", "1.2.840.113549.1.9.1": "EMAILADDRESS", "0.9.2342.19200300.100.1.25": "DC",
              "0.9.2342.19200300.100.1.1": "UID", "2.5.4.5": "SERIALNUMBER"}
_TYPE = re.compile(r"^(?:[A-Za-z][A-Za-z0-9-]*|[0-9]+(?:\.[0-9]+)+)$")


def normal_type(t: str) -> str:
    t = t.strip()
    return _OID_NAMES.get(t.removeprefix("OID.").removeprefix("oid."), t.upper())


def _split(text: str, seps: str) -> list[str]:
    """Split on unescaped separators, keeping escapes for the value parser."""
    parts, cur, i = [], [], 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            cur.append(text[i:i + 2])
            i += 2
            continue
        if c in seps:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    parts.append("".join(cur))
    return parts


def _value(raw: str) -> str:
    out, i = bytearray(), 0
    while i < len(raw):
        if raw[i] == "\\":
            nxt = raw[i + 1:i + 3]
            if re.fullmatch(r"[0-9A-Fa-f]{2}", nxt):
                out += bytes.fromhex(nxt)
                i += 3
                continue
            out += raw[i + 1].encode()
            i += 2
            continue
        out += raw[i].encode()
        i += 1
    return out.decode(errors="strict")


def parse(text: str) -> frozenset[Attribute]:
    """`CN=qa,O=faultline` -> {("CN", "qa"), ("O", "faultline")}. ValueError, saying why, otherwise."""
    if not text.strip():
        raise ValueError("an empty subject")
    attrs = set()
    for rdn in _split(text, ","):
        for ava in _split(rdn, "+"):
            t, eq, v = ava.partition("=")
            if not eq or not _TYPE.match(t.strip()) or not v.strip():
                raise ValueError(f"{ava.strip()!r} is not TYPE=VALUE (as CN=qa)")
            try:
                attrs.add((normal_type(t), _value(v.strip())))
            except (UnicodeDecodeError, IndexError):
                raise ValueError(f"{ava.strip()!r}: a broken escape") from None
    return frozenset(attrs)


def admits(entry: frozenset[Attribute], subject: frozenset[Attribute]) -> bool:
    """Every attribute the entry names is in the subject, with that exact value."""
    return bool(entry) and entry <= subject
