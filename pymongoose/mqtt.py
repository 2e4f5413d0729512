"""MQTT methods of :class:`~pymongoose.Connection`, and packet constants.

A client is made by :meth:`Manager.mqtt_connect`; ``MG_EV_MQTT_OPEN`` (with the
CONNACK code) says it is ready, ``MG_EV_MQTT_MSG`` brings each PUBLISH::

    def handler(conn, event, data):
        if event == MG_EV_MQTT_OPEN and data == 0:
            conn.mqtt_sub("sensors/#", qos=1)
        elif event == MG_EV_MQTT_MSG:
            print(data.topic, data.text)

Mongoose acknowledges QoS 1 and 2 messages itself, and pymongoose pings the broker
when the connection has been idle for half the keepalive period.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional, Tuple, Union

from ._binding import ffi, lib
from ._connection_base import ConnectionBase
from ._loop import on_loop
from ._text import BytesLike, to_bytes

__all__ = [
    "MQTT_PROP_TYPE_BYTE", "MQTT_PROP_TYPE_STRING", "MQTT_PROP_TYPE_STRING_PAIR",
    "MQTT_PROP_TYPE_BINARY_DATA", "MQTT_PROP_TYPE_VARIABLE_INT", "MQTT_PROP_TYPE_INT",
    "MQTT_PROP_TYPE_SHORT", "MQTT_PROP_PAYLOAD_FORMAT_INDICATOR", "MQTT_PROP_MESSAGE_EXPIRY_INTERVAL",
    "MQTT_PROP_CONTENT_TYPE", "MQTT_PROP_RESPONSE_TOPIC", "MQTT_PROP_CORRELATION_DATA",
    "MQTT_PROP_SUBSCRIPTION_IDENTIFIER", "MQTT_PROP_SESSION_EXPIRY_INTERVAL",
    "MQTT_PROP_ASSIGNED_CLIENT_IDENTIFIER", "MQTT_PROP_SERVER_KEEP_ALIVE",
    "MQTT_PROP_AUTHENTICATION_METHOD", "MQTT_PROP_AUTHENTICATION_DATA",
    "MQTT_PROP_REQUEST_PROBLEM_INFORMATION", "MQTT_PROP_WILL_DELAY_INTERVAL",
    "MQTT_PROP_REQUEST_RESPONSE_INFORMATION", "MQTT_PROP_RESPONSE_INFORMATION",
    "MQTT_PROP_SERVER_REFERENCE", "MQTT_PROP_REASON_STRING", "MQTT_PROP_RECEIVE_MAXIMUM",
    "MQTT_PROP_TOPIC_ALIAS_MAXIMUM", "MQTT_PROP_TOPIC_ALIAS", "MQTT_PROP_MAXIMUM_QOS",
    "MQTT_PROP_RETAIN_AVAILABLE", "MQTT_PROP_USER_PROPERTY", "MQTT_PROP_MAXIMUM_PACKET_SIZE",
    "MQTT_PROP_WILDCARD_SUBSCRIPTION_AVAILABLE", "MQTT_PROP_SUBSCRIPTION_IDENTIFIER_AVAILABLE",
    "MQTT_PROP_SHARED_SUBSCRIPTION_AVAILABLE", "MQTT_CMD_CONNECT", "MQTT_CMD_CONNACK", "MQTT_CMD_PUBLISH",
    "MQTT_CMD_PUBACK", "MQTT_CMD_PUBREC", "MQTT_CMD_PUBREL", "MQTT_CMD_PUBCOMP", "MQTT_CMD_SUBSCRIBE",
    "MQTT_CMD_SUBACK", "MQTT_CMD_UNSUBSCRIBE", "MQTT_CMD_UNSUBACK", "MQTT_CMD_PINGREQ", "MQTT_CMD_PINGRESP",
    "MQTT_CMD_DISCONNECT",
]

# MQTT 5 property value types, as Mongoose numbers them.
#: MQTT 5 property value type: byte.
MQTT_PROP_TYPE_BYTE = lib.MQTT_PROP_TYPE_BYTE
#: MQTT 5 property value type: string.
MQTT_PROP_TYPE_STRING = lib.MQTT_PROP_TYPE_STRING
#: MQTT 5 property value type: string pair.
MQTT_PROP_TYPE_STRING_PAIR = lib.MQTT_PROP_TYPE_STRING_PAIR
#: MQTT 5 property value type: binary data.
MQTT_PROP_TYPE_BINARY_DATA = lib.MQTT_PROP_TYPE_BINARY_DATA
#: MQTT 5 property value type: variable int.
MQTT_PROP_TYPE_VARIABLE_INT = lib.MQTT_PROP_TYPE_VARIABLE_INT
#: MQTT 5 property value type: int.
MQTT_PROP_TYPE_INT = lib.MQTT_PROP_TYPE_INT
#: MQTT 5 property value type: short.
MQTT_PROP_TYPE_SHORT = lib.MQTT_PROP_TYPE_SHORT

# MQTT 5 property identifiers (for ``properties=`` and MqttMessage.properties).
#: MQTT 5 property 0x01: Payload format indicator.
MQTT_PROP_PAYLOAD_FORMAT_INDICATOR = 0x01
#: MQTT 5 property 0x02: Message expiry interval.
MQTT_PROP_MESSAGE_EXPIRY_INTERVAL = 0x02
#: MQTT 5 property 0x03: Content type.
MQTT_PROP_CONTENT_TYPE = 0x03
#: MQTT 5 property 0x08: Response topic.
MQTT_PROP_RESPONSE_TOPIC = 0x08
#: MQTT 5 property 0x09: Correlation data.
MQTT_PROP_CORRELATION_DATA = 0x09
#: MQTT 5 property 0x0B: Subscription identifier.
MQTT_PROP_SUBSCRIPTION_IDENTIFIER = 0x0B
#: MQTT 5 property 0x11: Session expiry interval.
MQTT_PROP_SESSION_EXPIRY_INTERVAL = 0x11
#: MQTT 5 property 0x12: Assigned client identifier.
MQTT_PROP_ASSIGNED_CLIENT_IDENTIFIER = 0x12
#: MQTT 5 property 0x13: Server keep alive.
MQTT_PROP_SERVER_KEEP_ALIVE = 0x13
#: MQTT 5 property 0x15: Authentication method.
MQTT_PROP_AUTHENTICATION_METHOD = 0x15
#: MQTT 5 property 0x16: Authentication data.
MQTT_PROP_AUTHENTICATION_DATA = 0x16
#: MQTT 5 property 0x17: Request problem information.
MQTT_PROP_REQUEST_PROBLEM_INFORMATION = 0x17
#: MQTT 5 property 0x18: Will delay interval.
MQTT_PROP_WILL_DELAY_INTERVAL = 0x18
#: MQTT 5 property 0x19: Request response information.
MQTT_PROP_REQUEST_RESPONSE_INFORMATION = 0x19
#: MQTT 5 property 0x1A: Response information.
MQTT_PROP_RESPONSE_INFORMATION = 0x1A
#: MQTT 5 property 0x1C: Server reference.
MQTT_PROP_SERVER_REFERENCE = 0x1C
#: MQTT 5 property 0x1F: Reason string.
MQTT_PROP_REASON_STRING = 0x1F
#: MQTT 5 property 0x21: Receive maximum.
MQTT_PROP_RECEIVE_MAXIMUM = 0x21
#: MQTT 5 property 0x22: Topic alias maximum.
MQTT_PROP_TOPIC_ALIAS_MAXIMUM = 0x22
#: MQTT 5 property 0x23: Topic alias.
MQTT_PROP_TOPIC_ALIAS = 0x23
#: MQTT 5 property 0x24: Maximum qos.
MQTT_PROP_MAXIMUM_QOS = 0x24
#: MQTT 5 property 0x25: Retain available.
MQTT_PROP_RETAIN_AVAILABLE = 0x25
#: MQTT 5 property 0x26: User property.
MQTT_PROP_USER_PROPERTY = 0x26
#: MQTT 5 property 0x27: Maximum packet size.
MQTT_PROP_MAXIMUM_PACKET_SIZE = 0x27
#: MQTT 5 property 0x28: Wildcard subscription available.
MQTT_PROP_WILDCARD_SUBSCRIPTION_AVAILABLE = 0x28
#: MQTT 5 property 0x29: Subscription identifier available.
MQTT_PROP_SUBSCRIPTION_IDENTIFIER_AVAILABLE = 0x29
#: MQTT 5 property 0x2A: Shared subscription available.
MQTT_PROP_SHARED_SUBSCRIPTION_AVAILABLE = 0x2A

#: MQTT packet type 1: CONNECT.
MQTT_CMD_CONNECT = 1
#: MQTT packet type 2: CONNACK.
MQTT_CMD_CONNACK = 2
#: MQTT packet type 3: PUBLISH.
MQTT_CMD_PUBLISH = 3
#: MQTT packet type 4: PUBACK.
MQTT_CMD_PUBACK = 4
#: MQTT packet type 5: PUBREC.
MQTT_CMD_PUBREC = 5
#: MQTT packet type 6: PUBREL.
MQTT_CMD_PUBREL = 6
#: MQTT packet type 7: PUBCOMP.
MQTT_CMD_PUBCOMP = 7
#: MQTT packet type 8: SUBSCRIBE.
MQTT_CMD_SUBSCRIBE = 8
#: MQTT packet type 9: SUBACK.
MQTT_CMD_SUBACK = 9
#: MQTT packet type 10: UNSUBSCRIBE.
MQTT_CMD_UNSUBSCRIBE = 10
#: MQTT packet type 11: UNSUBACK.
MQTT_CMD_UNSUBACK = 11
#: MQTT packet type 12: PINGREQ.
MQTT_CMD_PINGREQ = 12
#: MQTT packet type 13: PINGRESP.
MQTT_CMD_PINGRESP = 13
#: MQTT packet type 14: DISCONNECT.
MQTT_CMD_DISCONNECT = 14

_MAX_STRING = 65535  # MQTT strings carry a 16-bit length


def check_qos(qos: int) -> int:
    if isinstance(qos, bool) or qos not in (0, 1, 2):
        raise ValueError(f"qos must be 0, 1 or 2, not {qos!r}")
    return qos


def check_text(value: BytesLike, what: str, allow_empty: bool = False) -> bytes:
    data = to_bytes(value, what)
    if not data and not allow_empty:
        raise ValueError(f"{what} must not be empty")
    if len(data) > _MAX_STRING:
        raise ValueError(f"{what} is longer than MQTT allows ({_MAX_STRING} bytes)")
    if data.find(b"\0") >= 0:  # not `in`, which on CPython raises and drops a TypeError first
        raise ValueError(f"{what} must not contain NUL characters")
    return data


def check_topic(topic: BytesLike, wildcards: bool) -> bytes:
    data = check_text(topic, "topic")
    if not wildcards and (data.find(b"+") >= 0 or data.find(b"#") >= 0):
        raise ValueError("a topic to publish to must not contain the wildcards + or #")
    return data


# One property: (id, value), value an int, str or bytes, or (key, value) for a user
# property; or a dict as MqttMessage.properties gives them ({"id", "iv", "key", "val"}).
Property = Union[Tuple[int, Any], Dict[str, Any]]
_INT_TYPES = frozenset({lib.MQTT_PROP_TYPE_BYTE, lib.MQTT_PROP_TYPE_SHORT, lib.MQTT_PROP_TYPE_INT,
                        lib.MQTT_PROP_TYPE_VARIABLE_INT})
_INT_LIMITS = {lib.MQTT_PROP_TYPE_BYTE: 0xFF, lib.MQTT_PROP_TYPE_SHORT: 0xFFFF,
               lib.MQTT_PROP_TYPE_INT: 0xFFFFFFFF, lib.MQTT_PROP_TYPE_VARIABLE_INT: 268_435_455}


def mqtt_props(keep: List[Any], properties: Optional[Iterable[Property]]) -> Tuple[Any, int]:
    """A ``struct mg_mqtt_prop[]`` and its length for ``properties`` (NULL, 0 for
    none), each value checked against its property's type; buffers go to ``keep``.

    >>> mqtt_props([], [(MQTT_PROP_CONTENT_TYPE, "text/plain"), (MQTT_PROP_USER_PROPERTY, ("k", "v"))])[1]
    2
    """
    if properties is None:
        return ffi.NULL, 0
    if isinstance(properties, (str, bytes, dict)) or not hasattr(properties, "__iter__"):
        raise TypeError("properties must be a list of (MQTT_PROP_*, value) pairs")
    items = list(properties)
    array = ffi.new("struct mg_mqtt_prop[]", max(len(items), 1))
    keep.append(array)

    def mg_str(value: Any, what: str, binary: bool = False) -> Tuple[Any, int]:
        data = to_bytes(value, what) if binary else check_text(value, what, allow_empty=True)  # text: no NUL
        if len(data) > _MAX_STRING:
            raise ValueError(f"{what} is longer than MQTT allows ({_MAX_STRING} bytes)")
        buffer = ffi.new("char[]", data or b"\0")
        keep.append(buffer)
        return buffer, len(data)

    for slot, item in zip(array, items):
        if isinstance(item, dict):
            prop_id = item.get("id")
            value = item.get("iv") if "iv" in item else ((item.get("key"), item.get("val")) if "key" in item
                                                           else item.get("val"))
        else:
            prop_id, value = item
        kind = -1 if isinstance(prop_id, bool) or not isinstance(prop_id, int) else lib.pm_mqtt_prop_type(prop_id)
        if kind < 0:
            raise ValueError(f"{prop_id!r} is not an MQTT 5 property id (MQTT_PROP_*)")
        slot.id = prop_id
        if kind in _INT_TYPES:
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _INT_LIMITS[kind]:
                raise ValueError(f"property 0x{prop_id:02x} takes an int from 0 to {_INT_LIMITS[kind]}, not {value!r}")
            slot.iv = value
        elif kind == lib.MQTT_PROP_TYPE_STRING_PAIR:
            if not isinstance(value, tuple) or len(value) != 2:
                raise ValueError("a user property takes a (key, value) pair")
            slot.key, slot.val = mg_str(value[0], "user property key"), mg_str(value[1], "user property value")
        else:  # a UTF-8 string or binary data
            slot.val = mg_str(value, f"property 0x{prop_id:02x}", binary=kind == lib.MQTT_PROP_TYPE_BINARY_DATA)
    return array, len(items)


def read_props(message: Any) -> List[Dict[str, Any]]:
    """The MQTT 5 properties of a received ``struct mg_mqtt_message *``, as dicts
    (``id`` and ``iv``, ``val`` or ``key``/``val``), as cymongoose gives them;
    binary values (correlation and authentication data) are bytes."""
    prop = ffi.new("struct mg_mqtt_prop *")
    result: List[Dict[str, Any]] = []
    offset = lib.mg_mqtt_next_prop(message, prop, 0)
    while offset:
        kind = lib.pm_mqtt_prop_type(prop.id)
        entry: Dict[str, Any] = {"id": int(prop.id)}
        if kind in _INT_TYPES:
            entry["iv"] = int(prop.iv)
        else:
            val = ffi.unpack(prop.val.buf, prop.val.len) if prop.val.len else b""
            entry["val"] = val if kind == lib.MQTT_PROP_TYPE_BINARY_DATA else val.decode("utf-8", "replace")
            if kind == lib.MQTT_PROP_TYPE_STRING_PAIR:
                key = ffi.unpack(prop.key.buf, prop.key.len) if prop.key.len else b""
                entry["key"] = key.decode("utf-8", "replace")
        result.append(entry)
        offset = lib.mg_mqtt_next_prop(message, prop, offset)
    return result


def mqtt_opts(keep: List[Any], **fields: Any) -> Any:
    """A ``struct mg_mqtt_opts *``: bytes fields become mg_str slices of buffers
    appended to ``keep``, which must outlive the C call."""
    opts = ffi.new("struct mg_mqtt_opts *")
    keep.append(opts)
    for name, value in fields.items():
        if isinstance(value, bytes):
            if value:
                buffer = ffi.new("char[]", value)
                keep.append(buffer)
                setattr(opts, name, (buffer, len(value)))
        else:
            setattr(opts, name, value)
    return opts


class MqttMethods(ConnectionBase):
    """MQTT methods of :class:`~pymongoose.Connection`."""

    __slots__ = ()

    @on_loop
    def mqtt_pub(self, topic: str, message: BytesLike, qos: int = 0, retain: bool = False, *,
                 properties: Optional[Iterable[Property]] = None) -> int:
        """Publish ``message`` to ``topic``; returns the packet id (0 for QoS 0).

        ``properties`` (MQTT 5 connections): ``(MQTT_PROP_*, value)`` pairs, e.g.
        ``[(MQTT_PROP_CONTENT_TYPE, "application/json"),
        (MQTT_PROP_USER_PROPERTY, ("origin", "kitchen"))]``."""
        keep: List[Any] = []
        opts = mqtt_opts(keep, topic=check_topic(topic, wildcards=False), message=to_bytes(message, "message"),
                         qos=check_qos(qos), retain=bool(retain))
        self._mqtt5_props(opts, keep, properties)
        return int(self._call(lib.mg_mqtt_pub, opts, action="mqtt_pub") or 0)

    @on_loop
    def mqtt_sub(self, topic: str, qos: int = 0, *,
                 properties: Optional[Iterable[Property]] = None) -> None:
        """Subscribe to ``topic`` (wildcards allowed); the broker answers with SUBACK.
        ``properties`` as for :meth:`mqtt_pub` (MQTT 5)."""
        keep: List[Any] = []
        opts = mqtt_opts(keep, topic=check_topic(topic, wildcards=True), qos=check_qos(qos))
        self._mqtt5_props(opts, keep, properties)
        self._call(lib.mg_mqtt_sub, opts, action="mqtt_sub")

    def _mqtt5_props(self, opts: Any, keep: List[Any], properties: Any) -> None:
        if properties is None:
            return
        opts.props, opts.num_props = mqtt_props(keep, properties)
        c = self._c()
        if c is not None and not lib.pm_conn_flags(c) & lib.PM_IS_MQTT5:
            raise ValueError("properties need an MQTT 5 connection (mqtt_connect(..., version=5))")

    @on_loop
    def mqtt_unsub(self, topic: str) -> None:
        """Unsubscribe from ``topic``."""
        keep: List[Any] = []
        opts = mqtt_opts(keep, topic=check_topic(topic, wildcards=True))
        self._call(lib.mg_mqtt_unsub, opts, action="mqtt_unsub")

    @on_loop
    def mqtt_ping(self) -> None:
        """Send PINGREQ (pymongoose also does it on its own when idle)."""
        self._call(lib.mg_mqtt_ping, action="mqtt_ping")

    @on_loop
    def mqtt_pong(self) -> None:
        """Send PINGRESP (a broker answering a client's PINGREQ)."""
        self._call(lib.mg_mqtt_pong, action="mqtt_pong")

    @on_loop
    def mqtt_disconnect(self) -> None:
        """Send DISCONNECT: a clean goodbye, after which the broker drops the last will."""
        keep: List[Any] = []
        self._call(lib.mg_mqtt_disconnect, mqtt_opts(keep), action="mqtt_disconnect")


def parse_subscribe(packet: bytes) -> Tuple[int, List[Tuple[str, int]]]:
    """The packet id and ``(topic, qos)`` pairs of a raw MQTT 3.1.1 SUBSCRIBE packet
    (qos is -1 in an UNSUBSCRIBE). Malformed packets raise ValueError."""
    if len(packet) < 2:
        raise ValueError("packet too short")
    cmd = packet[0] >> 4
    if cmd not in (MQTT_CMD_SUBSCRIBE, MQTT_CMD_UNSUBSCRIBE):
        raise ValueError(f"not a SUBSCRIBE or UNSUBSCRIBE packet (command {cmd})")
    offset, length, shift = 1, 0, 0
    while True:  # remaining length: base-128 varint
        if offset >= len(packet) or shift > 21:
            raise ValueError("bad remaining length")
        byte = packet[offset]
        length |= (byte & 0x7F) << shift
        offset += 1
        shift += 7
        if not byte & 0x80:
            break
    end = offset + length
    if end > len(packet) or length < 2:
        raise ValueError("packet shorter than its remaining length")
    packet_id = packet[offset] << 8 | packet[offset + 1]
    offset += 2
    entries = []
    while offset < end:
        if offset + 2 > end:
            raise ValueError("truncated topic length")
        size = packet[offset] << 8 | packet[offset + 1]
        offset += 2
        if offset + size > end:
            raise ValueError("truncated topic")
        topic = packet[offset:offset + size].decode("utf-8", "replace")
        offset += size
        qos = -1
        if cmd == MQTT_CMD_SUBSCRIBE:
            if offset >= end:
                raise ValueError("missing QoS byte")
            qos = packet[offset] & 0x03
            offset += 1
        entries.append((topic, qos))
    return packet_id, entries
