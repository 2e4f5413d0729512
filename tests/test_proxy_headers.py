"""Behind a proxy: ``--proxy-headers`` / ``proxy_headers=True`` believe Forwarded and
X-Forwarded-* only from trusted addresses (``--forwarded-allow-ips``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, List, Optional

import pytest

from pymongoose.servers.proxy import ProxyTrust

from support import Program, raw_request

LOCAL = ("127.0.0.1", 40000)


@pytest.mark.parametrize("spec, peer, forwarded, x_for, x_proto, expected", [
    # An address that is not a trusted proxy: its headers change nothing.
    ("127.0.0.1", ("198.51.100.7", 5), None, "203.0.113.9", "https", (("198.51.100.7", 5), None)),
    # The nearest untrusted hop is the client; what a client wrote further left is not.
    ("127.0.0.1", LOCAL, None, "6.6.6.6, 203.0.113.9", "https", (("203.0.113.9", 0), True)),
    # A chain of trusted proxies (a network) is walked through.
    ("127.0.0.1,10.0.0.0/8", LOCAL, None, "203.0.113.9, 10.0.0.2, 10.9.9.9", "http", (("203.0.113.9", 0), False)),
    # Every hop trusted: the first one is the client.
    ("*", LOCAL, None, "203.0.113.9, 10.0.0.2", None, (("203.0.113.9", 0), None)),
    # The last proto is the nearest proxy's.
    ("127.0.0.1", LOCAL, None, None, "http, https", (LOCAL, True)),
    # Forwarded wins over X-Forwarded-*, with IPv6 in brackets and a port.
    ("::1", ("::1", 5), 'for="[2001:db8::1]:4711";proto=https', "203.0.113.9", "http", (("2001:db8::1", 0), True)),
    ("127.0.0.1", LOCAL, 'for=192.0.2.60;proto=http;by=203.0.113.43, for=198.51.100.17', None, None,
     (("198.51.100.17", 0), None)),
    # An obfuscated or unknown hop gives no address: the peer stays.
    ("127.0.0.1", LOCAL, "for=_hidden", None, None, (LOCAL, None)),
    ("127.0.0.1", LOCAL, None, "unknown", None, (LOCAL, None)),
    # A Unix domain socket's peer (no address) is trusted: only local processes reach it.
    ("127.0.0.1", None, None, "203.0.113.9", "https", (("203.0.113.9", 0), True)),
])
def test_the_client_and_scheme_a_trusted_proxy_reports(spec: str, peer: Any, forwarded: Optional[str],
                                                       x_for: Optional[str], x_proto: Optional[str],
                                                       expected: Any) -> None:
    assert ProxyTrust(spec).resolve(peer, forwarded, x_for, x_proto) == expected


@pytest.mark.parametrize("spec", ["127.0.0.1, localhost", "10.0.0.0/33", "1.2.3"])
def test_forwarded_allow_ips_that_are_not_addresses_are_refused(spec: str) -> None:
    with pytest.raises(ValueError, match="is not an IP address or network"):
        ProxyTrust(spec)


WSGI_APP = '''
def app(environ, start_response):
    body = f"{environ['REMOTE_ADDR']} {environ['wsgi.url_scheme']}".encode()
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]
'''

ASGI_APP = '''
async def app(scope, receive, send):
    assert scope["type"] == "http"
    body = f"{scope['client'][0]} {scope['scheme']}".encode()
    length = str(len(body)).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", length)]})
    await send({"type": "http.response.body", "body": body})
'''

FORWARDED = (b"GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 6.6.6.6, 203.0.113.9\r\n"
             b"X-Forwarded-Proto: https\r\nConnection: close\r\n\r\n")


@pytest.fixture
def serve_app(tmp_path: Path) -> Iterator[Any]:
    started: List[Program] = []

    def start(kind: str, *flags: str) -> Program:
        (tmp_path / "app.py").write_text(WSGI_APP if kind == "wsgi" else ASGI_APP)
        program = Program("-m", "pymongoose", f"--{kind}", "app:app", "--listen", "http://127.0.0.1:0",
                          *(["--lifespan", "off"] if kind == "asgi" else []), *flags, cwd=tmp_path)
        started.append(program)
        return program

    yield start
    for program in started:
        program.__exit__()


def body(port: int) -> bytes:
    return raw_request(port, FORWARDED).rsplit(b"\r\n\r\n", 1)[1]


@pytest.mark.parametrize("kind", ["wsgi", "asgi"])
def test_proxy_headers_from_a_trusted_proxy_set_the_client_and_scheme(serve_app: Any, kind: str) -> None:
    server = serve_app(kind, "--proxy-headers")
    assert body(server.port) == b"203.0.113.9 https"
    status, out = server.stop()
    assert status == 0
    assert '203.0.113.9:0 - "GET / HTTP/1.1" 200' in out  # the access log names the client too


@pytest.mark.parametrize("kind", ["wsgi", "asgi"])
@pytest.mark.parametrize("flags", [[], ["--proxy-headers", "--forwarded-allow-ips", "10.0.0.0/8"]])
def test_proxy_headers_are_ignored_unless_asked_and_from_anyone_else(serve_app: Any, kind: str,
                                                                     flags: List[str]) -> None:
    server = serve_app(kind, *flags)
    assert body(server.port) == b"127.0.0.1 http"


def test_forwarded_allow_ips_comes_from_the_environment_as_uvicorn_reads_it(tmp_path: Path,
                                                                           monkeypatch: Any) -> None:
    (tmp_path / "app.py").write_text(WSGI_APP)
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "10.0.0.0/8")
    with Program("-m", "pymongoose", "--wsgi", "app:app", "--listen", "http://127.0.0.1:0", "--proxy-headers",
                 cwd=tmp_path) as server:
        assert body(server.port) == b"127.0.0.1 http"  # 127.0.0.1 is no longer trusted
