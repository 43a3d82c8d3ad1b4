"""FastAPI twin of Barista's WebSocket echo (workers/services/chat.c, /ws/echo), for
tests/bench/ws_bench.sh.

Run: python3 -m uvicorn ws_fastapi:app --app-dir tests/bench --loop uvloop \
         --ws websockets --log-level warning --host 127.0.0.1 --port PORT
"""
from fastapi import FastAPI, WebSocket, WebSocketDisconnect

app = FastAPI(title="barista-ws-compare")


@app.websocket("/ws/echo")
async def echo(ws: WebSocket):
    await ws.accept()
    try:
        while True:
            await ws.send_text(await ws.receive_text())
    except WebSocketDisconnect:
        pass
