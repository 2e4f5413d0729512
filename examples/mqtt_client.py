"""Subscribe to a topic, publish to it, and print what comes back.

    python examples/mqtt_client.py --broker mqtt://127.0.0.1:1883 --topic demo/hello --count 3
"""

import argparse
import sys

from pymongoose import MG_EV_CLOSE, MG_EV_ERROR, MG_EV_MQTT_CMD, MG_EV_MQTT_MSG, MG_EV_MQTT_OPEN, Manager

SUBACK = 9


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", default="mqtt://127.0.0.1:1883")
    parser.add_argument("--topic", default="pymongoose/demo")
    parser.add_argument("--count", type=int, default=3)
    parser.add_argument("--qos", type=int, default=1, choices=(0, 1, 2))
    args = parser.parse_args()
    state = {"received": 0, "done": False, "error": None}

    def handler(conn, event, data):
        if event == MG_EV_MQTT_OPEN:
            if data != 0:
                state["error"] = f"broker refused the connection (CONNACK {data})"
                return
            conn.mqtt_sub(args.topic, qos=args.qos)
        elif event == MG_EV_MQTT_CMD and data.cmd == SUBACK:
            for i in range(args.count):
                conn.mqtt_pub(args.topic, f"message {i}", qos=args.qos)
        elif event == MG_EV_MQTT_MSG:
            print(f"{data.topic}: {data.text}", flush=True)
            state["received"] += 1
            if state["received"] == args.count:
                conn.mqtt_disconnect()
                conn.drain()
        elif event == MG_EV_ERROR:
            state["error"] = data
        elif event == MG_EV_CLOSE:
            state["done"] = True

    with Manager() as manager:
        manager.mqtt_connect(args.broker, handler, client_id="pymongoose-example", keepalive=30)
        while not state["done"]:
            manager.poll(100)
    if state["error"] or state["received"] != args.count:
        print(f"error: {state['error'] or 'connection closed early'}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
