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

import collections
import contextlib
import dataclasses
import itertools
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import trio

from . import sounds, twilio
from .audio import FRAME_MS, FRAME_SAMPLES, PCM, SAMPLE_RATE, ulaw_decode, ulaw_encode
from .call import CallResult, CallSettings, run_call
from .call_control import CallDirectory
from .conversation import Conversation
from .engines import Engines, TextToSpeech, Transcription
from .errors import ConfigurationError, EngineError, SocketClosed
from .outbound import CallControlApi
from .playback import trim_silence
from .records import CallObserver
from .transport import CallSocket
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


# --------------------------------------------------------------------------------------------
# Fake engines


def tone(seconds: float, *, frequency: float = 440.0, amplitude: float = 0.3) -> PCM:
    """A sine tone at 8 kHz: loud enough for :class:`EnergyVad` to call it speech."""
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (np.sin(2 * np.pi * frequency * t) * amplitude * 32767).astype(np.int16)


class EnergyVad:
    """A deterministic VAD for tests: a frame is speech when its RMS exceeds ``threshold``."""

    name = "energy"

    def __init__(self, threshold: float = 500.0) -> None:
        if not threshold >= 0:
            raise ValueError(f"threshold must be at least 0, got {threshold!r}")
        self.threshold = threshold

    async def load(self) -> None:
        pass

    def new_detector(self) -> EnergyVad:
        return self

    def is_speech(self, frame: PCM) -> bool:
        # mean square against threshold squared: the same verdict as RMS, a quarter of the time
        samples = frame.astype(np.float64)
        return float(np.dot(samples, samples)) > self.threshold**2 * len(samples)


_TONE_BASE: Final = 400.0
_TONE_STEP: Final = 40.0
_TONE_SLOTS: Final = 80
"""Fake caller speech is a tone; its frequency (400 Hz + 40 Hz steps) says which text it is."""


class FakeSpeechToText:
    """Recognises the caller speech that :class:`FakeSpeech` made.

    Each text the fake caller says becomes a tone of its own frequency; this engine finds the
    tone's frequency and answers that text, so the same audio always gives the same transcript
    (early and final transcriptions agree) and silence or noise gives ``""``. A text can be
    registered with the signals a real engine would give (``no_speech_prob``,
    ``avg_logprob``): that is how a cough "heard" as "Thank you." is made. ``delay`` seconds
    of trio time per call; ``fail`` makes every call raise :class:`EngineError`.
    """

    name = "fake-stt"

    def __init__(self, *, delay: float = 0.1) -> None:
        self.delay = delay
        self.fail = False
        self.calls = 0
        self.hinted_calls = 0
        self._texts: dict[int, Transcription] = {}
        self._hinted: dict[int, str] = {}
        self._said = 0

    async def load(self) -> None:
        pass

    def register(
        self,
        text: str,
        *,
        no_speech_prob: float | None = None,
        avg_logprob: float | None = None,
        hinted: str | None = None,
        alternatives: Sequence[str] = (),
    ) -> float:
        """Remember ``text`` (and the signals to give with it, the other readings the engine
        nearly heard: ``alternatives``, and what a transcription told what to expect hears
        instead: ``hinted``); returns the tone frequency that will transcribe to it."""
        slot = self._said % _TONE_SLOTS
        self._said += 1
        self._texts[slot] = Transcription(
            text, no_speech_prob, avg_logprob, alternatives=tuple(alternatives)
        )
        self._hinted.pop(slot, None)
        if hinted is not None:
            self._hinted[slot] = hinted
        return _TONE_BASE + slot * _TONE_STEP

    def _slot(self, audio: PCM) -> int | None:
        samples = np.asarray(audio, dtype=np.float64)
        if len(samples) < FRAME_SAMPLES or np.sqrt(np.mean(samples**2)) < 100:
            return None
        spectrum = np.abs(np.fft.rfft(samples))
        peak = float(np.argmax(spectrum)) * SAMPLE_RATE / len(samples)
        slot = round((peak - _TONE_BASE) / _TONE_STEP)
        if abs(peak - (_TONE_BASE + slot * _TONE_STEP)) > _TONE_STEP / 4:
            return None
        return slot

    def recognise(self, audio: PCM) -> Transcription:
        """The text whose tone dominates ``audio`` (``""`` for silence or an unknown sound)."""
        slot = self._slot(audio)
        return Transcription("") if slot is None else self._texts.get(slot, Transcription(""))

    async def transcribe(self, audio: PCM) -> Transcription:
        """What the registered text says, without the readings it nearly heard."""
        return dataclasses.replace(await self.transcribe_with_alternatives(audio), alternatives=())

    async def transcribe_with_alternatives(self, audio: PCM) -> Transcription:
        """What the registered text says, with its ``alternatives`` (the transcript at a
        pause)."""
        self.calls += 1
        await trio.sleep(self.delay)
        if self.fail:
            raise EngineError("fake-stt: failing on purpose")
        return self.recognise(audio)

    async def transcribe_hinted(self, audio: PCM, hint: str) -> Transcription:
        """What the registered ``hinted`` text says (else the same as :meth:`transcribe`)."""
        self.hinted_calls += 1
        await trio.sleep(self.delay)
        if self.fail:
            raise EngineError("fake-stt: failing on purpose")
        slot = self._slot(audio)
        if slot is not None and slot in self._hinted:
            return Transcription(self._hinted[slot])
        return self.recognise(audio)


class FakeTextToSpeech:
    """Turns text into a tone as long as the text would take to say (``seconds_per_char``).

    Records every text in :attr:`spoken`. ``delay`` seconds of trio time per sentence;
    ``fail`` makes it raise EngineError.
    """

    name = "fake-tts"

    def __init__(
        self, *, delay: float = 0.02, seconds_per_char: float = 0.06, frequency: float = 300.0
    ) -> None:
        self.delay = delay
        self.seconds_per_char = seconds_per_char
        self.frequency = frequency
        self.fail = False
        self.spoken: list[str] = []

    async def load(self) -> None:
        pass

    def duration(self, text: str) -> float:
        return max(0.2, len(text) * self.seconds_per_char)

    async def synthesize(self, text: str) -> PCM:
        await trio.sleep(self.delay)
        if self.fail:
            raise EngineError("fake-tts: failing on purpose")
        self.spoken.append(text)
        return tone(self.duration(text), frequency=self.frequency)


class _CallerVoice:
    """Caller speech for the fake engines: :meth:`FakeSpeech.caller_audio` as a TTS engine."""

    name = "fake-caller"

    def __init__(self, speech: FakeSpeech) -> None:
        self._speech = speech

    async def load(self) -> None:
        pass

    async def synthesize(self, text: str) -> PCM:
        return self._speech.caller_audio(text)


@dataclass
class FakeSpeech:
    """A matching set of fake engines, plus a caller voice the fake STT understands."""

    vad: EnergyVad = field(default_factory=EnergyVad)
    stt: FakeSpeechToText = field(default_factory=FakeSpeechToText)
    tts: FakeTextToSpeech = field(default_factory=FakeTextToSpeech)
    caller_seconds_per_char: float = 0.06

    def engines(self) -> Engines:
        return Engines(vad=self.vad, stt=self.stt, tts=self.tts)

    @property
    def caller_voice(self) -> TextToSpeech:
        """A TextToSpeech for :class:`FakeTwilio`'s caller, made of :meth:`caller_audio`."""
        return _CallerVoice(self)

    def caller_audio(self, text: str, *, alternatives: Sequence[str] = ()) -> PCM:
        """Caller "speech" for ``text``: a tone that :attr:`stt` transcribes as ``text``
        (and, as a real engine may, as nearly one of ``alternatives`` too: "Can I get a table
        four." beside "Can I get a table for")."""
        seconds = max(0.3, len(text) * self.caller_seconds_per_char)
        return tone(seconds, frequency=self.stt.register(text, alternatives=alternatives))

    def misheard(
        self, heard_as: str, *, hinted: str, avg_logprob: float = -1.3, seconds: float = 0.4
    ) -> PCM:
        """A short sound the STT makes no sense of, heard as ``heard_as`` with a real engine's
        doubt (``avg_logprob``), and as ``hinted`` when told what to expect: a hummed
        "mm-hmm" that Whisper hears as "Hymn."."""
        frequency = self.stt.register(heard_as, avg_logprob=avg_logprob, hinted=hinted)
        return tone(seconds, frequency=frequency)

    def cough(self, *, heard_as: str = "Thank you.", seconds: float = 0.4) -> PCM:
        """A cough (or a breath, a door): a burst of noise that the VAD calls speech and
        :attr:`stt` "hears" as ``heard_as``, as Whisper does, with a real engine's signals of
        no speech (``no_speech_prob`` 0.8, ``avg_logprob`` -1.3). It has no voicing (no pitch),
        as a real cough has little: the runtime must not believe the transcript."""
        frequency = self.stt.register(heard_as, no_speech_prob=0.8, avg_logprob=-1.3)
        rng = np.random.default_rng(round(frequency))
        burst = rng.normal(0.0, 0.3 * 32767 / 3, round(seconds * SAMPLE_RATE))
        # A faint tone at the registered frequency, far under the noise, tells the fake STT
        # what to "hear" without making the burst periodic.
        marker = tone(seconds, frequency=frequency, amplitude=0.03).astype(np.float64)
        return np.clip(burst + marker[: len(burst)], -32768, 32767).astype(np.int16)

    @property
    def spoken(self) -> list[str]:
        """Every sentence the bot synthesized, in order."""
        return self.tts.spoken


# --------------------------------------------------------------------------------------------
# The fake Twilio


@dataclass(frozen=True, slots=True)
class Played:
    """Bot audio the fake Twilio played, and when (trio time)."""

    start: float
    end: float
    audio: PCM


@dataclass
class _Buffered:
    audio: bytes | None = None
    mark: str | None = None


class FakeTwilio:
    """Twilio's side of one Media Streams call, speaking the real JSON over a socket.

    Sends ``connected`` and ``start``, then one 20 ms ``media`` frame every 20 ms of trio time:
    what the caller says (:meth:`say`, :meth:`play`) or silence. Plays the bot's audio from a
    buffer in trio time, echoes each mark when the audio before it has played, and on ``clear``
    drops the buffer and echoes the pending marks, as Twilio does.

    The record: :attr:`played` (bot audio as heard), :attr:`outbound` (every message the bot
    sent, with its time), :attr:`clears` (times of ``clear``), :attr:`marks_echoed`.
    """

    def __init__(
        self,
        socket: CallSocket,
        *,
        voice: TextToSpeech | None = None,
        call_sid: str | None = None,
        stream_sid: str | None = None,
        account_sid: str = "AC00000000000000000000000000000001",
        custom_parameters: Mapping[str, str] | None = None,
        line_noise_dbfs: float | None = None,
        background: PCM | None = None,
        seed: int = 0,
    ) -> None:
        self.socket = socket
        self.line_noise_dbfs = line_noise_dbfs
        """Hiss (white noise at this RMS level) added to every frame the caller sends, silence
        included: a noisy line. ``None``: a clean line (digital silence between words)."""
        self.background = (
            None if background is None or not len(background) else np.asarray(background, np.int16)
        )
        """8 kHz int16 audio played on a loop under every frame the caller sends, silence
        included: the room the caller is in (other people talking, music, traffic)."""
        self._background_at = 0
        self._rng = np.random.default_rng(seed)
        self.voice = voice
        self.call_sid = call_sid or "CA" + uuid.uuid4().hex
        """The call's sid; by default a new one for every fake, as Twilio gives every call."""
        self.stream_sid = stream_sid or "MZ" + uuid.uuid4().hex
        self.account_sid = account_sid
        self.custom_parameters = dict(custom_parameters or {"caller": "+15550100001"})
        self.played: list[Played] = []
        self.outbound: list[tuple[float, twilio.OutboundEvent]] = []
        self.clears: list[float] = []
        self.marks_echoed: list[str] = []
        self.caller_frames_sent = 0
        self.caller_voiced: list[float] = []
        """When each caller frame with sound in it (RMS over 100) was sent."""
        self.max_buffered = 0.0
        """Most bot audio (seconds) ever waiting to be played: the bot's lead over real time."""
        self.closed = trio.Event()
        """Set when the bot closed the socket (hung up)."""
        self.result: CallResult | None = None
        """How the call went, once :func:`open_call` has exited."""
        self._caller_audio: collections.deque[PCM] = collections.deque()
        self._pending_events: collections.deque[twilio.InboundEvent] = collections.deque()
        self._buffer: collections.deque[_Buffered] = collections.deque()
        self._buffer_changed = trio.Event()
        self._playing: trio.CancelScope | None = None
        self._playing_until = 0.0
        self._changed = trio.Event()
        self._sequence = itertools.count(1)
        self._stopped = False

    # -- the caller ---------------------------------------------------------------------------

    async def say(self, text: str, *, wait: bool = True) -> None:
        """Speak ``text`` as the caller (through :attr:`voice`); with ``wait``, return once the
        last frame of it has been sent. The silence a TTS voice puts after the words is cut:
        the caller has stopped talking when the voice stops, and silence frames follow anyway."""
        if self.voice is None:
            raise RuntimeError("FakeTwilio needs a voice (a TextToSpeech) to say text")
        audio = await self.voice.synthesize(text)
        await self.play(trim_silence(audio, leading_ms=None, trailing_ms=0), wait=wait)

    async def play(self, audio: PCM, *, wait: bool = True) -> None:
        """Send raw 8 kHz int16 audio as the caller, after whatever is queued."""
        audio = np.asarray(audio, dtype=np.int16)
        padded = -(-len(audio) // FRAME_SAMPLES) * FRAME_SAMPLES
        audio = np.concatenate([audio, np.zeros(padded - len(audio), dtype=np.int16)])
        for i in range(0, len(audio), FRAME_SAMPLES):
            self._caller_audio.append(audio[i : i + FRAME_SAMPLES])
        if wait:
            await self.wait_for(lambda: not self._caller_audio)

    async def silence(self, seconds: float) -> None:
        """Let ``seconds`` of caller silence go by (trio time)."""
        await self.play(np.zeros(round(seconds * SAMPLE_RATE), dtype=np.int16))

    async def press(self, digit: str, *, wait: bool = True) -> None:
        """Press a key: a ``dtmf`` event goes before the next frame. With ``wait``, return once
        it has been sent (like :meth:`say`)."""
        event = twilio.Dtmf(
            sequence_number=0, stream_sid=self.stream_sid, track="inbound_track", digit=digit
        )
        self._pending_events.append(event)
        if wait:
            await self.wait_for(
                lambda: event not in self._pending_events or self.closed.is_set() or self._stopped
            )

    async def hang_up(self) -> None:
        """The caller hangs up: Twilio sends ``stop`` and closes the socket."""
        if self._stopped:
            return
        self._stopped = True
        with suppress(SocketClosed):
            await self._send(
                twilio.Stop(
                    sequence_number=0,
                    stream_sid=self.stream_sid,
                    call_sid=self.call_sid,
                    account_sid=self.account_sid,
                )
            )
        await self.socket.close()

    async def drop(self) -> None:
        """The connection just goes away: no ``stop``, the socket closes."""
        self._stopped = True
        await self.socket.close()

    # -- waiting ------------------------------------------------------------------------------

    async def wait_for(self, condition: Callable[[], bool], *, give_up_after: float = 60.0) -> None:
        """Wait (in trio time) until ``condition()`` holds; it is checked after every change.

        Raises ``AssertionError`` after ``give_up_after`` seconds: under ``MockClock`` a
        condition that never comes true would otherwise spin forever.
        """
        with trio.move_on_after(give_up_after):
            while not condition():
                await self._changed.wait()
            return
        raise AssertionError(f"condition still false after {give_up_after:g} s of call time")

    async def wait_for_bot_to_finish(
        self, *, quiet: float = 0.5, give_up_after: float = 60.0
    ) -> None:
        """Wait for the bot's next audio, then until all of it has played and nothing more has
        come for ``quiet`` seconds (or the bot hung up).

        Raises ``AssertionError`` if the bot sends no audio within ``give_up_after`` seconds.
        """
        sent = len(self.outbound)
        with trio.move_on_after(give_up_after):
            await self.wait_for(lambda: self._media_since(sent) or self.closed.is_set())
        if not (self._media_since(sent) or self.closed.is_set()):
            raise AssertionError(f"the bot sent no audio within {give_up_after:g} s")
        while not self.closed.is_set():
            await self.wait_for(
                lambda: (not self._buffer and self._playing is None) or self.closed.is_set()
            )
            with trio.move_on_after(quiet):
                await self._wait_for_more_media()
                continue
            return

    async def _wait_for_more_media(self) -> None:
        sent = len(self.outbound)
        await self.wait_for(lambda: self._media_since(sent) or self.closed.is_set())

    def _media_since(self, index: int) -> bool:
        return any(isinstance(e, twilio.SendMedia) for _, e in self.outbound[index:])

    @property
    def bot_audio(self) -> PCM:
        """All bot audio that actually played, concatenated."""
        if not self.played:
            return np.zeros(0, dtype=np.int16)
        return np.concatenate([p.audio for p in self.played])

    @property
    def buffered(self) -> float:
        """Seconds of bot audio waiting to be played right now."""
        now = trio.current_time()
        playing = max(0.0, self._playing_until - now) if self._playing is not None else 0.0
        waiting = sum(len(b.audio) for b in self._buffer if b.audio is not None)
        return playing + waiting / SAMPLE_RATE

    def stale_audio_after_clear(self, clear: int = 0) -> float:
        """Seconds of the *interrupted* reply's audio that arrived after ``clears[clear]`` while
        the caller was still talking (until 200 ms after their last sound: no decision to play
        on can come sooner). Should always be 0.

        phoneactors names marks ``<reply>.<chunk>``; audio followed by a mark of the reply that
        was playing when the clear came (or by no mark at all) counts. A reply that plays on
        after a false interruption (a cough, "uh-huh") sends its audio again later: not stale.
        """
        at = self.clears[clear]
        until = self._caller_sound_end(at) + 0.2
        before = [e.name for t, e in self.outbound if t <= at and isinstance(e, twilio.SendMark)]
        old_reply = before[-1].rpartition(".")[0] if before else None
        stale = pending = 0
        for t, event in self.outbound:
            if t <= at:
                continue
            if t > until:
                break
            if isinstance(event, twilio.SendMedia):
                pending += len(event.payload)
            elif isinstance(event, twilio.SendMark):
                if event.name.rpartition(".")[0] != old_reply:
                    return stale / SAMPLE_RATE
                stale, pending = stale + pending, 0
        return (stale + pending) / SAMPLE_RATE

    def _caller_sound_end(self, after: float) -> float:
        """The caller's last sound of the stretch of talking going on at ``after`` (one with
        no 200 ms gap in it), or ``after`` when they were quiet."""
        end = after
        for voiced in self.caller_voiced:
            if voiced < after - 0.2:
                continue
            if voiced > end + 0.2:
                break
            end = max(end, voiced)
        return end

    def media_sent_after(self, time: float) -> float:
        """Seconds of bot audio that arrived after ``time`` (for barge-in checks)."""
        total = sum(
            len(e.payload) for t, e in self.outbound if t > time and isinstance(e, twilio.SendMedia)
        )
        return total / SAMPLE_RATE

    # -- running ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Be Twilio for one call until the caller hangs up or the bot closes the socket."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._play_buffer)
            nursery.start_soon(self._receive_from_bot, nursery.cancel_scope)
            await self._send(twilio.Connected(protocol="Call", version="1.0.0"))
            await self._send(
                twilio.Start(
                    sequence_number=0,
                    stream_sid=self.stream_sid,
                    call_sid=self.call_sid,
                    account_sid=self.account_sid,
                    tracks=("inbound",),
                    custom_parameters=self.custom_parameters,
                    media_format=twilio.MediaFormat("audio/x-mulaw", SAMPLE_RATE, 1),
                )
            )
            await self._send_caller_audio()

    async def _send(self, event: twilio.InboundEvent) -> None:
        await self.socket.send(twilio.encode_inbound(_with_sequence(event, next(self._sequence))))

    async def _send_caller_audio(self) -> None:
        with contextlib.suppress(SocketClosed):  # the bot hung up, or the line dropped
            await self._pump_caller_audio()

    async def _pump_caller_audio(self) -> None:
        start = trio.current_time()
        for chunk in itertools.count():
            await trio.sleep_until(start + chunk * FRAME_MS / 1000)
            if self._stopped:
                return
            while self._pending_events:
                await self._send(self._pending_events.popleft())
            frame = (
                self._caller_audio.popleft()
                if self._caller_audio
                else np.zeros(FRAME_SAMPLES, dtype=np.int16)
            )
            if np.dot(frame.astype(np.float32), frame.astype(np.float32)) > 100**2 * len(frame):
                self.caller_voiced.append(trio.current_time())
            if self.background is not None:
                frame = sounds.mix(self._background_frame(), frame, at_s=0.0)
            if self.line_noise_dbfs is not None:
                frame = sounds.mix(
                    sounds.hiss(FRAME_MS / 1000, dbfs=self.line_noise_dbfs, rng=self._rng),
                    frame,
                    at_s=0.0,
                )
            await self._send(
                twilio.Media(
                    sequence_number=0,
                    stream_sid=self.stream_sid,
                    track="inbound",
                    chunk=chunk + 1,
                    timestamp=chunk * FRAME_MS,
                    payload=ulaw_encode(frame),
                )
            )
            self.caller_frames_sent += 1
            self._notify()

    def _background_frame(self) -> PCM:
        """The next 20 ms of :attr:`background`, from the start again at its end."""
        assert self.background is not None
        loop = self.background
        at = self._background_at
        indices = np.arange(at, at + FRAME_SAMPLES) % len(loop)
        self._background_at = (at + FRAME_SAMPLES) % len(loop)
        return loop[indices]

    async def _receive_from_bot(self, scope: trio.CancelScope) -> None:
        while True:
            try:
                message = await self.socket.receive()
            except SocketClosed:
                self.closed.set()
                self._notify()
                scope.cancel()
                return
            stream_sid, event = twilio.parse_outbound(message)
            assert stream_sid == self.stream_sid, f"bot used streamSid {stream_sid!r}"
            self.outbound.append((trio.current_time(), event))
            match event:
                case twilio.SendMedia(payload=payload):
                    self._buffer.append(_Buffered(audio=payload))
                    self.max_buffered = max(self.max_buffered, self.buffered)
                case twilio.SendMark(name=name):
                    self._buffer.append(_Buffered(mark=name))
                case twilio.SendClear():
                    await self._clear()
            self._buffer_changed.set()
            self._notify()

    async def _clear(self) -> None:
        self.clears.append(trio.current_time())
        if self._playing is not None:
            self._playing.cancel()
        pending, self._buffer = self._buffer, collections.deque()
        for item in pending:
            if item.mark is not None:
                await self._echo_mark(item.mark)

    async def _echo_mark(self, name: str) -> None:
        self.marks_echoed.append(name)
        with suppress(SocketClosed):
            await self._send(twilio.Mark(sequence_number=0, stream_sid=self.stream_sid, name=name))

    async def _play_buffer(self) -> None:
        while True:
            while not self._buffer:
                self._buffer_changed = trio.Event()
                await self._buffer_changed.wait()
            item = self._buffer.popleft()
            if item.mark is not None:
                await self._echo_mark(item.mark)
            elif item.audio is not None:
                audio = ulaw_decode(item.audio)
                start = trio.current_time()
                self._playing_until = start + len(audio) / SAMPLE_RATE
                with trio.CancelScope() as self._playing:
                    await trio.sleep(len(audio) / SAMPLE_RATE)
                self._playing = None
                played = round((trio.current_time() - start) * SAMPLE_RATE)
                self.played.append(Played(start, trio.current_time(), audio[:played]))
            self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()


def _with_sequence(event: twilio.InboundEvent, number: int) -> twilio.InboundEvent:
    if isinstance(event, twilio.Connected):
        return event
    return dataclasses.replace(event, sequence_number=number)


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
