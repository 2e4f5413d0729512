"""Serve a WSGI application (PEP 3333: Flask, Django, Bottle...) with Mongoose.

The public name of :mod:`pymongoose.servers.wsgi`; see there.

    from pymongoose.wsgi import serve
    from myapp import app

    serve(app, "http://127.0.0.1:8000")            # until Ctrl-C or SIGTERM
"""

from .servers.wsgi import DEFAULT_HIGH_WATER, STREAM_BODY_OVER, FileWrapper, WSGIServer, serve

__all__ = ["DEFAULT_HIGH_WATER", "STREAM_BODY_OVER", "FileWrapper", "WSGIServer", "serve"]
