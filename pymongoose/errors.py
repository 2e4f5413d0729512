"""Exceptions raised by pymongoose.

Each one derives from :class:`MongooseError` and from the builtin that the Cython
binding raised in the same situation, so callers may catch either.
"""


class MongooseError(Exception):
    """Base class of every pymongoose exception."""


class ManagerClosedError(MongooseError, RuntimeError):
    """The :class:`~pymongoose.Manager` was closed; it cannot be used again."""


class ListenError(MongooseError, RuntimeError):
    """A listener could not be created; the message names the URL and the cause."""


class ConnectError(MongooseError, RuntimeError):
    """An outbound connection could not be started; names the URL and the cause."""


class MessageExpiredError(MongooseError, RuntimeError):
    """A message view was used after the callback that received it returned.

    Message objects point into Mongoose's receive buffer, which is reused once the
    callback returns. Copy what you need (``msg.body_bytes``...) inside the handler.
    """


class WrongThreadError(MongooseError, RuntimeError):
    """A call that touches the event loop came from a thread other than the one
    polling it. Hand the work over with :meth:`Manager.wakeup` or
    :meth:`Manager.call_soon_threadsafe` instead."""
