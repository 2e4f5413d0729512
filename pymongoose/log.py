"""Mongoose's own log, delivered to Python :mod:`logging`.

Mongoose's log is off by default. Turn it on with :func:`log_set`; each line then
becomes one record of the logger ``pymongoose.mongoose`` at the matching level::

    import logging
    from pymongoose import MG_LL_DEBUG, log_set

    logging.basicConfig(level=logging.DEBUG)
    log_set(MG_LL_DEBUG)
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from typing import Iterator, List

from ._args import int_arg
from ._binding import ffi, lib
from .events import MG_LL_DEBUG, MG_LL_ERROR, MG_LL_INFO, MG_LL_NONE, MG_LL_VERBOSE

__all__ = ["log_set", "log_get"]

mongoose_logger = logging.getLogger("pymongoose.mongoose")

# Mongoose levels -> logging levels. VERBOSE is below DEBUG.
_VERBOSE = 5
_LEVELS = {MG_LL_ERROR: logging.ERROR, MG_LL_INFO: logging.INFO,
           MG_LL_DEBUG: logging.DEBUG, MG_LL_VERBOSE: _VERBOSE}

# "<uptime, hex, padded to 6> <level> <file>:<line>:<function> <message>"
_LINE = re.compile(r"^\s*[0-9a-f]+ +(\d) (\S+)\s+(.*)$", re.DOTALL)

_capture = threading.local()


def log_set(level: int) -> None:
    """Set Mongoose's log level, one of ``MG_LL_NONE`` ... ``MG_LL_VERBOSE``.

    >>> log_set(MG_LL_NONE)
    """
    int_arg(level, "level (MG_LL_NONE to MG_LL_VERBOSE)", MG_LL_NONE, MG_LL_VERBOSE)
    lib.mg_log_level = level


def log_get() -> int:
    """Return Mongoose's current log level.

    >>> log_get() == MG_LL_NONE
    True
    """
    return int(lib.mg_log_level)


@contextlib.contextmanager
def capture_errors() -> Iterator[List[str]]:
    """Collect the messages of Mongoose's error lines emitted by this thread inside
    the block, whatever the log level, so that a failed call can say why.

    Lines are still logged only if the user's log level asks for them."""
    captured: List[str] = []
    outer = getattr(_capture, "state", None)
    user_level = lib.mg_log_level
    _capture.state = (captured, user_level >= MG_LL_ERROR)
    if user_level < MG_LL_ERROR:
        lib.mg_log_level = MG_LL_ERROR
    try:
        yield captured
    finally:
        lib.mg_log_level = user_level
        _capture.state = outer


@ffi.def_extern()
def pm_on_log(line, length):  # type: ignore[no-untyped-def]
    text = ffi.unpack(line, length).decode("utf-8", "replace")
    match = _LINE.match(text)
    level, origin, message = (int(match[1]), match[2], match[3]) if match else (MG_LL_INFO, "", text)
    state = getattr(_capture, "state", None)
    if state is not None:
        captured, forward = state
        if level == MG_LL_ERROR:
            captured.append(message)
        if not forward:
            return
    mongoose_logger.log(_LEVELS.get(level, logging.INFO), "%s", message,
                        extra={"mongoose_origin": origin})
