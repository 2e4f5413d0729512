"""socketify's ASGI server (uWebSockets through cffi) running an app of this folder:
a peer in the asgi suite (run.py).

    python benchmarks/socketify_asgi.py asgi_app:app PORT

Prints "ready" once listening.
"""

import importlib
import sys

from socketify import ASGI


def main():
    module, _, name = sys.argv[1].partition(":")
    app = getattr(importlib.import_module(module), name or "app")
    ASGI(app).listen(int(sys.argv[2]), lambda config: print("ready", flush=True)).run()


if __name__ == "__main__":
    main()
