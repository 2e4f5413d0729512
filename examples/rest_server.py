"""A REST/JSON API over an in-memory store.

    python examples/rest_server.py
    curl -X POST -d '{"name": "apple", "price": 1.5}' http://127.0.0.1:8000/api/items
    curl http://127.0.0.1:8000/api/items
"""

import argparse
import json
import re

from pymongoose import MG_EV_HTTP_MSG, Manager, json_get_num, json_get_str

ITEM = re.compile(r"^/api/items/(\d+)$")


class Store:
    def __init__(self):
        self.items = {}
        self.next_id = 1

    def handle(self, conn, event, data):
        if event != MG_EV_HTTP_MSG:
            return
        status, body = self.route(data.method, data.uri, data.body_bytes)
        conn.reply(status, json.dumps(body), {"Content-Type": "application/json"})

    def route(self, method, uri, body):
        if uri == "/api/items":
            if method == "GET":
                return 200, list(self.items.values())
            if method == "POST":
                return self.create(body)
            return 405, {"error": "method not allowed"}
        match = ITEM.match(uri)
        if not match:
            return 404, {"error": "not found"}
        item_id = int(match[1])
        if item_id not in self.items:
            return 404, {"error": f"no item {item_id}"}
        if method == "GET":
            return 200, self.items[item_id]
        if method == "DELETE":
            return 200, self.items.pop(item_id)
        if method == "PUT":
            price = json_get_num(body, "$.price")
            if price is None:
                return 400, {"error": "price must be a number"}
            self.items[item_id]["price"] = price
            return 200, self.items[item_id]
        return 405, {"error": "method not allowed"}

    def create(self, body):
        name, price = json_get_str(body, "$.name"), json_get_num(body, "$.price")
        if name is None or price is None:
            return 400, {"error": "expected {\"name\": str, \"price\": number}"}
        item = {"id": self.next_id, "name": name, "price": price}
        self.items[self.next_id] = item
        self.next_id += 1
        return 201, item


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="http://127.0.0.1:8000")
    args = parser.parse_args()
    manager = Manager(Store().handle)
    listener = manager.listen(args.listen, http=True)
    print(f"Listening on http://127.0.0.1:{listener.local_addr.port}", flush=True)
    manager.run()


if __name__ == "__main__":
    main()
