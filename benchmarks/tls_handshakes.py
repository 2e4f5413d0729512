"""New TLS connections per second: handshake, one request, close, one after another.

    tls_handshakes.py PORT --ca CA.pem [--seconds 5] [--version 1.2|1.3] [--resume]

The client is Python's ssl (OpenSSL); it verifies the server against CA.pem for the
name "localhost". Prints connections/s (successful ones), the mean ms per
connection, and how many handshakes failed. With --resume each connection offers
the session of the one before (Python's ``session=``), as a browser would (Mongoose's built-in TLS, unpatched as in
cymongoose, signs about one handshake in 256 with a malformed ECDSA signature).
"""

import argparse
import socket
import ssl
import time

REQUEST = b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--ca", required=True)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--version", choices=("1.2", "1.3"))
    parser.add_argument("--resume", action="store_true", help="offer the previous connection's session")
    args = parser.parse_args()
    context = ssl.create_default_context(cafile=args.ca)
    if args.version:
        version = ssl.TLSVersion.TLSv1_2 if args.version == "1.2" else ssl.TLSVersion.TLSv1_3
        context.minimum_version = context.maximum_version = version
    done = failed = resumed = 0
    session = None
    started = time.perf_counter()
    deadline = started + args.seconds
    while time.perf_counter() < deadline:
        with socket.create_connection(("127.0.0.1", args.port)) as raw:
            try:
                tls = context.wrap_socket(raw, server_hostname="localhost", session=session)
            except ssl.SSLError:
                failed += 1
                continue
            with tls:
                tls.sendall(REQUEST)
                response = b""
                while True:
                    chunk = tls.recv(4096)
                    if not chunk:
                        break
                    response += chunk
                assert response.startswith(b"HTTP/1.1 200"), response[:80]
                resumed += tls.session_reused
                if args.resume:
                    session = tls.session  # at TLS 1.3 the ticket came after the handshake
        done += 1
    elapsed = time.perf_counter() - started
    print(f"{done / elapsed:.0f} connections/s, {elapsed / max(done, 1) * 1e3:.2f} ms each, "
          f"{failed} handshakes failed, {resumed} resumed")


if __name__ == "__main__":
    main()
