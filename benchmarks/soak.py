"""Soak: N concurrent fake Twilio callers against a real server for M minutes (loopback only).

    python benchmarks/soak.py [--calls N] [--minutes M] [--seed S]

The server is :func:`phoneactors.server.serve` with **fake engines** (:class:`FakeSpeech`),
run by this script in a **subprocess** (``--serve``), so its RSS is measured on its own. Each
caller is a :class:`~phoneactors.testing.FakeTwilio` over a real websocket that loops: call,
do 1-5 random things (say an utterance and hear the answer, barge in on the answer, press a
key, send a bad frame), then hang up or drop the socket abruptly, and call again. Bounded: at
most ``--calls`` callers and ``--minutes`` minutes (plus a few seconds to wind down).

Figures come from the server (``/metrics`` and its ``call ended`` log lines) and the callers.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil  # type: ignore[import-untyped]
import trio

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from phoneactors.conversation import Conversation  # noqa: E402
from phoneactors.testing import (  # noqa: E402
    FakeSpeech,
    FakeSpeechToText,
    FakeTextToSpeech,
    FakeTwilio,
    open_twilio_stream,
    tone,
)

PHRASES = tuple(f"phrase number {i}" for i in range(40))
"""Registered in this order on both sides, so the server's fake STT knows each caller tone."""
CALL_ENDED = re.compile(r"call ended: (.*) \((\d+) frames in, (\d+) dropped, (\d+) bad messages")


BAD_FRAMES: tuple[str | bytes, ...] = ("junk", b"\xff\x00", '{"event": 1}')


class Echo(Conversation):
    greeting = "Hello."

    async def reply(self, text: str) -> str:
        return f"You said {text}."


def fake_speech() -> FakeSpeech:
    speech = FakeSpeech(
        stt=FakeSpeechToText(delay=0.02), tts=FakeTextToSpeech(delay=0.01, seconds_per_char=0.04)
    )
    for phrase in PHRASES:
        speech.stt.register(phrase)
    return speech


# --------------------------------------------------------------------------------------------
# The server, in a subprocess


def run_server(max_calls: int) -> None:
    """``--serve``: serve on a free loopback port; print it; stop when stdin closes."""
    import logging

    from phoneactors.server import ServerConfig, serve

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s %(message)s")
    config = ServerConfig(host="127.0.0.1", port=0, max_calls=max_calls, drain_timeout=2.0)

    async def stdin_closed() -> None:
        await trio.to_thread.run_sync(sys.stdin.read, abandon_on_cancel=True)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            engines = fake_speech().engines()
            _host, port = await nursery.start(
                lambda task_status: serve(
                    Echo, engines, config, task_status=task_status, shutdown_trigger=stdin_closed
                )
            )
            print(f"PORT {port}", flush=True)

    trio.run(main)


@dataclass
class ServerProcess:
    process: subprocess.Popen[str]
    port: int
    log: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def rss_mib(self) -> float:
        rss: int = psutil.Process(self.process.pid).memory_info().rss
        return rss / 2**20


def start_server(max_calls: int) -> ServerProcess:
    process = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--max-calls", str(max_calls)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
    )
    assert process.stdout is not None
    assert process.stderr is not None
    line = process.stdout.readline()
    if not line.startswith("PORT "):
        process.kill()
        raise RuntimeError(f"the server did not start: {line!r} {process.stderr.read()}")
    server = ServerProcess(process, int(line.split()[1]))
    stderr = process.stderr

    def pump() -> None:
        for text in stderr:
            server.log.append(text.rstrip("\n"))

    threading.Thread(target=pump, daemon=True).start()
    return server


def stop_server(server: ServerProcess) -> int:
    assert server.process.stdin is not None
    server.process.stdin.close()
    try:
        return server.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.process.kill()
        return server.process.wait()


# --------------------------------------------------------------------------------------------
# The callers


@dataclass
class Tally:
    calls: int = 0
    hung_up: int = 0
    dropped_by_caller: int = 0
    ended_by_bot: int = 0
    utterances: int = 0
    barge_ins_tried: int = 0
    keys: int = 0
    bad_frames: int = 0
    errors: Counter[str] = field(default_factory=Counter)


class Abrupt(Exception):
    """Leave a call without ``stop``: the socket just goes."""


def caller_audio(phrase: str) -> object:
    slot = PHRASES.index(phrase)
    return tone(max(0.3, len(phrase) * 0.03), frequency=400.0 + slot * 40.0)


async def say(fake: FakeTwilio, tally: Tally, rng: random.Random) -> None:
    phrase = rng.choice(PHRASES)
    tally.utterances += 1
    await fake.play(caller_audio(phrase))  # type: ignore[arg-type]
    await fake.silence(0.3)
    await fake.wait_for_bot_to_finish(give_up_after=10)


async def barge_in(fake: FakeTwilio, tally: Tally, rng: random.Random) -> None:
    sent = len(fake.outbound)
    tally.utterances += 1
    await fake.play(caller_audio(rng.choice(PHRASES)))  # type: ignore[arg-type]
    await fake.silence(0.3)
    await fake.wait_for(
        lambda: len(fake.outbound) > sent + 1 or fake.closed.is_set(), give_up_after=10
    )
    await trio.sleep(rng.uniform(0.05, 0.4))
    tally.barge_ins_tried += 1
    tally.utterances += 1
    await fake.play(caller_audio(rng.choice(PHRASES)))  # type: ignore[arg-type]
    await fake.silence(0.3)
    await fake.wait_for_bot_to_finish(give_up_after=10)


async def one_call(url: str, number: int, tally: Tally, rng: random.Random) -> None:
    sid = f"{number:032d}"
    tally.calls += 1
    async with open_twilio_stream(url, call_sid=f"CA{sid}", stream_sid=f"MZ{sid}") as fake:
        await fake.wait_for_bot_to_finish(give_up_after=10)  # the greeting
        for _ in range(rng.randint(1, 5)):
            if fake.closed.is_set():
                break
            action = rng.choices(["say", "barge", "key", "bad"], weights=[5, 2, 2, 1])[0]
            if action == "say":
                await say(fake, tally, rng)
            elif action == "barge":
                await barge_in(fake, tally, rng)
            elif action == "key":
                tally.keys += 1
                await fake.press(rng.choice("0123456789*#"))
                await fake.silence(0.2)
            else:
                tally.bad_frames += 1
                await fake.socket.send(rng.choice(BAD_FRAMES))  # type: ignore[arg-type]
        if fake.closed.is_set():
            tally.ended_by_bot += 1
        elif rng.random() < 0.3:
            tally.dropped_by_caller += 1
            raise Abrupt
        else:
            tally.hung_up += 1


async def caller(url: str, index: int, deadline: float, tally: Tally, seed: int) -> None:
    rng = random.Random(seed * 1000 + index)
    number = index * 1_000_000
    while trio.current_time() < deadline:
        number += 1
        try:
            with trio.fail_after(60):
                await one_call(url, number, tally, rng)
        except Exception as exc:  # counted, and the caller calls again
            error = _first_leaf(exc)
            if isinstance(error, Abrupt):
                continue  # a deliberate drop, already counted
            tally.errors[type(error).__name__] += 1
            await trio.sleep(0.2)


def _first_leaf(exc: BaseException) -> BaseException:
    """The first exception inside (nested) exception groups: what actually went wrong."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


# --------------------------------------------------------------------------------------------
# Figures


def parse_metrics(text: str) -> dict[str, float]:
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, _, value = line.rpartition(" ")
        values[name] = float(value)
    return values


def table(rows: list[tuple[str, str]]) -> str:
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"| {k.ljust(width)} | {v} |" for k, v in rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=10, help="concurrent callers (max 100)")
    parser.add_argument("--minutes", type=float, default=1.0, help="how long (max 30)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--max-calls", type=int, default=20, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        run_server(args.max_calls)
        return 0
    if not 1 <= args.calls <= 100 or not 0 < args.minutes <= 30:
        parser.error("--calls must be 1-100 and --minutes in (0, 30]")

    server = start_server(max_calls=args.calls + 5)
    tally = Tally()
    try:
        with httpx.Client(base_url=server.url) as client:
            for _ in range(100):
                if client.get("/healthz").status_code == 200:
                    break
                time.sleep(0.05)
            rss_start = server.rss_mib()
            started = time.monotonic()

            async def soak() -> None:
                deadline = trio.current_time() + args.minutes * 60
                url = f"ws://127.0.0.1:{server.port}/stream"
                async with trio.open_nursery() as nursery:
                    for i in range(args.calls):
                        nursery.start_soon(caller, url, i, deadline, tally, args.seed)

            trio.run(soak)
            elapsed = time.monotonic() - started
            time.sleep(0.5)  # let the last calls' ends reach the metrics
            rss_end = server.rss_mib()
            health = client.get("/healthz").json()
            metrics = parse_metrics(client.get("/metrics").text)
    finally:
        code = stop_server(server)

    ends = [CALL_ENDED.search(line) for line in server.log]
    ended = [m for m in ends if m]
    frames_in = sum(int(m.group(2)) for m in ended)
    frames_dropped = sum(int(m.group(3)) for m in ended)
    bad = sum(int(m.group(4)) for m in ended)
    by_end = {
        k.split('end="')[1].rstrip('"}'): int(v)
        for k, v in metrics.items()
        if k.startswith("phoneactors_calls_total{")
    }
    errors = {
        k.split('kind="')[1].rstrip('"}'): int(v)
        for k, v in metrics.items()
        if k.startswith("phoneactors_errors_total{")
    }
    tracebacks = sum("Traceback" in line for line in server.log)
    rows = [
        ("callers x minutes", f"{args.calls} x {args.minutes:g} ({elapsed:.0f} s)"),
        ("calls placed (client)", str(tally.calls)),
        ("calls ended (server)", str(sum(by_end.values()))),
        ("  by end (calls_total)", json.dumps(by_end, sort_keys=True)),
        (
            "caller: hung up/dropped/bot",
            f"{tally.hung_up}/{tally.dropped_by_caller}/{tally.ended_by_bot}",
        ),
        ("utterances sent", str(tally.utterances)),
        ("turns (server)", str(int(metrics.get("phoneactors_turns_total", 0)))),
        (
            "barge-ins tried / server",
            f"{tally.barge_ins_tried} / {int(metrics.get('phoneactors_barge_ins_total', 0))}",
        ),
        ("DTMF sent / server", f"{tally.keys} / {int(metrics.get('phoneactors_dtmf_total', 0))}"),
        ("bad frames sent / counted", f"{tally.bad_frames} / {bad}"),
        ("frames in / dropped", f"{frames_in} / {frames_dropped}"),
        ("errors by kind (server)", json.dumps(errors, sort_keys=True) if errors else "none"),
        (
            "caller errors",
            json.dumps(dict(tally.errors), sort_keys=True) if tally.errors else "none",
        ),
        ("tracebacks in server log", str(tracebacks)),
        ("active calls at end", str(health.get("active_calls"))),
        ("server RSS start / end", f"{rss_start:.1f} MiB / {rss_end:.1f} MiB"),
        ("server exit code", str(code)),
    ]
    print("server: phoneactors.server.serve + FakeSpeech engines, subprocess, 127.0.0.1")
    print(table(rows))
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    return 0 if code == 0 and not tracebacks else 1


if __name__ == "__main__":
    sys.exit(main())
