"""Behind a proxy: the client and the scheme a trusted proxy reports.

A server given ``forwarded_allow_ips`` (``--proxy-headers`` on the command line)
believes ``Forwarded`` (RFC 7239) or, without it, ``X-Forwarded-For`` and
``X-Forwarded-Proto``, but only on connections from those addresses (or on a Unix
domain socket, which only local processes reach). The client is found walking the
proxies' list from the right, the nearest hop first: the first address that is not
trusted itself is the one the last trusted proxy saw connect, whatever a client
wrote further left.

>>> trust = ProxyTrust("127.0.0.1, 10.0.0.0/8")
>>> trust.resolve(("127.0.0.1", 5000), None, "203.0.113.9, 10.1.2.3", "https")
(('203.0.113.9', 0), True)
>>> trust.resolve(("198.51.100.7", 5000), None, "203.0.113.9", "https")  # not a proxy
(('198.51.100.7', 5000), None)
>>> trust.resolve(("127.0.0.1", 5000), 'for="[2001:db8::1]:4711";proto=http', None, None)
(('2001:db8::1', 0), False)
"""

from __future__ import annotations

import ipaddress
from typing import List, Optional, Tuple, Union

Client = Optional[Tuple[str, int]]
Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]

# Who is trusted unless told: the proxies on this machine (uvicorn's and gunicorn's).
DEFAULT_FORWARDED_ALLOW_IPS = "127.0.0.1,::1"


class ProxyTrust:
    """Addresses whose proxy headers are believed: ``spec`` lists IP addresses and
    networks (``10.0.0.0/8``) separated by commas, or is ``*`` for any."""

    __slots__ = ("everyone", "networks")

    def __init__(self, spec: str = DEFAULT_FORWARDED_ALLOW_IPS) -> None:
        if not isinstance(spec, str):
            raise TypeError(f"forwarded_allow_ips must be a str, not {type(spec).__name__}")
        items = [item.strip() for item in spec.split(",") if item.strip()]
        self.everyone = "*" in items
        self.networks: List[Network] = []
        for item in items:
            if item == "*":
                continue
            try:
                self.networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise ValueError(f"forwarded_allow_ips: {item!r} is not an IP address or network") from None

    def trusts(self, host: Optional[str]) -> bool:
        """Whether a peer at ``host`` (None: a Unix domain socket) is a trusted proxy."""
        if host is None or self.everyone:
            return True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.networks)

    def resolve(self, peer: Client, forwarded: Optional[str], x_forwarded_for: Optional[str],
                x_forwarded_proto: Optional[str]) -> Tuple[Client, Optional[bool]]:
        """``(client, secure)`` for a request from ``peer`` with these header values
        (each None when absent): the client the proxy reports, or ``peer``; whether
        the client's side is HTTPS (None: not said, the connection's own applies)."""
        if not self.trusts(peer[0] if peer is not None else None):
            return peer, None
        if forwarded is not None:
            hops, protos = _forwarded(forwarded)
        else:
            hops = [hop.strip() for hop in x_forwarded_for.split(",")] if x_forwarded_for is not None else []
            protos = [proto.strip() for proto in x_forwarded_proto.split(",")] if x_forwarded_proto else []
        client = peer
        for hop in reversed(hops):
            host = _ip(hop)
            if host is None:
                break  # "unknown", an obfuscated name: nothing to report
            client = (host, 0)
            if not self.trusts(host):
                break
        secure = protos[-1].lower() in ("https", "wss") if protos and protos[-1] else None
        return client, secure


def _ip(value: str) -> Optional[str]:
    """The IP address of a ``for=`` value or an ``X-Forwarded-For`` item, or None.

    >>> _ip("[2001:db8::1]:4711"), _ip("192.0.2.1:80"), _ip("192.0.2.1"), _ip("_hidden")
    ('2001:db8::1', '192.0.2.1', '192.0.2.1', None)
    """
    value = value.strip().strip('"')
    if value.startswith("["):
        value = value[1:value.find("]")] if "]" in value else ""
    elif value.count(":") == 1:
        value = value.split(":", 1)[0]
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


def _forwarded(value: str) -> Tuple[List[str], List[str]]:
    """The ``for`` and ``proto`` parameters of a ``Forwarded`` header, element by
    element (an element without one gives "").

    >>> _forwarded('for=192.0.2.43, for="[2001:db8:cafe::17]";proto=https')
    (['192.0.2.43', '"[2001:db8:cafe::17]"'], ['', 'https'])
    """
    hops: List[str] = []
    protos: List[str] = []
    for element in _split_outside_quotes(value, ","):
        params = {}
        for pair in _split_outside_quotes(element, ";"):
            name, _, parameter = pair.partition("=")
            params[name.strip().lower()] = parameter.strip()
        hops.append(params.get("for", ""))
        protos.append(params.get("proto", "").strip('"'))
    return hops, protos


def _split_outside_quotes(text: str, separator: str) -> List[str]:
    pieces: List[str] = []
    current: List[str] = []
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == separator and not quoted:
            pieces.append("".join(current))
            current = []
        else:
            current.append(char)
    pieces.append("".join(current))
    return [piece for piece in pieces if piece.strip()]
