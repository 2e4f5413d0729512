"""A bare ASGI app (no framework): what a server costs on its own (asgi suite)."""

import json

_BODY = json.dumps({"message": "Hello, World!"}).encode()
_START = {"type": "http.response.start", "status": 200,
          "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(_BODY)).encode())]}
_END = {"type": "http.response.body", "body": _BODY}


async def app(scope, receive, send):
    if scope["type"] == "http":
        await send(_START)
        await send(_END)
    elif scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] != "websocket.receive":
                return
            text = message.get("text")
            await send({"type": "websocket.send", "text": text} if text is not None
                       else {"type": "websocket.send", "bytes": message["bytes"]})
