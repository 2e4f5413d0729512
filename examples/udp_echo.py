"""A UDP echo server: answers each datagram with its own bytes.

    python examples/udp_echo.py --listen udp://127.0.0.1:9000
"""

import argparse

from pymongoose import MG_EV_READ, Manager


def handler(conn, event, data):
    if event == MG_EV_READ:
        conn.send(conn.recv_data())  # goes back to the datagram's sender
        conn.consume(conn.recv_len)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="udp://127.0.0.1:9000")
    args = parser.parse_args()
    manager = Manager(handler)
    listener = manager.listen(args.listen)
    print(f"Echoing on udp://127.0.0.1:{listener.local_addr.port}", flush=True)
    manager.run()


if __name__ == "__main__":
    main()
