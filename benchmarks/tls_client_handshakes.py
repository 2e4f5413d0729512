"""New TLS connections per second made by pymongoose's client: connect, handshake,
one request, close, one after another, on one manager.

    tls_client_handshakes.py PORT --ca CA.pem [--seconds 5] [--no-resume]

The server (``openssl s_server -www`` in run.py) is verified against CA.pem for
the name "localhost". By default the manager offers each connection the session of
the one before (TlsOpts' ``resume``); --no-resume makes every handshake a full one.
Prints connections/s, the mean ms per connection, and how many failed.
"""

import argparse
import time

from pymongoose import MG_EV_CONNECT, MG_EV_ERROR, MG_EV_HTTP_MSG, Manager, TlsOpts


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--ca", required=True)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--no-resume", action="store_true")
    args = parser.parse_args()
    with open(args.ca) as ca:
        tls = TlsOpts(ca=ca.read(), name="localhost", resume=not args.no_resume)
    outcome = {"ok": 0, "failed": 0}

    def client(conn, event, data):
        if event == MG_EV_CONNECT:
            conn.send(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        elif event == MG_EV_HTTP_MSG:
            outcome["ok"] += 1
            conn.drain()
        elif event == MG_EV_ERROR:
            outcome["failed"] += 1

    with Manager() as mgr:
        started = time.perf_counter()
        deadline = started + args.seconds
        while time.perf_counter() < deadline:
            conn = mgr.http_connect(f"https://127.0.0.1:{args.port}/", client, tls=tls)
            while not conn.is_closed:
                mgr.poll(100)
        elapsed = time.perf_counter() - started
    done = outcome["ok"]
    print(f"{done / elapsed:.0f} connections/s, {elapsed / max(done, 1) * 1e3:.2f} ms each, "
          f"{outcome['failed']} failed")


if __name__ == "__main__":
    main()
