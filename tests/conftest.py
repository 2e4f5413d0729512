"""Fixtures shared by the tests (helpers live in support.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator, List, Optional

import pytest

import pymongoose
from pymongoose import Manager

from support import LoopThread, Mosquitto, Server


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
