"""Conversions between Python values and the bytes handed to C."""

from __future__ import annotations

from typing import Any, Union

from ._binding import ffi

BytesLike = Union[bytes, bytearray, memoryview, str]


def to_bytes(value: BytesLike, what: str) -> bytes:
    """Return ``value`` as bytes: str is UTF-8 encoded, bytes-like copied as is."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"{what} must be str or bytes, not {type(value).__name__}")


def to_cstr(value: Union[str, bytes], what: str) -> bytes:
    """Return ``value`` as bytes for a NUL-terminated C string, refusing embedded NULs
    (C would silently cut the string there)."""
    data = to_bytes(value, what)
    if b"\0" in data:
        raise ValueError(f"{what} must not contain NUL characters")
    return data


def from_mg_str(s: Any) -> bytes:
    """Copy a ``struct mg_str`` out of C memory."""
    data: bytes = ffi.unpack(s.buf, s.len) if s.len else b""
    return data


def decode(data: bytes) -> str:
    """Decode bytes that came from the network; undecodable bytes become U+FFFD."""
    return data.decode("utf-8", "replace")
