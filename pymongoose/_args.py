"""The one way an integer argument of the public API is checked.

A bool is refused although it is an int: ``True`` is never a meaningful count,
port or timeout, and accepting it would hide a mistake.
"""

from __future__ import annotations

from typing import Any, Optional


def int_arg(value: Any, what: str, minimum: Optional[int] = None, maximum: Optional[int] = None) -> int:
    """``value`` as an int, if it is one (not a bool) within ``[minimum, maximum]``.

    :raises TypeError: for anything that is not an int.
    :raises ValueError: for an int out of range, naming the range.

    >>> int_arg(8080, "port", 0, 65535)
    8080
    >>> int_arg(True, "port")
    Traceback (most recent call last):
    TypeError: port must be an int, not bool
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        if maximum is None:
            wanted = f">= {minimum}"
        elif minimum is None:
            wanted = f"<= {maximum}"
        else:
            wanted = f"from {minimum} to {maximum}"
        raise ValueError(f"{what} must be {wanted}, not {value}")
    return int(value)
