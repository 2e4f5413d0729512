"""The FastAPI application of test_asgi.py. A module of its own, without
``from __future__ import annotations``: FastAPI reads the annotations at run time."""

import threading
from typing import Any, Dict, List

from fastapi import BackgroundTasks, Depends, FastAPI, WebSocket, WebSocketDisconnect
from pydantic import BaseModel

done: List[str] = []  # what the background tasks did


class Item(BaseModel):
    name: str
    price: float


def current_user(token: str = "anonymous") -> str:
    return token.upper()


app = FastAPI()


@app.post("/items")
async def create(item: Item, background: BackgroundTasks, user: str = Depends(current_user)) -> Dict[str, Any]:
    background.add_task(done.append, item.name)
    return {"name": item.name, "price": item.price, "user": user}


@app.get("/sync")
def blocking() -> Dict[str, Any]:  # FastAPI runs it in a thread
    return {"thread": threading.current_thread() is not threading.main_thread()}


@app.websocket("/ws")
async def socket_endpoint(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        while True:
            data = await websocket.receive_json()
            await websocket.send_json({"got": data})
    except WebSocketDisconnect:
        pass
