"""A bare WSGI app (no framework): what a WSGI server costs on its own.

    python3 benchmarks/instructions.py --python benchmarks/.work/cpython/bin/python --kind wsgi --app wsgi_raw:app
"""

import json

_BODY = json.dumps({"message": "Hello, World!"}).encode()
_HEADERS = [("Content-Type", "application/json"), ("Content-Length", str(len(_BODY)))]


def app(environ, start_response):
    start_response("200 OK", _HEADERS)
    return [_BODY]
