"""The system's DNS servers, read from ``/etc/resolv.conf``.

Mongoose's built-in default is a public resolver; pymongoose uses the system's
instead, so nothing leaves the machine for a host the user did not name.
"""

from __future__ import annotations

import ipaddress
from typing import Optional, Tuple

RESOLV_CONF = "/etc/resolv.conf"
FALLBACK_DNS = "udp://127.0.0.1:53"


def system_dns(path: str = RESOLV_CONF) -> Tuple[str, Optional[str]]:
    """Return ``(ipv4_server_url, ipv6_server_url_or_None)`` from resolv.conf.

    Without a usable IPv4 nameserver, the IPv4 URL is ``udp://127.0.0.1:53``.
    """
    v4: Optional[str] = None
    v6: Optional[str] = None
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        lines = []
    for line in lines:
        fields = line.split()
        if len(fields) < 2 or fields[0] != "nameserver":
            continue
        try:
            address = ipaddress.ip_address(fields[1].split("%")[0])
        except ValueError:
            continue
        if address.version == 4 and v4 is None:
            v4 = f"udp://{address}:53"
        elif address.version == 6 and v6 is None:
            v6 = f"udp://[{address}]:53"
    return v4 or FALLBACK_DNS, v6
