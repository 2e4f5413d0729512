"""A TCP echo server: sends back every byte it receives.

    python examples/tcp_echo.py --listen tcp://127.0.0.1:9000
"""

import argparse

from pymongoose import MG_EV_READ, Manager


def handler(conn, event, data):
    if event == MG_EV_READ:
        conn.send(conn.recv_data())
        conn.consume(conn.recv_len)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="tcp://127.0.0.1:9000")
    args = parser.parse_args()
    manager = Manager(handler)
    listener = manager.listen(args.listen)
    print(f"Echoing on tcp://127.0.0.1:{listener.local_addr.port}", flush=True)
    manager.run()


if __name__ == "__main__":
    main()
