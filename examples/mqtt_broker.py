"""A minimal MQTT 3.1.1 broker on mqtt_listen: CONNECT, SUBSCRIBE (with + and #
wildcards), UNSUBSCRIBE, PUBLISH (QoS 0 and 1 to subscribers), PINGREQ.
No sessions, retained messages or authentication: a demonstration, not mosquitto.

    python examples/mqtt_broker.py --listen mqtt://127.0.0.1:1883
"""

import argparse

from pymongoose import (
    MG_EV_CLOSE,
    MG_EV_MQTT_CMD,
    MQTT_CMD_CONNECT,
    MQTT_CMD_DISCONNECT,
    MQTT_CMD_PINGREQ,
    MQTT_CMD_PUBLISH,
    MQTT_CMD_SUBSCRIBE,
    MQTT_CMD_UNSUBSCRIBE,
    Manager,
)


def topic_matches(pattern, topic):
    """MQTT wildcard matching: + is one level, # is the rest."""
    wanted, levels = pattern.split("/"), topic.split("/")
    for i, part in enumerate(wanted):
        if part == "#":
            return True
        if i >= len(levels) or (part != "+" and part != levels[i]):
            return False
    return len(wanted) == len(levels)


class Broker:
    def __init__(self):
        self.subscriptions = []  # (connection, pattern, qos)

    def handle(self, conn, event, data):
        if event == MG_EV_CLOSE:
            self.subscriptions = [s for s in self.subscriptions if s[0] is not conn]
        if event != MG_EV_MQTT_CMD:
            return
        if data.cmd == MQTT_CMD_CONNECT:
            conn.send(bytes([0x20, 2, 0, 0]))  # CONNACK: session not present, accepted
        elif data.cmd == MQTT_CMD_SUBSCRIBE:
            granted = []
            for pattern, qos in data.subscriptions():
                qos = min(qos, 1)
                self.subscriptions.append((conn, pattern, qos))
                granted.append(qos)
            conn.send(bytes([0x90, 2 + len(granted), data.id >> 8, data.id & 0xFF, *granted]))  # SUBACK
        elif data.cmd == MQTT_CMD_UNSUBSCRIBE:
            patterns = {pattern for pattern, _ in data.subscriptions()}
            self.subscriptions = [s for s in self.subscriptions if not (s[0] is conn and s[1] in patterns)]
            conn.send(bytes([0xB0, 2, data.id >> 8, data.id & 0xFF]))  # UNSUBACK
        elif data.cmd == MQTT_CMD_PUBLISH:
            for subscriber, pattern, qos in self.subscriptions:
                if topic_matches(pattern, data.topic):
                    subscriber.mqtt_pub(data.topic, data.data, qos=min(qos, data.qos))
        elif data.cmd == MQTT_CMD_PINGREQ:
            conn.mqtt_pong()
        elif data.cmd == MQTT_CMD_DISCONNECT:
            conn.drain()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="mqtt://127.0.0.1:1883")
    args = parser.parse_args()
    manager = Manager()
    listener = manager.mqtt_listen(args.listen, Broker().handle)
    print(f"MQTT broker listening on mqtt://127.0.0.1:{listener.local_addr.port}", flush=True)
    manager.run()


if __name__ == "__main__":
    main()
