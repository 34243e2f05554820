"""Calls one core carries with instant fake engines: ``python benchmarks/calls_per_core.py``.

    python benchmarks/calls_per_core.py [--calls 200] [--seconds 20] [--short-streams 1|0]

``capacity.py`` drives its callers with :class:`~phoneactors.testing.FakeTwilio`, which costs
about as much CPU per call as the server does, so on a 2-core box it cannot load one server core
fully. This benchmark pins the fake-engine server (the same launcher as ``capacity.py``) to the
first core and runs ``--calls`` callers from one lean client process pinned to the second core:
raw websocket frames over non-blocking sockets, one 20 ms tick for all calls.

Each caller behaves like a Twilio media stream with a person on it, as in ``capacity.py``: a
media message every 20 ms (silence or speech), phrases of 1.3 to 2.4 s so that it talks about
40 % of the time, mark echoes once the bot's audio before them has played, and a 0 to 2 s pause
before its first phrase after the greeting. Voice-to-voice is from the caller's last speech
frame sent to the first bot media received; a turn with no reply in 5 s counts as 5 s.

Reports the server's CPU (100 % = one core), p50/p95 voice-to-voice, turns, the server's
dropped inbound frames and the client's CPU, which must stay under 100 % for the figures to
mean anything. Linux only (``os.sched_setaffinity``), and needs two cores.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field

import psutil
from capacity import NO_REPLY_MS, PHRASES, TALK_SHARE, start_server, stop
from harness import REPO_ROOT, machine, percentile

TICK = 0.02


def _frame(text: str) -> bytes:
    """A client text frame, masked with a zero key (the server cannot tell the key's source)."""
    payload = text.encode()
    length = len(payload)
    if length < 126:
        header = bytes((0x81, 0x80 | length))
    else:
        header = bytes((0x81, 0x80 | 126)) + length.to_bytes(2, "big")
    return header + b"\0\0\0\0" + payload


@dataclass
class Caller:
    index: int
    sock: socket.socket
    rng: random.Random
    utterances: list[list[str]]
    sequence: int = 0
    state: str = "greeting"  # greeting, pause, talk, await, listen
    until: float = 0.0
    frames: list[str] = field(default_factory=list)
    said_at: float = 0.0
    talk: float = 0.0
    playout_end: float = 0.0
    last_media: float = 0.0
    marks: list[tuple[float, str]] = field(default_factory=list)
    buffer: bytes = b""
    latencies: list[float] = field(default_factory=list)
    closed: bool = False

    @property
    def sid(self) -> str:
        return f"MZ{self.index:032d}"

    def send_text(self, text: str) -> None:
        self.sock.sendall(_frame(text))

    def media(self, payload: str) -> str:
        self.sequence += 1
        n = self.sequence
        return (
            f'{{"event":"media","sequenceNumber":"{n}","media":{{"track":"inbound",'
            f'"chunk":"{n}","timestamp":"{n * 20}","payload":"{payload}"}},'
            f'"streamSid":"{self.sid}"}}'
        )

    def bot_done(self, now: float) -> bool:
        return now >= self.playout_end and now - self.last_media > 0.3 and not self.marks

    def tick(self, now: float, silence: str, counting: bool) -> None:
        due = [name for at, name in self.marks if at <= now]
        if due:
            self.marks = [(at, name) for at, name in self.marks if at > now]
            for name in due:
                self.sequence += 1
                self.send_text(
                    f'{{"event":"mark","sequenceNumber":"{self.sequence}",'
                    f'"streamSid":"{self.sid}","mark":{{"name":"{name}"}}}}'
                )
        if self.state == "talk":
            self.send_text(self.media(self.frames.pop(0)))
            if not self.frames:
                self.state, self.said_at = "await", now
            return
        self.send_text(self.media(silence))
        if self.state == "greeting" and self.last_media and self.bot_done(now):
            self.state, self.until = "pause", now + self.rng.uniform(0, 2)
        elif self.state == "pause" and now >= self.until:
            self.frames = list(self.rng.choice(self.utterances))
            self.talk = len(self.frames) * TICK
            self.state = "talk"
        elif self.state == "await" and now - self.said_at > NO_REPLY_MS / 1000:
            if counting:
                self.latencies.append(NO_REPLY_MS)
            self.state = "listen"
        elif self.state == "listen" and self.bot_done(now):
            rest = self.talk / TALK_SHARE - self.talk - (now - self.said_at)
            self.state, self.until = "pause", now + max(0.3, rest)

    def read(self, now: float, counting: bool) -> None:
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return
        if not data:
            self.closed = True
            return
        self.buffer += data
        while len(self.buffer) >= 2:
            length, head = self.buffer[1] & 0x7F, 2
            if length == 126:
                if len(self.buffer) < 4:
                    return
                length, head = int.from_bytes(self.buffer[2:4], "big"), 4
            elif length == 127:
                if len(self.buffer) < 10:
                    return
                length, head = int.from_bytes(self.buffer[2:10], "big"), 10
            if len(self.buffer) < head + length:
                return
            opcode = self.buffer[0] & 0x0F
            text = self.buffer[head : head + length]
            self.buffer = self.buffer[head + length :]
            if opcode == 0x8:
                self.closed = True
                return
            if opcode == 0x1:
                self.message(text, now, counting)

    def message(self, text: bytes, now: float, counting: bool) -> None:
        if b'"event":"media"' in text:
            payload = json.loads(text)["media"]["payload"]
            seconds = len(payload) * 3 / 4 / 8000
            self.playout_end = max(now, self.playout_end) + seconds
            self.last_media = now
            if self.state == "await":
                if counting:
                    self.latencies.append((now - self.said_at) * 1000)
                self.state = "listen"
        elif b'"event":"mark"' in text:
            self.marks.append((max(now, self.playout_end), json.loads(text)["mark"]["name"]))
        elif b'"event":"clear"' in text:
            self.playout_end = now
            self.marks = [(now, name) for _, name in self.marks]


def connect(host: str, port: int, index: int) -> socket.socket:
    sock = socket.create_connection((host, port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET /stream HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += sock.recv(4096)
    if not answer.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(f"call {index} refused: {answer.splitlines()[0]!r}")
    return sock


def client_main(url: str, calls: int, warmup: float, seconds: float) -> None:
    """Run ``calls`` callers; print one JSON line of results."""
    from phoneactors.audio import FRAME_SAMPLES, ulaw_encode
    from phoneactors.testing import FakeSpeech

    os.sched_setaffinity(0, {1})
    host, port = url.split("//")[1].split(":")
    speech = FakeSpeech()
    utterances = []
    for text in PHRASES:  # the launcher registers PHRASES in the same order
        pcm = speech.caller_audio(text)
        frames = [pcm[i : i + FRAME_SAMPLES] for i in range(0, len(pcm), FRAME_SAMPLES)]
        utterances.append([base64.b64encode(ulaw_encode(f)).decode() for f in frames])
    silence = base64.b64encode(b"\xff" * FRAME_SAMPLES).decode()
    callers = []
    for i in range(calls):
        sock = connect(host, int(port), i)
        caller = Caller(i, sock, random.Random(i), utterances)
        caller.send_text('{"event":"connected","protocol":"Call","version":"1.0.0"}')
        caller.send_text(
            f'{{"event":"start","sequenceNumber":"1","start":{{"accountSid":"AC1",'
            f'"streamSid":"{caller.sid}","callSid":"CA{i:032d}","tracks":["inbound"],'
            f'"customParameters":{{}},"mediaFormat":{{"encoding":"audio/x-mulaw",'
            f'"sampleRate":8000,"channels":1}}}},"streamSid":"{caller.sid}"}}'
        )
        sock.setblocking(False)
        callers.append(caller)
    started = time.monotonic()
    count_from, end = started + warmup, started + warmup + seconds
    by_fd = {c.sock.fileno(): c for c in callers}
    import selectors

    selector = selectors.DefaultSelector()
    for c in callers:
        selector.register(c.sock, selectors.EVENT_READ)
    next_tick = started
    lost = 0
    while True:
        now = time.monotonic()
        if now >= end:
            break
        if now >= next_tick:
            counting = now >= count_from
            for c in callers:
                if not c.closed:
                    try:
                        c.tick(now, silence, counting)
                    except (BlockingIOError, OSError):
                        lost += 1
            next_tick += TICK
            continue
        for key, _ in selector.select(timeout=max(0.0, next_tick - time.monotonic())):
            by_fd[key.fd].read(time.monotonic(), time.monotonic() >= count_from)
    latencies = [ms for c in callers for ms in c.latencies]
    closed = sum(c.closed for c in callers)
    print(json.dumps({"latencies": latencies, "closed": closed, "lost_sends": lost}), flush=True)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        client_main(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--short-streams", type=int, choices=[0, 1], default=1)
    args = parser.parse_args()
    if len(os.sched_getaffinity(0)) < 2:
        sys.exit("needs two cores: the server on one, the callers on the other")
    os.environ["PHONEACTORS_SHORT_STREAMS"] = str(args.short_streams)
    server = start_server("fake", args.calls, prefix=["taskset", "-c", "0"])
    try:
        warmup = 5.0 + args.calls / 40
        times = [str(warmup), str(args.seconds)]
        client = subprocess.Popen(
            [sys.executable, __file__, "--client", server.url, str(args.calls), *times],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        server_ps, client_ps = psutil.Process(server.process.pid), psutil.Process(client.pid)
        time.sleep(warmup + 1)
        server_ps.cpu_percent(None)
        client_ps.cpu_percent(None)
        time.sleep(args.seconds - 2)
        server_cpu, client_cpu = server_ps.cpu_percent(None), client_ps.cpu_percent(None)
        out, _ = client.communicate(timeout=120)
        result = json.loads(out.strip().splitlines()[-1])
    finally:
        stop(server.process)
    lat = result["latencies"] or [float("nan")]
    way = "short streams" if args.short_streams else "hypercorn websockets"
    print(f"machine: {machine()}")
    print(f"server pinned to one core, fake engines, {way}; {args.seconds:g} s counted\n")
    print(
        "| calls | server CPU | p50 v2v | p95 v2v | turns | dropped frames | calls ended"
        " | client CPU |"
    )
    print("|---|---|---|---|---|---|---|---|")
    print(
        f"| {args.calls} | {server_cpu:.0f} % | {percentile(lat, 50):.0f} ms"
        f" | {percentile(lat, 95):.0f} ms | {len(result['latencies'])} | {server.drops()}"
        f" | {result['closed']} | {client_cpu:.0f} % |"
    )
    if result["lost_sends"]:
        print(f"\n{result['lost_sends']} client sends failed: the client was behind")


if __name__ == "__main__":
    main()
