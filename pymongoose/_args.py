"""The one way an integer argument of the public API is checked.

A bool is refused although it is an int: ``True`` is never a meaningful count,
port or timeout, and accepting it would hide a mistake.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Optional, TypeVar, cast

F = TypeVar("F", bound=Callable[..., Any])


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


def keyword_aliases(**aliases: str) -> Callable[[F], F]:
    """Let ``function`` also take each keyword ``alias=`` under its name here
    (``aliases`` maps alias -> name): the Cython bindings named some arguments
    differently, and calls by keyword written for them must work unchanged.

    >>> @keyword_aliases(ev="event")
    ... def name_of(event: int) -> str:
    ...     return str(event)
    >>> name_of(ev=3), name_of(event=3), name_of(3)
    ('3', '3', '3')
    >>> name_of(3, ev=4)
    Traceback (most recent call last):
    TypeError: name_of() got 'ev' and 'event', which are the same argument
    """
    def wrap(function: F) -> F:
        @functools.wraps(function)
        def call(*args: Any, **kwargs: Any) -> Any:
            for alias, name in aliases.items():
                if alias in kwargs:
                    if name in kwargs or _given_by_position(function, name, len(args)):
                        raise TypeError(f"{function.__name__}() got {alias!r} and {name!r}, which are the same "
                                        f"argument")
                    kwargs[name] = kwargs.pop(alias)
            return function(*args, **kwargs)
        call.__keyword_aliases__ = dict(aliases)  # type: ignore[attr-defined]  # for .ci/compat_check.py
        return cast(F, call)
    return wrap


def _given_by_position(function: Callable[..., Any], name: str, given: int) -> bool:
    """True if parameter ``name`` of ``function`` is among the first ``given``."""
    code = function.__code__
    names = code.co_varnames[:code.co_argcount]
    return name in names and names.index(name) < given
