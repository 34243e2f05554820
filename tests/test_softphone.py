"""The browser softphone: its tokens, the transcript side channel, the page's routes, and a
real call from headless Chromium.

The unit tests use fake engines (and the real server on port 0 where a socket is the point).
The last test, marked ``e2e``, serves the parrot with the real engines and drives the page in
Debian's Chromium with playwright-core (``tests/browser``), the microphone fed from a WAV file;
it skips, saying why, when Chromium, node or playwright-core is missing (``.ci/run`` installs
them).
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import wave
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import trio
import trio_websocket
from trio.testing import MockClock

from phoneactors import twilio
from phoneactors.audio import FRAME_SAMPLES, PCM, float_to_pcm, resample, ulaw_decode, ulaw_encode
from phoneactors.call import CallSettings
from phoneactors.cli import parse_args
from phoneactors.conversation import Conversation, Parrot
from phoneactors.endpointing import BACKCHANNEL_HINT
from phoneactors.engines import Engines
from phoneactors.engines.base import AlternativesSpeechToText, HintedSpeechToText
from phoneactors.errors import ConfigurationError, ProtocolError
from phoneactors.segmenter import SegmenterSettings
from phoneactors.server import ServerConfig, serve
from phoneactors.softphone import (
    STATIC_FILES,
    SoftphoneTokens,
    TranscriptListener,
    TranscriptSocket,
    page_html,
    static_file,
    transcript_message,
    with_transcripts,
)
from phoneactors.testing import (
    FakeSpeech,
    FakeSpeechToText,
    FakeTextToSpeech,
    memory_socket_pair,
    open_call,
)

BROWSER = Path(__file__).parent / "browser"
CHROMIUM = "/usr/bin/chromium"
TOKEN_META = re.compile(r'<meta name="phoneactors-softphone-token" content="([^"]+)">')


# --------------------------------------------------------------------------------------------
# Tokens and messages


def test_tokens_check_their_signature_and_expiry() -> None:
    now = [1_000_000.0]
    tokens = SoftphoneTokens(b"k" * 32, lifetime=60, clock=lambda: now[0])
    token = tokens.mint()
    assert tokens.check(token)
    expiry, digest = token.split(".")
    assert int(expiry) == 1_000_060
    assert not SoftphoneTokens(b"x" * 32, clock=lambda: now[0]).check(token)  # other server
    assert not tokens.check(f"{int(expiry) + 1000}.{digest}")  # a later expiry, same digest
    assert not tokens.check(f"{expiry}.{digest[:-1]}0" if digest[-1] != "0" else f"{expiry}.1")
    for junk in ("", ".", "abc", f"{expiry}", f"-1.{digest}", "1e9." + digest, "é.é", "9" * 40):
        assert not tokens.check(junk)
    now[0] += 61
    assert not tokens.check(token)


def test_tokens_are_unguessable_by_default() -> None:
    assert SoftphoneTokens().mint() != SoftphoneTokens().mint()


def test_transcript_message() -> None:
    message = transcript_message("MZ1", "bot", 'Café "ok"')
    assert json.loads(message) == {
        "event": "transcript",
        "streamSid": "MZ1",
        "speaker": "bot",
        "text": 'Café "ok"',
    }
    # It is not Twilio's protocol: the Twilio parser refuses it, as Twilio would never send it.
    with pytest.raises(ProtocolError):
        twilio.parse_event(message)


def test_the_page_carries_its_token_and_only_known_assets_are_served() -> None:
    page = page_html("123.abc")
    match = TOKEN_META.search(page)
    assert match is not None
    assert match[1] == "123.abc"
    assert '<script src="phone/phone.js"></script>' in page
    with pytest.raises(ValueError, match="letters, digits and dots"):
        page_html('"><script>')
    for name in STATIC_FILES:
        assert static_file(name).startswith("// phoneactors")
    for bad in ("phone.html", "../softphone.py", "__init__.py"):
        with pytest.raises(KeyError):
            static_file(bad)


def test_the_softphone_option() -> None:
    assert parse_args([], {}).softphone is False
    assert parse_args(["--softphone"], {}).softphone is True
    assert parse_args([], {"PHONEACTORS_SOFTPHONE": "1"}).softphone is True
    with pytest.raises(ConfigurationError, match="softphone must be True or False"):
        ServerConfig(softphone="yes")  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Transcripts from wrapped engines, over an in-memory call


def transcripts_heard() -> tuple[list[tuple[str, str]], TranscriptListener]:
    """A listener for :func:`with_transcripts`, and the list of what it was told."""
    heard: list[tuple[str, str]] = []

    async def listener(speaker: str, text: str) -> None:
        heard.append((speaker, text))

    return heard, listener


async def test_with_transcripts_reports_both_sides(
    autojump_clock: MockClock, speech: FakeSpeech
) -> None:
    heard, listener = transcripts_heard()
    engines = with_transcripts(speech.engines(), listener)
    assert engines.stt.name == "fake-stt"
    assert engines.tts.name == "fake-tts"
    async with open_call(Parrot, engines, speech=speech) as fake:
        await fake.wait_for_bot_to_finish()
        await fake.say("good morning")
        await fake.wait_for_bot_to_finish()
    assert heard == [
        ("bot", "Hi!"),
        ("bot", "Say something and I will repeat it."),
        ("caller", "good morning"),
        ("bot", 'You said: "good morning"'),
    ]


async def test_with_transcripts_keeps_the_engines_second_look_and_alternatives(
    autojump_clock: MockClock, speech: FakeSpeech
) -> None:
    heard, listener = transcripts_heard()
    engines = with_transcripts(speech.engines(), listener)
    assert isinstance(engines.stt, HintedSpeechToText)
    assert isinstance(engines.stt, AlternativesSpeechToText)
    audio = speech.caller_audio("a table for", alternatives=["a table four"])
    at_pause = await engines.stt.transcribe_with_alternatives(audio)
    assert at_pause.alternatives == ("a table four",)
    assert heard == [("caller", "a table for")]  # told like any transcript
    hummed = speech.misheard("Hymn.", hinted="Mm-hmm.")
    assert (await engines.stt.transcribe_hinted(hummed, BACKCHANNEL_HINT)).text == "Mm-hmm."
    assert heard == [("caller", "a table for")]  # a second look at a sound is not told again

    class Plain:
        name = "plain"

        async def load(self) -> None:
            pass

        async def transcribe(self, audio: PCM) -> str:
            return "hello"

    plain = with_transcripts(Engines(vad=engines.vad, stt=Plain(), tts=engines.tts), listener)
    assert not isinstance(plain.stt, HintedSpeechToText)
    assert not isinstance(plain.stt, AlternativesSpeechToText)
    assert await plain.stt.transcribe(audio) == "hello"


async def test_a_softphone_call_resumes_over_a_misheard_hum(
    autojump_clock: MockClock, speech: FakeSpeech
) -> None:
    class Teller(Conversation):
        greeting = None

        async def reply(self, text: str) -> str:
            return "Let me tell you a long story. " * 6

    async def listener(speaker: str, text: str) -> None:
        pass

    async with open_call(
        Teller, with_transcripts(speech.engines(), listener), speech=speech
    ) as fake:
        await fake.say("tell me something")
        await fake.wait_for(lambda: len(fake.played) > 0)
        await trio.sleep(2.0)
        await fake.play(speech.misheard("Hymn.", hinted="Mm-hmm."))
        await fake.wait_for_bot_to_finish()
        assert fake.clears  # paused at the hum ...
        assert max(p.start for p in fake.played) > fake.clears[0]  # ... and resumed
    assert speech.stt.hinted_calls == 1


async def test_transcript_socket_learns_the_stream_and_sends_between_messages() -> None:
    server_side, client_side = memory_socket_pair()
    socket = TranscriptSocket(server_side)
    await socket.send_transcript("bot", "too early")  # no stream sid yet: dropped
    await client_side.send(twilio.encode_inbound(twilio.Connected("Call", "1.0.0")))
    await client_side.send("not json")
    await client_side.send(twilio.encode_inbound(twilio.Start(1, "MZ9", "CA9", "AC9")))
    assert await socket.receive() == twilio.encode_inbound(twilio.Connected("Call", "1.0.0"))
    assert await socket.receive() == "not json"
    assert socket.stream_sid is None
    await socket.receive()
    assert socket.stream_sid == "MZ9"
    await socket.send(twilio.serialize("MZ9", twilio.SendClear()))
    await socket.send_transcript("caller", "")  # nothing heard: nothing sent
    await socket.send_transcript("caller", "hello")
    assert await client_side.receive() == '{"event":"clear","streamSid":"MZ9"}'
    assert json.loads(await client_side.receive())["text"] == "hello"
    await client_side.close()
    await socket.send_transcript("bot", "after the caller left")  # closed: ignored
    await socket.close()


# --------------------------------------------------------------------------------------------
# The server's routes


def fast_speech() -> FakeSpeech:
    return FakeSpeech(
        stt=FakeSpeechToText(delay=0.01), tts=FakeTextToSpeech(delay=0.0, seconds_per_char=0.005)
    )


@asynccontextmanager
async def running(
    engines: Engines, conversation: type[Conversation] = Parrot, **options: Any
) -> AsyncIterator[str]:
    """Serve on port 0 (real time); yields the base URL."""
    settings = CallSettings(segmenter=SegmenterSettings(min_speech_ms=60, end_silence_ms=100))
    config = ServerConfig(port=0, call_settings=settings, drain_timeout=0.5, **options)
    async with trio.open_nursery() as nursery:
        host, port = await nursery.start(serve, conversation, engines, config)
        await engines.ready.wait()
        yield f"http://{host}:{port}"
        nursery.cancel_scope.cancel()


async def get_token(base: str) -> str:
    async with httpx.AsyncClient(base_url=base) as client:
        page = await client.get("/phone")
    assert page.status_code == 200
    match = TOKEN_META.search(page.text)
    assert match is not None
    return match[1]


async def test_the_page_and_its_scripts() -> None:
    with trio.fail_after(10):
        async with (
            running(fast_speech().engines()) as base,
            httpx.AsyncClient(base_url=base) as client,
        ):
            page = await client.get("/phone")
            assert page.status_code == 200
            assert page.headers["content-type"].startswith("text/html")
            assert page.headers["cache-control"] == "no-store"
            assert "script-src 'self'" in page.headers["content-security-policy"]
            assert TOKEN_META.search(page.text) is not None
            for name, kind in STATIC_FILES.items():
                asset = await client.get(f"/phone/{name}")
                assert asset.status_code == 200
                assert asset.headers["content-type"].startswith(kind)
            assert (await client.get("/phone/softphone.py")).status_code == 404
            assert (await client.get("/phone/..%2Fsoftphone.py")).status_code == 404


async def test_with_an_auth_token_the_page_is_off_unless_asked_for(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "phoneactors.server")
    with trio.fail_after(10):
        async with running(fast_speech().engines(), auth_token="t0k3n") as base:
            async with httpx.AsyncClient(base_url=base) as client:
                assert (await client.get("/phone")).status_code == 404
                assert (await client.get("/phone/phone.js")).status_code == 404
            # A made-up token does not get a stream past the signature check.
            assert await upgrade_status(base + "/stream?softphone=1.abc") == 403
    messages = [r.getMessage() for r in caplog.records]
    assert any("softphone (/phone) is off because TWILIO_AUTH_TOKEN is set" in m for m in messages)
    assert any("GET /phone from" in m and "--softphone turns it on" in m for m in messages)

    with trio.fail_after(10):
        async with running(fast_speech().engines(), auth_token="t0k3n", softphone=True) as base:
            token = await get_token(base)
            expired = SoftphoneTokens(lifetime=-1).mint()
            assert await upgrade_status(f"{base}/stream?softphone={expired}") == 403
            assert await upgrade_status(f"{base}/stream?softphone={token}x") == 403
            assert await upgrade_status(f"{base}/stream") == 403  # Twilio's path: signed only
    assert any("invalid or expired token" in r.getMessage() for r in caplog.records)


async def upgrade_status(url: str) -> int:
    """The status of a websocket upgrade that is expected to be refused (with a plain HTTP
    client: trio-websocket leaks its socket when an upgrade is rejected)."""
    upgrade = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version": "13",
    }
    async with httpx.AsyncClient() as client:
        response = await client.get(url, headers=upgrade)
    assert response.status_code != 101, "the upgrade was accepted"
    return response.status_code


async def stream_call(url: str, speech: FakeSpeech) -> tuple[list[dict[str, Any]], list[str]]:
    """One call as the softphone makes it: greeting, one caller line, the reply; returns the
    transcript messages and the mark names echoed."""
    transcripts: list[dict[str, Any]] = []
    marks: list[str] = []
    async with trio_websocket.open_websocket_url(url, disconnect_timeout=1) as ws:
        tcp = ws._stream  # trio-websocket 0.12 leaves it open when the server closes first

        async def send(event: twilio.InboundEvent) -> None:
            await ws.send_message(twilio.encode_inbound(event))

        async def receive() -> None:
            while True:
                message = json.loads(await ws.get_message())
                if message["event"] == "transcript":
                    transcripts.append(message)
                elif message["event"] == "mark":
                    marks.append(message["mark"]["name"])
                    await send(twilio.Mark(0, "MZ1", message["mark"]["name"]))

        async def say(audio: np.ndarray) -> None:
            for i in range(0, len(audio), FRAME_SAMPLES):
                frame = audio[i : i + FRAME_SAMPLES]
                await send(twilio.Media(0, "MZ1", "inbound", i, i // 8, ulaw_encode(frame)))
                await trio.sleep(0.02)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(receive)
            await send(twilio.Connected("Call", "1.0.0"))
            await send(twilio.Start(1, "MZ1", "CA1", "AC1", custom_parameters={"caller": "x"}))
            await trio.sleep(0.3)  # the greeting
            silence = np.zeros(8000 // 4, dtype=np.int16)
            await say(np.concatenate([speech.caller_audio("hello"), silence]))
            with trio.fail_after(5):  # until the reply (r2) has played, and a little more
                while not any(name.startswith("r2.") for name in marks):  # noqa: ASYNC110
                    await trio.sleep(0.01)
            await trio.sleep(0.2)
            await send(twilio.Stop(0, "MZ1", "CA1", "AC1"))
            nursery.cancel_scope.cancel()
        await tcp.aclose()
    return transcripts, marks


async def test_a_softphone_stream_gets_transcripts_and_skips_the_signature() -> None:
    speech = fast_speech()
    with trio.fail_after(15):
        async with running(speech.engines(), auth_token="t0k3n", softphone=True) as base:
            token = await get_token(base)
            url = base.replace("http", "ws") + f"/stream?softphone={token}"
            transcripts, marks = await stream_call(url, speech)
    assert [(t["speaker"], t["text"]) for t in transcripts] == [
        ("bot", "Hi!"),
        ("bot", "Say something and I will repeat it."),
        ("caller", "hello"),
        ("bot", 'You said: "hello"'),
    ]
    assert {t["streamSid"] for t in transcripts} == {"MZ1"}
    assert marks


async def test_a_twilio_stream_never_gets_transcripts() -> None:
    speech = fast_speech()
    with trio.fail_after(15):
        async with running(speech.engines()) as base:
            url = base.replace("http", "ws") + "/stream"
            transcripts, marks = await stream_call(url, speech)
    assert marks
    assert transcripts == []


# --------------------------------------------------------------------------------------------
# A real call from headless Chromium


def _browser_missing() -> str | None:
    """Why the browser test cannot run here, with what to do about it; ``None`` when it can."""
    how = (
        f"apt-get install chromium nodejs npm && (cd {BROWSER} && npm ci), or run "
        "'bash .ci/run', which does both"
    )
    if not Path(CHROMIUM).exists():
        return f"needs Chromium at {CHROMIUM}: {how}"
    if shutil.which("node") is None:
        return f"needs node >= 20 to drive Chromium: {how}"
    if not (BROWSER / "node_modules" / "playwright-core").is_dir():
        return f"needs playwright-core in {BROWSER}/node_modules: {how}"
    return None


BROWSER_MISSING = _browser_missing()


def write_microphone(path: Path, audio: np.ndarray, *, lead: float, tail: float) -> None:
    """A 48 kHz mono WAV for Chromium's fake microphone: silence, ``audio`` (8 kHz), silence.

    Chromium loops the file, so ``tail`` is longer than the test runs: the caller speaks once.
    """
    voice = float_to_pcm(resample(audio, 8000, 48000))
    silence = np.zeros(round(48000 * lead), dtype=np.int16)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(48000)
        wav.writeframes(silence.tobytes() + voice.tobytes())
        wav.writeframes(np.zeros(round(48000 * tail), dtype=np.int16).tobytes())


@pytest.mark.e2e
@pytest.mark.skipif(BROWSER_MISSING is not None, reason=f"{BROWSER_MISSING}")
async def test_a_call_from_headless_chromium(tmp_path: Path) -> None:
    from phoneactors.engines.registry import build_engines

    engines = build_engines(threads=2)
    config = ServerConfig(port=0)
    microphone = tmp_path / "caller.wav"
    with trio.fail_after(90):
        async with trio.open_nursery() as nursery:
            host, port = await nursery.start(serve, Parrot, engines, config)
            await engines.ready.wait()
            # The caller starts talking two seconds in, over the greeting (~2.5 s long).
            said = await engines.tts.synthesize("What time is it?")
            write_microphone(microphone, said, lead=2.0, tail=30.0)
            driver = await trio.run_process(
                ["node", "softphone.mjs", f"http://{host}:{port}/phone", str(microphone)],
                cwd=BROWSER,
                capture_stdout=True,
                capture_stderr=True,
                check=False,
            )
            nursery.cancel_scope.cancel()
    assert driver.returncode == 0, driver.stderr.decode()
    result = json.loads(driver.stdout)
    lines = [(line["speaker"], line["text"]) for line in result["transcript"]]
    assert ("bot", "Hi!") in lines
    caller = [text for speaker, text in lines if speaker == "caller"]
    assert any("what time is it" in text.lower() for text in caller), lines
    replies = [text for speaker, text in lines if text.startswith("You said")]
    assert any("what time is it" in text.lower() for text in replies), lines
    stats = result["stats"]
    assert stats["playedSamples"] > 8000, stats  # more than a second of the bot's audio
    assert stats["framesSent"] > 100, stats
    assert stats["marksEchoed"] > 0, stats
    # The caller talked over the greeting: the server sent clear, the page stopped playing.
    assert stats["clears"] >= 1, stats
    assert any(line["interrupted"] for line in result["transcript"] if line["speaker"] == "bot")
    assert result["status"] == "You hung up."
    # The page's μ-law is bit-exact with ours.
    samples = np.arange(-32768, 32768, dtype=np.int16)
    assert bytes(result["codec"]["encode"]) == ulaw_encode(samples)
    assert result["codec"]["decode"] == ulaw_decode(bytes(range(256))).tolist()
