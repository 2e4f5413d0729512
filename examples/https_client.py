"""Fetch an HTTPS URL, verifying the server with a custom CA certificate.

    python examples/https_client.py --ca ca.pem --name localhost https://127.0.0.1:8443/
"""

import argparse
import sys

from pymongoose import MG_EV_CONNECT, MG_EV_ERROR, MG_EV_HTTP_MSG, Manager, TlsOpts, url_host, url_uri


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--ca", required=True, help="CA certificate(s), PEM")
    parser.add_argument("--name", help="name the certificate must carry (default: the URL's host)")
    args = parser.parse_args()
    with open(args.ca) as ca:
        tls = TlsOpts(ca=ca.read(), name=args.name or url_host(args.url))
    result = {}

    def handler(conn, event, data):
        if event == MG_EV_CONNECT:
            conn.send(f"GET {url_uri(args.url)} HTTP/1.1\r\nHost: {url_host(args.url)}\r\n"
                      "Connection: close\r\n\r\n")
        elif event == MG_EV_HTTP_MSG:
            result["response"] = (data.status(), data.body_text)
            conn.drain()
        elif event == MG_EV_ERROR:
            result["error"] = data

    with Manager() as manager:
        conn = manager.http_connect(args.url, handler, tls=tls)
        while not conn.is_closed:
            manager.poll(100)
    if "response" not in result:
        print(f"error: {result.get('error', 'no response')}", file=sys.stderr)
        return 1
    status, body = result["response"]
    print(status)
    sys.stdout.write(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
