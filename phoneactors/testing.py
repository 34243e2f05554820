"""Test your bot (and ours) without a phone line: a fake Twilio, scripted callers, fake engines.

Everything here runs under trio's ``MockClock``: the fake Twilio sends a 20 ms media frame every
20 ms of trio time, plays the bot's audio back in trio time, echoes marks when their audio has
played, and honours ``clear`` as Twilio does. A typical test::

    async def test_parrot(autojump_clock):        # or MockClock(autojump_threshold=0)
        speech = FakeSpeech()
        async with open_call(Parrot, speech.engines()) as twilio:
            await twilio.wait_for_bot_to_finish()  # the greeting
            await twilio.say("hello")
            await twilio.wait_for_bot_to_finish()
        assert speech.spoken[-1] == 'You said: "hello".'

:class:`FakeSpeech` gives fake engines that are fast and deterministic: caller speech is a tone
whose text the fake speech-to-text recognises, the bot's speech is a tone as long as its text
would take to say. Pass real engines instead (and real time) to hear real speech end to end.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Final

import trio

from .call import CallResult, CallSettings, run_call
from .call_control import CallDirectory
from .conversation import Conversation
from .engines import Engines, TextToSpeech
from .errors import ConfigurationError, SocketClosed
from .fake_speech import EnergyVad, FakeSpeech, FakeSpeechToText, FakeTextToSpeech, tone
from .fake_twilio import FakeTwilio, Played
from .outbound import CallControlApi
from .records import CallObserver
from .wer import word_error_rate

__all__ = [
    "EnergyVad",
    "FakeSpeech",
    "FakeSpeechToText",
    "FakeTextToSpeech",
    "FakeTwilio",
    "MemorySocket",
    "Played",
    "load_caller_voice",
    "memory_socket_pair",
    "open_call",
    "open_twilio_stream",
    "tone",
    "word_error_rate",
]

_MESSAGE_BUFFER: Final = 1000
"""In-memory socket buffer, in messages; a real socket buffers too."""


# --------------------------------------------------------------------------------------------
# In-memory socket


class MemorySocket:
    """One end of an in-memory message socket; a :class:`~phoneactors.transport.CallSocket`."""

    def __init__(
        self,
        send_channel: trio.MemorySendChannel[str | bytes],
        receive_channel: trio.MemoryReceiveChannel[str | bytes],
    ) -> None:
        self._send = send_channel
        self._receive = receive_channel
        self.closed = False

    async def receive(self) -> str | bytes:
        try:
            return await self._receive.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise SocketClosed("the socket is closed") from None

    async def send(self, message: str | bytes) -> None:
        try:
            await self._send.send(message)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise SocketClosed("the socket is closed") from None

    async def close(self) -> None:
        self.closed = True
        await self._send.aclose()
        await self._receive.aclose()


def memory_socket_pair() -> tuple[MemorySocket, MemorySocket]:
    """Two connected :class:`MemorySocket` ends: (server side, Twilio side)."""
    a_out, b_in = trio.open_memory_channel[str | bytes](_MESSAGE_BUFFER)
    b_out, a_in = trio.open_memory_channel[str | bytes](_MESSAGE_BUFFER)
    return MemorySocket(a_out, a_in), MemorySocket(b_out, b_in)


class WebSocketClient:
    """A real websocket connection (trio-websocket) as a :class:`CallSocket`, for a fake Twilio
    that talks to a real server."""

    def __init__(self, connection: Any) -> None:
        self._connection = connection

    async def receive(self) -> str | bytes:
        from trio_websocket import ConnectionClosed

        try:
            message: str | bytes = await self._connection.get_message()
        except ConnectionClosed:
            raise SocketClosed("the server closed the websocket") from None
        return message

    async def send(self, message: str | bytes) -> None:
        from trio_websocket import ConnectionClosed

        try:
            await self._connection.send_message(message)
        except ConnectionClosed:
            raise SocketClosed("the server closed the websocket") from None

    async def close(self) -> None:
        with trio.CancelScope(shield=True):
            await self._connection.aclose()


@asynccontextmanager
async def open_call(
    conversation: Callable[..., Conversation],
    engines: Engines,
    *,
    settings: CallSettings | None = None,
    voice: TextToSpeech | None = None,
    speech: FakeSpeech | None = None,
    observers: Sequence[CallObserver] = (),
    twilio_api: CallControlApi | None = None,
    directory: CallDirectory | None = None,
    **twilio_options: Any,
) -> AsyncIterator[FakeTwilio]:
    """Run one call of ``conversation`` (a :class:`Conversation` subclass, or a factory given
    the :class:`~phoneactors.conversation.CallInfo`) against a :class:`FakeTwilio`; yields the
    fake.

    On exit the caller hangs up (if the bot has not), and the call's :class:`CallResult` is
    available as ``twilio.result``. ``voice`` is the caller's voice for :meth:`FakeTwilio.say`
    (defaults to ``speech.caller_voice`` when ``speech`` is given).
    """
    server_side, twilio_side = memory_socket_pair()
    if voice is None and speech is not None:
        voice = speech.caller_voice
    fake = FakeTwilio(twilio_side, voice=voice, **twilio_options)
    results: list[CallResult] = []

    async def serve() -> None:
        results.append(
            await run_call(
                server_side,
                conversation,
                engines,
                settings,
                observers=observers,
                twilio_api=twilio_api,
                directory=directory,
            )
        )

    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve)
        nursery.start_soon(fake.run)
        yield fake
        await fake.hang_up()
    fake.result = results[0]


@asynccontextmanager
async def open_twilio_stream(
    url: str,
    *,
    voice: TextToSpeech | None = None,
    headers: Mapping[str, str] | None = None,
    **twilio_options: Any,
) -> AsyncIterator[FakeTwilio]:
    """Connect a :class:`FakeTwilio` to a running phoneactors server's ``/stream`` websocket.

    Runs in whatever clock the caller's trio run uses (real time against a real server). On exit
    the caller hangs up.
    """
    from trio_websocket import open_websocket_url

    extra = list((headers or {}).items())
    tcp: trio.abc.AsyncResource | None = None
    try:
        async with (
            open_websocket_url(
                url, extra_headers=[(k.encode(), v.encode()) for k, v in extra]
            ) as ws,
            trio.open_nursery() as nursery,
        ):
            tcp = ws._stream
            fake = FakeTwilio(WebSocketClient(ws), voice=voice, **twilio_options)
            nursery.start_soon(fake.run)
            yield fake
            await fake.hang_up()
    finally:
        # trio-websocket leaves a client's TCP stream open when the server closes the websocket
        # first (as when the bot hangs up): close it here.
        if tcp is not None:
            with trio.CancelScope(shield=True):
                await tcp.aclose()


async def load_caller_voice(
    tts: str = "hibari", voice: str | None = None, *, speed: float = 1.0
) -> TextToSpeech:
    """A real voice for the caller of :func:`open_twilio_stream` (``FakeTwilio.say``): one of
    the embedded text-to-speech engines, ``"hibari"`` (default) or ``"piper"``, loaded and warmed
    up. ``voice`` is the engine's voice (its default when ``None``); ``speed`` is hibari's pace.

    Raises :class:`~phoneactors.errors.ConfigurationError` for another engine name, or when the
    engine's package is not installed.
    """
    limiter = trio.CapacityLimiter(1)
    engine: TextToSpeech
    if tts == "hibari":
        from .engines.hibari import HibariTTS

        engine = HibariTTS(voice, limiter=limiter, speed=speed)
    elif tts == "piper":
        from .engines.piper import PiperTTS

        engine = PiperTTS(voice, limiter=limiter)
    else:
        raise ConfigurationError(
            f"load_caller_voice: unknown engine {tts!r}; choose 'hibari' or 'piper'"
        )
    await engine.load()
    return engine
