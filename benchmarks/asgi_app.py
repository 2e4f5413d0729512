"""The Starlette app of the asgi suite (run.py): hello JSON over HTTP, and a
WebSocket echo, the same on every ASGI server."""

from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect


async def hello(request):
    return JSONResponse({"message": "Hello, World!"})


async def echo(websocket: WebSocket):
    await websocket.accept()
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("text") is not None:
                await websocket.send_text(message["text"])
            else:
                await websocket.send_bytes(message["bytes"])
    except WebSocketDisconnect:
        pass


app = Starlette(routes=[Route("/", hello), WebSocketRoute("/ws", echo)])
