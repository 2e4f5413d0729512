"""An HTTPS server with a certificate and key given as PEM files.

    python examples/https_server.py --cert server.pem --key server.key --listen https://127.0.0.1:8443
"""

import argparse

from pymongoose import MG_EV_HTTP_MSG, Manager, TlsOpts


def handler(conn, event, data):
    if event == MG_EV_HTTP_MSG:
        conn.reply(200, f"Hello over TLS, you asked for {data.uri}\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="https://127.0.0.1:8443")
    parser.add_argument("--cert", required=True, help="certificate, PEM")
    parser.add_argument("--key", required=True, help="private key, PEM (EC P-256, RSA or PKCS#8)")
    args = parser.parse_args()
    with open(args.cert) as cert, open(args.key) as key:
        tls = TlsOpts(cert=cert.read(), key=key.read())
    manager = Manager(handler)
    listener = manager.listen(args.listen, http=True, tls=tls)
    print(f"Listening on https://127.0.0.1:{listener.local_addr.port}", flush=True)
    manager.run()


if __name__ == "__main__":
    main()
