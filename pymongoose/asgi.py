"""Serve an ASGI 3 application (Starlette, FastAPI, Quart, Django's ASGI...) with Mongoose.

The public name of ``pymongoose.servers.asgi``; see there.

    from pymongoose.asgi import serve
    from myapp import app

    serve(app, "http://127.0.0.1:8000")        # until Ctrl-C or SIGTERM
"""

from .errors import ClientDisconnected, LifespanError
from .servers.asgi import (
    DEFAULT_GRACE,
    DEFAULT_HIGH_WATER,
    STREAM_BODY_OVER,
    ASGIServer,
    run_loop,
    serve,
    serve_async,
)

__all__ = ["ASGIServer", "ClientDisconnected", "LifespanError", "serve", "serve_async", "run_loop",
           "DEFAULT_GRACE", "DEFAULT_HIGH_WATER", "STREAM_BODY_OVER"]
