"""WebSocket echo load generator (run it with PyPy so it is not the bottleneck).

    ws_load.py PORT [--connections 16] [--window 64] [--seconds 5] [--messages N]

Each connection keeps --window small text messages in flight; prints the echoes
received per second, and how many. With --messages, it stops once N echoes have come back
(benchmarks/instructions.py --kind ws).
"""

import argparse
import base64
import os
import selectors
import socket
import time

PAYLOAD = b"hello, echo!"
MASK = b"\x11\x22\x33\x44"
FRAME = bytes([0x81, 0x80 | len(PAYLOAD)]) + MASK + bytes(b ^ MASK[i % 4] for i, b in enumerate(PAYLOAD))
ECHO_SIZE = 2 + len(PAYLOAD)  # server frames are not masked


def handshake(port):
    s = socket.create_connection(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(f"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
    response = b""
    while b"\r\n\r\n" not in response:
        response += s.recv(4096)
    assert response.startswith(b"HTTP/1.1 101"), response
    s.setblocking(False)
    return s, response.split(b"\r\n\r\n", 1)[1]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--messages", type=int, default=0, help="stop after this many echoes (0: no limit)")
    args = parser.parse_args()
    selector = selectors.DefaultSelector()
    pending = {}
    for _ in range(args.connections):
        s, leftover = handshake(args.port)
        s.sendall(FRAME * args.window)
        pending[s] = len(leftover)
        selector.register(s, selectors.EVENT_READ)
    received = 0
    started = time.monotonic()
    deadline = started + args.seconds
    while time.monotonic() < deadline and not 0 < args.messages <= received:
        for key, _ in selector.select(0.1):
            s = key.fileobj
            data = s.recv(1 << 16)
            if not data:
                raise SystemExit("server closed a connection")
            total = pending[s] + len(data)
            messages, pending[s] = divmod(total, ECHO_SIZE)
            if messages:
                received += messages
                s.sendall(FRAME * messages)
    print(f"{received / (time.monotonic() - started):.0f} messages/s ({received} echoed)")


if __name__ == "__main__":
    main()
