"""Look host names up with Mongoose's asynchronous DNS client.

    python examples/dns_lookup.py example.com localhost.localdomain
    python examples/dns_lookup.py --dns udp://127.0.0.1:5353 printer.lan
"""

import argparse
import sys

from pymongoose import MG_EV_ERROR, MG_EV_RESOLVE, Manager


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="+")
    parser.add_argument("--dns", help="DNS server URL (default: the system's, from /etc/resolv.conf)")
    parser.add_argument("--timeout-ms", type=int, default=3000)
    args = parser.parse_args()
    answers = {}

    def handler(conn, event, data):
        if event == MG_EV_RESOLVE:
            answers[conn.userdata] = conn.remote_addr.ip
            conn.close()  # the lookup was all we wanted
        elif event == MG_EV_ERROR:
            answers[conn.userdata] = None

    with Manager(dns=args.dns, dns_timeout_ms=args.timeout_ms) as manager:
        for name in args.names:
            # A UDP "connection" sends nothing until asked: here it only resolves.
            conn = manager.connect(f"udp://{name}:9", handler)
            conn.userdata = name
        while len(answers) < len(args.names):
            manager.poll(100)
    for name in args.names:
        print(f"{name}: {answers[name] or 'not found'}")
    return 0 if all(answers.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
