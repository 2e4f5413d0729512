"""A request body handed to the application as it arrives.

A body over ``STREAM_BODY_OVER`` bytes with a Content-Length (C delivers
``MG_EV_HTTP_HDRS`` for no other: ``pm_conn_set_hdrs_over``) is not buffered
whole: the application starts at once and reads it in pieces. Consuming the
receive buffer detaches Mongoose's parser from the connection; :func:`hand_back`
gives it back once the body is read, for the next request. While the application
reads slower than the client sends, reading pauses (:func:`pause`).
"""

from __future__ import annotations

from typing import Optional

from .._binding import lib
from ..connection import Connection
from ..messages import HttpMessage
from .config import STREAM_BODY_OVER


def streamed_length(conn: Connection, message: HttpMessage) -> Optional[int]:
    """The body's declared length if it is to be streamed, else None (it is small,
    chunked, or its request is pipelined behind another: buffered as usual)."""
    length = message.header("Content-Length")
    if length is None or not length.isdigit() or int(length) <= STREAM_BODY_OVER:
        return None
    head = message.head_bytes
    return int(length) if conn.recv_data(len(head)) == head else None


def take_over(conn: Connection, message: HttpMessage, length: int) -> bytes:
    """Detach Mongoose's parser; return the part of the body already received."""
    head_len = len(message.head_bytes)
    first = conn.recv_data(head_len + length)[head_len:]
    conn.consume(head_len + len(first))
    return first


def pull(conn: Connection, remaining: int) -> bytes:
    """What arrived of the body, up to ``remaining`` bytes (the next request's
    bytes stay in the buffer)."""
    data = conn.recv_data(remaining)
    conn.consume(len(data))
    return data


def hand_back(conn: Connection, response_pending: bool) -> None:
    """The body is read: what follows is Mongoose's to parse, once the response is
    complete (``response_pending``: it is not yet)."""
    conn._call(lib.pm_http_resume, response_pending)


def pause(conn: Connection) -> None:
    """Stop reading from the client: the application has too much unread."""
    conn.is_full = True


def resume(conn: Connection) -> None:
    """Read from the client again (nothing to do once it has gone)."""
    if not conn.is_closed:
        conn.is_full = False
