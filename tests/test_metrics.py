"""--metrics: Prometheus text of all the workers together, on an address of its own;
checked with prometheus_client's parser."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple
from urllib.request import ProxyHandler, build_opener

import pytest

from pymongoose.servers import metrics

from support import (
    DEFAULT_TIMEOUT,
    WS_ECHO_APP,
    Program,
    free_port,
    open_websocket,
    raw_request,
    refused,
    wait_for,
    ws_frame,
)

parser = pytest.importorskip("prometheus_client.parser")

APP = '''
import os
def app(environ, start_response):
    missing = environ["PATH_INFO"] == "/missing"
    start_response("404 Not Found" if missing else "200 OK", [("Content-Length", "2")])
    return [b"no" if missing else b"ok"]
'''

def samples(text: str) -> Dict[Tuple[str, Tuple[Tuple[str, str], ...]], float]:
    """Every sample of a scrape, by (name, sorted labels)."""
    found = {}
    for family in parser.text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


DIRECT = build_opener(ProxyHandler({}))  # loopback: never through a proxy the environment names


def scrape(url: str) -> Dict[Tuple[str, Tuple[Tuple[str, str], ...]], float]:
    with DIRECT.open(url, timeout=DEFAULT_TIMEOUT) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        return samples(response.read().decode())


def test_the_exposition_parses_with_and_without_prometheus_client(monkeypatch: Any) -> None:
    table = metrics.SharedCounters(2)
    region = table.region(table.take() or 0)
    for status, seconds in ((200, 0.002), (201, 0.02), (404, 0.3), (503, 20.0)):
        region.request_done(status, seconds)
    region.websocket(received=True)
    region.sample(5, 2)
    ours = metrics.exposition(table.totals(), 1)
    monkeypatch.setattr(metrics, "_by_prometheus_client", _no_client)
    written_here = metrics.exposition(table.totals(), 1)
    for text in (ours, written_here):
        found = samples(text.decode())
        assert found[("pymongoose_requests_total", ())] == 4
        assert found[("pymongoose_responses_total", (("status", "2xx"),))] == 2
        assert found[("pymongoose_responses_total", (("status", "5xx"),))] == 1
        assert found[("pymongoose_request_duration_seconds_bucket", (("le", "0.005"),))] == 1
        assert found[("pymongoose_request_duration_seconds_bucket", (("le", "10.0"),))] == 3
        assert found[("pymongoose_request_duration_seconds_bucket", (("le", "+Inf"),))] == 4
        assert found[("pymongoose_request_duration_seconds_count", ())] == 4
        assert found[("pymongoose_request_duration_seconds_sum", ())] == pytest.approx(20.322)
        assert found[("pymongoose_connections", ())] == 5
        assert found[("pymongoose_requests_in_flight", ())] == 2
        assert found[("pymongoose_websocket_messages_total", (("direction", "received"),))] == 1


def _no_client(*_args: Any) -> bytes:
    raise ImportError("as if prometheus_client were not installed")


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Any]:
    started: List[Program] = []

    def run(kind: str, *flags: str) -> Tuple[Program, str]:
        (tmp_path / "app.py").write_text(APP if kind == "wsgi" else WS_ECHO_APP)
        url = f"http://127.0.0.1:{free_port()}/metrics"
        program = Program("-m", "pymongoose", f"--{kind}", "app:app", "--listen", "http://127.0.0.1:0",
                          "--metrics", url, "--no-access-log", *(["--lifespan", "off"] if kind == "asgi" else []),
                          *flags, cwd=tmp_path)
        started.append(program)
        return program, url

    yield run
    for program in started:
        program.__exit__()


def get(port: int, path: str) -> bytes:
    return raw_request(port, f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())


def test_metrics_count_every_worker_and_outlive_a_reload(start: Any) -> None:
    server, url = start("wsgi", "--workers", "2")
    wait_for(lambda: scrape(url)[("pymongoose_workers", ())] == 2, what="both workers")
    for i in range(30):
        assert get(server.port, "/missing" if i % 3 == 0 else "/").startswith(b"HTTP/1.1")
    found = wait_for(lambda: (lambda s: s if s[("pymongoose_requests_total", ())] == 30 else None)(scrape(url)),
                     what="30 requests counted")
    assert found[("pymongoose_responses_total", (("status", "2xx"),))] == 20
    assert found[("pymongoose_responses_total", (("status", "4xx"),))] == 10
    assert found[("pymongoose_request_duration_seconds_count", ())] == 30
    server.process.send_signal(signal.SIGHUP)  # new workers, new counters: the old ones' counts are kept
    wait_for(lambda: scrape(url)[("pymongoose_workers", ())] == 2 and
             scrape(url)[("pymongoose_requests_total", ())] == 30, what="the reload")
    get(server.port, "/")
    wait_for(lambda: scrape(url)[("pymongoose_requests_total", ())] == 31, what="a request after the reload")
    # The application's port does not serve them; the endpoint serves nothing else.
    assert get(server.port, "/metrics").endswith(b"ok")
    with pytest.raises(Exception, match="404"):
        DIRECT.open(url.replace("/metrics", "/other"), timeout=DEFAULT_TIMEOUT)
    status, out = server.stop(signal.SIGTERM)
    assert status == 0, out


def test_metrics_count_websocket_messages_and_connections(start: Any) -> None:
    server, url = start("asgi")
    client = open_websocket(server.port)
    for _ in range(3):
        client.sendall(ws_frame(0x2, b"hello"))
    received = b""
    while received.count(b"hello") < 3:
        received += client.recv(4096)
    found = wait_for(lambda: (lambda s: s if s[("pymongoose_connections", ())] == 1 else None)(scrape(url)),
                     what="the connection sampled")
    assert found[("pymongoose_websocket_messages_total", (("direction", "received"),))] == 3
    assert found[("pymongoose_websocket_messages_total", (("direction", "sent"),))] == 3
    assert found[("pymongoose_requests_in_flight", ())] == 1  # the WebSocket's task
    client.close()


@pytest.mark.parametrize("value", ["https://127.0.0.1:9100/metrics", "http://127.0.0.1/metrics", "9100"])
def test_a_bad_metrics_url_is_a_usage_error(value: str) -> None:
    assert "--metrics wants http://HOST:PORT/PATH" in refused("--wsgi", "app:app", "--metrics", value)
