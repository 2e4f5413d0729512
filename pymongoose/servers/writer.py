"""The one path every byte of an app server's response takes, checked.

The application's status, reason and headers are checked by the C code that
``reply()`` uses (``pm_headers_check``), twice over: when the application gives
them (:func:`check_head`, on the application's side, so that the application sees
the error and the server answers 500), and again as they are copied into the send
buffer (:func:`start`), so that no path can put an unchecked byte on the wire. The
server adds Date and the framing the application left out (Content-Length, chunks,
or the close under HTTP/1.0).

:func:`start`, :func:`send_body` and :func:`fail` run owning the loop; ``mgr`` is
the C manager, or None once the server stopped.

>>> pack_headers([("Content-Type", "text/plain"), ("X-A", "1")])
(b'Content-Type\\x00text/plain\\x00X-A\\x001', 2)
>>> check_head(200, b"OK", *pack_headers([("X", "a\\r\\nInjected: 1")]))  # doctest: +ELLIPSIS
Traceback (most recent call last):
pymongoose.errors.InvalidResponseError: invalid response header (b'X', b'a\\r\\nInjected: 1'): ...
"""

from __future__ import annotations

from typing import Any, Iterable, Optional, Tuple

from .._binding import ffi, lib
from ..errors import InvalidResponseError

# How the rest of a body is framed, as start() chose; GONE: the connection closed.
COMPLETE, RAW, CHUNKED, UNTIL_CLOSE, NO_BODY = (lib.PM_BODY_COMPLETE, lib.PM_BODY_RAW, lib.PM_BODY_CHUNKED,
                                                 lib.PM_BODY_UNTIL_CLOSE, lib.PM_BODY_NO_BODY)
REFUSED, GONE = -1, -2
NOT_STARTED = -3  # no byte of the response has been queued yet

_pm_response_start = lib.pm_response_start  # bound once: the hot path skips a lookup on lib
_pm_response_body = lib.pm_response_body
_NULL = ffi.NULL

_ERROR_HEADERS = b"content-type\0text/plain; charset=utf-8\0connection\0close"
_ERROR_BODY = b"Internal Server Error\n"
_BUSY_HEADERS = b"content-type\0text/plain; charset=utf-8\0retry-after\0" b"1\0connection\0close"
_BUSY_BODY = b"Service Unavailable\n"


def pack_headers(headers: Iterable[Tuple[Any, Any]]) -> Tuple[bytes, int]:
    """Headers as C takes them: ``b"name\\0value\\0..."`` and how many pairs; names
    and values are bytes, or str made of latin-1 characters (PEP 3333).

    :raises InvalidResponseError: for a pair that is not two such strings."""
    fields = []
    try:
        for name, value in headers:
            fields.append(name.encode("latin-1") if isinstance(name, str) else bytes(name))
            fields.append(value.encode("latin-1") if isinstance(value, str) else bytes(value))
    except (TypeError, ValueError, UnicodeError) as error:
        raise InvalidResponseError(f"invalid response header ({error}): headers must be (name, value) pairs "
                                   f"of bytes or latin-1 str") from None
    return b"\0".join(fields), len(fields) // 2


def check_head(status: int, reason: Optional[bytes], kv: bytes, pairs: int) -> None:
    """Refuse a head that could split or corrupt the response.

    :raises InvalidResponseError: a status outside 100-999, a reason with a control
        character, a header name that is not an RFC 9110 token, a value with CR, LF
        or NUL."""
    reason_arg = _NULL if reason is None else reason
    verdict = lib.pm_response_check(status, reason_arg, len(reason or b""), kv, len(kv), pairs)
    if verdict == -2:
        raise InvalidResponseError(f"invalid status line: {status} {reason!r} (a status from 100 to 999, and a "
                                   f"reason of tabs, spaces and visible characters)")
    if verdict < 0:
        raise InvalidResponseError(f"invalid response header {_first_bad_pair(kv, pairs)!r}: a name that is not a "
                                   f"token, or CR, LF or NUL in a value")


def _first_bad_pair(kv: bytes, pairs: int) -> Tuple[bytes, ...]:
    """The header the C check refuses (only on the error path: one call per pair)."""
    fields = kv.split(b"\0")
    if len(fields) != 2 * pairs:  # a NUL inside a name or value
        return tuple(fields)
    for i in range(0, len(fields), 2):
        one = fields[i] + b"\0" + fields[i + 1]
        if lib.pm_response_check(200, _NULL, 0, one, len(one), 1) < 0:
            return fields[i], fields[i + 1]
    return tuple(fields)


def start(mgr: Any, conn_id: int, status: int, reason: Optional[bytes], kv: bytes, pairs: int, body: bytes,
          more: bool, http10: bool) -> int:
    """Queue the head and ``body`` (all of it, or its first piece when ``more``).
    Returns the framing of the rest (COMPLETE when nothing follows), REFUSED (the
    head; nothing queued) or GONE."""
    if mgr is None:
        return GONE
    framing: int = _pm_response_start(mgr, conn_id, status, _NULL if reason is None else reason,
                                      0 if reason is None else len(reason), kv, len(kv), pairs, body, len(body),
                                      more, http10)
    return framing


def send_body(mgr: Any, conn_id: int, framing: int, body: bytes, more: bool) -> int:
    """Queue a further piece of the body; ``more`` false ends the response. Returns
    the bytes waiting to be sent on the connection, or -1 once it has closed."""
    return -1 if mgr is None else int(_pm_response_body(mgr, conn_id, framing, body, len(body), more))


def closing(mgr: Any) -> None:
    """A graceful stop: every response from now on says ``connection: close`` and
    closes its connection once sent, rather than the client finding it closed under
    its next request."""
    if mgr is not None:
        lib.pm_http_closing(mgr)


def busy(mgr: Any, conn_id: int, http10: bool) -> None:
    """Answer 503 (the server's concurrency limit is reached) and close."""
    if mgr is not None:
        _pm_response_start(mgr, conn_id, 503, _NULL, 0, _BUSY_HEADERS, len(_BUSY_HEADERS), 3, _BUSY_BODY,
                           len(_BUSY_BODY), False, http10)


def fail(mgr: Any, conn_id: int, framing: int, http10: bool) -> None:
    """The error policy: answer 500 if no byte of the response was queued
    (``framing`` NOT_STARTED), otherwise close once what was queued is sent: the
    client sees the response cut short, which is all it can be told."""
    if mgr is None:
        return
    if framing == NOT_STARTED:
        _pm_response_start(mgr, conn_id, 500, _NULL, 0, _ERROR_HEADERS, len(_ERROR_HEADERS), 2, _ERROR_BODY,
                           len(_ERROR_BODY), False, http10)
    else:
        c = lib.pm_conn(mgr, conn_id)
        if c != _NULL:
            lib.pm_conn_drain(c)
