"""The WebSocket, MQTT, TLS, TCP/UDP, DNS, SNTP and threading examples, each run
as a program against real peers."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
from pathlib import Path
from typing import Any, List

import pytest
import requests
import websocket

from support import (
    DEFAULT_TIMEOUT,
    REPO,
    DnsResponder,
    Mosquitto,
    Program,
    SntpResponder,
    TestPKI,
    run_python,
    wait_for,
)

EXAMPLES = REPO / "examples"


def example(name: str, *args: str) -> Program:
    return Program(str(EXAMPLES / name), *args)


def finish(program: Program) -> None:
    status, output = program.stop()
    assert status == 0, output
    assert "Traceback" not in output, output


def run_to_end(name: str, *args: str) -> "tuple[int, str]":
    process = run_python(str(EXAMPLES / name), *args)
    output, _ = process.communicate(timeout=DEFAULT_TIMEOUT * 3)
    return process.returncode, output


def test_websocket_echo() -> None:
    with example("websocket_echo.py", "--listen", "http://127.0.0.1:0") as server:
        ws = websocket.create_connection(f"ws://127.0.0.1:{server.port}/ws", timeout=DEFAULT_TIMEOUT)
        ws.send("echo me")
        assert ws.recv() == "echo me"
        ws.send_binary(b"\x00\x01")
        assert ws.recv_data() == (websocket.ABNF.OPCODE_BINARY, b"\x00\x01")
        ws.close()
        assert "connect to /ws" in requests.get(server.url, timeout=DEFAULT_TIMEOUT).text
        finish(server)


def test_websocket_broadcast() -> None:
    with example("websocket_broadcast.py", "--listen", "http://127.0.0.1:0", "--interval-ms", "50") as server:
        first = websocket.create_connection(f"ws://127.0.0.1:{server.port}/", timeout=DEFAULT_TIMEOUT)
        second = websocket.create_connection(f"ws://127.0.0.1:{server.port}/", timeout=DEFAULT_TIMEOUT)
        assert first.recv().startswith("time ")  # the timer reaches every client
        first.send("hello all")

        def next_chat(ws: Any) -> str:
            while True:
                message = ws.recv()
                if not message.startswith("time "):
                    return message

        assert next_chat(first).endswith(": hello all")
        assert next_chat(second).endswith(": hello all")
        first.close()
        second.close()
        finish(server)


@pytest.fixture(scope="module")
def mosquitto(tmp_path_factory: Any) -> Any:
    broker = Mosquitto(tmp_path_factory.mktemp("mosquitto-examples"))
    yield broker
    broker.stop()


def test_mqtt_client_against_mosquitto(mosquitto: Mosquitto) -> None:
    status, output = run_to_end("mqtt_client.py", "--broker", mosquitto.url, "--topic", "examples/client",
                                "--count", "3")
    assert status == 0, output
    assert output.splitlines() == [f"examples/client: message {i}" for i in range(3)]


def test_mqtt_broker_with_paho_clients() -> None:
    import paho.mqtt.client as mqtt

    with example("mqtt_broker.py", "--listen", "mqtt://127.0.0.1:0") as broker:
        received: List[Any] = []
        subscribed = threading.Event()

        def make(name: str) -> Any:
            if hasattr(mqtt, "CallbackAPIVersion"):  # paho-mqtt 2
                return mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=name)
            return mqtt.Client(client_id=name)

        subscriber = make("paho-sub")
        subscriber.on_message = lambda client, userdata, msg: received.append((msg.topic, msg.payload, msg.qos))
        subscriber.on_subscribe = lambda *args: subscribed.set()
        subscriber.connect("127.0.0.1", broker.port, keepalive=2)
        subscriber.loop_start()
        publisher = make("paho-pub")
        publisher.connect("127.0.0.1", broker.port)
        publisher.loop_start()
        try:
            subscriber.subscribe([("home/+/temp", 1), ("alerts/#", 0)])
            assert subscribed.wait(DEFAULT_TIMEOUT)
            publisher.publish("home/kitchen/temp", b"21.5", qos=1).wait_for_publish(DEFAULT_TIMEOUT)
            publisher.publish("home/kitchen/humidity", b"40", qos=0)
            publisher.publish("alerts/fire/now", b"\x00binary", qos=0)
            wait_for(lambda: len(received) >= 2)
            assert ("home/kitchen/temp", b"21.5", 1) in received
            assert ("alerts/fire/now", b"\x00binary", 0) in received
            assert all(topic != "home/kitchen/humidity" for topic, _, _ in received)
            # The 2-second keepalive is kept up by PINGREQ/PINGRESP through the broker.
            import time

            time.sleep(3.5)
            assert subscriber.is_connected()
        finally:
            for client in (subscriber, publisher):
                client.disconnect()
                client.loop_stop()
        finish(broker)


def test_mqtt_client_example_against_the_broker_example() -> None:
    with example("mqtt_broker.py", "--listen", "mqtt://127.0.0.1:0") as broker:
        status, output = run_to_end("mqtt_client.py", "--broker", f"mqtt://127.0.0.1:{broker.port}",
                                    "--topic", "ours/both", "--count", "2", "--qos", "1")
        assert status == 0, output
        assert output.splitlines() == ["ours/both: message 0", "ours/both: message 1"]
        finish(broker)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: Any) -> TestPKI:
    return TestPKI(tmp_path_factory.mktemp("pki-examples"))


def test_https_server_and_client(pki: TestPKI) -> None:
    cert, key = pki.issue("localhost")
    with example("https_server.py", "--listen", "https://127.0.0.1:0", "--cert", str(cert), "--key", str(key)) as srv:
        r = requests.get(f"https://localhost:{srv.port}/secret", verify=str(pki.ca_cert), timeout=DEFAULT_TIMEOUT)
        assert r.text == "Hello over TLS, you asked for /secret\n"
        status, output = run_to_end("https_client.py", "--ca", str(pki.ca_cert), "--name", "localhost",
                                    f"https://127.0.0.1:{srv.port}/from-client")
        assert status == 0, output
        assert output == "200\nHello over TLS, you asked for /from-client\n"
        other_ca = TestPKI(pki.dir / "other", "other CA")
        status, output = run_to_end("https_client.py", "--ca", str(other_ca.ca_cert), "--name", "localhost",
                                    f"https://127.0.0.1:{srv.port}/")
        assert status == 1 and output.startswith("error:"), output
        finish(srv)


def test_tcp_echo() -> None:
    with example("tcp_echo.py", "--listen", "tcp://127.0.0.1:0") as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=DEFAULT_TIMEOUT) as s:
            s.sendall(b"round trip")
            assert s.recv(100) == b"round trip"
        finish(server)


def test_udp_echo() -> None:
    with example("udp_echo.py", "--listen", "udp://127.0.0.1:0") as server:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(DEFAULT_TIMEOUT)
            s.sendto(b"datagram", ("127.0.0.1", server.port))
            assert s.recvfrom(100)[0] == b"datagram"
        finish(server)


def test_dns_lookup() -> None:
    dns = DnsResponder({"printer.lan": "192.0.2.7", "nas.lan": "192.0.2.8"})
    try:
        status, output = run_to_end("dns_lookup.py", "--dns", dns.url, "printer.lan", "nas.lan")
        assert status == 0, output
        assert output.splitlines() == ["printer.lan: 192.0.2.7", "nas.lan: 192.0.2.8"]
        status, output = run_to_end("dns_lookup.py", "--dns", dns.url, "missing.lan")
        assert status == 1 and output.splitlines() == ["missing.lan: not found"]
    finally:
        dns.stop()


def test_sntp_client() -> None:
    sntp = SntpResponder()
    try:
        status, output = run_to_end("sntp_client.py", "--server", sntp.url)
    finally:
        sntp.stop()
    assert status == 0, output
    import time

    milliseconds = int(output.split()[0])
    assert abs(milliseconds / 1000 - time.time()) < 5


def test_multithreaded_server() -> None:
    def expected(n: int) -> str:
        digest = b"seed"
        for _ in range(n * 1000):
            digest = hashlib.sha256(digest).digest()
        return digest.hex()

    with example("multithreaded_server.py", "--listen", "http://127.0.0.1:0") as server:
        results: List[Any] = []

        def ask(n: int) -> None:
            results.append(json.loads(requests.get(f"{server.url}/work?n={n}", timeout=DEFAULT_TIMEOUT * 3).text))

        threads = [threading.Thread(target=ask, args=(n,)) for n in range(1, 9)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(DEFAULT_TIMEOUT * 3)
        assert sorted(results, key=lambda r: r["n"]) == [{"n": n, "digest": expected(n)} for n in range(1, 9)]
        assert requests.get(f"{server.url}/work?n=x", timeout=DEFAULT_TIMEOUT).status_code == 400
        finish(server)


def test_every_example_is_exercised() -> None:
    tested = Path(__file__).read_text() + (Path(__file__).parent / "test_examples.py").read_text()
    for program in EXAMPLES.glob("*.py"):
        assert f'"{program.name}"' in tested, f"{program.name} has no test"
