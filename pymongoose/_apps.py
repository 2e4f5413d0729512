"""Finding an application by name, as servers' command lines do: ``module:attribute``."""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any, Callable


def load_app(spec: str) -> Callable[..., Any]:
    """The application (WSGI or ASGI) named ``module:attribute`` (``module`` alone: ``app``)."""
    module_name, _, attribute = spec.partition(":")
    sys.path.insert(0, os.getcwd())  # as gunicorn does: the application beside you
    app: Any = importlib.import_module(module_name)
    for name in (attribute or "app").split("."):
        app = getattr(app, name)
    if not callable(app):
        raise TypeError(f"{spec} is not callable")
    return app  # type: ignore[no-any-return]
