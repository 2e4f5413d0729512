"""MQTT publish + receive throughput through a broker, with pymongoose or paho-mqtt.

    mqtt_throughput.py BROKER_PORT [--client pymongoose|paho] [--qos 0|1] [--messages 100000]

One subscriber and one publisher; prints messages received per second, from the
first publish to the last message received.
"""

import argparse
import threading
import time

TOPIC = "bench/throughput"
PAYLOAD = b"0123456789abcdef"
BATCH = 500
DEADLINE = 60  # seconds; messages received by then count


def with_pymongoose(port, qos, count):
    from pymongoose import MG_EV_MQTT_CMD, MG_EV_MQTT_MSG, MG_EV_MQTT_OPEN, Manager

    state = {"received": 0, "open": 0, "subscribed": False}

    def subscriber(conn, event, data):
        if event == MG_EV_MQTT_OPEN:
            conn.mqtt_sub(TOPIC, qos)
        elif event == MG_EV_MQTT_CMD and data.cmd == 9:  # SUBACK
            state["subscribed"] = True
        elif event == MG_EV_MQTT_MSG:
            state["received"] += 1

    def publisher(conn, event, data):
        if event == MG_EV_MQTT_OPEN:
            state["open"] += 1

    with Manager() as mgr:
        mgr.mqtt_connect(f"mqtt://127.0.0.1:{port}", subscriber, client_id="bench-sub")
        pub = mgr.mqtt_connect(f"mqtt://127.0.0.1:{port}", publisher, client_id="bench-pub")
        while not (state["subscribed"] and state["open"]):
            mgr.poll(10)
        started = time.monotonic()
        sent = 0
        while state["received"] < count and time.monotonic() - started < DEADLINE:
            if sent < count and pub.send_len < (1 << 20):
                for _ in range(min(BATCH, count - sent)):
                    pub.mqtt_pub(TOPIC, PAYLOAD, qos=qos)
                sent += min(BATCH, count - sent)
            mgr.poll(1)
        return state["received"] / (time.monotonic() - started)


def with_paho(port, qos, count):
    import paho.mqtt.client as mqtt

    done = threading.Event()
    subscribed = threading.Event()
    received = [0]

    def make(name):
        return mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=name)

    def on_message(client, userdata, message):
        received[0] += 1
        if received[0] == count:
            done.set()

    sub = make("bench-paho-sub")
    sub.on_message = on_message
    sub.on_subscribe = lambda *a: subscribed.set()
    sub.connect("127.0.0.1", port)
    sub.loop_start()
    sub.subscribe(TOPIC, qos)
    subscribed.wait(10)
    pub = make("bench-paho-pub")
    pub.max_inflight_messages_set(1000)
    pub.max_queued_messages_set(0)
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    started = time.monotonic()
    for _ in range(count):
        pub.publish(TOPIC, PAYLOAD, qos=qos)
    done.wait(DEADLINE)
    elapsed = time.monotonic() - started
    for client in (sub, pub):
        client.disconnect()
        client.loop_stop()
    return received[0] / elapsed


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--client", default="pymongoose", choices=("pymongoose", "paho"))
    parser.add_argument("--qos", type=int, default=0, choices=(0, 1))
    parser.add_argument("--messages", type=int, default=100_000)
    args = parser.parse_args()
    run = with_pymongoose if args.client == "pymongoose" else with_paho
    print(f"{run(args.port, args.qos, args.messages):.0f} messages/s")


if __name__ == "__main__":
    main()
