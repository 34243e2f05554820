"""The server end to end: real sockets, real hypercorn, fake speech engines, real time.

Each test starts :func:`phoneactors.server.serve` on port 0 and talks to it with ``httpx``
(the webhook, ``/healthz``) and ``trio_websocket`` (the media stream, speaking Twilio's JSON).
The fake engines answer at once, so every test finishes in well under a second; each is
capped with ``trio.fail_after``.
"""

from __future__ import annotations

import logging
import socket
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import trio
import trio_websocket
from twilio.request_validator import RequestValidator

from phoneactors import twilio
from phoneactors.audio import FRAME_SAMPLES, ulaw_encode
from phoneactors.call import CallSettings
from phoneactors.conversation import Conversation
from phoneactors.engines import Engines
from phoneactors.errors import ConfigurationError
from phoneactors.records import list_calls, read_transcript
from phoneactors.segmenter import SegmenterSettings
from phoneactors.server import ServerConfig, create_app, serve
from phoneactors.testing import FakeSpeech, FakeSpeechToText, FakeTextToSpeech

TOKEN = "0123456789abcdef0123456789abcdef"
CAP = 3.0
"""Seconds any one test may take."""
CALL_SETTINGS = CallSettings(
    segmenter=SegmenterSettings(min_speech_ms=60, end_silence_ms=100), start_timeout=2.0
)


class Echo(Conversation):
    """A short greeting and a short reply, so real-time playback stays short."""

    greeting = "Hi."

    def __init__(self) -> None:
        self.ended: list[str] = []

    async def reply(self, text: str) -> str:
        return f"You said {text}."

    async def on_end(self, reason: str) -> None:
        self.ended.append(reason)


@pytest.fixture
def speech() -> FakeSpeech:
    return FakeSpeech(
        stt=FakeSpeechToText(delay=0.01),
        tts=FakeTextToSpeech(delay=0.0, seconds_per_char=0.005),
    )


@dataclass
class Server:
    url: str
    host: str
    port: int
    stop: trio.Event
    """Set it to shut the server down gracefully."""
    conversations: list[Echo]
    stopped: trio.Event
    """Set once :func:`serve` has returned."""

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/stream"

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url)


@asynccontextmanager
async def running(engines: Engines, **options: Any) -> AsyncIterator[Server]:
    """Serve :class:`Echo` on port 0; on exit, shut down gracefully and wait for it."""
    options.setdefault("call_settings", CALL_SETTINGS)
    options.setdefault("drain_timeout", 1.0)
    config = ServerConfig(port=0, **options)
    conversations: list[Echo] = []

    def make() -> Echo:
        conversations.append(Echo())
        return conversations[-1]

    stop = trio.Event()
    stopped = trio.Event()
    async with trio.open_nursery() as nursery:

        async def run_server(task_status: trio.TaskStatus[tuple[str, int]]) -> None:
            await serve(make, engines, config, task_status=task_status, shutdown_trigger=stop.wait)
            stopped.set()

        host, port = await nursery.start(run_server)
        server = Server(f"http://{host}:{port}", host, port, stop, conversations, stopped)
        await engines.ready.wait()
        yield server
        stop.set()


@pytest.fixture(params=[True, False], ids=["short-streams", "hypercorn-streams"])
def short_streams(request: pytest.FixtureRequest) -> bool:
    """Media streams served the short way (trio + wsproto) or by hypercorn and quart-trio."""
    return bool(request.param)


def sign(url: str, params: dict[str, str] | None = None) -> str:
    signature: str = RequestValidator(TOKEN).compute_signature(url, params or {})
    return signature


def parse_twiml(text: str) -> ET.Element:
    return ET.fromstring(text.encode())


CALL_FORM = {"CallSid": "CA123", "From": "+15550001111", "To": "+15550002222"}


# --------------------------------------------------------------------------------------------
# A minimal Twilio over a real websocket


class Stream:
    """Twilio's side of one media stream: sends its JSON, records what the bot sends, and
    echoes each mark at once (as if the audio had played instantly)."""

    def __init__(self, ws: trio_websocket.WebSocketConnection, sid: str) -> None:
        self.ws = ws
        self.stream_sid = f"MZ{sid}"
        self.call_sid = f"CA{sid}"
        self.received: list[twilio.OutboundEvent] = []
        self.close_code: int | None = None
        self._changed = trio.Event()
        self._sequence = 0

    async def send(self, event: twilio.InboundEvent) -> None:
        await self.ws.send_message(twilio.encode_inbound(event))

    def seq(self) -> int:
        self._sequence += 1
        return self._sequence

    async def start(self) -> None:
        await self.send(twilio.Connected("Call", "1.0.0"))
        await self.send(
            twilio.Start(
                self.seq(),
                self.stream_sid,
                self.call_sid,
                "AC1",
                custom_parameters={"caller": "+15550001111"},
            )
        )

    async def play(self, audio: np.ndarray[Any, Any]) -> None:
        """Send caller audio as 20 ms media messages, as fast as the socket takes them."""
        padded = np.concatenate([audio, np.zeros(-len(audio) % FRAME_SAMPLES, np.int16)])
        for i in range(0, len(padded), FRAME_SAMPLES):
            payload = ulaw_encode(padded[i : i + FRAME_SAMPLES])
            seq = self.seq()
            await self.send(twilio.Media(seq, self.stream_sid, "inbound", seq, seq * 20, payload))

    async def say(self, speech: FakeSpeech, text: str) -> None:
        await self.play(speech.caller_audio(text))
        await self.play(np.zeros(8000 // 5, np.int16))  # 200 ms of silence ends the utterance

    async def stop(self) -> None:
        await self.send(twilio.Stop(self.seq(), self.stream_sid, self.call_sid, "AC1"))

    async def read(self) -> None:
        while True:
            try:
                message = await self.ws.get_message()
            except trio_websocket.ConnectionClosed:
                self.close_code = self.ws.closed.code if self.ws.closed else None
                self._notify()
                return
            sid, event = twilio.parse_outbound(message)
            assert sid == self.stream_sid
            self.received.append(event)
            if isinstance(event, twilio.SendMark):
                with suppress(trio_websocket.ConnectionClosed):
                    await self.send(twilio.Mark(self.seq(), self.stream_sid, event.name))
            self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def wait_for(self, condition: Callable[[], bool]) -> None:
        while not condition():
            await self._changed.wait()

    @property
    def media(self) -> int:
        return sum(isinstance(e, twilio.SendMedia) for e in self.received)

    @property
    def marks(self) -> int:
        return sum(isinstance(e, twilio.SendMark) for e in self.received)

    async def wait_closed(self) -> int | None:
        await self.wait_for(lambda: self.close_code is not None)
        return self.close_code


@asynccontextmanager
async def open_stream(
    url: str, sid: str = "1", *, headers: list[tuple[bytes, bytes]] | None = None
) -> AsyncIterator[Stream]:
    tcp: trio.abc.Stream | None = None
    try:
        async with trio_websocket.open_websocket_url(
            url, extra_headers=headers, disconnect_timeout=1
        ) as ws:
            tcp = ws._stream
            stream = Stream(ws, sid)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(stream.read)
                yield stream
                nursery.cancel_scope.cancel()
    finally:
        # trio-websocket 0.12 leaves a client's TCP stream open when the server closes the
        # websocket first (which is how our calls end): close it ourselves.
        if tcp is not None:
            with trio.CancelScope(shield=True):
                await tcp.aclose()


async def upgrade_status(url: str, headers: dict[str, str] | None = None) -> int:
    """The status of a websocket upgrade request that is expected to be refused.

    (A plain HTTP client: trio-websocket leaks its socket when an upgrade is rejected.)
    """
    upgrade = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version": "13",
    }
    async with httpx.AsyncClient() as client:
        response = await client.get(
            url.replace("ws://", "http://", 1), headers=upgrade | (headers or {})
        )
    assert response.status_code != 101, "the upgrade was accepted"
    return response.status_code


async def greeted(stream: Stream) -> None:
    """Start the call and wait for the whole greeting (0.2 s: two 100 ms chunks, two marks)."""
    await stream.start()
    await stream.wait_for(lambda: stream.media >= 2 and stream.marks >= 2)


# --------------------------------------------------------------------------------------------
# Configuration


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"host": ""}, "host"),
        ({"port": 70000}, "port"),
        ({"port": True}, "port"),
        ({"public_url": "ftp://example.com"}, "public_url"),
        ({"public_url": "example.com"}, "public_url"),
        ({"public_url": "https://example.com/?a=1"}, "public_url"),
        ({"auth_token": ""}, "auth_token"),
        ({"max_calls": 0}, "max_calls"),
        ({"max_message_bytes": 10}, "max_message_bytes"),
        ({"drain_timeout": -1}, "drain_timeout"),
        ({"drain_timeout": float("inf")}, "drain_timeout"),
        ({"busy_message": ""}, "busy_message"),
        ({"busy_message": "bad \x00 text"}, "busy_message"),
        ({"call_settings": object()}, "call_settings"),
    ],
)
def test_config_rejects_bad_values(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        ServerConfig(**options)


def test_config_repr_hides_the_auth_token() -> None:
    assert TOKEN not in repr(ServerConfig(auth_token=TOKEN))


def test_create_app_builds_without_side_effects(speech: FakeSpeech) -> None:
    engines = speech.engines()
    app = create_app(Echo, engines, ServerConfig())
    rules = {rule.rule for rule in app.url_map.iter_rules()}
    assert {"/", "/stream", "/healthz"} <= rules
    assert not engines.ready.is_set()


# --------------------------------------------------------------------------------------------
# Health and engine loading


class GatedSpeechToText(FakeSpeechToText):
    """Loads only when :attr:`gate` is set (or fails, with :attr:`error`)."""

    def __init__(self, error: Exception | None = None) -> None:
        super().__init__()
        self.gate = trio.Event()
        self.error = error

    async def load(self) -> None:
        await self.gate.wait()
        if self.error is not None:
            raise self.error


async def test_healthz_is_503_until_the_engines_are_ready(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "phoneactors")
    stt = GatedSpeechToText()
    engines = FakeSpeech(stt=stt).engines()
    stop = trio.Event()
    with trio.fail_after(CAP):
        async with trio.open_nursery() as nursery:
            host, port = await nursery.start(
                partial(serve, Echo, engines, ServerConfig(port=0), shutdown_trigger=stop.wait)
            )
            async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as client:
                loading = await client.get("/healthz")
                assert loading.status_code == 503
                assert loading.json() == {"status": "loading", "active_calls": 0}
                busy = await client.post("/", data=CALL_FORM)  # no calls while loading
                assert parse_twiml(busy.text).find("Say") is not None

                stt.gate.set()
                await engines.ready.wait()
                ready = await client.get("/healthz")
                assert ready.status_code == 200
                assert ready.json() == {"status": "ok", "active_calls": 0}
            stop.set()
    assert any("speech engines ready in" in r.getMessage() for r in caplog.records)


async def test_engine_load_failure_is_logged_and_raised(caplog: pytest.LogCaptureFixture) -> None:
    stt = GatedSpeechToText(ConfigurationError("model tiny.en is not installed"))
    stt.gate.set()
    with trio.fail_after(CAP), pytest.raises(ConfigurationError, match=r"tiny\.en"):
        await serve(Echo, FakeSpeech(stt=stt).engines(), ServerConfig(port=0))
    assert any(
        r.levelno == logging.ERROR and "could not load the speech engines" in r.getMessage()
        for r in caplog.records
    )


async def test_a_port_in_use_raises_oserror(speech: FakeSpeech) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        config = ServerConfig(port=taken.getsockname()[1])
        with trio.fail_after(CAP), pytest.raises(OSError, match="in use"):
            await serve(Echo, speech.engines(), config)


# --------------------------------------------------------------------------------------------
# The webhook


def stream_element(text: str) -> ET.Element:
    root = parse_twiml(text)
    assert root.tag == "Response"
    element = root.find("./Connect/Stream")
    assert element is not None, text
    return element


async def test_webhook_stream_url_comes_from_the_host_header(speech: FakeSpeech) -> None:
    with trio.fail_after(CAP):
        async with running(speech.engines()) as server, server.client() as client:
            plain = await client.post("/", data=CALL_FORM, headers={"Host": "abc.ngrok.app"})
            assert plain.status_code == 200
            assert plain.headers["content-type"].startswith("text/xml")
            stream = stream_element(plain.text)
            assert stream.get("url") == "ws://abc.ngrok.app/stream"
            parameters = {p.get("name"): p.get("value") for p in stream.findall("Parameter")}
            assert parameters == {"caller": "+15550001111", "called": "+15550002222"}

            proxied = await client.post(
                "/",
                data=CALL_FORM,
                headers={"Host": "abc.ngrok.app", "X-Forwarded-Proto": "https"},
            )
            assert stream_element(proxied.text).get("url") == "wss://abc.ngrok.app/stream"

            local = await client.post("/", data=CALL_FORM)
            url = f"ws://{server.host}:{server.port}/stream"
            assert stream_element(local.text).get("url") == url


async def test_webhook_stream_url_comes_from_public_url(speech: FakeSpeech) -> None:
    with trio.fail_after(CAP):
        async with (
            running(speech.engines(), public_url="https://bot.example.com/phone/") as server,
            server.client() as client,
        ):
            response = await client.post("/", data=CALL_FORM, headers={"Host": "ignored.test"})
            url = stream_element(response.text).get("url")
            assert url == "wss://bot.example.com/phone/stream"


async def test_webhook_refuses_a_bad_host_header(speech: FakeSpeech) -> None:
    with trio.fail_after(CAP):
        async with running(speech.engines()) as server, server.client() as client:
            response = await client.post("/", data=CALL_FORM, headers={"Host": "a b/<c>"})
            assert response.status_code == 400


async def test_busy_when_every_line_is_taken(
    short_streams: bool, speech: FakeSpeech, caplog: pytest.LogCaptureFixture
) -> None:
    with trio.fail_after(CAP):
        async with (
            running(
                speech.engines(), max_calls=1, busy_message="All busy.", short_streams=short_streams
            ) as server,
            server.client() as client,
            open_stream(server.ws_url) as first,
        ):
            await greeted(first)
            assert (await client.get("/healthz")).json()["active_calls"] == 1

            busy = await client.post("/", data=CALL_FORM)
            assert busy.status_code == 200
            root = parse_twiml(busy.text)
            assert root.findtext("Say") == "All busy."
            assert root.find("Hangup") is not None
            assert root.find("Connect") is None
            assert any("lines are busy" in r.getMessage() for r in caplog.records)

            assert await upgrade_status(server.ws_url) == 503

            await first.stop()
            assert await first.wait_closed() == 1000
            while (await client.get("/healthz")).json()["active_calls"]:  # noqa: ASYNC110
                await trio.sleep(0.01)  # polling the server, as a load balancer would
            assert stream_element((await client.post("/", data=CALL_FORM)).text) is not None


# --------------------------------------------------------------------------------------------
# Signatures


async def test_webhook_signature_is_enforced(
    speech: FakeSpeech, caplog: pytest.LogCaptureFixture
) -> None:
    with trio.fail_after(CAP):
        async with running(speech.engines(), auth_token=TOKEN) as server, server.client() as c:
            assert (await c.post("/", data=CALL_FORM)).status_code == 403
            bad = {"X-Twilio-Signature": sign(server.url + "/", {"From": "someone else"})}
            assert (await c.post("/", data=CALL_FORM, headers=bad)).status_code == 403

            good = {"X-Twilio-Signature": sign(server.url + "/", CALL_FORM)}
            response = await c.post("/", data=CALL_FORM, headers=good)
            assert response.status_code == 200
            assert stream_element(response.text) is not None

            query = {"X-Twilio-Signature": sign(server.url + "/?tenant=7", CALL_FORM)}
            response = await c.post("/?tenant=7", data=CALL_FORM, headers=query)
            assert response.status_code == 200

            https = {
                "X-Forwarded-Proto": "https",
                "X-Twilio-Signature": sign(f"https://{server.host}:{server.port}/", CALL_FORM),
            }
            assert (await c.post("/", data=CALL_FORM, headers=https)).status_code == 200
    assert not any("NOT authenticated" in r.getMessage() for r in caplog.records)
    assert not any(TOKEN in r.getMessage() for r in caplog.records)


async def test_stream_signature_is_enforced(short_streams: bool, speech: FakeSpeech) -> None:
    with trio.fail_after(CAP):
        async with running(
            speech.engines(), auth_token=TOKEN, short_streams=short_streams
        ) as server:
            assert await upgrade_status(server.ws_url) == 403
            wrong_url = {"X-Twilio-Signature": sign(server.url + "/")}
            assert await upgrade_status(server.ws_url, wrong_url) == 403

            good = [(b"X-Twilio-Signature", sign(server.ws_url).encode())]
            async with open_stream(server.ws_url, headers=good) as stream:
                await greeted(stream)
                await stream.stop()
                assert await stream.wait_closed() == 1000

            # Twilio may sign the URL with or without its query string.
            url = server.ws_url + "?tenant=7"
            for signed in (url, server.ws_url):
                headers = [(b"X-Twilio-Signature", sign(signed).encode())]
                async with open_stream(url, headers=headers) as stream:
                    await greeted(stream)
                    await stream.stop()
                    await stream.wait_closed()


async def test_signatures_behind_a_proxy_use_the_public_url(speech: FakeSpeech) -> None:
    public = "https://bot.example.com/voice"
    with trio.fail_after(CAP):
        async with (
            running(speech.engines(), auth_token=TOKEN, public_url=public) as server,
            server.client() as client,
        ):
            for signed in (public, public + "/"):
                headers = {"X-Twilio-Signature": sign(signed, CALL_FORM)}
                response = await client.post("/", data=CALL_FORM, headers=headers)
                assert response.status_code == 200, signed
                assert (
                    stream_element(response.text).get("url") == "wss://bot.example.com/voice/stream"
                )

            local = {"X-Twilio-Signature": sign(server.url + "/", CALL_FORM)}
            assert (await client.post("/", data=CALL_FORM, headers=local)).status_code == 403

            local_ws = {"X-Twilio-Signature": sign(server.ws_url)}
            assert await upgrade_status(server.ws_url, local_ws) == 403
            public_ws = sign("wss://bot.example.com/voice/stream").encode()
            async with open_stream(
                server.ws_url, headers=[(b"X-Twilio-Signature", public_ws)]
            ) as s:
                await greeted(s)


async def test_unauthenticated_server_warns_once(
    speech: FakeSpeech, caplog: pytest.LogCaptureFixture
) -> None:
    with trio.fail_after(CAP):
        async with running(speech.engines()) as server, server.client() as client:
            await client.post("/", data=CALL_FORM)
            await client.post("/", data=CALL_FORM)
    warnings = [r for r in caplog.records if "NOT authenticated" in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING


# --------------------------------------------------------------------------------------------
# Calls over the websocket


async def test_a_call_end_to_end(short_streams: bool, speech: FakeSpeech) -> None:
    with trio.fail_after(CAP):
        async with (
            running(speech.engines(), short_streams=short_streams) as server,
            open_stream(server.ws_url) as stream,
        ):
            await greeted(stream)
            assert speech.spoken == ["Hi."]

            greeting = stream.media
            await stream.say(speech, "hello")
            await stream.wait_for(lambda: stream.media >= greeting + 2)
            await stream.wait_for(lambda: len(speech.spoken) == 2)
            assert speech.spoken == ["Hi.", "You said hello."]

            await stream.stop()
            assert await stream.wait_closed() == 1000
        assert server.conversations[0].ended == ["caller hung up"]


async def test_malformed_messages_are_skipped(
    short_streams: bool, speech: FakeSpeech, caplog: pytest.LogCaptureFixture
) -> None:
    with trio.fail_after(CAP):
        async with (
            running(speech.engines(), short_streams=short_streams) as server,
            open_stream(server.ws_url) as stream,
        ):
            await greeted(stream)
            for junk in ("not json", "{}", '{"event": "media"}', b"\xff\xfe"):
                await stream.ws.send_message(junk)
            await stream.say(speech, "still here")
            await stream.wait_for(lambda: len(speech.spoken) == 2)
            assert speech.spoken[-1] == "You said still here."
            await stream.stop()
            assert await stream.wait_closed() == 1000
    assert sum("skipped malformed message" in r.getMessage() for r in caplog.records) == 4


async def test_an_oversized_message_ends_only_its_call(
    short_streams: bool, speech: FakeSpeech, caplog: pytest.LogCaptureFixture
) -> None:
    limit = 4096
    with trio.fail_after(CAP):
        async with (
            running(
                speech.engines(), max_message_bytes=limit, short_streams=short_streams
            ) as server,
            server.client() as client,
            open_stream(server.ws_url, "1") as victim,
            open_stream(server.ws_url, "2") as survivor,
            open_stream(server.ws_url, "3") as huge,
        ):
            await greeted(victim)
            await greeted(survivor)
            await greeted(huge)

            await victim.ws.send_message("x" * (limit + 1))
            assert await victim.wait_closed() == 1009
            # Far over the limit: hypercorn's own backstop closes it the same way.
            await huge.ws.send_message(b"x" * (limit * 5))
            assert await huge.wait_closed() == 1009

            await survivor.say(speech, "are you there")
            await survivor.wait_for(lambda: "You said are you there." in speech.spoken)
            assert (await client.get("/healthz")).json()["active_calls"] >= 1
            await survivor.stop()
            assert await survivor.wait_closed() == 1000
    assert any(
        f"{limit + 1} bytes is over the {limit}-byte limit" in r.getMessage()
        for r in caplog.records
    )


async def test_a_caller_dropping_the_socket_ends_the_call_cleanly(
    short_streams: bool, speech: FakeSpeech, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "phoneactors")
    with trio.fail_after(CAP):
        async with (
            running(speech.engines(), short_streams=short_streams) as server,
            server.client() as client,
        ):
            async with open_stream(server.ws_url) as stream:
                await greeted(stream)
                await stream.ws.aclose()  # no stop message: the connection just goes
            while (await client.get("/healthz")).json()["active_calls"]:  # noqa: ASYNC110
                await trio.sleep(0.01)  # polling the server, as a load balancer would
            assert server.conversations[0].ended == ["socket closed"]
    assert any("call ended: socket closed" in r.getMessage() for r in caplog.records)


# --------------------------------------------------------------------------------------------
# Graceful shutdown


async def test_shutdown_drains_calls_in_progress(short_streams: bool, speech: FakeSpeech) -> None:
    with trio.fail_after(CAP):
        async with running(
            speech.engines(), drain_timeout=10, short_streams=short_streams
        ) as server:
            async with server.client() as client, open_stream(server.ws_url) as stream:
                await greeted(stream)
                server.stop.set()
                while (await client.get("/healthz")).status_code != 503:  # noqa: ASYNC110
                    await trio.sleep(0.01)  # polling the server, as a load balancer would
                health = await client.get("/healthz")
                assert health.json() == {"status": "draining", "active_calls": 1}
                busy = await client.post("/", data=CALL_FORM)
                assert parse_twiml(busy.text).find("Say") is not None
                assert await upgrade_status(server.ws_url) == 503

                # The call in progress carries on, and ends when the caller hangs up.
                await stream.say(speech, "bye")
                await stream.wait_for(lambda: len(speech.spoken) == 2)
                await stream.stop()
                assert await stream.wait_closed() == 1000
            started = trio.current_time()
            await server.stopped.wait()
            assert trio.current_time() - started < 1.0  # did not wait for the drain timeout


async def test_shutdown_ends_calls_still_going_after_the_drain_timeout(
    short_streams: bool, speech: FakeSpeech, caplog: pytest.LogCaptureFixture
) -> None:
    with trio.fail_after(CAP):
        async with (
            running(speech.engines(), drain_timeout=0.2, short_streams=short_streams) as server,
            open_stream(server.ws_url) as stream,
        ):
            await greeted(stream)
            server.stop.set()
            assert await stream.wait_closed() == 1000
            await server.stopped.wait()
            assert len(server.conversations[0].ended) == 1
    assert any("drain timeout" in r.getMessage() for r in caplog.records)


async def test_metrics_and_call_records(speech: FakeSpeech, tmp_path: Path) -> None:
    db = tmp_path / "calls.db"
    with trio.fail_after(CAP):
        async with running(speech.engines(), records=str(db)) as server:
            async with open_stream(server.ws_url) as stream:
                await greeted(stream)
                greeting = stream.media
                await stream.say(speech, "hello")
                await stream.wait_for(lambda: stream.media >= greeting + 2)
                await stream.stop()
                await stream.wait_closed()
            async with server.client() as client:
                response = await client.get("/metrics")
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/plain")
            assert 'phoneactors_calls_total{end="caller_hung_up"} 1.0' in response.text
            assert "phoneactors_turns_total 1.0" in response.text
            assert "phoneactors_voice_to_voice_seconds_count 1.0" in response.text
        await server.stopped.wait()  # the records writer flushes as the server stops
    [call] = list_calls(db)
    assert call["end_reason"] == "caller hung up"
    [(_, events)] = read_transcript(db, call["call_sid"])
    kinds = [e["kind"] for e in events if e["kind"] != "timing"]
    assert kinds == ["bot", "caller", "interrupted"]  # the caller hung up during the reply


async def test_who_answered_an_outbound_call_reaches_its_conversation_when_signed(
    speech: FakeSpeech,
) -> None:
    with trio.fail_after(CAP):
        async with (
            running(speech.engines(), auth_token=TOKEN) as server,
            server.client() as client,
        ):
            headers = [(b"X-Twilio-Signature", sign(server.ws_url).encode())]
            async with open_stream(server.ws_url, headers=headers) as call:
                await greeted(call)
                form = {"CallSid": call.call_sid, "AnsweredBy": "machine_end_beep"}
                unsigned = await client.post("/amd", data=form)
                assert unsigned.status_code == 403
                signed = {"X-Twilio-Signature": sign(server.url + "/amd", form)}
                assert (await client.post("/amd", data=form, headers=signed)).status_code == 204
                assert server.conversations[0].answered_by == "machine_end_beep"
                incomplete = {"CallSid": call.call_sid}
                headers_incomplete = {"X-Twilio-Signature": sign(server.url + "/amd", incomplete)}
                response = await client.post("/amd", data=incomplete, headers=headers_incomplete)
                assert response.status_code == 400
                await call.stop()
                await call.wait_closed()


async def test_a_call_is_recorded_to_a_stereo_wav_linked_from_its_record(
    speech: FakeSpeech, tmp_path: Path
) -> None:
    import stat
    import wave

    recordings, db = tmp_path / "recordings", tmp_path / "calls.db"
    with trio.fail_after(CAP):
        async with (
            running(speech.engines(), recordings=str(recordings), records=str(db)) as server,
            open_stream(server.ws_url) as call,
        ):
            await greeted(call)
            greeting = call.media
            await call.say(speech, "hello there")
            await call.wait_for(lambda: call.media >= greeting + 2)
            await call.stop()
            await call.wait_closed()
    path = recordings / f"{call.stream_sid}.wav"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with wave.open(str(path), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (2, 2, 8000)
        frames = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    caller, bot = frames[0::2], frames[1::2]
    assert np.abs(caller).max() > 1000  # the caller's words
    assert np.abs(bot).max() > 1000  # the greeting and the answer
    [(_, events)] = read_transcript(db, call.call_sid)
    assert ("recording", str(path)) in [(e["kind"], e["text"]) for e in events]


async def test_a_bad_stream_upgrade_gets_400_and_the_server_goes_on(
    speech: FakeSpeech, caplog: pytest.LogCaptureFixture
) -> None:
    with trio.fail_after(CAP):
        async with running(speech.engines()) as server, server.client() as client:
            connection = await trio.open_tcp_stream(server.host, server.port)
            async with connection:
                await connection.send_all(
                    b"GET /stream HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n"
                    b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n"  # no key
                )
                answer = b""
                while chunk := await connection.receive_some(4096):
                    answer += chunk
            assert answer.startswith(b"HTTP/1.1 400 ")
            assert b"Sec-WebSocket-Key" in answer
            assert (await client.get("/healthz")).status_code == 200
    assert any("stream upgrade from" in r.getMessage() for r in caplog.records)


async def test_a_head_with_bare_line_feeds_is_answered_at_once(speech: FakeSpeech) -> None:
    with trio.fail_after(CAP):
        async with running(speech.engines()) as server:
            connection = await trio.open_tcp_stream(server.host, server.port)
            async with connection:
                with trio.fail_after(3):  # not the 5 s a head without its end waits
                    await connection.send_all(b"GET /healthz HTTP/1.1\nHost: a\n\n")
                    answer = b""
                    while b'"status"' not in answer:
                        answer += await connection.receive_some(4096)
            assert answer.startswith(b"HTTP/1.1 200 ")


async def test_callers_who_leave_as_they_connect_are_no_errors(
    speech: FakeSpeech, caplog: pytest.LogCaptureFixture
) -> None:
    upgrade = (
        b"GET /stream HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    with trio.fail_after(CAP):
        async with running(speech.engines()) as server, server.client() as client:
            for _ in range(20):
                sock = socket.create_connection((server.host, server.port))
                sock.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                )
                sock.sendall(upgrade)
                sock.close()  # a reset, at once
            await trio.sleep(0.5)
            assert (await client.get("/healthz")).json()["active_calls"] == 0
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
