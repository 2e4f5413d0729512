"""The ASGI lifespan protocol: startup before the server listens, shutdown after."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable, Dict, MutableMapping, Optional

from ..errors import LifespanError

logger = logging.getLogger("pymongoose.asgi")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]


class Lifespan:
    """The lifespan protocol: one task running the application with a lifespan
    scope, told ``startup`` before the server listens and ``shutdown`` after."""

    def __init__(self, app: ASGIApp, state: Dict[str, Any], required: bool) -> None:
        self._app = app
        self._state = state
        self._required = required
        self._inbox: "asyncio.Queue[Message]" = asyncio.Queue()
        self._replies: "asyncio.Queue[Message]" = asyncio.Queue()
        self._task: Optional[asyncio.Task[None]] = None
        self._unsupported = False

    async def startup(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": self._state}
        self._task = asyncio.get_running_loop().create_task(self._run(scope))
        await self._inbox.put({"type": "lifespan.startup"})
        reply = await self._reply()
        if reply is None:
            return
        if reply["type"] == "lifespan.startup.failed":
            raise LifespanError(f"ASGI lifespan startup failed: {reply.get('message', '')}")
        if reply["type"] != "lifespan.startup.complete":
            raise LifespanError(f"ASGI lifespan startup: unexpected message {reply['type']!r}")

    async def shutdown(self) -> None:
        if self._unsupported or self._task is None or self._task.done():
            return
        await self._inbox.put({"type": "lifespan.shutdown"})
        reply = await self._reply()
        if reply is not None and reply["type"] == "lifespan.shutdown.failed":
            logger.error("ASGI lifespan shutdown failed: %s", reply.get("message", ""))

    async def _reply(self) -> Optional[Message]:
        """The application's answer, or None if it ended without one."""
        assert self._task is not None
        answer = asyncio.ensure_future(self._replies.get())
        await asyncio.wait([answer, self._task], return_when=asyncio.FIRST_COMPLETED)
        if answer.done():
            return answer.result()
        answer.cancel()
        error = self._task.exception() if not self._task.cancelled() else None
        if error is not None and not self._required:
            self._unsupported = True
            logger.info("ASGI 'lifespan' protocol appears unsupported (%s: %s)", type(error).__name__, error)
            return None
        if error is not None:
            raise LifespanError(f"ASGI lifespan failed: {type(error).__name__}: {error}") from error
        if self._required:
            raise LifespanError("ASGI lifespan: the application returned without answering")
        self._unsupported = True
        return None

    async def _run(self, scope: Scope) -> None:
        async def receive() -> Message:
            return await self._inbox.get()

        async def send(message: Message) -> None:
            await self._replies.put(message)

        await self._app(scope, receive, send)
