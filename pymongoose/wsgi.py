"""Serve a WSGI application (PEP 3333: Flask, Django, Bottle...) with Mongoose.

The public name of ``pymongoose.servers.wsgi``; see there.

    from pymongoose.wsgi import serve
    from myapp import app

    serve(app, "http://127.0.0.1:8000")            # until Ctrl-C or SIGTERM
"""

from typing import Any, Dict

from .connection import Connection
from .messages import HttpMessage
from .servers.wsgi import DEFAULT_HIGH_WATER, STREAM_BODY_OVER, FileWrapper, WSGIServer, serve
from .servers.wsgi_environ import build_environ

__all__ = ["DEFAULT_HIGH_WATER", "STREAM_BODY_OVER", "FileWrapper", "WSGIServer", "serve"]


def _build_environ(hm: HttpMessage, conn: Connection, server_name: str, server_port: int) -> Dict[str, Any]:
    """cymongoose's name for building a request's environ (its own tests import
    it): ours, with ``SERVER_NAME`` and ``SERVER_PORT`` as given. Call it inside the
    handler that received ``hm``."""
    environ = build_environ(conn, hm, None, True, False)
    environ["SERVER_NAME"], environ["SERVER_PORT"] = server_name, str(server_port)
    return environ
