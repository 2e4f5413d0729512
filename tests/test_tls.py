"""TLS (mbed TLS by default, or Mongoose's built-in stack): requests, Python's ssl
and the openssl tool as peers, certificates made for the tests by their own CA."""

from __future__ import annotations

import http.server
import socket
import ssl
import subprocess
import threading
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest
import requests

import pymongoose
from pymongoose import (
    MG_EV_CONNECT,
    MG_EV_ERROR,
    MG_EV_HTTP_MSG,
    MG_EV_MQTT_OPEN,
    MG_EV_TLS_HS,
    MG_EV_WS_MSG,
    MG_EV_WS_OPEN,
    Manager,
    TlsError,
    TlsOpts,
)

from support import DEFAULT_TIMEOUT, DnsResponder, Mosquitto, TestPKI, poll_until, read_until_closed, wait_for


@pytest.fixture(scope="module")
def pki(tmp_path_factory: Any) -> TestPKI:
    return TestPKI(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def server_tls(pki: TestPKI) -> TlsOpts:
    cert, key = pki.issue("localhost")
    return TlsOpts(cert=cert.read_text(), key=key.read_bytes())


def hello(conn: Any, event: int, data: Any) -> None:
    if event == MG_EV_HTTP_MSG:
        conn.reply(200, f"secure {data.uri}")


# ---- our server, real clients ------------------------------------------------------

def test_https_server_verified_by_requests(serve: Any, pki: TestPKI, server_tls: TlsOpts) -> None:
    server = serve(hello, url="https://127.0.0.1:0", tls=server_tls)
    r = requests.get(f"https://localhost:{server.port}/x", verify=str(pki.ca_cert), timeout=DEFAULT_TIMEOUT)
    assert r.status_code == 200 and r.text == "secure /x"
    with requests.Session() as session:  # keep-alive over TLS
        for i in range(5):
            assert session.get(f"https://localhost:{server.port}/{i}", verify=str(pki.ca_cert),
                               timeout=DEFAULT_TIMEOUT).text == f"secure /{i}"


def test_https_server_configured_with_listener_tls_init(serve: Any, pki: TestPKI, server_tls: TlsOpts) -> None:
    """The Cython binding's idiom: listen, then tls_init on the listener."""
    server = serve(hello, url="https://127.0.0.1:0")
    server.loop.call(server.listener.tls_init, server_tls)
    r = requests.get(f"https://localhost:{server.port}/", verify=str(pki.ca_cert), timeout=DEFAULT_TIMEOUT)
    assert r.text == "secure /"


def test_tls_init_in_the_accept_handler(serve: Any, pki: TestPKI, server_tls: TlsOpts) -> None:
    from pymongoose import MG_EV_ACCEPT

    tls_flags: List[bool] = []

    def handler(conn: Any, event: int, data: Any) -> None:
        if event == MG_EV_ACCEPT:
            conn.tls_init(server_tls)
        elif event == MG_EV_HTTP_MSG:
            tls_flags.append(conn.is_tls)  # (built-in TLS raises MG_EV_TLS_HS on clients only)
        hello(conn, event, data)

    server = serve(handler)
    assert requests.get(f"https://localhost:{server.port}/", verify=str(pki.ca_cert),
                        timeout=DEFAULT_TIMEOUT).text == "secure /"
    assert tls_flags == [True]


def test_python_ssl_client_sees_our_certificate(serve: Any, pki: TestPKI, server_tls: TlsOpts) -> None:
    server = serve(hello, url="https://127.0.0.1:0", tls=server_tls)
    context = ssl.create_default_context(cafile=str(pki.ca_cert))
    with socket.create_connection(("127.0.0.1", server.port), timeout=DEFAULT_TIMEOUT) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            assert tls.getpeercert()["subject"] == ((("commonName", "localhost"),),)
            tls.sendall(b"GET /ssl HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            response = b""
            while b"secure /ssl" not in response:
                chunk = tls.recv(4096)
                assert chunk
                response += chunk


def test_plaintext_to_a_tls_listener_is_dropped_and_it_keeps_serving(serve: Any, pki: TestPKI,
                                                                      server_tls: TlsOpts) -> None:
    from support import raw_request

    server = serve(hello, url="https://127.0.0.1:0", tls=server_tls)
    assert b"secure" not in raw_request(server.port, b"GET / HTTP/1.1\r\n\r\n", timeout=3)
    assert requests.get(f"https://localhost:{server.port}/", verify=str(pki.ca_cert),
                        timeout=DEFAULT_TIMEOUT).status_code == 200


# ---- our client, a Python ssl server -------------------------------------------

class _Quiet(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"python says hi"
        if self.path == "/session":  # whether this connection resumed a session
            body = b"reused" if self.request.session_reused else b"new"  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def python_https(pki: TestPKI, request: Any) -> Iterator[Any]:
    """``python_https(cert, key)`` starts Python's HTTPS server with that certificate."""
    servers: List[Any] = []

    def start(cert: Path, key: Path, version: "ssl.TLSVersion | None" = None) -> int:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(cert), str(key))
        if version is not None:  # this version only
            context.minimum_version = context.maximum_version = version
        httpd = http.server.HTTPServer(("127.0.0.1", 0), _Quiet)
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
        threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(httpd)
        return int(httpd.server_address[1])

    yield start
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


def fetch(url: str, tls: Any, dns: Any = None) -> Dict[str, Any]:
    outcome: Dict[str, Any] = {}

    def client(conn: Any, event: int, data: Any) -> None:
        if event == MG_EV_CONNECT:
            conn.send(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        elif event == MG_EV_TLS_HS:
            outcome["handshake"] = True
        elif event == MG_EV_HTTP_MSG:
            outcome["body"] = data.body_text
            conn.drain()
        elif event == MG_EV_ERROR:
            outcome["error"] = data

    with Manager(dns=dns) as mgr:
        conn = mgr.http_connect(url, client, tls=tls)
        poll_until(mgr, lambda: conn.is_closed)
    return outcome


def test_client_verifies_server_by_ca_and_name(pki: TestPKI, python_https: Any) -> None:
    port = python_https(*pki.issue("localhost"))
    outcome = fetch(f"https://127.0.0.1:{port}/", TlsOpts(ca=pki.ca_cert, name="localhost"))
    assert outcome.get("body") == "python says hi", outcome
    assert outcome.get("handshake")


@pytest.mark.parametrize("problem", ["expired", "wrong name", "untrusted"])
def test_client_rejects_bad_certificates(pki: TestPKI, python_https: Any, tmp_path: Path, problem: str) -> None:
    if problem == "expired":
        port = python_https(*pki.issue("localhost", expired=True))
    elif problem == "wrong name":
        port = python_https(*pki.issue("elsewhere.test"))
    else:
        port = python_https(*TestPKI(tmp_path / "rogue", "rogue CA").issue("localhost"))
    outcome = fetch(f"https://127.0.0.1:{port}/", TlsOpts(ca=pki.ca_cert, name="localhost"))
    assert "body" not in outcome, f"{problem} certificate was accepted"
    assert outcome.get("error"), outcome
    if pymongoose.TLS_BACKEND == "mbedtls":  # the cause in words, not only a code
        assert "Certificate verification failed" in outcome["error"], outcome


def test_skip_verification_accepts_an_untrusted_certificate(python_https: Any, tmp_path: Path) -> None:
    port = python_https(*TestPKI(tmp_path / "rogue", "rogue CA").issue("localhost"))
    outcome = fetch(f"https://127.0.0.1:{port}/", TlsOpts(skip_verification=True))
    assert outcome.get("body") == "python says hi", outcome


def test_tls_url_without_options_verifies_against_the_system_cas(pki: TestPKI, python_https: Any) -> None:
    port = python_https(*pki.issue("localhost"))  # our test CA is not a system CA
    outcome = fetch(f"https://localhost:{port}/", None, dns=None)
    assert "body" not in outcome and outcome.get("error"), outcome


def test_certificate_dates_verify_with_no_time_server_or_dns(pki: TestPKI, python_https: Any) -> None:
    """Mongoose would ask a public SNTP server for the time before checking dates;
    its clock is seeded from the host, so no name is looked up at all."""
    port = python_https(*pki.issue("localhost"))
    dns = DnsResponder({})
    try:
        outcome = fetch(f"https://127.0.0.1:{port}/", TlsOpts(ca=pki.ca_cert, name="localhost"), dns=dns.url)
    finally:
        dns.stop()
    assert outcome.get("body") == "python says hi", outcome
    assert dns.queries == []


# ---- WSS and MQTTS ---------------------------------------------------------------

def test_wss_client_and_server(pki: TestPKI, server_tls: TlsOpts) -> None:
    received: List[str] = []

    def server(conn: Any, event: int, data: Any) -> None:
        if event == MG_EV_HTTP_MSG:
            conn.ws_upgrade(data)
        elif event == MG_EV_WS_MSG:
            conn.ws_send("secure " + data.text)

    def client(conn: Any, event: int, data: Any) -> None:
        if event == MG_EV_WS_OPEN:
            conn.ws_send("hello")
        elif event == MG_EV_WS_MSG:
            received.append(data.text)
            conn.close()

    with Manager() as mgr:
        port = mgr.listen("wss://127.0.0.1:0", server, tls=server_tls).local_addr.port
        conn = mgr.ws_connect(f"wss://127.0.0.1:{port}/", client, tls=TlsOpts(ca=pki.ca_cert, name="localhost"))
        poll_until(mgr, lambda: conn.is_closed)
    assert received == ["secure hello"]


def test_mqtts_client_against_mosquitto(pki: TestPKI, tmp_path: Path) -> None:
    cert, key = pki.issue("localhost")
    broker = Mosquitto(tmp_path, tls=(pki.ca_cert, cert, key))
    try:
        connack: List[int] = []
        with Manager() as mgr:
            conn = mgr.mqtt_connect(broker.url, lambda c, e, d: e == MG_EV_MQTT_OPEN and connack.append(d),
                                    tls=TlsOpts(ca=pki.ca_cert, name="localhost"))
            poll_until(mgr, lambda: connack or conn.is_closed)
        assert connack == [0]
    finally:
        broker.stop()


# ---- TLS versions, key types, client certificates -------------------------------------

FULL_TLS = pytest.mark.skipif(pymongoose.TLS_BACKEND != "mbedtls",
                              reason="the built-in TLS speaks TLS 1.3 with ECDSA P-256 only")
VERSIONS = {"TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}


def https_get(port: int, context: ssl.SSLContext, path: str = "/") -> "tuple[str, bytes]":
    """One request with Python's ssl; returns (negotiated version, response)."""
    with socket.create_connection(("127.0.0.1", port), timeout=DEFAULT_TIMEOUT) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            version = str(tls.version())  # now: some Pythons forget it once the peer has closed
            tls.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
            return version, read_until_closed(tls)


@FULL_TLS
@pytest.mark.parametrize("key_type", ["ec", "rsa2048", "rsa4096"])
@pytest.mark.parametrize("version", list(VERSIONS))
def test_our_server_with_each_key_type_and_tls_version(serve: Any, pki: TestPKI, key_type: str, version: str) -> None:
    cert, key = pki.issue("localhost", key_type=key_type)
    server = serve(hello, url="https://127.0.0.1:0", tls=TlsOpts(cert=cert, key=key))
    context = ssl.create_default_context(cafile=str(pki.ca_cert))
    context.minimum_version = context.maximum_version = VERSIONS[version]
    negotiated, response = https_get(server.port, context, "/v")
    assert negotiated == version
    assert response.startswith(b"HTTP/1.1 200") and response.endswith(b"secure /v")


@FULL_TLS
@pytest.mark.parametrize("version", list(VERSIONS))
def test_our_server_resumes_sessions_of_python_ssl(serve: Any, pki: TestPKI, server_tls: TlsOpts,
                                                   version: str) -> None:
    """Session IDs or tickets at TLS 1.2, tickets at 1.3 (mbed TLS's defaults, which
    Mongoose keeps): the client's second and later connections skip the full
    handshake."""
    server = serve(hello, url="https://127.0.0.1:0", tls=server_tls)
    context = ssl.create_default_context(cafile=str(pki.ca_cert))
    context.minimum_version = context.maximum_version = VERSIONS[version]
    session = None
    for i in range(3):
        with socket.create_connection(("127.0.0.1", server.port), timeout=DEFAULT_TIMEOUT) as raw:
            with context.wrap_socket(raw, server_hostname="localhost", session=session) as tls:
                tls.sendall(f"GET /{i} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
                assert read_until_closed(tls).endswith(f"secure /{i}".encode())
                assert tls.session_reused == (i > 0), i
                session = tls.session  # at 1.3 the ticket came after the handshake: taken now


@FULL_TLS
@pytest.mark.parametrize("key_type", ["ec", "rsa2048", "rsa4096"])
@pytest.mark.parametrize("version", list(VERSIONS))
def test_our_client_with_each_key_type_and_tls_version(pki: TestPKI, python_https: Any, key_type: str,
                                                       version: str) -> None:
    """With RSA at TLS 1.2 OpenSSL signs its ServerKeyExchange with RSA-PSS, which
    mbed TLS 3.6.6's client refused (vendor/mbedtls_patches.py, tls12-client-rsa-pss)."""
    port = python_https(*pki.issue("localhost", key_type=key_type), VERSIONS[version])
    outcome = fetch(f"https://127.0.0.1:{port}/", TlsOpts(ca=pki.ca_cert, name="localhost"))
    assert outcome.get("body") == "python says hi", outcome


@FULL_TLS
@pytest.mark.parametrize("option", ["-tls1_2", "-tls1_3"])
def test_openssl_s_client_verifies_us(serve: Any, pki: TestPKI, option: str) -> None:
    cert, key = pki.issue("localhost", key_type="rsa2048")
    server = serve(hello, url="https://127.0.0.1:0", tls=TlsOpts(cert=cert, key=key))
    result = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{server.port}", "-servername", "localhost",
         "-CAfile", str(pki.ca_cert), "-verify_return_error", "-ign_eof", option],
        input=b"GET /openssl HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        capture_output=True, timeout=DEFAULT_TIMEOUT)
    out = result.stdout.decode(errors="replace")
    assert "Verify return code: 0 (ok)" in out, out + result.stderr.decode(errors="replace")
    assert ("TLSv1.2" if option == "-tls1_2" else "TLSv1.3") in out
    assert "secure /openssl" in out


@FULL_TLS
def test_mutual_tls_admits_only_clients_with_a_certificate_from_the_ca(serve: Any, pki: TestPKI,
                                                                      tmp_path: Path) -> None:
    cert, key = pki.issue("localhost")
    server = serve(hello, url="https://127.0.0.1:0", tls=TlsOpts(cert=cert, key=key, ca=pki.ca_cert))
    trusted = ssl.create_default_context(cafile=str(pki.ca_cert))
    trusted.load_cert_chain(*map(str, pki.issue("client")))
    assert https_get(server.port, trusted, "/mtls")[1].endswith(b"secure /mtls")

    anonymous = ssl.create_default_context(cafile=str(pki.ca_cert))
    rogue = ssl.create_default_context(cafile=str(pki.ca_cert))
    rogue.load_cert_chain(*map(str, TestPKI(tmp_path / "rogue", "rogue CA").issue("client")))
    for context in (anonymous, rogue):
        with pytest.raises((ssl.SSLError, ConnectionError)):
            response = https_get(server.port, context)[1]
            assert response == b"", response  # TLS 1.3: the refusal may come after the handshake
            raise ConnectionError("closed without a response")
    assert https_get(server.port, trusted, "/again")[1].endswith(b"secure /again")  # still serving


@FULL_TLS
def test_our_client_presents_a_client_certificate(pki: TestPKI) -> None:
    cert, key = pki.issue("localhost")
    client_cert, client_key = pki.issue("client")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    context.load_verify_locations(str(pki.ca_cert))
    context.verify_mode = ssl.CERT_REQUIRED
    httpd = http.server.HTTPServer(("127.0.0.1", 0), _Quiet)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        port = httpd.server_address[1]
        outcome = fetch(f"https://127.0.0.1:{port}/",
                        TlsOpts(ca=pki.ca_cert, name="localhost", cert=client_cert, key=client_key))
        assert outcome.get("body") == "python says hi", outcome
        refused = fetch(f"https://127.0.0.1:{port}/", TlsOpts(ca=pki.ca_cert, name="localhost"))
        assert "body" not in refused
    finally:
        httpd.shutdown()
        httpd.server_close()


@FULL_TLS
def test_a_certificate_chain_verifies_against_the_root(serve: Any, pki: TestPKI, tmp_path: Path) -> None:
    """The server sends its certificate and the intermediate's; clients know the root."""
    intermediate = TestPKI(tmp_path / "intermediate", "pymongoose intermediate CA", issuer=pki)
    cert, key = intermediate.issue("localhost")
    chain = cert.read_bytes() + intermediate.ca_cert.read_bytes()
    server = serve(hello, url="https://127.0.0.1:0", tls=TlsOpts(cert=chain, key=key))
    context = ssl.create_default_context(cafile=str(pki.ca_cert))
    assert https_get(server.port, context, "/chain")[1].endswith(b"secure /chain")
    outcome = fetch(f"https://127.0.0.1:{server.port}/", TlsOpts(ca=pki.ca_cert, name="localhost"))
    assert outcome.get("body") == "secure /", outcome  # our client, verifying the chain


@FULL_TLS
@pytest.mark.parametrize("key_type", ["ec", "rsa2048", "rsa4096"])
@pytest.mark.parametrize("option", ["-tls1_2", "-tls1_3"])
def test_our_client_against_openssl_s_server(pki: TestPKI, option: str, key_type: str) -> None:
    cert, key = pki.issue("localhost", key_type=key_type)
    with socket.socket() as probe:  # a free port for s_server
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-cert", str(cert),
                               "-key", str(key), "-www", option, "-quiet"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def listening() -> bool:
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", port)) == 0

        wait_for(listening, what="openssl s_server")
        outcome = fetch(f"https://127.0.0.1:{port}/", TlsOpts(ca=pki.ca_cert, name="localhost"))
        assert "Ciphers supported in s_server binary" in outcome.get("body", ""), outcome
        assert ("TLSv1.2" if option == "-tls1_2" else "TLSv1.3") in outcome["body"]
    finally:
        server.terminate()
        server.wait(DEFAULT_TIMEOUT)


# ---- certificates replaced while serving ------------------------------------------

@FULL_TLS
def test_a_listeners_certificate_is_replaced_while_it_serves(serve: Any, pki: TestPKI) -> None:
    """tls_init on a listener again: new connections get the new certificate, one
    already established carries on with the old, and options that do not load raise
    TlsError and leave the listener as it was."""
    ec_cert, ec_key = pki.issue("localhost")
    rsa_cert, rsa_key = pki.issue("localhost", key_type="rsa2048")
    server = serve(hello, url="https://127.0.0.1:0", tls=TlsOpts(cert=ec_cert, key=ec_key))
    context = ssl.create_default_context(cafile=str(pki.ca_cert))

    def request(tls: ssl.SSLSocket, path: str) -> bytes:
        tls.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
        reply = b""
        while not reply.endswith(path.encode()):
            chunk = tls.recv(4096)
            assert chunk, reply
            reply += chunk
        return reply

    def new_connection() -> ssl.SSLSocket:
        raw = socket.create_connection(("127.0.0.1", server.port), timeout=DEFAULT_TIMEOUT)
        return context.wrap_socket(raw, server_hostname="localhost")

    with new_connection() as held:
        request(held, "/before")
        assert held.getpeercert(binary_form=True) == _der(ec_cert)
        server.loop.call(server.listener.tls_init, TlsOpts(cert=rsa_cert, key=rsa_key))
        with new_connection() as fresh:
            assert fresh.getpeercert(binary_form=True) == _der(rsa_cert)
            assert request(fresh, "/after").startswith(b"HTTP/1.1 200")
        assert request(held, "/still").startswith(b"HTTP/1.1 200")  # the old one carries on
        with pytest.raises(TlsError):
            server.loop.call(server.listener.tls_init, TlsOpts(cert=b"not a certificate", key=rsa_key))
        with new_connection() as fresh:
            assert fresh.getpeercert(binary_form=True) == _der(rsa_cert)
            assert request(fresh, "/kept").startswith(b"HTTP/1.1 200")


# ---- ALPN ---------------------------------------------------------------------------

HANDSHAKE_ERRORS: List[str] = []


def alpn_hello(conn: Any, event: int, data: Any) -> None:
    if event == MG_EV_HTTP_MSG:
        conn.reply(200, f"alpn {conn.alpn}")
    elif event == MG_EV_ERROR:
        HANDSHAKE_ERRORS.append(data)


def _python_get(port: int, ca: Path, offer: "List[str] | None") -> "tuple[str | None, bytes]":
    """One request with Python's ssl offering ``offer``: (protocol agreed, response)."""
    context = ssl.create_default_context(cafile=str(ca))
    if offer is not None:
        context.set_alpn_protocols(offer)
    with socket.create_connection(("127.0.0.1", port), timeout=DEFAULT_TIMEOUT) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            chosen = tls.selected_alpn_protocol()
            tls.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            return chosen, read_until_closed(tls)


@FULL_TLS
@pytest.mark.parametrize("version", list(VERSIONS))
def test_our_server_picks_its_preferred_application_protocol(serve: Any, pki: TestPKI, version: str) -> None:
    cert, key = pki.issue("localhost")
    server = serve(alpn_hello, url="https://127.0.0.1:0", tls=TlsOpts(cert=cert, key=key, alpn=["h2", "http/1.1"]))
    for offer, chosen in [(["http/1.1"], "http/1.1"), (["http/1.1", "h2"], "h2"), (None, None)]:
        got, response = _python_get(server.port, pki.ca_cert, offer)
        assert got == chosen and response.endswith(f"alpn {chosen}".encode()), (offer, got, response)
    # No protocol in common: the handshake fails (no_application_protocol), the
    # server says why, and goes on serving.
    HANDSHAKE_ERRORS.clear()
    with pytest.raises(ssl.SSLError, match="NO_APPLICATION_PROTOCOL|no application protocol"):
        _python_get(server.port, pki.ca_cert, ["spdy/1"])
    wait_for(lambda: HANDSHAKE_ERRORS, what="the server's MG_EV_ERROR")
    assert "No ALPN protocols supported" in HANDSHAKE_ERRORS[0], HANDSHAKE_ERRORS
    assert _python_get(server.port, pki.ca_cert, ["h2"])[0] == "h2"


@FULL_TLS
def test_our_client_offers_application_protocols(serve: Any, pki: TestPKI) -> None:
    cert, key = pki.issue("localhost")
    server = serve(alpn_hello, url="https://127.0.0.1:0", tls=TlsOpts(cert=cert, key=key, alpn=["http/1.1"]))
    seen: Dict[str, Any] = {}

    def client(conn: Any, event: int, data: Any) -> None:
        if event == MG_EV_TLS_HS:
            seen["at handshake"] = conn.alpn
        elif event == MG_EV_CONNECT:
            seen["before"] = conn.alpn
            conn.send(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        elif event == MG_EV_HTTP_MSG:
            seen["body"] = data.body_text
            conn.drain()

    with Manager() as mgr:
        conn = mgr.http_connect(f"https://127.0.0.1:{server.port}/", client,
                                tls=TlsOpts(ca=pki.ca_cert, name="localhost", alpn=["x-test", "http/1.1"]))
        poll_until(mgr, lambda: conn.is_closed)
    assert seen == {"before": None, "at handshake": "http/1.1", "body": "alpn http/1.1"}


def test_alpn_names_are_checked_when_given() -> None:
    assert TlsOpts(alpn=["h2", b"http/1.1"]).alpn == (b"h2", b"http/1.1")
    assert "alpn=['h2']" in repr(TlsOpts(alpn=["h2"]))
    for bad in ("h2", [], [""], ["x" * 256], ["a\0b"]):
        with pytest.raises(TlsError):
            TlsOpts(alpn=bad)  # type: ignore[arg-type]


@pytest.mark.skipif(pymongoose.TLS_BACKEND == "mbedtls", reason="the built-in TLS has no ALPN; mbed TLS has")
def test_alpn_with_the_builtin_tls_is_refused_clearly(pki: TestPKI, manager: Manager) -> None:
    cert, key = pki.issue("localhost")
    with pytest.raises(TlsError, match="ALPN needs mbed TLS"):
        manager.listen("https://127.0.0.1:0", hello, tls=TlsOpts(cert=cert, key=key, alpn=["h2"]))


# ---- SNI: certificates by the name the client asks for ---------------------------------

def sni_hello(conn: Any, event: int, data: Any) -> None:
    if event == MG_EV_HTTP_MSG:
        conn.reply(200, f"asked for {conn.server_name}")
    elif event == MG_EV_ERROR:
        HANDSHAKE_ERRORS.append(data)


def _sni_get(port: int, ca: Path, name: "str | None") -> "tuple[bytes, bytes]":
    """One request asking for ``name`` (None: no SNI); (the server's certificate as
    DER, the response). Not verified: the certificate is what is looked at."""
    context = ssl.create_default_context(cafile=str(ca))
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=DEFAULT_TIMEOUT) as raw:
        with context.wrap_socket(raw, server_hostname=name) as tls:
            cert = tls.getpeercert(binary_form=True)
            tls.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            return bytes(cert or b""), read_until_closed(tls)


def _first_pem(pem: Path) -> str:  # the first certificate in a PEM file
    text = pem.read_text()
    end = "-----END CERTIFICATE-----"
    return text[text.index("-----BEGIN CERTIFICATE-----"):text.index(end) + len(end)]


def _der(pem: Path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(_first_pem(pem))


@FULL_TLS
def test_one_listener_serves_a_certificate_per_name(serve: Any, pki: TestPKI) -> None:
    default, a, b = pki.issue("localhost"), pki.issue("a.test"), pki.issue("b.test", key_type="rsa2048")
    tls = TlsOpts(cert=default[0], key=default[1], sni={"a.test": a, "B.Test": (b[0].read_text(), b[1].read_bytes())})
    server = serve(sni_hello, url="https://127.0.0.1:0", tls=tls)
    for asked, cert in [("a.test", a[0]), ("b.test", b[0]), ("A.TEST", a[0]), ("other.test", default[0]),
                        (None, default[0])]:
        der, response = _sni_get(server.port, pki.ca_cert, asked)
        assert der == _der(cert), asked
        assert response.endswith(f"asked for {asked}".encode()), (asked, response)
    # Verified the usual way too: each name's certificate is valid for it.
    context = ssl.create_default_context(cafile=str(pki.ca_cert))
    with socket.create_connection(("127.0.0.1", server.port), timeout=DEFAULT_TIMEOUT) as raw:
        with context.wrap_socket(raw, server_hostname="b.test") as verified:
            assert verified.version() is not None


@FULL_TLS
def test_without_a_default_an_unknown_name_is_refused_and_the_server_serves_on(serve: Any, pki: TestPKI) -> None:
    a = pki.issue("a.test")
    server = serve(sni_hello, url="https://127.0.0.1:0", tls=TlsOpts(sni={"a.test": a}))
    HANDSHAKE_ERRORS.clear()
    for name in ("other.test", None):
        with pytest.raises((ssl.SSLError, ConnectionError)):
            _sni_get(server.port, pki.ca_cert, name)
    wait_for(lambda: len(HANDSHAKE_ERRORS) == 2, what="the server's MG_EV_ERROR, twice")
    assert "matching the client's SNI" in HANDSHAKE_ERRORS[0], HANDSHAKE_ERRORS
    assert _sni_get(server.port, pki.ca_cert, "a.test")[0] == _der(a[0])


def test_sni_options_are_checked(pki: TestPKI, manager: Manager) -> None:
    cert, key = pki.issue("a.test")
    for bad in ("a.test", {"": (cert, key)}, {"a.test": cert}, {"a.test": (cert, None)}, {"é.test": (cert, key)}):
        with pytest.raises(TlsError):
            TlsOpts(sni=bad)  # type: ignore[arg-type]
    assert "sni=<a.test>" in repr(TlsOpts(sni={"A.test": (cert, key)}))
    if pymongoose.TLS_BACKEND == "mbedtls":
        with pytest.raises(TlsError, match="sni\\['a.test'\\]"):
            manager.listen("https://127.0.0.1:0", hello, tls=TlsOpts(sni={"a.test": (cert, b"not a key")}))
        with pytest.raises(TlsError, match="a client sends name="):
            manager.connect("tcp://127.0.0.1:9", hello, tls=TlsOpts(sni={"a.test": (cert, key)}))
    else:
        with pytest.raises(TlsError, match="needs mbed TLS"):
            manager.listen("https://127.0.0.1:0", hello, tls=TlsOpts(sni={"a.test": (cert, key)}))


# ---- client session resumption ----------------------------------------------------

def _fetch_many(mgr: Manager, url: str, tls: TlsOpts, count: int, path: str = "/") -> List[str]:
    """``count`` requests, one connection each, one after another, on one manager."""
    bodies: List[str] = []

    def client(conn: Any, event: int, data: Any) -> None:
        if event == MG_EV_CONNECT:
            conn.send(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
        elif event == MG_EV_HTTP_MSG:
            bodies.append(data.body_text)
            conn.drain()
        elif event == MG_EV_ERROR:
            bodies.append(f"error: {data}")

    for _ in range(count):
        conn = mgr.http_connect(url, client, tls=tls)
        poll_until(mgr, lambda conn=conn: conn.is_closed)
    return bodies


@pytest.fixture
def openssl_www(pki: TestPKI) -> Iterator[Any]:
    """``openssl_www(option)``: openssl s_server -www (its status page says whether
    each connection's session was "New" or "Reused"); returns the port."""
    servers: List[Any] = []

    def start(option: str) -> int:
        cert, key = pki.issue("localhost")
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        servers.append(subprocess.Popen(
            ["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-cert", str(cert), "-key", str(key),
             "-www", option, "-quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

        def listening() -> bool:
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", port)) == 0

        wait_for(listening, what="openssl s_server")
        return port

    yield start
    for server in servers:
        server.terminate()
        server.wait(DEFAULT_TIMEOUT)


@FULL_TLS
@pytest.mark.parametrize("option", ["-tls1_2", "-tls1_3"])
def test_our_client_resumes_its_sessions_with_openssl(pki: TestPKI, openssl_www: Any, option: str) -> None:
    port = openssl_www(option)
    with Manager() as mgr:
        bodies = _fetch_many(mgr, f"https://127.0.0.1:{port}/", TlsOpts(ca=pki.ca_cert, name="localhost"), 3)
    version = "TLSv1.2" if option == "-tls1_2" else "TLSv1.3"
    assert [f"New, {version}" in body for body in bodies] == [True, False, False], bodies
    assert all(f"Reused, {version}" in body for body in bodies[1:]), bodies


@FULL_TLS
@pytest.mark.parametrize("option", ["-tls1_2", "-tls1_3"])
def test_resumption_is_per_manager_and_can_be_turned_off(pki: TestPKI, openssl_www: Any, option: str) -> None:
    port = openssl_www(option)
    url = f"https://127.0.0.1:{port}/"
    tls = TlsOpts(ca=pki.ca_cert, name="localhost")
    with Manager() as first, Manager() as second:
        assert all("New, " in body for body in _fetch_many(first, url, TlsOpts(
            ca=pki.ca_cert, name="localhost", resume=False), 2))
        _fetch_many(first, url, tls, 1)  # kept by the first manager only
        assert "New, " in _fetch_many(second, url, tls, 1)[0]
        assert "Reused, " in _fetch_many(first, url, tls, 1)[0]
        # The same server under another name is another server: a full handshake.
        other = _fetch_many(first, f"https://localhost:{port}/", TlsOpts(ca=pki.ca_cert), 2)
        assert "New, " in other[0] and "Reused, " in other[1], other
    assert "resume=False" in repr(TlsOpts(resume=False))


@FULL_TLS
@pytest.mark.parametrize("version", list(VERSIONS))
def test_our_client_resumes_its_sessions_with_python_ssl(pki: TestPKI, python_https: Any, version: str) -> None:
    """The server side says whether each connection was resumed (session_reused)."""
    port = python_https(*pki.issue("localhost"), VERSIONS[version])
    with Manager() as mgr:
        bodies = _fetch_many(mgr, f"https://127.0.0.1:{port}/", TlsOpts(ca=pki.ca_cert, name="localhost"), 3,
                             path="/session")
    assert bodies == ["new", "reused", "reused"]


class _CountingProxy:
    """A TCP relay on loopback that counts, per connection, the bytes the server
    sent: a resumed handshake leaves out the certificate and its signature."""

    def __init__(self, port: int) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.from_server: List[int] = []
        threading.Thread(target=self._serve, args=(port,), daemon=True).start()

    def _serve(self, port: int) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with client, socket.create_connection(("127.0.0.1", port)) as server:
                client.settimeout(DEFAULT_TIMEOUT)
                server.settimeout(DEFAULT_TIMEOUT)
                counted = 0
                pipes = [threading.Thread(target=self._pipe, args=(client, server), daemon=True)]
                pipes[0].start()
                while True:  # server -> client here, counted
                    data = server.recv(65536)
                    if not data:
                        break
                    counted += len(data)
                    client.sendall(data)
                self.from_server.append(counted)
                pipes[0].join(DEFAULT_TIMEOUT)

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    sink.shutdown(socket.SHUT_WR)
                    return
                sink.sendall(data)
        except OSError:
            return


@FULL_TLS
@pytest.mark.parametrize("resume", [True, False])
def test_our_client_resumes_with_our_server(serve: Any, pki: TestPKI, server_tls: TlsOpts, resume: bool) -> None:
    """mbed TLS on both sides (neither says whether a handshake was shortened): the
    server sends its certificate and signature on the first connection only."""
    server = serve(hello, url="https://127.0.0.1:0", tls=server_tls)
    proxy = _CountingProxy(server.port)
    try:
        with Manager() as mgr:
            bodies = _fetch_many(mgr, f"https://127.0.0.1:{proxy.port}/",
                                 TlsOpts(ca=pki.ca_cert, name="localhost", resume=resume), 3)
        assert bodies == ["secure /"] * 3
        wait_for(lambda: len(proxy.from_server) == 3, what="three relayed connections")
    finally:
        proxy.listener.close()
    first, *later = proxy.from_server
    certificate = len(ssl.PEM_cert_to_DER_cert(_first_pem(pki.issue("localhost")[0])))
    if resume:
        assert all(first - n > certificate for n in later), (proxy.from_server, certificate)
    else:
        assert all(abs(first - n) < 64 for n in later), proxy.from_server


# ---- bad options ------------------------------------------------------------------

def test_bad_options_are_accepted_when_made_and_refused_clearly_when_used(pki: TestPKI, manager: Manager) -> None:
    """As the Cython binding, TlsOpts stores anything; using it gives the error."""
    cert, key = pki.issue("localhost")
    bad = [
        ("without its private key", TlsOpts(cert=cert.read_text())),
        ("without its certificate", TlsOpts(key=key.read_text())),
        ("truncated", TlsOpts(ca="-----BEGIN CERTIFICATE-----\nMIIB")),
        ("not a valid certificate", TlsOpts(cert=b"-----BEGIN CERTIFICATE-----\nnot base64 at all\n"
                                                 b"-----END CERTIFICATE-----\n", key=key.read_bytes())),
        ("not a valid certificate", TlsOpts(ca=b"\x30\x03garbage DER")),
        ("not a valid certificate", TlsOpts(ca="any string at all")),
        # The TLS library's words: built-in "Expected ...", mbed TLS "bad private key: PK - ...".
        ("invalid TLS options: (Expected|bad private key: PK - )",
         TlsOpts(cert=cert, key=b"-----BEGIN SOMETHING-----\nAAAA\n-----END SOMETHING-----\n")),
    ]
    plain = manager.listen("tcp://127.0.0.1:0")
    for message, opts in bad:
        with pytest.raises(TlsError, match=message):
            manager.listen("https://127.0.0.1:0", tls=opts)
        with pytest.raises(TlsError, match=message):
            manager.connect("https://127.0.0.1:1", tls=opts)
        with pytest.raises(TlsError, match=message):
            plain.tls_init(opts)
    with pytest.raises(TypeError):
        manager.listen("https://127.0.0.1:0", tls="not options")  # type: ignore[arg-type]
    assert isinstance(TlsError("x"), ValueError) and isinstance(TlsError("x"), pymongoose.MongooseError)
    assert manager.connections == (plain,)


def test_options_accept_str_bytes_and_paths(pki: TestPKI) -> None:
    cert, key = pki.issue("localhost")
    for opts in (TlsOpts(cert=cert, key=key), TlsOpts(cert=cert.read_text(), key=key.read_text()),
                 TlsOpts(cert=cert.read_bytes(), key=key.read_bytes())):
        assert opts.cert == cert.read_bytes() and opts.key == key.read_bytes()
    combined = TlsOpts(cert=cert.read_bytes() + key.read_bytes())
    assert combined.key == combined.cert
    assert "cert=<" in repr(combined) and "BEGIN" not in repr(combined)




# ---- the fix to Mongoose's ECDSA signature encoding (vendor/mongoose_patches.py) --

def _der_integer(value: bytes) -> bytes:
    number = int.from_bytes(value, "big")
    body = number.to_bytes(max(1, (number.bit_length() + 8) // 8), "big")  # room for a sign bit
    return bytes([0x02, len(body)]) + body


@pytest.mark.parametrize("r, s", [
    (bytes([0x12] * 32), bytes([0x34] * 32)),                      # plain
    (bytes([0x80] + [1] * 31), bytes([0xFF] * 32)),                # high bits: a zero byte is added
    (bytes([0x00, 0x7F] + [5] * 30), bytes([0x00, 0x80] + [5] * 30)),  # leading zero dropped / kept
    (bytes(31) + b"\x01", bytes(30) + b"\x00\x80"),                # long runs of zeros
    (bytes(32), bytes(32)),                                        # zero itself
])
def test_ecdsa_signatures_are_minimal_der(r: bytes, s: bytes) -> None:
    """Mongoose 7.23 wrote r and s as 32-byte INTEGERs even with leading zeros, so
    OpenSSL refused about one handshake in 256 (BAD_SIGNATURE)."""
    from pymongoose._binding import ffi, lib

    out = ffi.new("uint8_t[72]")
    size = lib.pm_ecdsa_der(out, r + s)
    body = _der_integer(r) + _der_integer(s)
    assert bytes(ffi.buffer(out, size)) == bytes([0x30, len(body)]) + body


# ---- X25519 (pymongoose/_native/x25519.c, used by mbed TLS: vendor/mbedtls_patches.py) --

P25519 = 2**255 - 19


def _x25519_written_out(scalar: bytes, u: bytes) -> bytes:
    """RFC 7748's ladder, line by line, in Python's integers: the reference."""
    k = bytearray(scalar)
    k[0] &= 248
    k[31] = (k[31] & 127) | 64
    n = int.from_bytes(k, "little")
    x1 = int.from_bytes(u, "little") & ((1 << 255) - 1)
    x2, z2, x3, z3, swap = 1, 0, x1, 1, 0
    for t in reversed(range(255)):
        bit = (n >> t) & 1
        if swap ^ bit:
            x2, x3, z2, z3 = x3, x2, z3, z2
        swap = bit
        a, b, c, d = x2 + z2, x2 - z2, x3 + z3, x3 - z3
        aa, bb, da, cb = a * a, b * b, d * a, c * b
        e = aa - bb
        x3, z3 = (da + cb) ** 2 % P25519, x1 * (da - cb) ** 2 % P25519
        x2, z2 = aa * bb % P25519, e * (aa + 121665 * e) % P25519
    if swap:
        x2, z2 = x3, z3
    return (x2 * pow(z2, P25519 - 2, P25519) % P25519).to_bytes(32, "little")


def _x25519(scalar: bytes, u: bytes) -> "tuple[int, bytes]":
    from pymongoose._binding import ffi, lib

    out = ffi.new("uint8_t[32]")
    status = lib.pm_x25519(out, scalar, u)
    if status == 2:
        pytest.skip("no fast X25519 on this platform (no 128-bit integers): mbed TLS uses its own")
    return status, bytes(out)


def test_x25519_gives_rfc_7748s_answers() -> None:
    for scalar, u, expected in [  # RFC 7748, section 5.2
        ("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
         "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
         "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552"),
        ("4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
         "e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
         "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957"),
    ]:
        assert _x25519(bytes.fromhex(scalar), bytes.fromhex(u)) == (0, bytes.fromhex(expected))
    k = u = (9).to_bytes(32, "little")  # the iterated test: k, u = X25519(k, u), k
    for rounds in range(1, 1001):
        k, u = _x25519(k, u)[1], k
        if rounds == 1:
            assert k.hex() == "422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079"
    assert k.hex() == "684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51"
    # The Diffie-Hellman exchange of section 6.1: both sides reach one secret.
    alice = bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
    bob = bytes.fromhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
    base = (9).to_bytes(32, "little")
    assert _x25519(alice, base)[1].hex() == "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
    shared = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"
    assert _x25519(alice, _x25519(bob, base)[1])[1].hex() == shared
    assert _x25519(bob, _x25519(alice, base)[1])[1].hex() == shared


def test_x25519_agrees_with_the_ladder_written_out() -> None:
    """Random scalars and u, and the awkward u: above p (not reduced), p - 1 (small
    order: zero, flagged), the top bit set (ignored), all ones."""
    import random

    rng = random.Random(25519)
    us = [rng.getrandbits(256).to_bytes(32, "little") for _ in range(150)]
    us += [(P25519 + i).to_bytes(32, "little") for i in (2, 9, 18)]  # p, p + 1: small order
    us += [((1 << 255) | 9).to_bytes(32, "little"), b"\xff" * 32, (P25519 - 1).to_bytes(32, "little")]
    for u in us:
        scalar = rng.getrandbits(256).to_bytes(32, "little")
        expected = _x25519_written_out(scalar, u)
        assert _x25519(scalar, u) == (int(expected == bytes(32)), expected), (scalar.hex(), u.hex())


def test_x25519_says_when_the_result_is_zero() -> None:
    """u of small order (0, 1, p + 1...) give zero for every clamped scalar: TLS 1.3
    must then abort (RFC 8446, 7.4.2), so the result is flagged."""
    scalar = bytes(range(32))
    for u in (0, 1, P25519, P25519 + 1):
        assert _x25519(scalar, u.to_bytes(32, "little")) == (1, bytes(32))


@FULL_TLS
@pytest.mark.parametrize("group, shown", [("X25519", "X25519, 253 bits"), ("P-256", "ECDH, prime256v1, 256 bits")])
@pytest.mark.parametrize("option", ["-tls1_2", "-tls1_3"])
def test_each_key_exchange_group_with_openssl(serve: Any, pki: TestPKI, group: str, shown: str,
                                              option: str) -> None:
    """The client offers one group only, so the server must compute with it: X25519
    by x25519.c, P-256 by mbed TLS's own code. (An RSA certificate: at TLS 1.2 the
    groups offered also bound an ECDSA certificate's curve, RFC 8422.)"""
    cert, key = pki.issue("localhost", key_type="rsa2048")
    server = serve(hello, url="https://127.0.0.1:0", tls=TlsOpts(cert=cert, key=key))
    for i in range(3):  # fresh keys each time
        result = subprocess.run(
            ["openssl", "s_client", "-connect", f"127.0.0.1:{server.port}", "-servername", "localhost",
             "-CAfile", str(pki.ca_cert), "-verify_return_error", "-ign_eof", "-groups", group, option],
            input=f"GET /{i} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode(),
            capture_output=True, timeout=DEFAULT_TIMEOUT)
        out = result.stdout.decode(errors="replace")
        assert f"Server Temp Key: {shown}" in out, out + result.stderr.decode(errors="replace")
        assert f"secure /{i}" in out


def test_many_handshakes_with_openssl_all_succeed(serve: Any, pki: TestPKI, server_tls: TlsOpts) -> None:
    server = serve(hello, url="https://127.0.0.1:0", tls=server_tls)
    context = ssl.create_default_context(cafile=str(pki.ca_cert))
    for _ in range(60):
        with socket.create_connection(("127.0.0.1", server.port), timeout=DEFAULT_TIMEOUT) as raw:
            with context.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
                assert tls.recv(4096).startswith(b"HTTP/1.1 200")
