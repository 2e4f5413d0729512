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

from typing import TYPE_CHECKING, Any, List, Tuple

from ._binding import ffi, lib
from ._loop import on_loop
from ._text import BytesLike, to_bytes

if TYPE_CHECKING:
    from .connection import Connection

# MQTT 5 property value types, as Mongoose numbers them.
MQTT_PROP_TYPE_BYTE = lib.MQTT_PROP_TYPE_BYTE
MQTT_PROP_TYPE_STRING = lib.MQTT_PROP_TYPE_STRING
MQTT_PROP_TYPE_STRING_PAIR = lib.MQTT_PROP_TYPE_STRING_PAIR
MQTT_PROP_TYPE_BINARY_DATA = lib.MQTT_PROP_TYPE_BINARY_DATA
MQTT_PROP_TYPE_VARIABLE_INT = lib.MQTT_PROP_TYPE_VARIABLE_INT
MQTT_PROP_TYPE_INT = lib.MQTT_PROP_TYPE_INT
MQTT_PROP_TYPE_SHORT = lib.MQTT_PROP_TYPE_SHORT

MQTT_CMD_CONNECT = 1
MQTT_CMD_CONNACK = 2
MQTT_CMD_PUBLISH = 3
MQTT_CMD_PUBACK = 4
MQTT_CMD_PUBREC = 5
MQTT_CMD_PUBREL = 6
MQTT_CMD_PUBCOMP = 7
MQTT_CMD_SUBSCRIBE = 8
MQTT_CMD_SUBACK = 9
MQTT_CMD_UNSUBSCRIBE = 10
MQTT_CMD_UNSUBACK = 11
MQTT_CMD_PINGREQ = 12
MQTT_CMD_PINGRESP = 13
MQTT_CMD_DISCONNECT = 14

_MAX_STRING = 65535  # MQTT strings carry a 16-bit length


def _qos(qos: int) -> int:
    if isinstance(qos, bool) or qos not in (0, 1, 2):
        raise ValueError(f"qos must be 0, 1 or 2, not {qos!r}")
    return qos


def _string(value: BytesLike, what: str, allow_empty: bool = False) -> bytes:
    data = to_bytes(value, what)
    if not data and not allow_empty:
        raise ValueError(f"{what} must not be empty")
    if len(data) > _MAX_STRING:
        raise ValueError(f"{what} is longer than MQTT allows ({_MAX_STRING} bytes)")
    if b"\0" in data:
        raise ValueError(f"{what} must not contain NUL characters")
    return data


def _topic(topic: BytesLike, wildcards: bool) -> bytes:
    data = _string(topic, "topic")
    if not wildcards and (b"+" in data or b"#" in data):
        raise ValueError("a topic to publish to must not contain the wildcards + or #")
    return data


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


class MqttMethods:
    """MQTT methods of :class:`~pymongoose.Connection`."""

    __slots__ = ()

    @on_loop
    def mqtt_pub(self: "Connection", topic: str, message: BytesLike, qos: int = 0, retain: bool = False) -> int:
        """Publish ``message`` to ``topic``; returns the packet id (0 for QoS 0)."""
        keep: List[Any] = []
        opts = mqtt_opts(keep, topic=_topic(topic, wildcards=False), message=to_bytes(message, "message"),
                         qos=_qos(qos), retain=bool(retain))
        return int(self._call(lib.mg_mqtt_pub, opts, action="mqtt_pub") or 0)

    @on_loop
    def mqtt_sub(self: "Connection", topic: str, qos: int = 0) -> None:
        """Subscribe to ``topic`` (wildcards allowed); the broker answers with SUBACK."""
        keep: List[Any] = []
        opts = mqtt_opts(keep, topic=_topic(topic, wildcards=True), qos=_qos(qos))
        self._call(lib.mg_mqtt_sub, opts, action="mqtt_sub")

    @on_loop
    def mqtt_unsub(self: "Connection", topic: str) -> None:
        """Unsubscribe from ``topic``."""
        keep: List[Any] = []
        opts = mqtt_opts(keep, topic=_topic(topic, wildcards=True))
        self._call(lib.mg_mqtt_unsub, opts, action="mqtt_unsub")

    @on_loop
    def mqtt_ping(self: "Connection") -> None:
        """Send PINGREQ (pymongoose also does it on its own when idle)."""
        self._call(lib.mg_mqtt_ping, action="mqtt_ping")

    @on_loop
    def mqtt_pong(self: "Connection") -> None:
        """Send PINGRESP (a broker answering a client's PINGREQ)."""
        self._call(lib.mg_mqtt_pong, action="mqtt_pong")

    @on_loop
    def mqtt_disconnect(self: "Connection") -> None:
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
