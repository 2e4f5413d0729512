"""Views of the messages Mongoose parsed: HTTP, WebSocket and MQTT.

A view reads Mongoose's receive buffer directly, copying a field only when it is
asked for. The buffer is reused as soon as the callback that received the view
returns, so a view used after that never reads it: as with the Cython bindings, it
reads as an empty message (``method == ""``, ``body_bytes == b""``, ``headers() ==
[]``, ``status()`` None, ``bool(view)`` False), or, on a
``Manager(strict_messages=True)``, raises :class:`MessageExpiredError`. Keep copies,
not views::

    def handler(conn, event, data):
        if event == MG_EV_HTTP_MSG:
            body = data.body_bytes      # a copy: safe to keep
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from ._args import keyword_aliases
from ._binding import ffi, lib
from ._text import decode, from_mg_str, to_cstr
from .errors import MessageExpiredError
from .mqtt import MQTT_CMD_SUBSCRIBE, MQTT_CMD_UNSUBSCRIBE, parse_subscribe, read_props

__all__ = ["HttpMessage", "WsMessage", "MqttMessage"]

_NULL = ffi.NULL
_cast = ffi.cast
_new = ffi.new
_unpack = ffi.unpack
_new_object = object.__new__
_pm_http_layout = lib.pm_http_layout
_LAYOUT_SLOTS = 8 + 4 * lib.PM_LAYOUT_HEADERS  # (offset, length) pairs: 4 fields, then the headers
_DEPTH_MASK = 63  # a frame token carries its depth in its low 6 bits (see pm_forward in _native/dispatch.c)
# The Manager's frame tokens have one slot past C's: non-zero for strict_messages.
STRICT_SLOT = lib.PM_MAX_FRAMES


class _MessageView:
    """Common behaviour of views: valid only while the event that carried it runs.

    Validity is decided by C, not by Python bookkeeping: the shim numbers each
    event it delivers (a frame token) and clears the number when the event returns.
    The pointer Mongoose passed is cast to its C type on first use, so a view that a
    handler never reads costs no more than its creation.
    """

    __slots__ = ("_raw", "_p", "_tokens", "_token")
    _CTYPE: Any = None  # the C pointer type behind this kind of view
    _EMPTY: Any = None  # a zeroed struct of that type: what an expired view reads

    def __init__(self, raw: Any, tokens: Any, token: int) -> None:
        self._raw = raw  # the event's ev_data: an address (int) or a pointer
        self._p: Any = None
        self._tokens = tokens  # the Manager's frame tokens (uint64_t[]); kept alive here
        self._token = token

    @classmethod
    def _maker(cls: Any) -> Any:
        """A function that makes a view of ``cls`` for the event dispatch: it sets the
        slots itself, for a class call that runs ``__init__`` costs about twice as
        much on CPython 3.11, and the dispatch makes a view per request."""
        def make(raw: Any, tokens: Any, token: int) -> Any:
            view = _new_object(cls)
            view._raw = raw
            view._p = None
            view._tokens = tokens
            view._token = token
            return view
        make.__qualname__ = make.__name__ = f"make_{cls.__name__}"
        return make

    def _ptr(self) -> Any:
        try:
            token = self._token
            if self._tokens[token & _DEPTH_MASK] == token and token:
                p = self._p
                if p is None:
                    p = self._p = _cast(self._CTYPE, self._raw)
                return p
            strict = self._tokens[STRICT_SLOT]
        except AttributeError:  # a view never bound to a message (made by __new__)
            strict = False
        if strict:
            raise MessageExpiredError(
                f"{type(self).__name__} used after its callback returned; copy the "
                "fields you need (e.g. msg.body_bytes) inside the handler"
            )
        return self._EMPTY

    @property
    def valid(self) -> bool:
        """True while the callback that received this message is running."""
        try:
            token = self._token
            return bool(token) and self._tokens[token & _DEPTH_MASK] == token
        except AttributeError:  # never bound to a message
            return False

    def __bool__(self) -> bool:
        return self.valid


class HttpMessage(_MessageView):
    """An HTTP request (on a server) or response (on a client).

    Passed as ``data`` with ``MG_EV_HTTP_MSG``, ``MG_EV_HTTP_HDRS`` and
    ``MG_EV_WS_OPEN``::

        if event == MG_EV_HTTP_MSG and data.method == "POST":
            name = data.query_var("name")
            conn.reply(200, f"hello {name}, you sent {len(data.body_bytes)} bytes")
    """

    __slots__ = ()
    _CTYPE = ffi.typeof("struct mg_http_message *")
    _EMPTY = ffi.new(_CTYPE)

    @property
    def method(self) -> str:
        """Request method (``"GET"``...); on a response, the protocol."""
        return decode(from_mg_str(self._ptr().method))

    @property
    def uri(self) -> str:
        """Request path, without the query string; on a response, the status code."""
        return decode(from_mg_str(self._ptr().uri))

    @property
    def query(self) -> str:
        """Query string, without the ``?``."""
        return decode(from_mg_str(self._ptr().query))

    @property
    def proto(self) -> str:
        """Protocol (``"HTTP/1.1"``); on a response, the reason phrase."""
        return decode(from_mg_str(self._ptr().proto))

    @property
    def body_bytes(self) -> bytes:
        """The body, byte for byte."""
        return from_mg_str(self._ptr().body)

    @property
    def body_text(self) -> str:
        """The body decoded as UTF-8 (invalid bytes become U+FFFD)."""
        return decode(from_mg_str(self._ptr().body))

    @property
    def head_bytes(self) -> bytes:
        """The raw request or status line and headers, without the body."""
        return from_mg_str(self._ptr().head)

    def header(self, name: str, default: Optional[str] = None) -> Optional[str]:
        """Return the value of header ``name`` (case-insensitive), or ``default``."""
        value = lib.mg_http_get_header(self._ptr(), to_cstr(name, "header name"))
        return default if value == _NULL else decode(from_mg_str(value))

    def headers(self) -> List[Tuple[str, str]]:
        """Return every header as ``(name, value)``, in the order received."""
        return self.fields()[4]

    def fields(self) -> Tuple[str, str, str, str, List[Tuple[str, str]]]:
        """``(method, uri, query, proto, headers())`` at once: the head is copied
        out of C once, where reading each property copies its field on its own.

        >>> method, uri, query, proto, headers = data.fields()  # doctest: +SKIP
        """
        p = self._ptr()
        spans = _new("uint32_t[]", _LAYOUT_SLOTS)
        n = _pm_http_layout(p, spans)
        head = from_mg_str(p.head)
        at = _unpack(spans, 8 + 4 * n)
        if head.isascii():  # the usual head: its offsets are the text's, decoded once
            whole = head.decode("ascii")
            text = [whole[start:start + length] for start, length in zip(at[0::2], at[1::2])]
        else:
            text = [decode(head[start:start + length]) for start, length in zip(at[0::2], at[1::2])]
        return text[0], text[1], text[2], text[3], list(zip(text[4::2], text[5::2]))

    def query_var(self, name: str) -> Optional[str]:
        """Return the URL-decoded value of query parameter ``name``, or None."""
        return _form_var(self._ptr().query, name)

    def form_var(self, name: str) -> Optional[str]:
        """Return the URL-decoded value of field ``name`` of a form-encoded body."""
        return _form_var(self._ptr().body, name)

    def status(self) -> Optional[int]:
        """Return what Mongoose's ``mg_http_status`` reads: a response's status code;
        on a request, the number its URI field starts with (usually 0), as the
        Cython binding returns; None once the message is gone."""
        p = self._ptr()
        return None if p is self._EMPTY else int(lib.mg_http_status(p))

    @keyword_aliases(header_name="header", var_name="var")  # the Cython bindings' names
    def header_var(self, header: str, var: str) -> Optional[str]:
        """Return variable ``var`` of header ``header``, e.g. ``charset`` of
        ``Content-Type: text/html; charset=utf-8``; None if either is absent."""
        value = lib.mg_http_get_header(self._ptr(), to_cstr(header, "header name"))
        if value == _NULL:
            return None
        wanted = to_cstr(var, "variable name")
        with ffi.from_buffer(wanted) as buf:
            found = lib.mg_http_get_header_var(value[0], (buf, len(wanted)))
        return None if found.buf == _NULL else decode(from_mg_str(found))

    def __repr__(self) -> str:
        if not self.valid:
            return "<HttpMessage (expired)>"
        return f"<HttpMessage {self.method} {self.uri}>"


def _form_var(source: Any, name: str) -> Optional[str]:
    wanted = to_cstr(name, "parameter name")
    with ffi.from_buffer(wanted) as buf:
        raw = lib.mg_http_var(source, (buf, len(wanted)))
    if raw.buf == _NULL:
        return None
    # Decoding never lengthens, so len + 1 always fits.
    out = ffi.new("char[]", raw.len + 1)
    n = lib.mg_url_decode(raw.buf, raw.len, out, raw.len + 1, 1)
    return decode(ffi.unpack(out, n)) if n >= 0 else None


class WsMessage:
    """A WebSocket message, passed with ``MG_EV_WS_MSG`` and ``MG_EV_WS_CTL``.

    Unlike the other messages it owns a copy of its payload, made as it arrives
    (a handler reads it almost always): it stays usable after the handler returns.
    ``data`` and ``flags`` are plain attributes, the cheapest a handler can read::

        >>> message = WsMessage(b"hi", 0x81)
        >>> message.data, message.text, message.op  # op 1: WEBSOCKET_OP_TEXT
        (b'hi', 'hi', 1)
    """

    __slots__ = ("data", "flags")
    data: bytes   # The payload, byte for byte.
    flags: int    # First byte of the frame header: FIN (bit 7) and opcode (bits 0-3).

    def __init__(self, data: bytes, flags: int) -> None:
        self.data = data
        self.flags = flags

    @classmethod
    def _from_event(cls, payload: Any, tokens: Any, size_and_flags: int) -> "WsMessage":
        # Made by the event dispatch from the shim's (payload, length << 8 | flags).
        n = size_and_flags >> 8
        return cls(_unpack(_cast("char *", payload), n) if n else b"", size_and_flags & 0xFF)

    @property
    def text(self) -> str:
        """The payload decoded as UTF-8 (invalid bytes become U+FFFD)."""
        return self.data.decode("utf-8", "replace")

    @property
    def op(self) -> int:
        """The opcode, one of the ``WEBSOCKET_OP_*`` constants."""
        return self.flags & 0x0F

    @property
    def valid(self) -> bool:
        """Always True: the message owns its payload."""
        return True

    def __repr__(self) -> str:
        return f"<WsMessage op={self.op} {len(self.data)} bytes>"


class Properties(List[Dict[str, Any]]):
    """A list of MQTT properties that may also be called, returning itself: our
    attribute and cymongoose's method read the same.

    >>> props = Properties([{"id": 1, "iv": 1}])
    >>> props == props() == [{"id": 1, "iv": 1}]
    True
    """

    def __call__(self) -> "Properties":
        return self


class MqttMessage(_MessageView):
    """An MQTT packet, passed with ``MG_EV_MQTT_MSG`` and ``MG_EV_MQTT_CMD``."""

    __slots__ = ()
    _CTYPE = ffi.typeof("struct mg_mqtt_message *")
    _EMPTY = ffi.new(_CTYPE)

    @property
    def topic(self) -> str:
        """The topic of a PUBLISH."""
        return decode(from_mg_str(self._ptr().topic))

    @property
    def data(self) -> bytes:
        """The payload of a PUBLISH, byte for byte."""
        return from_mg_str(self._ptr().data)

    @property
    def text(self) -> str:
        """The payload decoded as UTF-8."""
        return decode(from_mg_str(self._ptr().data))

    @property
    def id(self) -> int:
        """Packet identifier (QoS > 0 PUBLISH, acknowledgements, SUBSCRIBE and
        UNSUBSCRIBE), or 0."""
        mm = self._ptr()
        if mm.id == 0 and mm.cmd in (MQTT_CMD_SUBSCRIBE, MQTT_CMD_UNSUBSCRIBE):
            try:
                return parse_subscribe(from_mg_str(mm.dgram))[0]
            except ValueError:
                return 0
        return int(mm.id)

    @property
    def cmd(self) -> int:
        """Packet type (``MQTT_CMD_*``: 3 is PUBLISH...)."""
        return int(self._ptr().cmd)

    @property
    def qos(self) -> int:
        """QoS level of a PUBLISH."""
        return int(self._ptr().qos)

    @property
    def ack(self) -> int:
        """CONNACK return code; 0 means accepted."""
        return int(self._ptr().ack)

    @property
    def dgram(self) -> bytes:
        """The whole raw packet, fixed header included."""
        return from_mg_str(self._ptr().dgram)

    @property
    def properties(self) -> "Properties":
        """The MQTT 5 properties of this packet (none on MQTT 3.1.1), as cymongoose
        gives them: dicts with ``id`` (``MQTT_PROP_*``) and ``iv`` for integer
        properties, ``val`` for strings (bytes for binary data), ``key`` and ``val``
        for user properties. cymongoose's ``properties()``, a call, works too."""
        p = self._ptr()
        return Properties(() if p is self._EMPTY else read_props(p))

    def subscriptions(self) -> List[Tuple[str, int]]:
        """For a SUBSCRIBE packet (broker side), its ``(topic, qos)`` pairs; for an
        UNSUBSCRIBE, ``(topic, -1)``. ValueError if the packet is malformed."""
        return parse_subscribe(self.dgram)[1]

    def __repr__(self) -> str:
        if not self.valid:
            return "<MqttMessage (expired)>"
        return f"<MqttMessage cmd={self.cmd} topic={self.topic!r}>"
