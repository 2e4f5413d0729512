"""Fixtures shared by the tests (helpers live in support.py)."""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any, Callable, Iterator, List, Optional

import pytest

import pymongoose
from pymongoose import Manager

from support import LoopThread, Mosquitto, Server

if sys.implementation.name == "pypy" and sys.pypy_version_info < (7, 3, 18):  # type: ignore[attr-defined]
    # PyPy before 7.3.18 races when two threads join one thread (pypy/pypy#5079,
    # fixed by #5080): the second joiner's lock.release() raises "cannot release
    # un-acquired lock". websockets' sync client joins its reader thread that way
    # on close. Patched for the tests as PyPy fixed it: the thread has ended anyway.
    _join_wait = threading.Thread._wait_for_tstate_lock  # type: ignore[attr-defined]

    def _wait_for_tstate_lock(self: threading.Thread, block: bool = True, timeout: float = -1) -> None:
        try:
            _join_wait(self, block, timeout)
        except RuntimeError as error:
            if "un-acquired lock" not in str(error):
                raise
            self._is_stopped = True  # type: ignore[attr-defined]
            self._tstate_lock = None  # type: ignore[attr-defined]

    threading.Thread._wait_for_tstate_lock = _wait_for_tstate_lock  # type: ignore[attr-defined]


def pytest_report_header(config: Any) -> str:
    return f"pymongoose {pymongoose.__version__} from {Path(pymongoose.__file__).parent}"


@pytest.fixture
def serve() -> Iterator[Callable[..., Server]]:
    """``serve(handler, url="http://127.0.0.1:0", **listen_kwargs)`` starts a server
    polled in the background; it is stopped and closed after the test."""
    started: List[Server] = []

    def start(handler: Callable[..., Any], url: str = "http://127.0.0.1:0", manager: Optional[Manager] = None,
              **kwargs: Any) -> Server:
        mgr = manager or Manager()
        listener = mgr.listen(url, handler, **kwargs)
        server = Server(mgr, listener, LoopThread(mgr))
        server.loop.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.loop.stop()
        server.manager.close()


@pytest.fixture
def manager() -> Iterator[Manager]:
    """A manager polled by the test itself; closed afterwards."""
    mgr = Manager()
    yield mgr
    mgr.close()


@pytest.fixture(scope="module")
def broker(tmp_path_factory: Any) -> Iterator[Mosquitto]:
    """A mosquitto broker for the module's tests (skips if mosquitto is missing)."""
    server = Mosquitto(tmp_path_factory.mktemp("mosquitto"))
    yield server
    server.stop()
