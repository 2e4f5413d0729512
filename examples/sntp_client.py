"""Ask an SNTP server for the time.

    python examples/sntp_client.py --server udp://pool.ntp.org:123
"""

import argparse
import datetime
import sys

from pymongoose import MG_EV_CLOSE, MG_EV_ERROR, MG_EV_SNTP_TIME, Manager


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", required=True, help="SNTP server URL, e.g. udp://pool.ntp.org:123")
    args = parser.parse_args()
    result = {}

    def handler(conn, event, data):
        if event == MG_EV_SNTP_TIME:
            result["ms"] = data
        elif event == MG_EV_ERROR:
            result["error"] = data
        elif event == MG_EV_CLOSE:
            result.setdefault("error", "no answer")

    with Manager() as manager:
        manager.sntp_connect(args.server, handler)  # asks as soon as it is connected
        while not result:
            manager.poll(100)
    if "ms" not in result:
        print(f"error: {result['error']}", file=sys.stderr)
        return 1
    when = datetime.datetime.fromtimestamp(result["ms"] / 1000, tz=datetime.timezone.utc)
    print(f"{result['ms']} ms since the epoch: {when.isoformat()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
