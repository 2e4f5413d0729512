"""pymongoose: Python bindings for Mongoose, the embedded networking library.

A cffi binding that runs on CPython and PyPy; a drop-in replacement for the Cython
binding of the same name.

>>> from pymongoose import Manager, MG_EV_HTTP_MSG
>>> def handler(conn, event, data):
...     if event == MG_EV_HTTP_MSG:
...         conn.reply(200, "Hello, World!")
>>> with Manager(handler) as mgr:
...     listener = mgr.listen("http://127.0.0.1:0", http=True)
...     listener.local_addr.port > 0
True
"""

from typing import TYPE_CHECKING

from .connection import Address, Connection, EventHandler
from .errors import (
    ClientDisconnected,
    ConnectError,
    ConnectionClosedError,
    InvalidResponseError,
    LifespanError,
    ListenError,
    ManagerClosedError,
    MessageExpiredError,
    MongooseError,
    WrongThreadError,
)
from .events import (
    MG_EV_ACCEPT,
    MG_EV_CLOSE,
    MG_EV_CONNECT,
    MG_EV_ERROR,
    MG_EV_HTTP_HDRS,
    MG_EV_HTTP_MSG,
    MG_EV_MQTT_CMD,
    MG_EV_MQTT_MSG,
    MG_EV_MQTT_OPEN,
    MG_EV_OPEN,
    MG_EV_POLL,
    MG_EV_READ,
    MG_EV_RESOLVE,
    MG_EV_SNTP_TIME,
    MG_EV_TLS_HS,
    MG_EV_USER,
    MG_EV_WAKEUP,
    MG_EV_WRITE,
    MG_EV_WS_CTL,
    MG_EV_WS_MSG,
    MG_EV_WS_OPEN,
    MG_LL_DEBUG,
    MG_LL_ERROR,
    MG_LL_INFO,
    MG_LL_NONE,
    MG_LL_VERBOSE,
    WEBSOCKET_OP_BINARY,
    WEBSOCKET_OP_CLOSE,
    WEBSOCKET_OP_CONTINUE,
    WEBSOCKET_OP_PING,
    WEBSOCKET_OP_PONG,
    WEBSOCKET_OP_TEXT,
    event_name,
)
from .http import HttpLimits
from .jsonpath import json_get, json_get_bool, json_get_long, json_get_num, json_get_str
from .log import log_get, log_set
from .manager import Manager
from .messages import HttpMessage, MqttMessage, WsMessage
from .mqtt import (
    MQTT_CMD_CONNACK,
    MQTT_CMD_CONNECT,
    MQTT_CMD_DISCONNECT,
    MQTT_CMD_PINGREQ,
    MQTT_CMD_PINGRESP,
    MQTT_CMD_PUBACK,
    MQTT_CMD_PUBCOMP,
    MQTT_CMD_PUBLISH,
    MQTT_CMD_PUBREC,
    MQTT_CMD_PUBREL,
    MQTT_CMD_SUBACK,
    MQTT_CMD_SUBSCRIBE,
    MQTT_CMD_UNSUBACK,
    MQTT_CMD_UNSUBSCRIBE,
    MQTT_PROP_ASSIGNED_CLIENT_IDENTIFIER,
    MQTT_PROP_AUTHENTICATION_DATA,
    MQTT_PROP_AUTHENTICATION_METHOD,
    MQTT_PROP_CONTENT_TYPE,
    MQTT_PROP_CORRELATION_DATA,
    MQTT_PROP_MAXIMUM_PACKET_SIZE,
    MQTT_PROP_MAXIMUM_QOS,
    MQTT_PROP_MESSAGE_EXPIRY_INTERVAL,
    MQTT_PROP_PAYLOAD_FORMAT_INDICATOR,
    MQTT_PROP_REASON_STRING,
    MQTT_PROP_RECEIVE_MAXIMUM,
    MQTT_PROP_REQUEST_PROBLEM_INFORMATION,
    MQTT_PROP_REQUEST_RESPONSE_INFORMATION,
    MQTT_PROP_RESPONSE_INFORMATION,
    MQTT_PROP_RESPONSE_TOPIC,
    MQTT_PROP_RETAIN_AVAILABLE,
    MQTT_PROP_SERVER_KEEP_ALIVE,
    MQTT_PROP_SERVER_REFERENCE,
    MQTT_PROP_SESSION_EXPIRY_INTERVAL,
    MQTT_PROP_SHARED_SUBSCRIPTION_AVAILABLE,
    MQTT_PROP_SUBSCRIPTION_IDENTIFIER,
    MQTT_PROP_SUBSCRIPTION_IDENTIFIER_AVAILABLE,
    MQTT_PROP_TOPIC_ALIAS,
    MQTT_PROP_TOPIC_ALIAS_MAXIMUM,
    MQTT_PROP_TYPE_BINARY_DATA,
    MQTT_PROP_TYPE_BYTE,
    MQTT_PROP_TYPE_INT,
    MQTT_PROP_TYPE_SHORT,
    MQTT_PROP_TYPE_STRING,
    MQTT_PROP_TYPE_STRING_PAIR,
    MQTT_PROP_TYPE_VARIABLE_INT,
    MQTT_PROP_USER_PROPERTY,
    MQTT_PROP_WILDCARD_SUBSCRIPTION_AVAILABLE,
    MQTT_PROP_WILL_DELAY_INTERVAL,
)
from .multipart import http_parse_multipart, iter_multipart
from .rpc import Rpc, RpcReq
from .timers import Timer
from .tls import TLS_BACKEND, TlsError, TlsOpts
from .urls import url_decode, url_encode, url_host, url_is_ssl, url_pass, url_port, url_uri, url_user
from .utils import (
    base64_decode,
    base64_encode,
    crc32,
    hmac_sha256,
    http_var,
    match,
    md5,
    millis,
    random_bytes,
    random_str,
    sha1,
    sha256,
)

__version__ = "0.1.0"


if TYPE_CHECKING:  # typed as what it is; imported on first use (below)
    from .aio import AsyncManager


def __getattr__(name: str) -> object:
    """``AsyncManager`` is exported here, as cymongoose does, but imported on first
    use: importing asyncio would slow every other program's start."""
    if name == "AsyncManager":
        from .aio import AsyncManager

        return AsyncManager
    raise AttributeError(f"module 'pymongoose' has no attribute {name!r}")

__all__ = [
    "Address", "AsyncManager", "ClientDisconnected", "Connection", "ConnectError", "ConnectionClosedError",
    "EventHandler",
    "HttpLimits", "HttpMessage", "InvalidResponseError", "LifespanError", "ListenError",
    "Manager", "ManagerClosedError", "Rpc", "RpcReq", "MessageExpiredError", "MongooseError", "MqttMessage",
    "Timer", "TLS_BACKEND", "TlsError", "TlsOpts", "WrongThreadError", "WsMessage",
    "MQTT_CMD_CONNACK", "MQTT_CMD_CONNECT", "MQTT_CMD_DISCONNECT", "MQTT_CMD_PINGREQ", "MQTT_CMD_PINGRESP",
    "MQTT_CMD_PUBACK", "MQTT_CMD_PUBCOMP", "MQTT_CMD_PUBLISH", "MQTT_CMD_PUBREC", "MQTT_CMD_PUBREL",
    "MQTT_CMD_SUBACK", "MQTT_CMD_SUBSCRIBE", "MQTT_CMD_UNSUBACK", "MQTT_CMD_UNSUBSCRIBE",
    "MQTT_PROP_ASSIGNED_CLIENT_IDENTIFIER", "MQTT_PROP_AUTHENTICATION_DATA", "MQTT_PROP_AUTHENTICATION_METHOD",
    "MQTT_PROP_CONTENT_TYPE", "MQTT_PROP_CORRELATION_DATA", "MQTT_PROP_MAXIMUM_PACKET_SIZE",
    "MQTT_PROP_MAXIMUM_QOS", "MQTT_PROP_MESSAGE_EXPIRY_INTERVAL", "MQTT_PROP_PAYLOAD_FORMAT_INDICATOR",
    "MQTT_PROP_REASON_STRING", "MQTT_PROP_RECEIVE_MAXIMUM", "MQTT_PROP_REQUEST_PROBLEM_INFORMATION",
    "MQTT_PROP_REQUEST_RESPONSE_INFORMATION", "MQTT_PROP_RESPONSE_INFORMATION", "MQTT_PROP_RESPONSE_TOPIC",
    "MQTT_PROP_RETAIN_AVAILABLE", "MQTT_PROP_SERVER_KEEP_ALIVE", "MQTT_PROP_SERVER_REFERENCE",
    "MQTT_PROP_SESSION_EXPIRY_INTERVAL", "MQTT_PROP_SHARED_SUBSCRIPTION_AVAILABLE",
    "MQTT_PROP_SUBSCRIPTION_IDENTIFIER", "MQTT_PROP_SUBSCRIPTION_IDENTIFIER_AVAILABLE", "MQTT_PROP_TOPIC_ALIAS",
    "MQTT_PROP_TOPIC_ALIAS_MAXIMUM", "MQTT_PROP_USER_PROPERTY", "MQTT_PROP_WILDCARD_SUBSCRIPTION_AVAILABLE",
    "MQTT_PROP_WILL_DELAY_INTERVAL",
    "MQTT_PROP_TYPE_BINARY_DATA", "MQTT_PROP_TYPE_BYTE", "MQTT_PROP_TYPE_INT", "MQTT_PROP_TYPE_SHORT",
    "MQTT_PROP_TYPE_STRING", "MQTT_PROP_TYPE_STRING_PAIR", "MQTT_PROP_TYPE_VARIABLE_INT",
    "MG_EV_ACCEPT", "MG_EV_CLOSE", "MG_EV_CONNECT", "MG_EV_ERROR", "MG_EV_HTTP_HDRS",
    "MG_EV_HTTP_MSG", "MG_EV_MQTT_CMD", "MG_EV_MQTT_MSG", "MG_EV_MQTT_OPEN", "MG_EV_OPEN",
    "MG_EV_POLL", "MG_EV_READ", "MG_EV_RESOLVE", "MG_EV_SNTP_TIME", "MG_EV_TLS_HS",
    "MG_EV_USER", "MG_EV_WAKEUP", "MG_EV_WRITE", "MG_EV_WS_CTL", "MG_EV_WS_MSG",
    "MG_EV_WS_OPEN", "MG_LL_DEBUG", "MG_LL_ERROR", "MG_LL_INFO", "MG_LL_NONE",
    "MG_LL_VERBOSE", "WEBSOCKET_OP_BINARY", "WEBSOCKET_OP_CLOSE", "WEBSOCKET_OP_CONTINUE",
    "WEBSOCKET_OP_PING", "WEBSOCKET_OP_PONG", "WEBSOCKET_OP_TEXT",
    "event_name", "http_parse_multipart", "iter_multipart", "json_get", "json_get_bool",
    "json_get_long", "json_get_num", "json_get_str", "log_get", "log_set", "url_decode",
    "url_encode", "url_host", "url_is_ssl", "url_pass", "url_port", "url_uri", "url_user",
    "base64_decode", "base64_encode", "crc32", "hmac_sha256", "http_var", "match", "md5", "millis",
    "random_bytes", "random_str", "sha1", "sha256",
    "__version__",
]
