"""URL helpers: encoding and taking URLs apart as Mongoose does.

>>> url_encode("a b&c")
'a%20b%26c'
>>> url_host("mqtt://user:pw@broker.local:1883/x"), url_port("mqtt://broker.local:1883")
('broker.local', 1883)
"""

from __future__ import annotations

from typing import Any, Callable

from ._binding import ffi, lib
from ._text import BytesLike, decode, from_mg_str, to_bytes, to_cstr

__all__ = [
    "url_encode", "url_decode", "url_host", "url_port", "url_user", "url_pass", "url_uri", "url_is_ssl",
]


def url_encode(data: BytesLike) -> str:
    """Percent-encode everything but unreserved characters (RFC 3986)."""
    raw = to_bytes(data, "data")
    size = 3 * len(raw) + 4  # Mongoose wants room for one more escape and the NUL
    out = ffi.new("char[]", size)
    n = lib.mg_url_encode(raw, len(raw), out, size)
    encoded: bytes = ffi.unpack(out, n)
    return encoded.decode("ascii")


def url_decode(data: BytesLike, form: bool = False) -> str:
    """Decode %XX escapes (and ``+`` as space with ``form``). Invalid escapes raise
    ValueError."""
    raw = to_bytes(data, "data")
    out = ffi.new("char[]", len(raw) + 1)
    n = lib.mg_url_decode(raw, len(raw), out, len(raw) + 1, 1 if form else 0)
    if n < 0:
        raise ValueError(f"invalid percent-encoding in {data!r}")
    return decode(ffi.unpack(out, n))


def _part(function: Callable[[Any], Any], url: str) -> str:
    # The mg_str Mongoose returns points into the URL: keep the buffer alive while
    # the part is copied out.
    buffer = ffi.new("char[]", to_cstr(url, "url"))
    return decode(from_mg_str(function(buffer)))


def url_host(url: str) -> str:
    """The host part of ``url`` (without brackets for IPv6)."""
    return _part(lib.mg_url_host, url).strip("[]")


def url_port(url: str) -> int:
    """The port of ``url``, or the scheme's default."""
    return int(lib.mg_url_port(to_cstr(url, "url")))


def url_user(url: str) -> str:
    """The user name in ``url``, or ""."""
    return _part(lib.mg_url_user, url)


def url_pass(url: str) -> str:
    """The password in ``url``, or ""."""
    return _part(lib.mg_url_pass, url)


def url_uri(url: str) -> str:
    """The path and query of ``url`` ("/" when it has none)."""
    buffer = ffi.new("char[]", to_cstr(url, "url"))
    return decode(ffi.string(lib.mg_url_uri(buffer)))


def url_is_ssl(url: str) -> bool:
    """True for schemes that use TLS (https, wss, mqtts...)."""
    return bool(lib.mg_url_is_ssl(to_cstr(url, "url")))


