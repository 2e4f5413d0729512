"""Receive file uploads from an HTML form (multipart/form-data) into a folder.

    python examples/file_upload.py --dest /tmp/uploads
    open http://127.0.0.1:8000/ and pick a file
"""

import argparse
import json
from pathlib import Path

from pymongoose import MG_EV_HTTP_MSG, Manager, iter_multipart

FORM = (Path(__file__).parent / "web_root" / "index.html").read_bytes()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="http://127.0.0.1:8000")
    parser.add_argument("--dest", default="uploads")
    args = parser.parse_args()
    dest = Path(args.dest)
    dest.mkdir(parents=True, exist_ok=True)

    def handler(conn, event, data):
        if event != MG_EV_HTTP_MSG:
            return
        if data.uri == "/upload" and data.method == "POST":
            saved = {}
            for part in iter_multipart(data.body_bytes):
                if part["filename"]:
                    name = Path(part["filename"]).name  # never trust a client's path
                    if name in ("", ".", ".."):
                        conn.reply(400, "bad file name\n")
                        return
                    (dest / name).write_bytes(part["body"])
                    saved[name] = len(part["body"])
            conn.reply(200, json.dumps({"saved": saved}), {"Content-Type": "application/json"})
        else:
            conn.reply(200, FORM, {"Content-Type": "text/html; charset=utf-8"})

    manager = Manager(handler)
    listener = manager.listen(args.listen, http=True)
    print(f"Listening on http://127.0.0.1:{listener.local_addr.port}", flush=True)
    manager.run()


if __name__ == "__main__":
    main()
