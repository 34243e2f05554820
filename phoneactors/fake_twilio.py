"""The fake Twilio: one Media Streams call's far end, in trio time.

:class:`FakeTwilio` speaks the real JSON over a socket: it sends a 20 ms ``media`` frame every
20 ms of trio time (the caller's words, sounds, or silence, with line noise or a room under them
if asked), plays the bot's audio back as Twilio would, echoes marks once their audio has played,
and honours ``clear``. Use it through :func:`phoneactors.testing.open_call` or
:func:`~phoneactors.testing.open_twilio_stream`.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import itertools
import uuid
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass

import numpy as np
import trio

from . import sounds, twilio
from .audio import FRAME_MS, FRAME_SAMPLES, PCM, SAMPLE_RATE, ulaw_decode, ulaw_encode
from .call import CallResult
from .engines import TextToSpeech
from .errors import SocketClosed
from .playback import trim_silence
from .transport import CallSocket

__all__ = ["FakeTwilio", "Played"]

PLAY_ON_GAP = 0.25
"""Seconds without audio after a ``clear`` that only a decision to play on explains: the
call's shortest end of a sound (its short silence, 300 ms by default) is longer."""


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
        after a false interruption (a cough, "uh-huh") sends its audio again: not stale. The
        call may hear the end of a faint sound sooner than this window does, so it stops
        counting where the reply played on (:meth:`played_on_after_clear`), too.
        """
        at = self.clears[clear]
        talking_until = self._caller_sound_end(at) + 0.2
        until = self.played_on_after_clear(clear)
        old_reply = self._reply_playing_at(at)
        stale = pending = 0
        for t, event in self.outbound:
            if t <= at:
                continue
            if t > talking_until or (until is not None and t >= until):
                break
            if isinstance(event, twilio.SendMedia):
                pending += len(event.payload)
            elif isinstance(event, twilio.SendMark):
                if event.name.rpartition(".")[0] != old_reply:
                    return stale / SAMPLE_RATE
                stale, pending = stale + pending, 0
        return (stale + pending) / SAMPLE_RATE

    def played_on_after_clear(self, clear: int = 0, gap: float = PLAY_ON_GAP) -> float | None:
        """When the reply cleared by ``clears[clear]`` played on: the time its audio came again
        after at least ``gap`` seconds with none, or ``None`` if it never did.

        A reply stops at once when the caller makes a sound, and the call needs the sound's
        end (a short silence) and its transcript before it can decide to play on, so audio of
        the same reply after such a gap is that decision, never a leak. It is wrong when the
        sound was a real interruption (the bot took "Stop." for a cough).
        """
        at = self.clears[clear]
        old_reply = self._reply_playing_at(at)
        last = at
        pending: float | None = None
        for t, event in self.outbound:
            if t <= at:
                continue
            if isinstance(event, twilio.SendMedia):
                if pending is None and t - last >= gap:
                    pending = t
                last = t
            elif isinstance(event, twilio.SendMark):
                if event.name.rpartition(".")[0] != old_reply:
                    return None
                if pending is not None:
                    return pending
        return pending

    def _reply_playing_at(self, at: float) -> str | None:
        """The reply whose mark was sent last before ``at``."""
        before = [e.name for t, e in self.outbound if t <= at and isinstance(e, twilio.SendMark)]
        return before[-1].rpartition(".")[0] if before else None

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
