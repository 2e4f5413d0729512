"""An HTTP server that hands slow work to a thread pool and answers through wakeup.

The event loop never blocks: the handler submits the work and returns; the worker
calls Manager.wakeup() (safe from any thread), and the connection's handler sends
the reply on MG_EV_WAKEUP, on the polling thread.

    python examples/multithreaded_server.py
    curl 'http://127.0.0.1:8000/work?n=10'
"""

import argparse
import hashlib
import json
from concurrent.futures import ThreadPoolExecutor

from pymongoose import MG_EV_HTTP_MSG, MG_EV_WAKEUP, Manager


def slow_work(n):
    """Something that would stall the event loop: n rounds of hashing."""
    digest = b"seed"
    for _ in range(n * 1000):
        digest = hashlib.sha256(digest).digest()
    return digest.hex()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="http://127.0.0.1:8000")
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    pool = ThreadPoolExecutor(max_workers=args.workers)
    manager = Manager(enable_wakeup=True)

    def finish(conn_id, n, future):
        body = json.dumps({"n": n, "digest": future.result()})
        try:
            manager.wakeup(conn_id, body.encode())  # False if the client left
        except RuntimeError:
            pass  # the server is stopping

    def handler(conn, event, data):
        if event == MG_EV_HTTP_MSG:
            try:
                n = int(data.query_var("n") or "1")
            except ValueError:
                conn.reply(400, "n must be a number\n")
                return
            future = pool.submit(slow_work, n)
            future.add_done_callback(lambda f, conn_id=conn.id: finish(conn_id, n, f))
        elif event == MG_EV_WAKEUP:
            conn.reply(200, data, {"Content-Type": "application/json"})

    listener = manager.listen(args.listen, handler, http=True)
    print(f"Listening on http://127.0.0.1:{listener.local_addr.port}", flush=True)
    try:
        manager.run()
    finally:
        pool.shutdown(wait=True)


if __name__ == "__main__":
    main()
