"""Talk to a bot in the terminal: one whole call in this process, no phone line, no Twilio account.

:func:`simulate` runs :func:`~phoneactors.call.run_call` (the real actors, with whatever engines it
is given) against :class:`~phoneactors.testing.FakeTwilio` over an in-memory socket. Each line of
text is spoken by the caller: synthesized with a voice (by default the engines' own text-to-speech)
and sent as 20 ms μ-law frames in (trio) real time. It prints the call as it happens::

      0.02  bot: Hi!
      0.42  bot: Say something and I will repeat it.
      3.54  (caller speaking: hello there)
      4.93  caller: Hello there.
      5.06  bot: You said: "Hello there."
      5.16  (latency 0.48 s: caller's last frame -> bot's first audio)
      7.27  (call ended: caller hung up)

Times are seconds since the call connected. ``caller:`` is what the speech-to-text engine heard,
``bot:`` each sentence as it is synthesized (while the one before it plays). The latency of a
turn runs from the caller's last frame of speech (the voice's own trailing silence is not sent)
to the first bot audio played after it, from the fake Twilio's records; it includes the
end-of-speech silence the VAD waits for.

Lines
-----
* A plain line waits until the bot has finished talking (nothing left to play and no new audio
  for :data:`QUIET` seconds), then is spoken.
* A line starting with ``!`` is spoken over the bot: as soon as the bot's answer to the previous
  line has been playing for :data:`BARGE_IN_AFTER` seconds (or at once, if it has been playing
  longer), to demonstrate barge-in. The bot stops, and ``(interrupted; heard: …)`` shows what of
  its reply the caller heard.
* A line starting with ``~`` is a sound over the bot that is no interruption, made at the same
  moment as a ``!`` line: a backchannel (``~uh-huh``, ``~okay``) or one of the sounds
  :data:`SOUNDS` (``~cough``, ``~breath``, ``~knock``, ``~click``). The bot stops at once, then
  plays on from the word the caller was hearing; ``(… the bot played on after 0.42 s)`` shows
  how long after the sound it resumed. It is not answered.
* Blank lines and lines starting with ``#`` are skipped.

When the lines run out, the caller waits for the bot to finish and hangs up; when the bot hangs
up, the remaining lines are dropped. With ``record``, the call's audio is written to a stereo
8 kHz WAV file: the caller on the left channel, the bot (as played) on the right, time-aligned.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Callable, Iterable
from contextlib import aclosing
from dataclasses import dataclass, field
from inspect import isawaitable
from os import PathLike
from typing import Any, Final, TextIO

import numpy as np
import trio

from . import sounds
from .audio import SAMPLE_RATE
from .call import CallResult, CallSettings, run_call
from .conversation import (
    CallInfo,
    Conversation,
    Interruption,
    Reply,
    ReplyText,
    TurnSoFar,
    as_factory,
)
from .engines import Engines, TextToSpeech
from .records import CallEvent, FalseInterruption
from .simulate_recording import CallerFrameTap, stereo, write_recording
from .softphone import Speaker, with_transcripts
from .testing import FakeTwilio, memory_socket_pair
from .timing import TurnTiming

__all__ = [
    "BARGE_IN_AFTER",
    "QUIET",
    "SOUNDS",
    "Line",
    "SimulationResult",
    "parse_line",
    "simulate",
]

BARGE_IN_AFTER: Final = 1.0
"""Seconds of the bot's answer that play before a ``!`` line talks over it."""
QUIET: Final = 1.0
"""Seconds without new bot audio after which the bot counts as finished."""
ANSWER_TIMEOUT: Final = 60.0
"""Seconds to wait for the bot to start answering before the caller goes on anyway (the
conversation's own reply timeout normally answers with its apology well before)."""
SOUNDS: Final = {
    "cough": sounds.cough,
    "breath": sounds.breath,
    "knock": sounds.knock,
    "click": sounds.click,
}
"""The sounds a ``~`` line can make instead of saying words."""


@dataclass(frozen=True, slots=True)
class Line:
    """One thing the caller says; ``barge_in`` for a ``!`` line, ``aside`` for a ``~`` line
    (over the bot, and no interruption)."""

    text: str
    barge_in: bool = False
    aside: bool = False
    keys: bool = False
    """A ``[12#]`` line: keys pressed (``text`` holds them), over the bot like a ``!`` line."""


_KEYS: Final = re.compile(r"\[\s*([0-9*#A-Da-d ]+?)\s*\]")


def parse_line(line: str) -> Line | None:
    """The caller's :class:`Line` for one line of input, or ``None`` for a blank or ``#`` line."""
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    if keys := _KEYS.fullmatch(text):
        return Line(keys.group(1).replace(" ", "").upper(), keys=True)
    if text[0] in "!~":
        rest = text[1:].strip()
        return Line(rest, barge_in=text[0] == "!", aside=text[0] == "~") if rest else None
    return Line(text)


@dataclass(frozen=True)
class SimulationResult:
    """How a simulated call went."""

    call: CallResult
    latencies: tuple[float, ...]
    """Per answered caller line: seconds from its last frame to the bot's first audio."""
    duration: float
    """Seconds from the call's start to its end."""


# --------------------------------------------------------------------------------------------
# Printing


class _Narrator:
    """Prints the call, one line per event, with seconds since the call started."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._start = trio.current_time()

    def __call__(self, text: str) -> None:
        self._out.write(f"{trio.current_time() - self._start:7.2f}  {text}\n")
        self._out.flush()


@dataclass(eq=False)
class _Session:
    """What the caller's side knows beyond the fake Twilio's records."""

    narrate: _Narrator
    silences: int = 0
    """Turns that will get no answer: nothing recognised, a silent reply, no greeting."""
    interrupted: bool = False
    """The bot was interrupted since the caller's last ``~`` line."""

    def observe(self, stream_sid: str, event: CallEvent) -> None:
        """Print what the runtime made of a sound over the bot that was no interruption."""
        if isinstance(event, FalseInterruption):
            heard = f" ({event.text!r})" if event.text else ""
            self.narrate(f"(that was {event.kind}{heard}: no interruption)")

    async def on_transcript(self, speaker: Speaker, text: str) -> None:
        if speaker == "bot":
            self.narrate(f"bot: {text}")
        elif text:
            self.narrate(f"caller: {text}")
        else:
            self.narrate("caller: (nothing recognised)")
            self.silences += 1


def _passed_on(name: str) -> Any:
    """A property that reads and sets ``name`` on the wrapped conversation (``self._inner``)."""
    return property(
        lambda self: getattr(self._inner, name),
        lambda self, value: setattr(self._inner, name, value),
    )


class _Narrated(Conversation):
    """The user's conversation, as :func:`run_call` sees it in a simulation: every hook goes to
    ``inner``; interruptions are printed, and turns that get no answer are counted. What the
    runtime sets on a conversation (its call, history, ``say``) and reads from it (its lines)
    is the inner conversation's own."""

    greeting = _passed_on("greeting")
    apology = _passed_on("apology")
    still_there = _passed_on("still_there")
    idle_goodbye = _passed_on("idle_goodbye")
    time_limit_message = _passed_on("time_limit_message")
    transfer_failed_message = _passed_on("transfer_failed_message")
    _call = _passed_on("_call")
    _history = _passed_on("_history")
    _say = _passed_on("_say")
    _transfer = _passed_on("_transfer")
    _answered_by = _passed_on("_answered_by")

    def __init__(self, inner: Conversation, session: _Session) -> None:
        self._inner = inner
        self._session = session

    @property
    def hang_up_requested(self) -> bool:
        return self._inner.hang_up_requested

    def hang_up(self) -> None:
        self._inner.hang_up()

    def reply(self, text: str) -> Reply:
        return self._answer(self._inner.reply(text))

    def on_dtmf(self, digit: str) -> Reply:
        return self._answer(self._inner.on_dtmf(digit))

    async def _answer(self, reply: Any) -> ReplyText:
        result: Any = await reply if isawaitable(reply) else reply
        if result is None or result == "":
            self._session.silences += 1
        return result  # type: ignore[no-any-return]

    async def on_start(self) -> None:
        await self._inner.on_start()
        if not self._inner.greeting:
            self._session.silences += 1

    async def on_interrupted(self, interruption: Interruption) -> None:
        self._session.interrupted = True
        self._session.narrate(f"(interrupted; heard: {interruption.heard or '(nothing)'})")
        await self._inner.on_interrupted(interruption)

    def is_backchannel(self, text: str) -> bool:
        return self._inner.is_backchannel(text)

    async def is_turn_complete(self, turn: TurnSoFar) -> bool:
        return await self._inner.is_turn_complete(turn)

    async def on_idle(self, silences: int) -> str | None:
        return await self._inner.on_idle(silences)

    async def on_transfer_failed(self, to: str, error: str) -> str | None:
        return await self._inner.on_transfer_failed(to, error)

    async def on_answered_by(self, answered_by: str) -> str | None:
        return await self._inner.on_answered_by(answered_by)

    async def on_turn_timing(self, timing: TurnTiming) -> None:
        await self._inner.on_turn_timing(timing)

    async def on_end(self, reason: str) -> None:
        await self._inner.on_end(reason)


# --------------------------------------------------------------------------------------------
# The caller


@dataclass(eq=False)
class _Turn:
    """One thing the caller said (or the call's start, for the greeting) and its answer."""

    spoke_at: float
    """trio time of the caller's last frame of it."""
    played_before: int
    """``len(fake.played)`` then: the answer is among the chunks played after."""
    silences_before: int
    answered: trio.Event = field(default_factory=trio.Event)
    answer_start: float | None = None


class _Caller:
    """Speaks the lines into the fake Twilio, in turn with the bot."""

    def __init__(self, fake: FakeTwilio, session: _Session, *, answer_timeout: float) -> None:
        self.fake = fake
        self.session = session
        self.answer_timeout = answer_timeout
        self.latencies: list[float] = []
        self._rng = np.random.default_rng(0)

    def _answer_start(self, turn: _Turn) -> float | None:
        for played in self.fake.played[turn.played_before :]:
            if played.start >= turn.spoke_at:
                return played.start
        return None

    def _begin_turn(self, nursery: trio.Nursery, *, greeting: bool = False) -> _Turn:
        turn = _Turn(trio.current_time(), len(self.fake.played), self.session.silences)
        nursery.start_soon(self._watch, turn, greeting)
        return turn

    async def _watch(self, turn: _Turn, greeting: bool) -> None:
        """Wait for the bot to start answering ``turn``; print the latency."""
        fake = self.fake
        with trio.move_on_after(self.answer_timeout) as timeout:
            await fake.wait_for(
                lambda: (
                    self._answer_start(turn) is not None
                    or fake.closed.is_set()
                    or self.session.silences > turn.silences_before
                )
            )
        turn.answer_start = self._answer_start(turn)
        if turn.answer_start is not None:
            if not greeting:
                latency = turn.answer_start - turn.spoke_at
                self.latencies.append(latency)
                self.session.narrate(
                    f"(latency {latency:.2f} s: caller's last frame -> bot's first audio)"
                )
        elif timeout.cancelled_caught:
            self.session.narrate(f"(no answer within {self.answer_timeout:g} s; going on)")
        turn.answered.set()

    async def _wait_until_quiet(self) -> None:
        fake = self.fake
        while not fake.closed.is_set():
            await fake.wait_for(lambda: fake.buffered == 0 or fake.closed.is_set())
            with trio.move_on_after(QUIET):
                await self._wait_for_more_audio(len(fake.outbound))
                continue
            return

    async def _wait_for_more_audio(self, sent: int) -> None:
        fake = self.fake
        await fake.wait_for(lambda: len(fake.outbound) > sent or fake.closed.is_set())

    async def _aside(self, line: Line) -> None:
        """Make ``line``'s sound (or say its words) over the bot, then report when it played
        on, if it did."""
        fake = self.fake
        make = SOUNDS.get(line.text.lower())
        if make is not None:
            self.session.narrate(f"(caller makes a sound over the bot: {line.text})")
            await fake.play(make(self._rng))
        else:
            self.session.narrate(f"(caller over the bot: {line.text})")
            await fake.say(line.text)
        ended, played = trio.current_time(), len(fake.played)
        with trio.move_on_after(QUIET + BARGE_IN_AFTER):
            await fake.wait_for(lambda: len(fake.played) > played or fake.closed.is_set())
        resumed = [p.start for p in fake.played[played:] if p.start >= ended]
        if resumed and not self.session.interrupted:
            self.session.narrate(f"(the bot played on after {resumed[0] - ended:.2f} s)")

    async def run(self, lines: AsyncIterator[str]) -> None:
        """Say each line in turn; hang up at the end (unless the bot did first)."""
        fake = self.fake
        async with trio.open_nursery() as nursery:
            turn = self._begin_turn(nursery, greeting=True)
            with trio.CancelScope() as speaking:
                nursery.start_soon(_cancel_when_set, fake.closed, speaking)
                async for raw in lines:
                    line = parse_line(raw)
                    if line is None:
                        continue
                    await turn.answered.wait()
                    if line.barge_in or line.aside or line.keys:
                        if turn.answer_start is not None:
                            await trio.sleep_until(turn.answer_start + BARGE_IN_AFTER)
                    else:
                        await self._wait_until_quiet()
                    if fake.closed.is_set():
                        break
                    if line.aside:
                        self.session.interrupted = False
                        await self._aside(line)
                        continue  # no new turn: the bot's answer goes on
                    if line.keys:
                        self.session.narrate(f"(caller presses {' '.join(line.text)})")
                        for key in line.text:
                            await fake.press(key)
                            await fake.silence(0.1)
                        turn = self._begin_turn(nursery)
                        continue
                    over = " over the bot" if line.barge_in else ""
                    self.session.narrate(f"(caller speaking{over}: {line.text})")
                    await fake.say(line.text)
                    turn = self._begin_turn(nursery)
                await turn.answered.wait()
                await self._wait_until_quiet()
            nursery.cancel_scope.cancel()
        await fake.hang_up()


async def _cancel_when_set(event: trio.Event, scope: trio.CancelScope) -> None:
    await event.wait()
    scope.cancel()


async def _aiter(lines: AsyncIterable[str] | Iterable[str]) -> AsyncGenerator[str, None]:
    if isinstance(lines, AsyncIterable):
        async for line in lines:
            yield line
    else:
        for line in lines:
            yield line


# --------------------------------------------------------------------------------------------
# The whole call


async def simulate(
    conversation: Callable[..., Conversation],
    engines: Engines,
    lines: AsyncIterable[str] | Iterable[str],
    *,
    out: TextIO,
    record: str | PathLike[str] | None = None,
    voice: TextToSpeech | None = None,
    settings: CallSettings | None = None,
    answer_timeout: float = ANSWER_TIMEOUT,
) -> SimulationResult:
    """Run one call of ``conversation`` with the caller saying ``lines``; print it to ``out``.

    ``engines`` are loaded first if they are not yet. ``voice`` is the caller's voice (default:
    ``engines.tts``). ``record`` names a WAV file to write the call's audio to (see the module
    docstring). Returns once the call is over; exceptions from the engines' loading propagate,
    anything going wrong inside the call ends the call as it would on a real line.
    """
    if not engines.ready.is_set():
        await engines.load()
    session = _Session(_Narrator(out))
    server_side, twilio_side = memory_socket_pair()
    recorder = CallerFrameTap(twilio_side)
    fake = FakeTwilio(recorder, voice=voice if voice is not None else engines.tts)
    call_engines = with_transcripts(engines, session.on_transcript)
    caller = _Caller(fake, session, answer_timeout=answer_timeout)
    results: list[CallResult] = []
    started = trio.current_time()

    make = as_factory(conversation)

    def make_conversation(call: CallInfo) -> Conversation:
        return _Narrated(make(call), session)

    async def serve() -> None:
        results.append(
            await run_call(
                server_side, make_conversation, call_engines, settings, observers=[session]
            )
        )

    async with aclosing(_aiter(lines)) as said, trio.open_nursery() as nursery:
        nursery.start_soon(serve)
        nursery.start_soon(fake.run)
        await caller.run(said)
    result = results[0]
    session.narrate(f"(call ended: {result.reason})")
    if record is not None:
        left, right = stereo(recorder.frames, fake.played, recorder.stream_started or started)
        write_recording(record, left, right)
        session.narrate(
            f"(recorded {len(left) / SAMPLE_RATE:.1f} s to {record}: caller left, bot right)"
        )
    return SimulationResult(result, tuple(caller.latencies), trio.current_time() - started)
