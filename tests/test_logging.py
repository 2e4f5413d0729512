"""Mongoose's log, bridged to Python logging."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from pymongoose import MG_LL_DEBUG, MG_LL_ERROR, MG_LL_INFO, MG_LL_NONE, MG_LL_VERBOSE, Manager, log_get, log_set


@pytest.fixture(autouse=True)
def restore_level() -> Any:
    yield
    log_set(MG_LL_NONE)


def test_off_by_default(caplog: Any) -> None:
    caplog.set_level(logging.DEBUG, logger="pymongoose.mongoose")
    assert log_get() == MG_LL_NONE
    with Manager() as mgr:
        mgr.listen("http://127.0.0.1:0")
        mgr.poll(0)
    assert not [r for r in caplog.records if r.name == "pymongoose.mongoose"]


def test_debug_lines_become_records(caplog: Any) -> None:
    caplog.set_level(5, logger="pymongoose.mongoose")
    log_set(MG_LL_DEBUG)
    assert log_get() == MG_LL_DEBUG
    with Manager() as mgr:
        mgr.listen("http://127.0.0.1:0")
        mgr.poll(0)
    records = [r for r in caplog.records if r.name == "pymongoose.mongoose"]
    assert records
    assert all("\n" not in r.getMessage() and r.getMessage() for r in records)
    assert {r.levelno for r in records} <= {logging.DEBUG, logging.INFO, logging.ERROR}
    assert any(r.levelno == logging.DEBUG for r in records)


def test_error_lines_at_error_level(caplog: Any) -> None:
    import socket

    caplog.set_level(logging.DEBUG, logger="pymongoose.mongoose")
    log_set(MG_LL_ERROR)
    with socket.socket() as busy, Manager() as mgr:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(RuntimeError):
            mgr.listen(f"tcp://127.0.0.1:{busy.getsockname()[1]}")
    errors = [r for r in caplog.records if r.name == "pymongoose.mongoose" and r.levelno == logging.ERROR]
    assert errors and any("bind" in r.getMessage() for r in errors)


def test_levels_and_bad_values() -> None:
    for level in (MG_LL_NONE, MG_LL_ERROR, MG_LL_INFO, MG_LL_DEBUG, MG_LL_VERBOSE):
        log_set(level)
        assert log_get() == level
    with pytest.raises(ValueError):
        log_set(99)
    with pytest.raises(TypeError):
        log_set("debug")  # type: ignore[arg-type]
