"""Exceptions raised by pymongoose.

Each one derives from :class:`MongooseError` and from the builtin that the Cython
binding raised in the same situation, so callers may catch either.
"""

__all__ = [
    "MongooseError", "ManagerClosedError", "ListenError", "ConnectError", "ConnectionClosedError",
    "MessageExpiredError", "WrongThreadError", "LifespanError", "ClientDisconnected", "InvalidResponseError",
]


class MongooseError(Exception):
    """Base class of every pymongoose exception."""


class ManagerClosedError(MongooseError, RuntimeError):
    """The :class:`~pymongoose.Manager` was closed; it cannot be used again."""


class ListenError(MongooseError, RuntimeError, ValueError):
    """A listener could not be created; the message names the URL and the cause.

    A RuntimeError as the Cython binding raises, and a ValueError as earlier
    releases of this package raised for a malformed URL: code written for either
    catches it."""


class ConnectError(MongooseError, RuntimeError, ValueError):
    """An outbound connection could not be started; names the URL and the cause.
    (RuntimeError and ValueError, as :class:`ListenError`.)"""


class ConnectionClosedError(MongooseError, RuntimeError):
    """A call that sends (``send``, ``reply``, ``ws_send``...) was made on a connection
    whose ``MG_EV_CLOSE`` has been delivered. A RuntimeError, as with cymongoose;
    the message starts "Connection has been closed" and names the connection."""


class MessageExpiredError(MongooseError, RuntimeError):
    """A message view was used after the callback that received it returned.

    Message objects point into Mongoose's receive buffer, which is reused once the
    callback returns. Copy what you need (``msg.body_bytes``...) inside the handler.
    """


class WrongThreadError(MongooseError, RuntimeError):
    """Kept for programs that catch it: calls from other threads are now carried
    over to the polling thread (see docs/threads.md) instead."""


class LifespanError(MongooseError, RuntimeError):
    """An ASGI application's lifespan startup failed (``lifespan.startup.failed``, or
    an exception with ``lifespan="on"``): the server does not start. A RuntimeError,
    as cymongoose raises."""


class ClientDisconnected(MongooseError, OSError):
    """An ASGI WebSocket message was sent after the client went away (ASGI 2.4 asks
    for an ``OSError``; Starlette turns it into ``WebSocketDisconnect``)."""


class InvalidResponseError(MongooseError, ValueError):
    """A WSGI or ASGI application gave a response head that could split or corrupt
    the response: a status outside 100-999, a control character in the reason, a
    header name that is not a token, CR, LF or NUL in a value. Raised to the
    application where it gives the head; unhandled, the server logs it and
    answers 500."""
