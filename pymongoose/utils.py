"""Small helpers over Mongoose's own C functions, named and behaving as in
cymongoose 0.2.5: Base64, digests, CRC-32, randomness, the clock, form
variables and glob matching.

>>> base64_encode(b"hi")
'aGk='
>>> match("sensors/kitchen/temp", "sensors/*/temp")
(True, ['kitchen'])
"""

from __future__ import annotations

from typing import List, Optional, Tuple

from ._args import int_arg
from ._binding import ffi, lib
from ._text import BytesLike, to_bytes

__all__ = [
    "base64_decode", "base64_encode", "crc32", "hmac_sha256", "http_var", "match", "md5", "millis",
    "random_bytes", "random_str", "sha1", "sha256",
]


def base64_encode(data: BytesLike) -> str:
    """Base64 (standard alphabet, padded) of ``data``; str is UTF-8 encoded first."""
    raw = to_bytes(data, "data")
    out = ffi.new("char[]", 4 * ((len(raw) + 2) // 3) + 1)
    n = lib.mg_base64_encode(raw, len(raw), out, len(out))
    encoded: bytes = ffi.unpack(out, n)
    return encoded.decode("ascii")


def base64_decode(data: str) -> bytes:
    """Decode padded Base64; ``b""`` if ``data`` is not valid Base64 (as cymongoose)."""
    raw = to_bytes(data, "data")
    out = ffi.new("char[]", len(raw) // 4 * 3 + 1)
    n = lib.mg_base64_decode(raw, len(raw), out, len(out))
    decoded: bytes = ffi.unpack(out, n)
    return decoded


def _digest(function: object, size: int, data: BytesLike) -> bytes:
    raw = to_bytes(data, "data")
    out = ffi.new("uint8_t[]", size)
    function(raw, len(raw), out)  # type: ignore[operator]
    return bytes(ffi.buffer(out))


def md5(data: BytesLike) -> bytes:
    """The 16-byte MD5 digest of ``data`` (for protocols that need it, not security)."""
    return _digest(lib.pm_md5, 16, data)


def sha1(data: BytesLike) -> bytes:
    """The 20-byte SHA-1 digest of ``data``."""
    return _digest(lib.pm_sha1, 20, data)


def sha256(data: BytesLike) -> bytes:
    """The 32-byte SHA-256 digest of ``data``."""
    raw = to_bytes(data, "data")
    out = ffi.new("uint8_t[32]")
    lib.mg_sha256(out, ffi.from_buffer("uint8_t[]", raw), len(raw))
    return bytes(ffi.buffer(out))


def hmac_sha256(key: BytesLike, data: BytesLike) -> bytes:
    """The 32-byte HMAC-SHA256 of ``data`` under ``key``."""
    raw_key, raw = to_bytes(key, "key"), to_bytes(data, "data")
    out = ffi.new("uint8_t[32]")
    lib.mg_hmac_sha256(out, ffi.from_buffer("uint8_t[]", raw_key), len(raw_key),
                       ffi.from_buffer("uint8_t[]", raw), len(raw))
    return bytes(ffi.buffer(out))


def crc32(data: BytesLike, initial: int = 0) -> int:
    """CRC-32 (as zlib.crc32) of ``data``, continuing from ``initial``."""
    raw = to_bytes(data, "data")
    int_arg(initial, "initial (a CRC-32 value)", 0, 0xFFFFFFFF)
    return int(lib.mg_crc32(initial, raw, len(raw)))


def random_bytes(length: int) -> bytes:
    """``length`` random bytes from Mongoose's generator (the OS's where it has one)."""
    n = int_arg(length, "length", 0)
    out = ffi.new("char[]", max(n, 1))
    lib.mg_random(out, n)
    data: bytes = ffi.unpack(out, n)
    return data


def random_str(length: int) -> str:
    """A random string of ``length`` characters from ``[a-zA-Z0-9]``."""
    n = int_arg(length, "length", 0)
    out = ffi.new("char[]", n + 1)
    lib.mg_random_str(out, n + 1)  # writes n characters and a NUL
    text: bytes = ffi.unpack(out, n)
    return text.decode("ascii")


def millis() -> int:
    """Mongoose's monotonic clock, in milliseconds."""
    return int(lib.mg_millis())


def http_var(buf: BytesLike, name: str) -> Optional[str]:
    """The raw (not URL-decoded) value of ``name`` in a form-encoded ``buf``
    (``"a=1&b=2"``), or None. (``HttpMessage.query_var`` decodes.)"""
    raw, wanted = to_bytes(buf, "buf"), to_bytes(name, "name")
    with ffi.from_buffer(raw) as b, ffi.from_buffer(wanted) as w:
        value = lib.mg_http_var((b, len(raw)), (w, len(wanted)))
        if value.buf == ffi.NULL:
            return None
        found: bytes = ffi.unpack(value.buf, value.len)
        return found.decode("utf-8", "replace")


def match(s: str, pattern: str) -> Tuple[bool, List[str]]:
    """Glob-match ``s`` against ``pattern`` (``?`` one character, ``*`` any run but
    ``/``, ``#`` any run): ``(matched, what each wildcard matched)``."""
    raw, raw_pattern = to_bytes(s, "s"), to_bytes(pattern, "pattern")
    wildcards = sum(raw_pattern.count(ch) for ch in b"?*#")
    caps = ffi.new("struct mg_str[]", wildcards + 1)  # Mongoose ends the list with an empty one
    with ffi.from_buffer(raw) as b, ffi.from_buffer(raw_pattern) as p:
        if not lib.mg_match((b, len(raw)), (p, len(raw_pattern)), caps):
            return False, []
        return True, [ffi.unpack(caps[i].buf, caps[i].len).decode("utf-8", "replace")
                      for i in range(wildcards) if caps[i].buf != ffi.NULL]
