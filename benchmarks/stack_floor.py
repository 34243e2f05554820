"""The websocket stack's own cost per message: ``python benchmarks/stack_floor.py [--calls 50]``.

How much of the server CPU per inbound media message is the web stack's, and how much is
phoneactors'? Five servers, each in a subprocess, each receiving ``--calls`` websocket
connections that send one Twilio media message every 20 ms (from one client subprocess):

* **trio + wsproto, bare**: a trio server that reads each connection with wsproto and discards
  every message. The floor of the short way (:mod:`phoneactors.front_door`).
* **hypercorn, bare ASGI**: an ASGI app that accepts and discards every message. The floor of
  hypercorn, wsproto and trio reading one message.
* **quart-trio route**: the same through quart-trio's websocket route.
* **phoneactors, hypercorn websockets**: the real server (``short_streams=False``) with instant
  fake engines (the Parrot), every call idle after its greeting: parse, μ-law, VAD, segmenter,
  actors, under quart-trio and hypercorn.
* **phoneactors**: the same, with the media streams served the short way (the default).

The table gives the server's CPU (psutil over ``--seconds``, 100 % = one core) and that CPU per
inbound message. ``capacity.py`` measures calls with turns; this isolates the per-message cost.
"""

from __future__ import annotations

import argparse
import base64
import json
import socket
import subprocess
import sys
import textwrap
import time

import psutil
from harness import REPO_ROOT, machine

SERVERS = {
    "trio + wsproto, bare": "wsproto",
    "hypercorn, bare ASGI": "raw",
    "quart-trio route": "quart",
    "phoneactors, hypercorn websockets (fake engines, idle calls)": "phoneactors-hypercorn",
    "phoneactors (fake engines, idle calls)": "phoneactors",
}

SERVER = textwrap.dedent(
    """
    import sys, trio
    from functools import partial
    from hypercorn.config import Config
    from hypercorn.trio import serve

    mode, port = sys.argv[1], int(sys.argv[2])

    async def raw(scope, receive, send):
        if scope["type"] == "websocket":
            await send({"type": "websocket.accept"})
            while (await receive())["type"] != "websocket.disconnect":
                pass
        elif scope["type"] == "lifespan":
            while True:
                event = await receive()
                done = event["type"] == "lifespan.shutdown"
                await send({"type": event["type"] + ".complete"})
                if done:
                    return

    if mode == "raw":
        app = raw
    elif mode == "quart":
        from quart import websocket
        from quart_trio import QuartTrio

        app = QuartTrio(__name__)

        @app.websocket("/stream")
        async def stream():
            await websocket.accept()
            while True:
                await websocket.receive()

    async def discard(stream):
        from wsproto import ConnectionType, WSConnection
        from wsproto.events import AcceptConnection, CloseConnection, Ping, Request

        ws = WSConnection(ConnectionType.SERVER)
        while data := await stream.receive_some(65536):
            ws.receive_data(data)
            for event in ws.events():
                if isinstance(event, Request):
                    await stream.send_all(ws.send(AcceptConnection()))
                elif isinstance(event, Ping | CloseConnection):
                    await stream.send_all(ws.send(event.response()))
                    if isinstance(event, CloseConnection):
                        return

    if mode == "wsproto":
        trio.run(partial(trio.serve_tcp, discard, port, host="127.0.0.1"))
    elif mode.startswith("phoneactors"):
        from phoneactors.call import CallSettings
        from phoneactors.conversation import Parrot
        from phoneactors.server import ServerConfig, serve as serve_phoneactors
        from phoneactors.testing import FakeSpeech

        config = ServerConfig(  # idle calls: no "are you still there?"
            host="127.0.0.1", port=port, max_calls=10_000, records=None,
            call_settings=CallSettings(idle_timeout=None),
            short_streams=mode == "phoneactors",
        )
        trio.run(serve_phoneactors, Parrot, FakeSpeech().engines(), config)
    else:
        config = Config()
        config.bind = [f"127.0.0.1:{port}"]
        trio.run(serve, app, config)
    """
)

CLIENT = textwrap.dedent(
    """
    import sys, trio
    from trio_websocket import open_websocket_url

    url, calls, seconds, message = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]

    async def call():
        async with open_websocket_url(url) as ws:
            await ws.send_message(
                '{"event":"connected","protocol":"Call","version":"1.0.0"}'
            )
            await ws.send_message(
                '{"event":"start","sequenceNumber":"1","start":{"accountSid":"AC1",'
                '"streamSid":"MZ1","callSid":"CA1","tracks":["inbound"],"customParameters":{},'
                '"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}},'
                '"streamSid":"MZ1"}'
            )
            while True:
                await ws.send_message(message)
                await trio.sleep(0.02)

    async def main():
        async with trio.open_nursery() as nursery:
            for _ in range(calls):
                nursery.start_soon(call)
            await trio.sleep(seconds)
            nursery.cancel_scope.cancel()

    trio.run(main)
    """
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_port(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"no server on port {port} after {timeout:.0f} s")


def media_message() -> str:
    payload = base64.b64encode(b"\xff" * 160).decode()  # 20 ms of μ-law silence
    media = {"track": "inbound", "chunk": "2", "timestamp": "20", "payload": payload}
    message = {"event": "media", "sequenceNumber": "2", "media": media, "streamSid": "MZ1"}
    return json.dumps(message, separators=(",", ":"))


def measure(mode: str, calls: int, seconds: float) -> float:
    """Server CPU (% of one core) while ``calls`` connections stream media."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, mode, str(port)],
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        settle = 5.0
        client = subprocess.Popen(
            [
                sys.executable,
                "-c",
                CLIENT,
                f"ws://127.0.0.1:{port}/stream",
                str(calls),
                str(seconds + settle + 2),
                media_message(),
            ],
            cwd=REPO_ROOT,
        )
        process = psutil.Process(server.pid)
        time.sleep(settle)  # connections open, the phoneactors greetings play
        process.cpu_percent(None)
        time.sleep(seconds)
        cpu = process.cpu_percent(None)
        client.wait(60)
        return cpu
    finally:
        server.terminate()
        server.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    rate = args.calls * 50
    print(f"machine: {machine()}")
    print(f"{args.calls} connections, {rate} media messages a second, {args.seconds:g} s\n")
    print("| server | CPU (100 % = one core) | CPU per inbound message |")
    print("|---|---|---|")
    for label, mode in SERVERS.items():
        cpu = measure(mode, args.calls, args.seconds)
        print(f"| {label} | {cpu:.0f} % | {cpu / 100 / rate * 1e6:.0f} µs |")


if __name__ == "__main__":
    main()
