"""Open N idle connections to a server and hold them; then ask for / on each.

    hold_connections.py PORT N

Prints "HELD SERVED" once every connection is up and has been answered, then holds
them until terminated.
"""

import selectors
import signal
import socket
import sys
import time


def main():
    port, count = int(sys.argv[1]), int(sys.argv[2])
    sockets = []
    for _ in range(count):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        sockets.append(s)
    selector = selectors.DefaultSelector()
    for s in sockets:
        selector.register(s, selectors.EVENT_WRITE)
    connected = set()
    deadline = time.monotonic() + 120
    while len(connected) < count and time.monotonic() < deadline:
        for key, _ in selector.select(1):
            if key.fileobj.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                connected.add(key.fileobj)
            selector.unregister(key.fileobj)
    time.sleep(1)  # idle for a moment: the server holds them all
    for s in connected:  # every request first, then every answer
        try:
            s.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        except OSError:
            pass
        selector.register(s, selectors.EVENT_READ)
    served = 0
    deadline = time.monotonic() + 120
    while served < len(connected) and time.monotonic() < deadline:
        for key, _ in selector.select(1):
            try:
                if key.fileobj.recv(4096).startswith(b"HTTP/1.1 200"):
                    served += 1
            except OSError:
                pass
            selector.unregister(key.fileobj)
    print(f"{len(connected)} {served}", flush=True)
    signal.sigwait([signal.SIGTERM, signal.SIGINT])


if __name__ == "__main__":
    main()
