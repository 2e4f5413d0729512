"""What every method of a connection builds on: its id, its manager, and the one way
to reach its C connection.

The protocol methods (``http``, ``websocket``, ``mqtt``, ``tls``) derive from
:class:`ConnectionBase`; ``connection.py`` puts them together as ``Connection``.
Every call looks the C connection up by id, so a closed connection can never reach
freed memory.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from ._binding import lib
from ._loop import LoopOwner
from .errors import ConnectionClosedError

# A handler, as Manager and Connection take it: handler(conn, event, data).
Handler = Callable[[Any, int, Any], Any]


class ConnectionBase:
    """Identity and C access of a connection (see :class:`~pymongoose.Connection`)."""

    __slots__ = ("_manager", "_id", "_handler", "_mask", "_closed", "_final", "_addresses", "userdata",
                 "__weakref__")

    def __init__(self, manager: LoopOwner, conn_id: int, handler: Optional[Handler], mask: int) -> None:
        self._manager = manager
        self._id = conn_id
        self._handler = handler
        self._mask = mask
        self._closed = False  # set when MG_EV_CLOSE is delivered
        self._final: Any = None  # what it looked like when it closed (connection._Final)
        self._addresses: Any = [None, None]  # local, remote Address, read once
        #: Anything you want to keep with this connection.
        self.userdata: Any = None

    def _c(self) -> Any:
        """The C connection, or None once closed. Valid until control returns to
        Mongoose; only call it on the loop (inside an on_loop method)."""
        mgr = self._manager._ptr
        return None if mgr is None else (lib.pm_conn(mgr, self._id) or None)

    def _call(self, function: Callable[..., Any], *args: Any, action: str = "") -> Any:
        """``function(c, *args)`` on the C connection; once it has closed, nothing
        happens (raises ConnectionClosedError when ``action`` names a call that sends)."""
        c = self._c()
        if c is None:
            if action:
                self._dropped(action)
            return None
        return function(c, *args)

    def _sent(self, sent: bool, action: str) -> bool:
        if not sent:
            self._dropped(action)
        return sent

    def _dropped(self, action: str) -> None:
        raise ConnectionClosedError(f"Connection has been closed: {action}() on connection {self._id}")

    @property
    def id(self) -> int:
        """Mongoose's connection id, unique within the manager."""
        return self._id
