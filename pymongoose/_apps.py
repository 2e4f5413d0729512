"""Finding an application by name, as servers' command lines do: ``module:attribute``."""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any, Callable, Dict


def load_app(spec: str, factory: bool = False) -> Callable[..., Any]:
    """The application (WSGI or ASGI) named ``module:attribute`` (``module`` alone:
    ``app``); with ``factory``, what calling that attribute with no arguments returns
    (``create_app()``)."""
    module_name, _, attribute = spec.partition(":")
    sys.path.insert(0, os.getcwd())  # as gunicorn does: the application beside you
    app: Any = importlib.import_module(module_name)
    for name in (attribute or "app").split("."):
        app = getattr(app, name)
    if not callable(app):
        raise TypeError(f"{spec} is not callable")
    if factory:
        app = app()
        if not callable(app):
            raise TypeError(f"{spec}() returned {type(app).__name__}, not an application")
    return app  # type: ignore[no-any-return]


def read_env_file(path: str) -> Dict[str, str]:
    """The ``NAME=value`` lines of a dotenv file: ``#`` comments and blank lines
    skipped, ``export`` allowed before a name, a value in single quotes taken as it
    is, in double quotes with ``\\n``, ``\\"`` and ``\\\\`` escapes; unquoted,
    trailing spaces and a `` #`` comment dropped.

    :raises ValueError: for a line that is not an assignment (with its number).
    :raises OSError: the file cannot be read.
    """
    values: Dict[str, str] = {}
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            if text.startswith("export "):
                text = text[7:].lstrip()
            name, equals, value = text.partition("=")
            name, value = name.strip(), value.strip()
            if not equals or not name.replace("_", "a").isalnum() or name[0].isdigit():
                raise ValueError(f"{path}, line {number}: not NAME=value")
            if len(value) >= 2 and value[0] == value[-1] == "'":
                value = value[1:-1]
            elif len(value) >= 2 and value[0] == value[-1] == '"':
                value = (value[1:-1].replace("\\\\", "\0").replace('\\"', '"').replace("\\n", "\n")
                         .replace("\0", "\\"))
            else:
                value = value.split(" #", 1)[0].rstrip()
            values[name] = value
    return values
