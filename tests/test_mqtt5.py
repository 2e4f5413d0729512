"""MQTT 5 properties on connect, publish and subscribe: our client against a real
mosquitto broker (MQTT 5 is on by default in mosquitto 2) and paho-mqtt as the peer."""

from __future__ import annotations

import threading
from typing import Any, Dict, List, Optional

import pytest

from pymongoose import (
    MG_EV_MQTT_CMD,
    MG_EV_MQTT_MSG,
    MG_EV_MQTT_OPEN,
    MQTT_CMD_SUBACK,
    MQTT_PROP_CONTENT_TYPE,
    MQTT_PROP_CORRELATION_DATA,
    MQTT_PROP_MESSAGE_EXPIRY_INTERVAL,
    MQTT_PROP_PAYLOAD_FORMAT_INDICATOR,
    MQTT_PROP_RESPONSE_TOPIC,
    MQTT_PROP_SESSION_EXPIRY_INTERVAL,
    MQTT_PROP_SUBSCRIPTION_IDENTIFIER,
    MQTT_PROP_TOPIC_ALIAS,
    MQTT_PROP_USER_PROPERTY,
    Manager,
)

from support import DEFAULT_TIMEOUT, Mosquitto, poll_until, unique_topic


class Received:
    def __init__(self) -> None:
        self.connack: Optional[int] = None
        self.messages: List[Dict[str, Any]] = []
        self.commands: List[int] = []

    def handler(self, conn: Any, event: int, data: Any) -> None:
        if event == MG_EV_MQTT_OPEN:
            self.connack = data
        elif event == MG_EV_MQTT_CMD:
            self.commands.append(data.cmd)
        elif event == MG_EV_MQTT_MSG:
            self.messages.append({"topic": data.topic, "data": data.data, "properties": data.properties,
                                  "properties()": data.properties()})  # cymongoose's spelling


def paho_client(port: int) -> Any:
    import paho.mqtt.client as paho

    client = paho.Client(paho.CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    client.connect("127.0.0.1", port)
    return client


def test_publish_properties_reach_a_paho_v5_subscriber(broker: Mosquitto) -> None:
    import paho.mqtt.client as paho

    name = unique_topic("to-paho")
    got: List[Any] = []
    subscribed = threading.Event()
    peer = paho_client(broker.port)
    peer.on_message = lambda client, userdata, message: got.append(message)
    peer.on_subscribe = lambda *args: subscribed.set()
    peer.subscribe(name, qos=1)
    peer.loop_start()
    try:
        assert subscribed.wait(DEFAULT_TIMEOUT)
        ours = Received()
        with Manager() as mgr:
            conn = mgr.mqtt_connect(broker.url, ours.handler, version=5,
                                    properties=[(MQTT_PROP_SESSION_EXPIRY_INTERVAL, 30)])
            poll_until(mgr, lambda: ours.connack is not None)
            assert ours.connack == 0
            conn.mqtt_pub(name, b'{"t": 21.5}', qos=1, properties=[
                (MQTT_PROP_PAYLOAD_FORMAT_INDICATOR, 1),
                (MQTT_PROP_MESSAGE_EXPIRY_INTERVAL, 120),
                (MQTT_PROP_CONTENT_TYPE, "application/json"),
                (MQTT_PROP_RESPONSE_TOPIC, name + "/reply"),
                (MQTT_PROP_CORRELATION_DATA, b"\x00\x01req-7"),
                (MQTT_PROP_USER_PROPERTY, ("origin", "kitchen")),
                {"id": MQTT_PROP_USER_PROPERTY, "key": "unit", "val": "celsius"},  # cymongoose's form
            ])
            poll_until(mgr, lambda: got)
    finally:
        peer.loop_stop()
        peer.disconnect()
    props = got[0].properties
    assert got[0].payload == b'{"t": 21.5}'
    assert props.PayloadFormatIndicator == 1
    assert 0 < props.MessageExpiryInterval <= 120
    assert props.ContentType == "application/json"
    assert props.ResponseTopic == name + "/reply"
    assert props.CorrelationData == b"\x00\x01req-7"
    assert props.UserProperty == [("origin", "kitchen"), ("unit", "celsius")]
    assert isinstance(paho.MQTTv5, int)


def test_received_properties_and_subscription_identifier(broker: Mosquitto) -> None:
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    name = unique_topic("from-paho")
    ours = Received()
    with Manager() as mgr:
        conn = mgr.mqtt_connect(broker.url, ours.handler, version=5)
        poll_until(mgr, lambda: ours.connack is not None)
        conn.mqtt_sub(name, qos=1, properties=[(MQTT_PROP_SUBSCRIPTION_IDENTIFIER, 42)])
        poll_until(mgr, lambda: MQTT_CMD_SUBACK in ours.commands)
        peer = paho_client(broker.port)
        peer.loop_start()
        try:
            properties = Properties(PacketTypes.PUBLISH)
            properties.ContentType = "text/plain"
            properties.CorrelationData = b"\xffbinary"
            properties.UserProperty = [("a", "1"), ("a", "2")]

            def published() -> bool:
                if not ours.messages:
                    peer.publish(name, b"hello", qos=1, properties=properties).wait_for_publish(DEFAULT_TIMEOUT)
                return bool(ours.messages)

            poll_until(mgr, published)
        finally:
            peer.loop_stop()
            peer.disconnect()
    message = ours.messages[0]
    assert message["data"] == b"hello"
    props = message["properties"]
    assert props and message["properties()"] == props  # our attribute and cymongoose's call agree
    assert {"id": MQTT_PROP_CONTENT_TYPE, "val": "text/plain"} in props
    assert {"id": MQTT_PROP_CORRELATION_DATA, "val": b"\xffbinary"} in props  # binary stays bytes
    assert [p for p in props if p["id"] == MQTT_PROP_USER_PROPERTY] == [
        {"id": MQTT_PROP_USER_PROPERTY, "key": "a", "val": "1"},
        {"id": MQTT_PROP_USER_PROPERTY, "key": "a", "val": "2"}]
    assert {"id": MQTT_PROP_SUBSCRIPTION_IDENTIFIER, "iv": 42} in props


def test_topic_alias_is_accepted_by_the_broker(broker: Mosquitto) -> None:
    name = unique_topic("alias")
    ours = Received()
    with Manager() as mgr:
        conn = mgr.mqtt_connect(broker.url, ours.handler, version=5)
        poll_until(mgr, lambda: ours.connack is not None)
        conn.mqtt_sub(name)
        poll_until(mgr, lambda: MQTT_CMD_SUBACK in ours.commands)
        for payload in (b"first", b"second"):  # the first names the alias, the second may reuse it

            def arrived(payload: bytes = payload) -> bool:
                if all(m["data"] != payload for m in ours.messages):
                    conn.mqtt_pub(name, payload, properties=[(MQTT_PROP_TOPIC_ALIAS, 1)])
                return any(m["data"] == payload for m in ours.messages)

            poll_until(mgr, arrived)
    assert {m["topic"] for m in ours.messages} == {name}


def test_bad_properties_are_refused_clearly(broker: Mosquitto) -> None:
    ours = Received()
    with Manager() as mgr:
        with pytest.raises(ValueError, match="version=5"):
            mgr.mqtt_connect(broker.url, ours.handler, properties=[(MQTT_PROP_SESSION_EXPIRY_INTERVAL, 1)])
        with pytest.raises(ValueError, match="4 .MQTT 3.1.1. or 5"):
            mgr.mqtt_connect(broker.url, ours.handler, version=3)
        v3 = mgr.mqtt_connect(broker.url, ours.handler)
        poll_until(mgr, lambda: ours.connack is not None)
        with pytest.raises(ValueError, match="MQTT 5 connection"):
            v3.mqtt_pub(unique_topic("x"), b"x", properties=[(MQTT_PROP_CONTENT_TYPE, "text/plain")])
        v5 = mgr.mqtt_connect(broker.url, Received().handler, version=5)
        for bad, message in [
            ([(0x7F, 1)], "not an MQTT 5 property id"),
            ([(MQTT_PROP_MESSAGE_EXPIRY_INTERVAL, -1)], "takes an int"),
            ([(MQTT_PROP_PAYLOAD_FORMAT_INDICATOR, 256)], "takes an int from 0 to 255"),
            ([(MQTT_PROP_USER_PROPERTY, "not a pair")], "pair"),
            ([(MQTT_PROP_CONTENT_TYPE, "a\0b")], "NUL"),
            ({MQTT_PROP_CONTENT_TYPE: "x"}, "list of"),
        ]:
            with pytest.raises((ValueError, TypeError), match=message):
                v5.mqtt_pub(unique_topic("x"), b"x", properties=bad)
