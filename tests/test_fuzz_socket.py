"""Hostile input over a real server's media stream, next to a healthy call.

Each test starts :func:`phoneactors.server.serve` on loopback port 0 with fake engines, opens a
hostile stream and, at the same time, a healthy call that must get its answer ("You said …").
Afterwards ``/healthz`` must still answer 200, and the hostile call must have been handled as
documented (README, "How it works"; :mod:`phoneactors.server`):

* a malformed message (bad JSON, wrong types, unknown event, bad base64, over-long payload,
  non-UTF-8 binary frame, anything but ``start`` before ``start``, a second ``start``) is
  skipped with a counted warning, and the call goes on;
* more than ``CallSettings.max_bad_messages`` (50) of them end that call, with the reason
  logged;
* a message over ``ServerConfig.max_message_bytes`` ends that call with close code 1009, with
  the reason logged.
"""

from __future__ import annotations

import base64
import json
import logging
import queue
import threading
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import pytest
import trio
import trio_websocket
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from phoneactors import twilio
from phoneactors.audio import FRAME_SAMPLES
from phoneactors.testing import FakeSpeech, FakeSpeechToText, FakeTextToSpeech
from tests.test_server import Server, Stream, greeted, open_stream, running

CAP = 8.0
"""Seconds any one test may take (they take well under one)."""
LIMIT = 8192
"""``max_message_bytes`` for these servers."""
SILENCE = bytes([0xFF]) * FRAME_SAMPLES
"""20 ms of μ-law silence."""

Hostile = Callable[[Server, Stream], Awaitable[None]]


@pytest.fixture
def speech() -> FakeSpeech:
    return FakeSpeech(
        stt=FakeSpeechToText(delay=0.01),
        tts=FakeTextToSpeech(delay=0.0, seconds_per_char=0.005),
    )


@pytest.fixture(autouse=True)
def _info_logs(caplog: pytest.LogCaptureFixture) -> None:
    """The ``call ended: … (N bad messages …)`` lines are INFO."""
    caplog.set_level(logging.INFO, "phoneactors")


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records]


def media(stream: Stream, payload: object, **changes: Any) -> str:
    """A media message whose fields can be anything at all."""
    seq = stream.seq()
    message: dict[str, Any] = {
        "event": "media",
        "sequenceNumber": str(seq),
        "streamSid": stream.stream_sid,
        "media": {"track": "inbound", "chunk": str(seq), "timestamp": "0", "payload": payload},
    }
    message.update(changes)
    return json.dumps(message)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def send_all(stream: Stream, junk: list[str | bytes]) -> None:
    for message in junk:
        await stream.ws.send_message(message)


async def healthy_turn(server: Server, speech: FakeSpeech, sid: str, words: str) -> None:
    """A whole healthy call: greeting, one turn answered, the caller hangs up."""
    async with open_stream(server.ws_url, sid) as stream:
        await greeted(stream)
        await stream.say(speech, words)
        await stream.wait_for(lambda: f"You said {words}." in speech.spoken)
        await stream.stop()
        assert await stream.wait_closed() == 1000


async def healthz_ok(server: Server) -> None:
    async with server.client() as client:
        response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


async def alongside_healthy_call(
    speech: FakeSpeech, hostile: Hostile, *, start: bool = True, **options: Any
) -> Stream:
    """Run ``hostile`` on one stream while a healthy call completes a turn on another; check
    the server still answers ``/healthz``. Returns the hostile stream (closed or not)."""
    options.setdefault("max_message_bytes", LIMIT)
    result: list[Stream] = []
    with trio.fail_after(CAP):
        async with running(speech.engines(), **options) as server:

            async def attack() -> None:
                async with open_stream(server.ws_url, "bad") as stream:
                    if start:
                        await greeted(stream)
                    with suppress(trio_websocket.ConnectionClosed):
                        await hostile(server, stream)
                    result.append(stream)
                    if stream.close_code is None:
                        # A skip policy: the hostile call is still up, and still works.
                        with suppress(trio_websocket.ConnectionClosed):
                            await stream.say(speech, "after the junk")
                            await stream.wait_for(
                                lambda: (
                                    "You said after the junk." in speech.spoken
                                    or stream.close_code is not None
                                )
                            )
                            await stream.stop()
                    await stream.wait_closed()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(attack)
                nursery.start_soon(healthy_turn, server, speech, "good", "i am fine")
            await healthz_ok(server)
    assert "You said i am fine." in speech.spoken
    return result[0]


def assert_skipped(stream: Stream, speech: FakeSpeech) -> None:
    assert stream.close_code == 1000, "the hostile call was ended; its junk should be skipped"
    assert "You said after the junk." in speech.spoken


# --------------------------------------------------------------------------------------------
# Skipped with a counted warning


async def test_malformed_json_is_skipped(
    speech: FakeSpeech, caplog: pytest.LogCaptureFixture
) -> None:
    junk: list[str | bytes] = ["not json", "{", "[1, 2]", "null", '"media"', "[" * 4000]

    async def hostile(server: Server, stream: Stream) -> None:
        await send_all(stream, junk)

    stream = await alongside_healthy_call(speech, hostile)
    assert_skipped(stream, speech)
    logged = messages(caplog)
    assert sum("skipped malformed message" in m for m in logged) == 5  # then 1 in 100
    assert any("not valid JSON" in m for m in logged)
    assert any("expected a JSON object" in m for m in logged)
    assert any(f"{len(junk)} bad messages" in m for m in logged)


async def test_wrong_types_in_known_events_are_skipped(
    speech: FakeSpeech, caplog: pytest.LogCaptureFixture
) -> None:
    async def hostile(server: Server, stream: Stream) -> None:
        sid = stream.stream_sid
        await send_all(
            stream,
            [
                media(stream, b64(SILENCE), sequenceNumber=[1]),
                media(stream, 12345),
                media(stream, b64(SILENCE), media="payload"),
                json.dumps({"event": "mark", "sequenceNumber": "1", "streamSid": sid, "mark": 7}),
                json.dumps(
                    {
                        "event": "dtmf",
                        "sequenceNumber": "1",
                        "streamSid": sid,
                        "dtmf": {"digit": 7, "track": "inbound_track"},
                    }
                ),
                json.dumps({"event": "stop", "sequenceNumber": "1", "streamSid": None}),
                json.dumps({"event": 5}),
                media(stream, b64(SILENCE), streamSid="MZsomeone-else"),
            ],
        )

    stream = await alongside_healthy_call(speech, hostile)
    assert_skipped(stream, speech)
    assert any("8 bad messages" in m for m in messages(caplog))


async def test_unknown_events_are_skipped(
    speech: FakeSpeech, caplog: pytest.LogCaptureFixture
) -> None:
    async def hostile(server: Server, stream: Stream) -> None:
        await send_all(
            stream,
            [json.dumps({"event": name, "streamSid": stream.stream_sid}) for name in ("x", "")],
        )

    stream = await alongside_healthy_call(speech, hostile)
    assert_skipped(stream, speech)
    assert any("unknown event" in m for m in messages(caplog))


async def test_media_before_start_is_skipped(
    speech: FakeSpeech, caplog: pytest.LogCaptureFixture
) -> None:
    async def hostile(server: Server, stream: Stream) -> None:
        await stream.send(twilio.Connected("Call", "1.0.0"))
        for _ in range(10):
            await stream.ws.send_message(media(stream, b64(SILENCE)))
        await greeted(stream)

    stream = await alongside_healthy_call(speech, hostile, start=False)
    assert_skipped(stream, speech)
    logged = messages(caplog)
    assert sum("skipped media before start" in m for m in logged) == 5  # 10 sent; throttled


async def test_too_much_before_start_ends_the_call(
    speech: FakeSpeech, caplog: pytest.LogCaptureFixture
) -> None:
    async def hostile(server: Server, stream: Stream) -> None:
        for _ in range(60):
            await stream.ws.send_message(media(stream, b64(SILENCE)))

    stream = await alongside_healthy_call(speech, hostile, start=False)
    assert stream.close_code == 1000
    assert any("call ended before it started: ProtocolError" in m for m in messages(caplog))


async def test_a_second_start_is_ignored(
    speech: FakeSpeech, caplog: pytest.LogCaptureFixture
) -> None:
    async def hostile(server: Server, stream: Stream) -> None:
        await stream.start()  # connected + start, again

    stream = await alongside_healthy_call(speech, hostile)
    assert_skipped(stream, speech)
    logged = messages(caplog)
    assert any("unexpected start after start" in m for m in logged)
    assert any("unexpected connected after start" in m for m in logged)


async def test_invalid_base64_is_skipped(
    speech: FakeSpeech, caplog: pytest.LogCaptureFixture
) -> None:
    bad = ["!!!!", "AAAA=", "AAAA====", "A", "AAAAA", "é" * 8, "AA==AA=="]

    async def hostile(server: Server, stream: Stream) -> None:
        await send_all(stream, [media(stream, payload) for payload in bad])

    stream = await alongside_healthy_call(speech, hostile)
    assert_skipped(stream, speech)
    logged = messages(caplog)
    assert any("media.payload: invalid base64" in m for m in logged)
    assert any(f"{len(bad)} bad messages" in m for m in logged)


async def test_odd_length_payloads_are_framed(
    speech: FakeSpeech, caplog: pytest.LogCaptureFixture
) -> None:
    """Payloads of any whole number of bytes are valid μ-law: they are re-framed, not refused."""

    async def hostile(server: Server, stream: Stream) -> None:
        await send_all(stream, [media(stream, b64(SILENCE[:n])) for n in (0, 1, 3, 159, 161, 7)])

    stream = await alongside_healthy_call(speech, hostile)
    assert_skipped(stream, speech)
    assert not any("skipped malformed message" in m for m in messages(caplog))


async def test_huge_payloads_are_skipped(
    speech: FakeSpeech, caplog: pytest.LogCaptureFixture
) -> None:
    """Over ``max_payload_bytes`` (16,000) but under the message limit: skipped."""

    async def hostile(server: Server, stream: Stream) -> None:
        await stream.ws.send_message(media(stream, b64(bytes([0xFF]) * 16_000)))  # the most
        await stream.ws.send_message(media(stream, b64(bytes([0xFF]) * 16_001)))
        await stream.ws.send_message(media(stream, "A" * 40_000))

    stream = await alongside_healthy_call(speech, hostile, max_message_bytes=65536)
    assert_skipped(stream, speech)
    logged = messages(caplog)
    assert sum("longer than 16000 bytes" in m for m in logged) == 2
    assert any("2 bad messages" in m for m in logged)


async def test_binary_frames(speech: FakeSpeech, caplog: pytest.LogCaptureFixture) -> None:
    """Binary frames are parsed like text (as UTF-8); what is not valid is skipped."""

    async def hostile(server: Server, stream: Stream) -> None:
        await send_all(
            stream,
            [b"\xff\xfe\x00", b"", b"\x80" * 100, media(stream, b64(SILENCE)).encode()],
        )

    stream = await alongside_healthy_call(speech, hostile)
    assert_skipped(stream, speech)
    logged = messages(caplog)
    assert any("not valid UTF-8" in m for m in logged)
    assert any("3 bad messages" in m for m in logged)


# --------------------------------------------------------------------------------------------
# Ending the call


async def test_an_oversized_message_ends_the_call_with_1009(
    speech: FakeSpeech, caplog: pytest.LogCaptureFixture
) -> None:
    async def hostile(server: Server, stream: Stream) -> None:
        await stream.ws.send_message(media(stream, "A" * LIMIT))
        await stream.wait_closed()

    stream = await alongside_healthy_call(speech, hostile)
    assert stream.close_code == 1009
    assert any(f"over the {LIMIT}-byte limit" in m for m in messages(caplog))


async def test_a_far_oversized_binary_message_ends_the_call_with_1009(
    speech: FakeSpeech,
) -> None:
    async def hostile(server: Server, stream: Stream) -> None:
        await stream.ws.send_message(b"x" * (LIMIT * 5))  # past hypercorn's own backstop
        await stream.wait_closed()

    stream = await alongside_healthy_call(speech, hostile)
    assert stream.close_code == 1009


async def test_a_flood_of_junk_ends_the_call(
    speech: FakeSpeech, caplog: pytest.LogCaptureFixture
) -> None:
    async def hostile(server: Server, stream: Stream) -> None:
        for i in range(2000):
            await stream.ws.send_message(f"junk {i}")
        await stream.wait_closed()

    stream = await alongside_healthy_call(speech, hostile)
    assert stream.close_code == 1000
    logged = messages(caplog)
    assert any("call ended: ProtocolError: too many malformed messages (51)" in m for m in logged)
    assert sum("skipped malformed message" in m for m in logged) == 5  # the log is throttled


async def test_a_flood_of_media_is_taken_or_dropped_and_counted(
    speech: FakeSpeech, caplog: pytest.LogCaptureFixture
) -> None:
    """2,000 valid frames (40 s of audio) as fast as the socket takes them: the call goes on;
    any frames the VAD could not keep up with are dropped and counted."""

    async def hostile(server: Server, stream: Stream) -> None:
        for _ in range(2000):
            await stream.ws.send_message(media(stream, b64(SILENCE)))

    stream = await alongside_healthy_call(speech, hostile)
    assert_skipped(stream, speech)
    ended = [m for m in messages(caplog) if "call ended: caller hung up (" in m]
    assert any(m.split("(")[1].startswith(("2", "3")) for m in ended), ended  # ≥ 2000 frames in


async def test_a_flood_of_second_starts_ends_the_call(
    speech: FakeSpeech, caplog: pytest.LogCaptureFixture
) -> None:
    """Repeated ``start`` after ``start`` counts as malformed like anything else: past
    ``max_bad_messages`` the call ends with a logged reason, and the log is throttled."""

    async def hostile(server: Server, stream: Stream) -> None:
        start = twilio.Start(stream.seq(), stream.stream_sid, stream.call_sid, "AC1")
        for _ in range(2000):
            await stream.send(start)
        await stream.wait_closed()

    stream = await alongside_healthy_call(speech, hostile)
    assert stream.close_code == 1000
    logged = messages(caplog)
    assert any("call ended: ProtocolError: too many malformed messages (51)" in m for m in logged)
    assert sum("skipped malformed message" in m for m in logged) == 5  # throttled


# --------------------------------------------------------------------------------------------
# Random messages, hypothesis-driven, over one real connection


@dataclass
class _Background:
    """A server and one open stream, run by trio in a thread of their own."""

    token: trio.lowlevel.TrioToken
    server: Server
    stream: Stream
    done: trio.Event


def test_random_messages_over_one_connection(caplog: pytest.LogCaptureFixture) -> None:
    speech = FakeSpeech(
        stt=FakeSpeechToText(delay=0.01), tts=FakeTextToSpeech(delay=0.0, seconds_per_char=0.005)
    )
    ready: queue.Queue[_Background | BaseException] = queue.Queue()

    async def main() -> None:
        with trio.fail_after(3 * CAP):
            async with (
                running(speech.engines(), max_message_bytes=LIMIT) as server,
                open_stream(server.ws_url, "fuzz") as stream,
            ):
                await greeted(stream)
                done = trio.Event()
                ready.put(_Background(trio.lowlevel.current_trio_token(), server, stream, done))
                await done.wait()

    def run() -> None:
        try:
            trio.run(main)
        except BaseException as exc:  # hand any failure to the test thread
            ready.put(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    bg = ready.get(timeout=CAP)
    assert isinstance(bg, _Background), bg
    sent: list[str | bytes] = []

    async def send(message: str | bytes) -> None:
        await bg.stream.ws.send_message(message)
        sent.append(message)

    @settings(
        max_examples=30,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(st.one_of(st.text(max_size=300), st.binary(max_size=300)))
    def send_one(message: str | bytes) -> None:
        trio.from_thread.run(send, message, trio_token=bg.token)
        assert bg.stream.close_code is None, f"the call ended after {message!r}"

    try:
        send_one()

        async def afterwards() -> None:
            with trio.fail_after(CAP):
                assert bg.stream.close_code is None
                await healthy_turn(bg.server, speech, "after", "still serving")
                await bg.stream.say(speech, "me too")
                await bg.stream.wait_for(lambda: "You said me too." in speech.spoken)
                await bg.stream.stop()
                assert await bg.stream.wait_closed() == 1000
                await healthz_ok(bg.server)

        trio.from_thread.run(afterwards, trio_token=bg.token)
    finally:
        with suppress(trio.RunFinishedError):
            trio.from_thread.run_sync(bg.done.set, trio_token=bg.token)
        thread.join(timeout=CAP)
    assert not thread.is_alive()
    assert 1 <= len(sent) <= 30
    assert any(f"{len(sent)} bad messages" in m for m in messages(caplog)), "all were skipped"
    assert "You said still serving." in speech.spoken
