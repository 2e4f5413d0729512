"""MQTT: our client against a real mosquitto broker."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

from pymongoose import (
    MG_EV_CLOSE,
    MG_EV_MQTT_CMD,
    MG_EV_MQTT_MSG,
    MG_EV_MQTT_OPEN,
    MQTT_CMD_PINGRESP,
    MQTT_CMD_PUBACK,
    MQTT_CMD_PUBCOMP,
    MQTT_CMD_SUBACK,
    Manager,
    MqttMessage,
)

from support import Mosquitto, poll_until, unique_topic


class Client:
    """Our MQTT client, recording what it receives."""

    def __init__(self, mgr: Manager, url: str, **kwargs: Any) -> None:
        self.connack: Optional[int] = None
        self.messages: List[Dict[str, Any]] = []
        self.commands: List[int] = []
        self.closed = False
        self.conn = mgr.mqtt_connect(url, self.handler, **kwargs)
        self.mgr = mgr

    def handler(self, conn: Any, event: int, data: Any) -> None:
        if event == MG_EV_MQTT_OPEN:
            self.connack = data
        elif event == MG_EV_MQTT_MSG:
            assert isinstance(data, MqttMessage)
            self.messages.append({"topic": data.topic, "data": data.data, "qos": data.qos, "text": data.text})
        elif event == MG_EV_MQTT_CMD:
            self.commands.append(data.cmd)
        elif event == MG_EV_CLOSE:
            self.closed = True

    def wait_open(self) -> "Client":
        poll_until(self.mgr, lambda: self.connack is not None or self.closed, what="CONNACK")
        assert self.connack == 0, f"CONNACK {self.connack}, closed={self.closed}"
        return self

    def subscribe(self, pattern: str, qos: int = 0) -> None:
        before = self.commands.count(MQTT_CMD_SUBACK)
        self.conn.mqtt_sub(pattern, qos)
        poll_until(self.mgr, lambda: self.commands.count(MQTT_CMD_SUBACK) > before, what="SUBACK")


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_publish_and_receive_at_each_qos(broker: Mosquitto, qos: int) -> None:
    name = unique_topic(f"qos{qos}")
    with Manager() as mgr:
        sub = Client(mgr, broker.url, client_id=f"sub-{qos}").wait_open()
        pub = Client(mgr, broker.url).wait_open()
        sub.subscribe(name, qos)
        ids = [pub.conn.mqtt_pub(name, f"message {i}".encode(), qos=qos) for i in range(5)]
        poll_until(mgr, lambda: len(sub.messages) == 5)
        if qos:
            assert all(ids) and len(set(ids)) == 5
            acks = MQTT_CMD_PUBACK if qos == 1 else MQTT_CMD_PUBCOMP
            poll_until(mgr, lambda: pub.commands.count(acks) == 5, what="acknowledgements")
        else:
            assert ids == [0] * 5
    assert [m["data"] for m in sub.messages] == [f"message {i}".encode() for i in range(5)]
    assert {m["topic"] for m in sub.messages} == {name}
    assert {m["qos"] for m in sub.messages} == {qos}


def test_binary_and_large_payloads(broker: Mosquitto) -> None:
    name = unique_topic("binary")
    payloads = [b"", b"\x00\xff\x00", bytes(range(256)) * 1024]
    with Manager() as mgr:
        client = Client(mgr, broker.url).wait_open()
        client.subscribe(name, 1)
        for payload in payloads:
            client.conn.mqtt_pub(name, payload, qos=1)
        poll_until(mgr, lambda: len(client.messages) == len(payloads))
    assert [m["data"] for m in client.messages] == payloads


def test_retained_message_reaches_a_later_subscriber(broker: Mosquitto) -> None:
    name = unique_topic("retained")
    with Manager() as mgr:
        pub = Client(mgr, broker.url).wait_open()
        pub.conn.mqtt_pub(name, b"kept", qos=1, retain=True)
        poll_until(mgr, lambda: MQTT_CMD_PUBACK in pub.commands)
        late = Client(mgr, broker.url).wait_open()
        late.subscribe(name)
        poll_until(mgr, lambda: late.messages)
    assert late.messages[0]["data"] == b"kept"


def test_wildcard_subscriptions(broker: Mosquitto) -> None:
    base = unique_topic("wild")
    with Manager() as mgr:
        plus = Client(mgr, broker.url).wait_open()
        hash_ = Client(mgr, broker.url).wait_open()
        plus.subscribe(f"{base}/+/temp")
        hash_.subscribe(f"{base}/#")
        for path in ("kitchen/temp", "garage/temp", "kitchen/humidity", "a/b/temp"):
            plus.conn.mqtt_pub(f"{base}/{path}", path)
        poll_until(mgr, lambda: len(hash_.messages) == 4)
        time.sleep(0.05)  # let any wrongly routed message arrive before we count
        mgr.poll(10)
    assert sorted(m["text"] for m in plus.messages) == ["garage/temp", "kitchen/temp"]


def test_unsubscribe(broker: Mosquitto) -> None:
    name = unique_topic("unsub")
    with Manager() as mgr:
        client = Client(mgr, broker.url).wait_open()
        client.subscribe(name)
        client.conn.mqtt_pub(name, "one")
        poll_until(mgr, lambda: len(client.messages) == 1)
        client.conn.mqtt_unsub(name)
        poll_until(mgr, lambda: 11 in client.commands, what="UNSUBACK")
        client.conn.mqtt_pub(name, "two")
        marker = unique_topic("marker")
        client.subscribe(marker)
        client.conn.mqtt_pub(marker, "three")
        poll_until(mgr, lambda: len(client.messages) == 2)
    assert [m["text"] for m in client.messages] == ["one", "three"]


def test_username_and_password(tmp_path: Path) -> None:
    secured = Mosquitto(tmp_path, users={"alice": "s3cret"})
    try:
        with Manager() as mgr:
            good = Client(mgr, secured.url, username="alice", password="s3cret").wait_open()
            bad = Client(mgr, secured.url, username="alice", password="wrong")
            anonymous = Client(mgr, secured.url)
            poll_until(mgr, lambda: bad.closed and anonymous.closed)
            assert good.connack == 0 and not good.closed
        assert bad.connack not in (None, 0)
        assert anonymous.connack not in (None, 0)
    finally:
        secured.stop()


def test_keepalive_pings_keep_an_idle_client_connected(broker: Mosquitto) -> None:
    with Manager() as mgr:
        client = Client(mgr, broker.url, keepalive=1).wait_open()
        deadline = time.monotonic() + 3.5  # the broker drops a silent client after 1.5 s
        while time.monotonic() < deadline:
            mgr.poll(50)
        assert not client.closed
        assert client.commands.count(MQTT_CMD_PINGRESP) >= 2


def test_clean_disconnect_suppresses_the_last_will(broker: Mosquitto) -> None:
    will = unique_topic("will")
    with Manager() as mgr:
        watcher = Client(mgr, broker.url).wait_open()
        watcher.subscribe(will)
        polite = Client(mgr, broker.url, will_topic=will, will_message=b"polite died").wait_open()
        rude = Client(mgr, broker.url, will_topic=will, will_message=b"rude died", will_qos=1).wait_open()
        polite.conn.mqtt_disconnect()
        polite.conn.drain()
        rude.conn.close()  # no DISCONNECT: the broker publishes the will
        poll_until(mgr, lambda: watcher.messages)
        poll_until(mgr, lambda: polite.closed)
        mgr.poll(50)
    assert [m["data"] for m in watcher.messages] == [b"rude died"]


def test_bad_arguments(broker: Mosquitto) -> None:
    with Manager() as mgr:
        client = Client(mgr, broker.url).wait_open()
        with pytest.raises(ValueError):
            client.conn.mqtt_pub("a/+/b", "wildcards are for subscribing")
        with pytest.raises(ValueError):
            client.conn.mqtt_pub("", "empty topic")
        with pytest.raises(ValueError):
            client.conn.mqtt_sub("t", qos=3)
        with pytest.raises(ValueError):
            client.conn.mqtt_pub("t\0x", "nul")
        with pytest.raises(ValueError):
            mgr.mqtt_connect(broker.url, keepalive=-1)
        with pytest.raises(ValueError):
            mgr.mqtt_connect(broker.url, will_message=b"no topic")


def test_connect_to_a_closed_port_reports_an_error() -> None:
    from support import free_port

    errors: List[Any] = []
    with Manager(lambda c, e, d: e == 0 and errors.append(d)) as mgr:
        conn = mgr.mqtt_connect(f"mqtt://127.0.0.1:{free_port()}")
        poll_until(mgr, lambda: conn.is_closed)
    assert errors


def test_mqtt_listen_closes_silent_clients_after_idle_timeout_ms() -> None:
    import socket

    with Manager(lambda conn, event, data: None) as mgr:
        listener = mgr.mqtt_listen("mqtt://127.0.0.1:0", idle_timeout_ms=200)
        with socket.create_connection(("127.0.0.1", listener.local_addr.port), timeout=5) as s:
            s.setblocking(False)
            poll_until(mgr, lambda: any(c.is_accepted for c in mgr.connections))
            poll_until(mgr, lambda: not any(c.is_accepted for c in mgr.connections), what="the idle close")
            s.setblocking(True)
            assert s.recv(16) == b""  # closed by the server, having said nothing
    with Manager() as mgr, pytest.raises(ValueError):
        mgr.mqtt_listen("mqtt://127.0.0.1:0", idle_timeout_ms=0)
