"""Serve a folder (default: examples/web_root) over HTTP.

    python examples/static_files.py --root examples/web_root
"""

import argparse
from pathlib import Path

from pymongoose import MG_EV_HTTP_MSG, Manager


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="http://127.0.0.1:8000")
    parser.add_argument("--root", default=str(Path(__file__).parent / "web_root"))
    args = parser.parse_args()

    def handler(conn, event, data):
        if event == MG_EV_HTTP_MSG:
            conn.serve_dir(data, root_dir=args.root, extra_headers="Cache-Control: max-age=60\r\n")

    manager = Manager(handler)
    listener = manager.listen(args.listen, http=True)
    print(f"Listening on http://127.0.0.1:{listener.local_addr.port}", flush=True)
    manager.run()


if __name__ == "__main__":
    main()
