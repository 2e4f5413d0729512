"""Event numbers, WebSocket opcodes and log levels, as Mongoose defines them.

The values come from ``mongoose.h`` at build time, so they always match the
compiled library.

>>> from pymongoose import MG_EV_HTTP_MSG, event_name
>>> event_name(MG_EV_HTTP_MSG)
'MG_EV_HTTP_MSG'
"""

from __future__ import annotations

from typing import Dict

from ._args import keyword_aliases
from ._binding import lib

__all__ = [
    "MG_EV_ERROR", "MG_EV_OPEN", "MG_EV_POLL", "MG_EV_RESOLVE", "MG_EV_CONNECT", "MG_EV_ACCEPT",
    "MG_EV_TLS_HS", "MG_EV_READ", "MG_EV_WRITE", "MG_EV_CLOSE", "MG_EV_HTTP_HDRS", "MG_EV_HTTP_MSG",
    "MG_EV_WS_OPEN", "MG_EV_WS_MSG", "MG_EV_WS_CTL", "MG_EV_MQTT_CMD", "MG_EV_MQTT_MSG", "MG_EV_MQTT_OPEN",
    "MG_EV_SNTP_TIME", "MG_EV_WAKEUP", "MG_EV_USER", "WEBSOCKET_OP_CONTINUE", "WEBSOCKET_OP_TEXT",
    "WEBSOCKET_OP_BINARY", "WEBSOCKET_OP_CLOSE", "WEBSOCKET_OP_PING", "WEBSOCKET_OP_PONG", "MG_LL_NONE",
    "MG_LL_ERROR", "MG_LL_INFO", "MG_LL_DEBUG", "MG_LL_VERBOSE", "event_name",
]

#: An error; ``data`` is its message (``str``). The connection closes next.
MG_EV_ERROR: int = lib.MG_EV_ERROR
#: A connection was created (before it connects or accepts anything).
MG_EV_OPEN: int = lib.MG_EV_OPEN
#: Once per poll iteration, for every connection; ``data`` is the time in milliseconds.
MG_EV_POLL: int = lib.MG_EV_POLL
#: A client's host name was resolved.
MG_EV_RESOLVE: int = lib.MG_EV_RESOLVE
#: A client connection is established.
MG_EV_CONNECT: int = lib.MG_EV_CONNECT
#: A listener accepted this connection.
MG_EV_ACCEPT: int = lib.MG_EV_ACCEPT
#: The TLS handshake succeeded.
MG_EV_TLS_HS: int = lib.MG_EV_TLS_HS
#: Bytes arrived; ``data`` is how many (``conn.recv_data()`` reads them).
MG_EV_READ: int = lib.MG_EV_READ
#: Bytes were sent; ``data`` is how many.
MG_EV_WRITE: int = lib.MG_EV_WRITE
#: The connection is closing: the last event it gets.
MG_EV_CLOSE: int = lib.MG_EV_CLOSE
#: An HTTP message's head arrived; ``data`` is an :class:`~pymongoose.HttpMessage`.
MG_EV_HTTP_HDRS: int = lib.MG_EV_HTTP_HDRS
#: A whole HTTP request or response arrived; ``data`` is an :class:`~pymongoose.HttpMessage`.
MG_EV_HTTP_MSG: int = lib.MG_EV_HTTP_MSG
#: The WebSocket handshake is done; ``data`` is the :class:`~pymongoose.HttpMessage` of the upgrade.
MG_EV_WS_OPEN: int = lib.MG_EV_WS_OPEN
#: A WebSocket message (text or binary); ``data`` is a :class:`~pymongoose.WsMessage`.
MG_EV_WS_MSG: int = lib.MG_EV_WS_MSG
#: A WebSocket control frame (ping, pong, close); ``data`` is a :class:`~pymongoose.WsMessage`.
MG_EV_WS_CTL: int = lib.MG_EV_WS_CTL
#: Any MQTT packet (a broker's view); ``data`` is a :class:`~pymongoose.MqttMessage`.
MG_EV_MQTT_CMD: int = lib.MG_EV_MQTT_CMD
#: An MQTT PUBLISH arrived; ``data`` is a :class:`~pymongoose.MqttMessage`.
MG_EV_MQTT_MSG: int = lib.MG_EV_MQTT_MSG
#: The broker answered CONNECT; ``data`` is the CONNACK code (0: accepted).
MG_EV_MQTT_OPEN: int = lib.MG_EV_MQTT_OPEN
#: An SNTP answer; ``data`` is the time in milliseconds since the epoch.
MG_EV_SNTP_TIME: int = lib.MG_EV_SNTP_TIME
#: ``Manager.wakeup()`` reached this connection; ``data`` is the payload (``bytes``).
MG_EV_WAKEUP: int = lib.MG_EV_WAKEUP
#: The first number free for an application's own events.
MG_EV_USER: int = lib.MG_EV_USER

#: WebSocket opcode: a continuation frame.
WEBSOCKET_OP_CONTINUE: int = lib.WEBSOCKET_OP_CONTINUE
#: WebSocket opcode: a text message (UTF-8).
WEBSOCKET_OP_TEXT: int = lib.WEBSOCKET_OP_TEXT
#: WebSocket opcode: a binary message.
WEBSOCKET_OP_BINARY: int = lib.WEBSOCKET_OP_BINARY
#: WebSocket opcode: a close frame.
WEBSOCKET_OP_CLOSE: int = lib.WEBSOCKET_OP_CLOSE
#: WebSocket opcode: a ping.
WEBSOCKET_OP_PING: int = lib.WEBSOCKET_OP_PING
#: WebSocket opcode: a pong.
WEBSOCKET_OP_PONG: int = lib.WEBSOCKET_OP_PONG

#: Log level for :func:`~pymongoose.log_set`: nothing (the default).
MG_LL_NONE: int = lib.MG_LL_NONE
#: Log level: errors only.
MG_LL_ERROR: int = lib.MG_LL_ERROR
#: Log level: errors and information.
MG_LL_INFO: int = lib.MG_LL_INFO
#: Log level: errors, information and debugging detail.
MG_LL_DEBUG: int = lib.MG_LL_DEBUG
#: Log level: everything, with hex dumps of what is sent and received.
MG_LL_VERBOSE: int = lib.MG_LL_VERBOSE

_EVENT_NAMES: Dict[int, str] = {
    value: name for name, value in globals().items() if name.startswith("MG_EV_")
}


@keyword_aliases(ev="event")  # the Cython bindings' name
def event_name(event: int) -> str:
    """Return the constant's name for any event number: ``MG_EV_USER+n`` past the
    end, ``MG_EV_UNKNOWN(n)`` for a number no event has (as cymongoose names them).

    >>> event_name(MG_EV_USER + 2)
    'MG_EV_USER+2'
    >>> event_name(-5)
    'MG_EV_UNKNOWN(-5)'
    """
    name = _EVENT_NAMES.get(event)
    if name is not None:
        return name
    if isinstance(event, int) and event > MG_EV_USER:
        return f"MG_EV_USER+{event - MG_EV_USER}"
    return f"MG_EV_UNKNOWN({event!r})"
