#!/usr/bin/env python3
"""A minimal Switchyard client: connect with a token, join a chat room, send, print what comes.

    pip install websockets
    python3 examples/clients/client.py "$(cargo run -q --release -- token --sub alice)"
"""
import asyncio
import json
import sys

import websockets


async def main(token: str, url: str = "ws://127.0.0.1:8080/ws") -> None:
    async with websockets.connect(f"{url}?token={token}") as ws:
        print("welcome:", json.loads(await ws.recv()))
        for event, data in [
            ("echo", {"hello": "world"}),
            ("chat/join", {"room": "lobby"}),
            ("chat/send", {"room": "lobby", "text": "hi from python"}),
            ("chat/online", {"room": "lobby"}),
        ]:
            await ws.send(json.dumps({"event": event, "data": data}))
        async for frame in ws:  # replies, chat messages, pushes from the HTTP API
            print(json.loads(frame))


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    asyncio.run(main(sys.argv[1], *sys.argv[2:3]))
