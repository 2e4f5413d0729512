"""HTTP methods of :class:`~pymongoose.Connection`: replies, chunked and SSE
streaming, static files, Basic authentication.

Header names and values are checked before anything is sent: CR, LF or NUL raise
``ValueError``, so a response can never be split or smuggled.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from threading import get_ident
from typing import Any, Iterable, Mapping, NoReturn, Optional, Sequence, Tuple, Union

from ._args import int_arg
from ._binding import ffi, lib
from ._connection_base import ConnectionBase
from ._loop import call_owning_loop, on_loop
from ._text import BytesLike, to_bytes, to_cstr
from .messages import HttpMessage

__all__ = ["HttpLimits", "DEFAULT_MAX_BODY", "MAX_BODY_CEILING"]

_pm_http_respond = lib.pm_http_respond  # bound once: the hot path skips a lookup on lib
_BAD_STATUS = lib.PM_BAD_STATUS

_NULL = ffi.NULL
# RFC 9110 token characters, for header names.
_TOKEN = re.compile(rb"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
# On a per-event path, a search rather than `b"\n" in data`: CPython's (3.9-3.13)
# `bytes in bytes` first tries the operand as an int, and formats and drops a TypeError.
_CR_OR_LF = re.compile(rb"[\r\n]")
_DEFAULT_REPLY_HEADERS = b"Content-Type: text/plain; charset=utf-8\r\n"

#: The largest request body a listener takes unless told (``max_body=``): Mongoose's
#: own limit on a buffered request. Larger ones are answered 413 (_native/httpd.c).
DEFAULT_MAX_BODY = 3 * 1024 * 1024
#: The largest ``max_body`` a listener accepts: what Mongoose's buffers can hold, with room.
MAX_BODY_CEILING = 1024 * 1024 * 1024


@dataclass(frozen=True)
class HttpLimits:
    """What an HTTP listener accepts of a request head, and how long it waits.

    Every request is screened in C before any handler sees it (RFC 9112): a head
    over ``max_head`` bytes is answered ``431``, a target over ``max_target`` bytes
    ``414``, and the connection closed. A head that has not arrived whole
    ``header_read_timeout`` seconds after the connection opened, or after its first
    byte, is answered ``408`` (a connection that sent nothing is closed without a
    word). A connection that waits ``timeout_keep_alive`` seconds for its next
    request is closed. ``None`` turns a timeout off.

    >>> HttpLimits(max_head=16 * 1024, timeout_keep_alive=5)
    HttpLimits(max_head=16384, max_target=8192, header_read_timeout=30.0, timeout_keep_alive=5)
    >>> HttpLimits(max_head=0)
    Traceback (most recent call last):
    ValueError: max_head must be from 1024 to 1048576, not 0
    """

    max_head: int = 64 * 1024
    max_target: int = 8 * 1024
    header_read_timeout: Optional[float] = 30.0
    timeout_keep_alive: Optional[float] = None

    def __post_init__(self) -> None:
        int_arg(self.max_head, "max_head", 1024, 1024 * 1024)
        int_arg(self.max_target, "max_target", 64, 1024 * 1024)
        for name in ("header_read_timeout", "timeout_keep_alive"):
            _seconds_ms(getattr(self, name), name)

    def c_args(self) -> Tuple[int, int, int, int]:
        """The arguments of ``pm_conn_set_http_limits`` (milliseconds; 0: never)."""
        return (self.max_head, self.max_target, _seconds_ms(self.header_read_timeout, "header_read_timeout"),
                _seconds_ms(self.timeout_keep_alive, "timeout_keep_alive"))


def _seconds_ms(value: Optional[float], what: str) -> int:
    """A timeout in seconds (None: never) as C's milliseconds (0: never)."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.001 <= value <= 86400 * 24:
        raise ValueError(f"{what} must be None or seconds from 0.001 to 2073600, not {value!r}")
    return max(1, round(value * 1000))


# Response headers: a mapping, or a sequence of (name, value) pairs when a name
# repeats (Set-Cookie).
Headers = Union[Mapping[str, str], Sequence[Tuple[str, str]]]


def _items(headers: Headers) -> Iterable[Tuple[Any, Any]]:
    if isinstance(headers, Mapping):
        return headers.items()
    if isinstance(headers, (list, tuple)):
        for pair in headers:
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise TypeError(f"headers given as a list must hold (name, value) pairs, not {pair!r}")
        return headers
    raise TypeError(f"headers must be a mapping or a list of (name, value) pairs, not {type(headers).__name__}")


def format_headers(headers: Optional[Headers], default_type: bytes = _DEFAULT_REPLY_HEADERS) -> bytes:
    """Return ``headers`` as ``Name: value\\r\\n`` lines, refusing anything that could
    split or smuggle a response; adds ``default_type`` unless Content-Type is given."""
    if headers is None:
        return default_type
    lines = []
    has_type = False
    for name, value in _items(headers):
        raw_name = to_bytes(name, "header name")
        raw_value = to_bytes(value if isinstance(value, (str, bytes)) else str(value), "header value")
        # The CR/LF/NUL messages are cymongoose's words: programs may match on them.
        if b"\r" in raw_name or b"\n" in raw_name or b"\0" in raw_name:
            raise ValueError(f"Header name contains illegal character (CR, LF, or NUL): {name!r}")
        if not _TOKEN.match(raw_name):
            raise ValueError(f"invalid header name {name!r}: not an RFC 9110 token")
        if b"\r" in raw_value or b"\n" in raw_value or b"\0" in raw_value:
            raise ValueError(f"Header value contains illegal character (CR, LF, or NUL): {value!r}")
        has_type = has_type or raw_name.lower() == b"content-type"
        lines.append(b"%s: %s\r\n" % (raw_name, raw_value))
    if not has_type:
        lines.insert(0, default_type)
    return b"".join(lines)


def header_pairs(headers: Headers) -> Tuple[bytes, int]:
    """Return ``headers`` as ``b"name\\0value\\0name\\0value"`` and how many pairs:
    the form the shim checks (token names; no CR, LF or NUL) while it copies them.

    A ``dict`` of ``str`` takes one join; other mappings and values are converted
    one by one (values that are not text with ``str()``).

    >>> header_pairs({"Content-Type": "text/html", "X-Id": "7"})
    (b'Content-Type\\x00text/html\\x00X-Id\\x007', 2)
    """
    if type(headers) is dict:
        # Concatenation beats join() for the one or two headers a handler usually
        # sets (CPython: 217 ns against 388 for one header); + raises TypeError for
        # a name or value that is not a str, which takes the general path.
        joined = ""
        try:
            for name, value in headers.items():
                joined = joined + "\0" + name + "\0" + value if joined else name + "\0" + value
            return joined.encode(), len(headers)
        except TypeError:
            pass
    fields = []
    for name, value in _items(headers):
        fields.append(to_bytes(name, "header name"))
        fields.append(to_bytes(value if isinstance(value, (str, bytes)) else str(value), "header value"))
    return b"\0".join(fields), len(fields) // 2


def _check_status(status_code: Any) -> NoReturn:
    """Raise the error a status code C refused deserves: TypeError for anything
    that is not an int (bool included), ValueError for one outside 100-999."""
    int_arg(status_code, "status_code")
    raise ValueError(f"status_code must be a 3-digit HTTP status, not {status_code}")


def _check_header_lines(lines: str) -> None:
    """Extra header lines given as one string must be complete, well-formed lines."""
    if not lines:
        return
    raw = to_cstr(lines, "extra_headers")
    if not raw.endswith(b"\r\n"):
        raise ValueError("extra_headers must be complete lines, each ending in \\r\\n")
    for line in raw[:-2].split(b"\r\n"):
        name, sep, _ = line.partition(b":")
        if not sep or not _TOKEN.match(name) or b"\r" in line or b"\n" in line:
            raise ValueError(f"malformed header line in extra_headers: {line!r}")


class HttpMethods(ConnectionBase):
    """HTTP methods of :class:`~pymongoose.Connection`."""

    __slots__ = ()

    def reply(self, status_code: int, body: BytesLike = b"",
              headers: Optional[Headers] = None) -> None:
        """Send a complete HTTP response with the right Content-Length.

        ``Content-Type: text/plain; charset=utf-8`` is added unless ``headers``
        names one (str bodies are sent UTF-8 encoded). ``headers`` is a mapping, or
        a list of ``(name, value)`` pairs where a name repeats (``Set-Cookie``). Header names and values are
        checked: CR, LF or NUL raise ValueError. With ``Transfer-Encoding: chunked``
        in ``headers`` only the head (and ``body`` as a first chunk, if any) is sent;
        continue with :meth:`http_chunk`.

        >>> conn.reply(200, '{"ok": true}', {"Content-Type": "application/json"})  # doctest: +SKIP
        """
        # The hot path of every server: the loop-ownership check of @on_loop is made
        # inline, and the status code is checked by C (cffi converts it; anything
        # that is not an int in range takes _reply_refused's path to a clear error).
        manager = self._manager
        if manager._owner != get_ident():
            call_owning_loop(manager, HttpMethods.reply, self, status_code, body, headers)
            return
        if type(body) is str:
            body = body.encode()
        elif type(body) is not bytes:
            body = to_bytes(body, "body")
        if headers is None:
            kv, kv_len, pairs = _NULL, 0, 0
        else:
            kv, pairs = header_pairs(headers)
            kv_len = len(kv)
        try:  # a closed manager's pointer is None, which C takes as NULL: not sent
            sent = _pm_http_respond(manager._ptr, self._id, status_code, kv, kv_len, pairs, body, len(body))
        except (TypeError, OverflowError):
            sent = _BAD_STATUS
        if sent <= 0:
            self._reply_refused(sent, status_code, headers)

    def _reply_refused(self, sent: int, status_code: Any, headers: Optional[Headers]) -> None:
        if sent == _BAD_STATUS:
            _check_status(status_code)
        if sent < 0:
            format_headers(headers)  # raises ValueError naming the header
            raise ValueError("invalid headers")  # pragma: no cover (format_headers raised)
        self._dropped("reply")

    @on_loop
    def http_chunk(self, data: BytesLike) -> None:
        """Send one chunk of a chunked response; empty ``data`` ends the response."""
        payload = to_bytes(data, "data")
        mgr = self._manager._ptr
        self._sent(mgr is not None and lib.pm_http_chunk(mgr, self._id, payload, len(payload)), "http_chunk")

    @on_loop
    def http_chunk_file(self, fd: int, offset: int, length: int) -> int:
        """Send up to ``length`` bytes of the open file ``fd``, from ``offset``, as
        one chunk of a chunked response, read straight into the send buffer (the
        bytes never become Python objects). Returns how many were sent (0 at the
        end of the file).

        :raises OSError: if the file cannot be read."""
        int_arg(fd, "fd", 0)
        int_arg(offset, "offset", 0)
        int_arg(length, "length", 0, 1 << 30)
        mgr = self._manager._ptr
        sent = -1 if mgr is None else int(lib.pm_http_chunk_from_fd(mgr, self._id, fd, offset, length))
        if sent == -1:
            self._dropped("http_chunk_file")
        if sent == -2:
            raise OSError(f"cannot read file descriptor {fd} at offset {offset}")
        return sent

    @on_loop
    def http_sse(self, event_type: str, data: str) -> None:
        """Send one Server-Sent Event (``event:``/``data:`` lines) as a chunk of a
        chunked ``text/event-stream`` response."""
        event = to_bytes(event_type, "event_type")
        payload = to_bytes(data, "data")
        if _CR_OR_LF.search(event):  # not `in`: see _CR_OR_LF
            raise ValueError("event_type must be a single line")
        if _CR_OR_LF.search(payload):
            # One event with several lines of data, as the SSE format spells it.
            payload = b"\ndata: ".join(payload.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n"))
        mgr = self._manager._ptr
        self._sent(mgr is not None and lib.pm_http_sse(mgr, self._id, event, len(event), payload, len(payload)),
                   "http_sse")

    @on_loop
    def serve_dir(self, message: HttpMessage, root_dir: str, extra_headers: str = "",
                  mime_types: str = "", page404: str = "") -> None:
        """Answer ``message`` from the files under ``root_dir`` (paths that escape it
        are refused). ``extra_headers`` are complete ``Name: value\\r\\n`` lines;
        ``mime_types`` is ``"ext=type,..."``; ``page404`` is a file sent when the
        path does not exist (Mongoose sends it with status 200)."""
        self._serve(message, root_dir, None, extra_headers, mime_types, page404)

    @on_loop
    def serve_file(self, message: HttpMessage, path: str, extra_headers: str = "",
                   mime_types: str = "") -> None:
        """Answer ``message`` with the file at ``path`` (404 if it does not exist)."""
        self._serve(message, None, path, extra_headers, mime_types, "")

    def _serve(self, message: HttpMessage, root_dir: Optional[str], path: Optional[str],
               extra_headers: str, mime_types: str, page404: str) -> None:
        if not isinstance(message, HttpMessage):
            raise TypeError("message must be the HttpMessage passed to this handler")
        hm = message._ptr()
        _check_header_lines(extra_headers)
        keep = []  # the C strings must outlive the call

        def cstr(value: Optional[str], what: str) -> Any:
            if not value:
                return ffi.NULL
            buf = ffi.new("char[]", to_cstr(value, what))
            keep.append(buf)
            return buf

        opts = ffi.new("struct mg_http_serve_opts *")
        opts.root_dir = cstr(root_dir, "root_dir") if root_dir is not None else ffi.NULL
        opts.extra_headers = cstr(extra_headers, "extra_headers")
        opts.mime_types = cstr(mime_types, "mime_types")
        opts.page404 = cstr(page404, "page404")
        file_path = cstr(path, "path") if path is not None else None
        c = self._c()
        if c is None:
            self._sent(False, "serve")
        elif file_path is None:
            lib.mg_http_serve_dir(c, hm, opts)
        else:
            lib.mg_http_serve_file(c, hm, file_path, opts)

    @on_loop
    def http_basic_auth(self, username: str, password: str) -> None:
        """Write an ``Authorization: Basic ...`` header line into the send buffer
        (for a client, between its request line and the blank line)."""
        self._call(lib.mg_http_bauth, to_cstr(username, "username"), to_cstr(password, "password"),
                   action="http_basic_auth")

    def reply_json(self, data: Any, status_code: int = 200,
                   headers: Optional[Mapping[str, str]] = None) -> None:
        """Reply with ``data`` serialised as JSON (``Content-Type: application/json``)."""
        merged = {"Content-Type": "application/json"}
        for name, value in (headers or {}).items():
            if str(name).lower() != "content-type":
                merged[name] = value
        self.reply(status_code, json.dumps(data), merged)
