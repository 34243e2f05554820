"""One phone call: a nursery of actors joined by channels, and the turn-taking between them.

::

    socket ─▶ receive_twilio ─frames─▶ detect_speech ─utterances─▶ transcribe_utterances
       ▲            │ marks, keys          │ speech started                  │ transcripts
       │            ▼                      ▼                                 ▼
       └── transmit ◀── speak_sentences ◀── generate_sentences ◀────── take_turns (here)

Each reply runs in its own cancel scope (generation, synthesis and playing together). Turn-taking:

* Caller sound while the bot talks (or thinks) **pauses** the reply at once: ``clear`` goes to
  Twilio, the speaker's current stretch of playing is cancelled, and the reply keeps its place
  (a streamed reply goes on being generated).
* When the caller's turn ends, its words decide: **no words** (a cough, a breath, line noise)
  or only a **backchannel** ("uh-huh", "okay") → the same reply **resumes** from the start of
  the word the caller was hearing, and the sound is not answered; **real words** → the reply's
  scope is cancelled, the conversation is told what was heard, and the words are the next
  turn (joined to the turn before when the caller heard nothing of its reply: they were still
  talking).
* A key press cancels the reply at once.

The call ends when Twilio sends ``stop``, the socket closes, or the conversation hangs up;
nothing outlives :func:`run_call`, and no failure inside a call escapes it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Final

import trio

from . import twilio
from .actors import (
    CallLog,
    CallStats,
    detect_speech,
    generate_sentences,
    play_reply,
    receive_twilio,
    synthesize_sentences,
    transcribe_utterances,
    transmit,
    worth_logging,
)
from .audio import PCM
from .call_control import CallControl, CallDirectory
from .conversation import (
    CallInfo,
    Clip,
    Conversation,
    Interruption,
    Reply,
    ReplyText,
    TurnSoFar,
    as_factory,
)
from .endpointing import is_only_fillers, judge_turn
from .engines import Engines
from .errors import (
    ConfigurationError,
    EngineError,
    PhoneActorsError,
    ProtocolError,
    SocketClosed,
)
from .history import History
from .messages import (
    KeyPressed,
    Sentence,
    SpeechStarted,
    Transcript,
    TranscriptionFailed,
    TurnEvent,
)
from .noise import NoiseGate
from .outbound import CallControlApi
from .playback import Pacer, Playback, ReplyAudio, ReplyLedger
from .records import (
    BotSaid,
    CallEnded,
    CallerSaid,
    CallEvent,
    CallObserver,
    CallStarted,
    Failure,
    FalseInterruption,
    Interrupted,
    KeyPress,
    TurnTimed,
)
from .second_look import SecondLook, Verdict
from .segmenter import SegmenterSettings
from .timing import TurnTiming
from .transport import CallSocket

__all__ = ["CallResult", "CallSettings", "run_call"]

logger = logging.getLogger("phoneactors.call")

FRAME_BUFFER: Final = 50
"""Inbound 20 ms frames waiting for the VAD: one second. The VAD takes microseconds a frame, so
this only fills if the process is badly overloaded; then frames are dropped and counted."""
UTTERANCE_BUFFER: Final = 4
"""Utterances waiting for speech-to-text. More than a few means the caller talks faster than we
transcribe; the VAD then waits, and inbound frames back up into FRAME_BUFFER."""
TURN_BUFFER: Final = 16
"""Speech starts, transcripts and key presses waiting for the responder, which never blocks long."""
SENTENCE_BUFFER: Final = 8
"""Sentences generated ahead of the speaker: lets a streaming reply run ahead while we talk
(and while the reply is paused over a sound from the caller)."""
TTS_LOOKAHEAD: Final = 1
"""Sentences synthesized ahead of the one playing: the next one is ready when it is due, and
a reply cut short has not spent the CPU to synthesize all of itself."""
MARK_GRACE: Final = 2.0
"""How long past the estimated end of playback we wait for Twilio's last mark echo."""


@dataclass(frozen=True)
class CallSettings:
    """Per-call behaviour. One instance serves every call."""

    segmenter: SegmenterSettings = field(default_factory=SegmenterSettings)
    reply_timeout: float = 30.0
    """Seconds a reply may take to generate (all of it); past that, the apology is spoken."""
    stt_timeout: float = 15.0
    tts_timeout: float = 15.0
    playback_lead: float = 0.3
    """Most audio (seconds) sent ahead of real time, so a barge-in throws little away."""
    chunk_ms: int = 100
    """Audio per media message; a mark follows each, so *heard* is accurate to this."""
    tts_leading_silence_ms: int | None = 20
    """Most silence kept before each synthesized sentence (``None``: all the engine made).
    Engines pad sentences with silence (hibari: ~300 ms) that callers hear as latency."""
    tts_trailing_silence_ms: int | None = 200
    """Most silence kept after each sentence: the pause between sentences (``None``: all)."""
    start_timeout: float = 10.0
    """Seconds to wait for Twilio's ``start`` message after the socket opens."""
    max_bad_messages: int = 50
    """Malformed messages skipped in one call before the call is ended."""
    max_payload_bytes: int = 16_000
    """Largest accepted inbound media payload (two seconds of μ-law)."""
    hook_timeout: float = 10.0
    """Seconds ``on_start``, ``on_interrupted`` and ``on_end`` may take."""
    noise_gate: bool = True
    """Follow each line's noise floor: a frame is speech only when clearly above the hiss of
    that line (:class:`~phoneactors.noise.NoiseGate`)."""
    idle_timeout: float | None = 10.0
    """Seconds of quiet on both sides (the bot done talking, the caller silent) after which the
    conversation's :meth:`~phoneactors.Conversation.on_idle` is asked what to say (by default
    "Are you still there?", then goodbye). ``None``: never."""
    max_call_seconds: float | None = None
    """Longest call: past it the bot stops, says
    :attr:`~phoneactors.Conversation.time_limit_message` and hangs up. ``None``: no limit."""

    def __post_init__(self) -> None:
        positive = ("reply_timeout", "stt_timeout", "tts_timeout", "playback_lead", "start_timeout")
        for name in positive:
            value = getattr(self, name)
            if not value > 0:
                raise ConfigurationError(f"{name} must be positive, got {value}")
        for name in ("idle_timeout", "max_call_seconds"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ConfigurationError(f"{name} must be positive (or None), got {value}")
        for name in ("tts_leading_silence_ms", "tts_trailing_silence_ms"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ConfigurationError(f"{name} must be at least 0 (or None), got {value}")
        if not 20 <= self.chunk_ms <= 1000 or self.chunk_ms % 20:
            raise ConfigurationError(
                f"chunk_ms must be a multiple of 20 between 20 and 1000, got {self.chunk_ms}"
            )


@dataclass(frozen=True)
class CallResult:
    """How a call went: why it ended, and its counters."""

    call_sid: str | None
    reason: str
    stats: CallStats


@dataclass(eq=False)
class _ActiveReply:
    scope: trio.CancelScope
    ledger: ReplyLedger
    timing: TurnTiming | None
    turn: str | None = None
    """What the caller said that this replies to (``None``: the greeting, a key, an apology)."""
    playback: Playback = field(default_factory=Playback)
    speaking: bool = False
    """Whether the caller was hearing it when it was last paused (not still being thought)."""
    done: trio.Event = field(default_factory=trio.Event)


async def run_call(
    socket: CallSocket,
    make_conversation: Callable[..., Conversation],
    engines: Engines,
    settings: CallSettings | None = None,
    *,
    observers: Sequence[CallObserver] = (),
    twilio_api: CallControlApi | None = None,
    directory: CallDirectory | None = None,
) -> CallResult:
    """Serve one call on ``socket`` until it ends; never raises except ``trio.Cancelled``.

    ``observers`` hear the call's story as it happens (:mod:`phoneactors.records`): call
    records, metrics. ``twilio_api`` lets the conversation hand the call on
    (:meth:`~phoneactors.Conversation.transfer`); ``directory`` lists the call while it runs, so
    news of it from elsewhere (who answered) reaches it.

    Waits for Twilio's ``start``, creates the conversation (``make_conversation``: a
    :class:`Conversation` subclass, or a factory given the :class:`CallInfo`; see
    :func:`~phoneactors.conversation.as_factory`), runs the actors, and closes the socket at the
    end. Closing the socket is how a call is hung up: Twilio then carries on with
    the TwiML after ``<Connect>``, and at its end the call hangs up.
    """
    settings = settings or CallSettings()
    stats = CallStats()
    log = CallLog(logger, "?")
    try:
        with trio.fail_after(settings.start_timeout):
            start = await _wait_for_start(socket, settings, stats, log)
    except (ProtocolError, trio.TooSlowError, SocketClosed) as exc:
        reason = (
            f"no start message within {settings.start_timeout:g} s"
            if isinstance(exc, trio.TooSlowError)
            else f"{type(exc).__name__}: {exc}"
        )
        log.warning("call ended before it started: %s", reason)
        await _close(socket)
        return CallResult(None, reason, stats)

    call = _Call(socket, start, engines, settings, stats, observers, twilio_api, directory)
    log = call.log
    try:
        conversation = as_factory(make_conversation)(call.info)
        if not isinstance(conversation, Conversation):
            raise ConfigurationError(
                f"the conversation factory returned {type(conversation).__name__}, "
                "expected a Conversation"
            )
    except Exception as exc:
        log.error("could not create the conversation: %r", exc, exc_info=True)
        await _close(socket)
        return CallResult(start.call_sid, f"conversation failed to start: {exc!r}", stats)
    reason = await call.run(conversation)
    return CallResult(start.call_sid, reason, stats)


async def _wait_for_start(
    socket: CallSocket, settings: CallSettings, stats: CallStats, log: CallLog
) -> twilio.Start:
    """Skip ``connected``; anything else before ``start`` is a counted protocol error."""
    while True:
        message = await socket.receive()
        try:
            event = twilio.parse_event(message, max_payload_bytes=settings.max_payload_bytes)
        except ProtocolError as exc:
            stats.bad_messages += 1
            if stats.bad_messages > settings.max_bad_messages:
                raise
            if worth_logging(stats.bad_messages):
                log.warning("skipped malformed message before start: %s", exc)
            continue
        match event:
            case twilio.Start():
                return event
            case twilio.Connected():
                continue
            case twilio.Stop():
                raise SocketClosed("Twilio sent stop before start")
            case _:
                stats.bad_messages += 1
                if stats.bad_messages > settings.max_bad_messages:
                    raise ProtocolError(f"{type(event).__name__.lower()} before start")
                if worth_logging(stats.bad_messages):
                    log.warning("skipped %s before start", type(event).__name__.lower())


async def _close(socket: CallSocket) -> None:
    with trio.CancelScope(shield=True):
        await socket.close()


class _Call:
    """The state of one running call, owned by :func:`run_call`."""

    def __init__(
        self,
        socket: CallSocket,
        start: twilio.Start,
        engines: Engines,
        settings: CallSettings,
        stats: CallStats,
        observers: Sequence[CallObserver],
        twilio_api: CallControlApi | None = None,
        directory: CallDirectory | None = None,
    ) -> None:
        self.socket = socket
        self.control = CallControl(self, twilio_api)
        self.directory = directory
        self.start = start
        self.engines = engines
        self.settings = settings
        self.stats = stats
        self.observers = observers
        self.log = CallLog(
            logger, start.call_sid, lambda kind, message: self.observe(Failure(kind, message))
        )
        self.pacer = Pacer(settings.playback_lead)
        self.second_looks = SecondLook(
            engines.stt, self.is_backchannel, self.log.info, self.log.warning
        )
        self.reply: _ActiveReply | None = None
        self.reply_count = 0
        self.open_utterances = 0
        self.history = History()
        self.quiet_since = 0.0
        """When the line last went quiet: the caller's last sound or key, a reply's end."""
        self.caller_active_at = 0.0
        """When the caller last began to speak or pressed a key."""
        self.replies: trio.Nursery
        """Caller utterances begun (``SpeechStarted``) and not yet transcribed: while any is
        open, the caller may be talking, and no reply plays."""
        self.end_reason = "call ended"
        self.call_scope = trio.CancelScope()
        self.conversation: Conversation
        self.outbound: trio.MemorySendChannel[twilio.OutboundEvent]

    @property
    def info(self) -> CallInfo:
        return CallInfo(
            call_sid=self.start.call_sid,
            stream_sid=self.start.stream_sid,
            account_sid=self.start.account_sid,
            custom_parameters=self.start.custom_parameters,
        )

    async def run(self, conversation: Conversation) -> str:
        self.conversation = conversation
        conversation._call = self.info
        conversation._history = self.history
        conversation._say = self.control.say
        conversation._transfer = self.control.transfer
        self.log.info("call started (%s)", type(conversation).__name__)
        self.observe(
            CallStarted(
                call_sid=self.start.call_sid,
                stream_sid=self.start.stream_sid,
                account_sid=self.start.account_sid,
                caller=conversation.call.caller,
                custom_parameters=self.start.custom_parameters,
            )
        )
        settings = self.settings
        try:
            with self.call_scope:
                async with trio.open_nursery() as nursery:
                    # The VAD actor's inbox: caller frames, and judgements of the words at pauses.
                    frames_out, frames_in = trio.open_memory_channel[Any](FRAME_BUFFER)
                    turns_out, turns_in = trio.open_memory_channel[TurnEvent](TURN_BUFFER)
                    utterances_out, utterances_in = trio.open_memory_channel[Any](UTTERANCE_BUFFER)
                    outbound_out, outbound_in = trio.open_memory_channel[twilio.OutboundEvent](0)
                    nursery.start_soon(
                        partial(
                            transmit, outbound_in, self.socket, stream_sid=self.start.stream_sid
                        )
                    )
                    nursery.start_soon(
                        partial(
                            detect_speech,
                            frames_in,
                            turns_out.clone(),
                            utterances_out,
                            detector=self.engines.vad.new_detector(),
                            settings=settings.segmenter,
                            gate=NoiseGate() if settings.noise_gate else None,
                        )
                    )
                    nursery.start_soon(
                        partial(
                            transcribe_utterances,
                            utterances_in,
                            turns_out.clone(),
                            frames_out.clone(),
                            stt=self.engines.stt,
                            judge=self.judge_turn,
                            time_limit=settings.stt_timeout,
                            stats=self.stats,
                            log=self.log,
                        )
                    )
                    nursery.start_soon(self.take_turns, turns_in, outbound_out)
                    if settings.max_call_seconds is not None:
                        nursery.start_soon(self.control.limit_call, settings.max_call_seconds)
                    self.end_reason = await receive_twilio(
                        self.socket,
                        frames_out,
                        turns_out,
                        stream_sid=self.start.stream_sid,
                        on_mark=self.on_mark,
                        stats=self.stats,
                        log=self.log,
                        max_bad_messages=settings.max_bad_messages,
                        max_payload_bytes=settings.max_payload_bytes,
                    )
                    nursery.cancel_scope.cancel()
        except trio.Cancelled:
            self.end_reason = "server shutting down"
            raise
        except Exception as group:
            exc = _first_error(group)
            if isinstance(exc, SocketClosed):
                self.end_reason = "socket closed"
            elif isinstance(exc, PhoneActorsError):
                self.end_reason = f"{type(exc).__name__}: {exc}"
                self.log.error("call ended: %s", self.end_reason)
            else:
                self.end_reason = f"internal error: {exc!r}"
                self.log.error("call ended by an unexpected error", exc_info=exc)
        finally:
            if self.directory is not None:
                self.directory.leave(self.start.call_sid, self.control)
            with trio.CancelScope(shield=True):
                await self.socket.close()
                await self.run_hook(partial(conversation.on_end, self.end_reason), "on_end")
            self.observe(CallEnded(self.end_reason))
            self.log.info(
                "call ended: %s (%d frames in, %d dropped, %d bad messages, %d replies, "
                "%d barge-ins, %d false interruptions)",
                self.end_reason,
                self.stats.frames_received,
                self.stats.frames_dropped,
                self.stats.bad_messages,
                self.stats.replies,
                self.stats.barge_ins,
                self.stats.false_interruptions,
            )
        return self.end_reason

    def end_call(self, reason: str) -> None:
        self.end_reason = reason
        self.call_scope.cancel()

    def observe(self, event: CallEvent) -> None:
        for observer in self.observers:
            try:
                observer.observe(self.start.stream_sid, event)
            except Exception:
                self.log.exception("observer %r failed on %s", observer, type(event).__name__)

    def on_mark(self, name: str) -> None:
        if self.reply is not None:
            self.reply.ledger.mark_echoed(name)

    async def run_hook(self, hook: Callable[[], Any], name: str) -> Any:
        """Run a conversation hook and return what it returns; its failure or timeout is
        logged, never raised (and returns ``None``)."""
        try:
            with trio.fail_after(self.settings.hook_timeout):
                return await hook()
        except trio.TooSlowError:
            self.log.failed("hook", f"{name} took longer than {self.settings.hook_timeout:g} s")
        except Exception as exc:
            self.log.failed("hook", f"{name} raised {exc!r}", exc_info=exc)

    async def judge_turn(self, turn: TurnSoFar) -> bool:
        """Whether the words at a pause end the caller's turn: the conversation's
        ``is_turn_complete``; if that fails or is slow, the built-in English rules.

        Over a reply paused by the caller's sound, a backchannel or a filler ("Oh, I see...",
        "Uh.") ends it at once, however it trails off, and so does a short unclear sound that
        a second look hears as a backchannel ("and the" for a hummed "mm-hmm"): the reply
        plays on after the short silence instead of the long one. Words the caller goes on
        with are a new sound over the reply, and pause it again."""
        if self.listening_over_reply():
            heard = self.heard_over_reply(
                turn.text, turn.audio, turn.avg_logprob, unclear_plays_on=False
            )
            if await heard is not None:
                return True
        try:
            with trio.fail_after(self.settings.hook_timeout):
                return bool(await self.conversation.is_turn_complete(turn))
        except trio.TooSlowError:
            self.log.failed(
                "hook", f"is_turn_complete took longer than {self.settings.hook_timeout:g} s"
            )
        except Exception as exc:
            self.log.failed("hook", f"is_turn_complete raised {exc!r}", exc_info=exc)
        return judge_turn(
            turn.text, last_word_logprob=turn.last_word_logprob, alternatives=turn.alternatives
        ).complete

    def listening_over_reply(self) -> bool:
        """Whether a reply the caller was hearing is paused over their sound."""
        active = self.reply
        return (
            active is not None
            and active.speaking
            and active.playback.paused
            and not active.done.is_set()
        )

    def is_backchannel(self, text: str) -> bool:
        """The conversation's ``is_backchannel``; a failing hook counts as 'no'."""
        try:
            return bool(self.conversation.is_backchannel(text))
        except Exception as exc:
            self.log.failed("hook", f"is_backchannel raised {exc!r}", exc_info=exc)
            return False

    async def take_turns(
        self,
        turns_in: trio.MemoryReceiveChannel[TurnEvent],
        outbound: trio.MemorySendChannel[twilio.OutboundEvent],
    ) -> None:
        """The responder: start a reply for each transcript (or key press), pause the one in
        progress when the caller makes a sound, then resume it or end it by what they said,
        and end the call when the conversation hangs up."""
        conversation = self.conversation
        self.outbound = outbound
        async with outbound, turns_in, trio.open_nursery() as replies:
            self.replies = replies
            self.quiet_since = trio.current_time()
            if self.directory is not None:
                self.directory.enter(self.start.call_sid, self.control)
            if self.settings.idle_timeout is not None:
                replies.start_soon(self.control.watch_idle, self.settings.idle_timeout)
            await self.run_hook(conversation.on_start, "on_start")
            greeting = conversation.greeting
            if greeting:
                self.start_reply(replies, partial(_constant, greeting))
            elif conversation.hang_up_requested:
                self.end_call("conversation hung up")
            async for event in turns_in:
                match event:
                    case SpeechStarted():
                        self.open_utterances += 1
                        self.quiet_since = self.caller_active_at = trio.current_time()
                        await self.pause()
                    case Transcript():
                        self.open_utterances = max(0, self.open_utterances - 1)
                        self.quiet_since = trio.current_time()
                        await self.take_transcript(replies, event)
                    case TranscriptionFailed():
                        self.open_utterances = max(0, self.open_utterances - 1)
                        await self.interrupt()
                        self.start_reply(replies, partial(_constant, conversation.apology))
                    case KeyPressed(digit=digit):
                        self.log.info("caller pressed %r", digit)
                        self.quiet_since = self.caller_active_at = trio.current_time()
                        self.observe(KeyPress(digit))
                        await self.interrupt()
                        self.history.caller_pressed(digit)
                        self.start_reply(replies, partial(conversation.on_dtmf, digit))

    async def take_transcript(self, replies: trio.Nursery, event: Transcript) -> None:
        """A caller turn ended: resume a paused reply over a sound or a backchannel, or answer."""
        text = event.text
        active = self.reply
        if active is not None and active.playback.paused and not active.done.is_set():
            if not text:
                self.resume(active, "no words", event.sound)
                return
            # Only over words the caller was hearing: said while the bot was still thinking,
            # "yes" answers.
            if (
                active.speaking
                and (
                    verdict := await self.heard_over_reply(
                        text,
                        event.audio,
                        event.avg_logprob,
                        unclear_plays_on=bool(self.conversation.unclear_sounds_play_on),
                    )
                )
                is not None
            ):
                self.resume(active, verdict.kind, verdict.text)
                return
        if not text:
            return  # a sound while the bot was quiet: nothing to answer
        interruption = await self.interrupt()
        self.observe(CallerSaid(text))
        # The caller heard nothing of the reply to their last turn: they were still talking.
        if interruption is not None and not interruption.heard and active and active.turn:
            text = f"{active.turn} {text}"
            self.history.caller_went_on(text)
        else:
            self.history.caller_said(text)
        timing = TurnTiming(
            speech_ended=event.speech_ended_at,
            utterance_ended=event.utterance_ended_at,
            transcribed=event.transcribed_at,
        )
        self.start_reply(replies, partial(self.conversation.reply, text), timing, turn=text)

    def start_reply(
        self,
        nursery: trio.Nursery,
        make_reply: Callable[[], Reply],
        timing: TurnTiming | None = None,
        *,
        turn: str | None = None,
    ) -> None:
        self.reply_count += 1
        self.stats.replies += 1
        active = _ActiveReply(
            trio.CancelScope(), ReplyLedger(f"r{self.reply_count}"), timing, turn=turn
        )
        if self.open_utterances:
            # The caller is talking (their next utterance began before this one's transcript
            # came): prepared, but held until that utterance says whether to play it.
            active.playback.pause()
        self.reply = active
        nursery.start_soon(self.run_reply, active, make_reply)

    async def pause(self) -> None:
        """Caller sound over the reply in progress: stop its audio now (``clear``) and hold
        the reply until the caller's words say whether to resume or end it."""
        active = self.reply
        if active is None or active.done.is_set() or active.ledger.all_played.is_set():
            return  # nothing, or nothing more, to say
        speaking = active.ledger.chunks_sent > 0
        if not active.playback.pause():
            return
        active.speaking = speaking
        await self.outbound.send(twilio.SendClear())
        self.pacer.cleared()
        active.ledger.cleared()
        self.log.info("caller sound over the bot: reply paused")

    async def heard_over_reply(
        self,
        text: str,
        audio: PCM | None,
        avg_logprob: float | None,
        *,
        unclear_plays_on: bool,
    ) -> Verdict | None:
        """What words said over a reply the caller was hearing were, if no interruption: a
        backchannel, only fillers ("Uh.": a hesitation, nothing said yet; if the caller goes
        on, their words are a new sound over the reply), or what a second look at a short
        unclear sound makes of it (:mod:`phoneactors.second_look`; at the caller's pause it
        usually was already). ``None``: they interrupt."""
        if self.is_backchannel(text):
            return Verdict("backchannel", text)
        if is_only_fillers(text):
            return Verdict("no words", text)
        return await self.second_looks.take(
            text, audio, avg_logprob, unclear_plays_on=unclear_plays_on
        )

    def resume(self, active: _ActiveReply, kind: str, heard: str) -> None:
        """The sound over a paused reply was no interruption: play on, once the caller is not
        in the middle of another utterance (its transcript decides then)."""
        if active.speaking:
            self.stats.false_interruptions += 1
            self.log.info("caller sound was %s (%r): reply resumed", kind, heard)
            self.observe(FalseInterruption(kind, heard))
        if not self.open_utterances:
            active.playback.resume()

    async def interrupt(self) -> Interruption | None:
        """Barge-in: cancel the reply in progress (its audio cleared, if not already), report
        what was heard; returns that, or ``None`` when no reply was in progress."""
        active = self.reply
        if active is None or active.done.is_set() or active.ledger.all_played.is_set():
            return None  # nothing, or nothing more, to say
        active.scope.cancel()
        self.reply = None
        self.stats.barge_ins += 1
        if not active.playback.paused:
            await self.outbound.send(twilio.SendClear())
            self.pacer.cleared()
        interruption = active.ledger.close()
        self.log.info("caller interrupted; heard %r", interruption.heard)
        self.observe(Interrupted(interruption.heard, interruption.unheard))
        self.history.bot_said(interruption.heard, interrupted=True)
        if (timing := active.timing) is not None:
            active.timing = None
            timing.interrupted = True
            await self.report_turn(timing)
        await self.run_hook(
            partial(self.conversation.on_interrupted, interruption), "on_interrupted"
        )
        if self.conversation.hang_up_requested:
            self.end_call("conversation hung up")
        return interruption

    async def report_turn(self, timing: TurnTiming) -> None:
        """One log line per turn, and the conversation's ``on_turn_timing``."""
        self.log.info("turn: %s", timing.describe())
        self.observe(TurnTimed(timing.stages_ms()))
        await self.run_hook(partial(self.conversation.on_turn_timing, timing), "on_turn_timing")

    async def run_reply(self, active: _ActiveReply, make_reply: Callable[[], Reply]) -> None:
        try:
            await self.play_reply(active, make_reply)
        finally:  # however it ended (played, interrupted, the call ending): whoever waits goes on
            active.done.set()
            self.quiet_since = trio.current_time()
        if not active.scope.cancelled_caught and self.conversation.hang_up_requested:
            self.end_call("conversation hung up")

    async def play_reply(self, active: _ActiveReply, make_reply: Callable[[], Reply]) -> None:
        with active.scope:
            completed = False
            try:
                failure = await self.speak(
                    make_reply, active.ledger, active.playback, active.timing
                )
                completed = True
            finally:
                if not completed and self.reply is active:
                    # Cut short, and not by a barge-in (interrupt() clears self.reply first):
                    # the call is ending. Record what the caller heard of it.
                    cut = active.ledger.close()
                    self.observe(Interrupted(cut.heard, cut.unheard))
                    self.history.bot_said(cut.heard, interrupted=True)
                # Once per turn: here, or in interrupt() (which clears active.timing first).
                # Shielded, so a turn cut short by the end of the call is reported too.
                if (timing := active.timing) is not None:
                    active.timing = None
                    with trio.CancelScope(shield=True):
                        await self.report_turn(timing)
            if failure is None and active.ledger.sentences:
                said = " ".join(active.ledger.sentences)
                self.observe(BotSaid(said))
                self.history.bot_said(said)
            if failure is not None:
                self.stats.engine_errors += 1
                self.log.failed("tts", f"{failure}; trying to apologise")
                apology = partial(_constant, self.conversation.apology)
                again = await self.speak(apology, active.ledger, active.playback)
                if again is not None:
                    self.log.error("could not apologise either: %s", again)

    async def speak(
        self,
        make_reply: Callable[[], Reply],
        ledger: ReplyLedger,
        playback: Playback,
        timing: TurnTiming | None = None,
    ) -> EngineError | None:
        """Generate, synthesize and play one reply, until Twilio says it has all played.

        Returns the text-to-speech failure that cut it short, if any.
        """
        settings = self.settings
        sentences_out, sentences_in = trio.open_memory_channel[Sentence](SENTENCE_BUFFER)
        audio = ReplyAudio(TTS_LOOKAHEAD, first=len(ledger.sentences))
        failure: EngineError | None = None
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(
                    partial(
                        generate_sentences,
                        make_reply,
                        sentences_out,
                        ledger=ledger,
                        time_limit=settings.reply_timeout,
                        apology=self.conversation.apology,
                        stats=self.stats,
                        log=self.log,
                        timing=timing,
                    )
                )
                nursery.start_soon(
                    partial(
                        synthesize_sentences,
                        sentences_in,
                        audio,
                        tts=self.engines.tts,
                        time_limit=settings.tts_timeout,
                        timing=timing,
                        leading_silence_ms=settings.tts_leading_silence_ms,
                        trailing_silence_ms=settings.tts_trailing_silence_ms,
                    )
                )
                nursery.start_soon(
                    partial(
                        play_reply,
                        audio,
                        self.outbound.clone(),
                        playback=playback,
                        pacer=self.pacer,
                        ledger=ledger,
                        chunk_ms=settings.chunk_ms,
                        mark_grace=MARK_GRACE,
                        timing=timing,
                    )
                )
        except* EngineError as group:
            failure = group.exceptions[0]  # type: ignore[assignment]
        return failure


async def _constant(text: str | Clip) -> ReplyText:
    return text


def _first_error(exc: BaseException) -> BaseException:
    """The first leaf of a (possibly nested) exception group; ``exc`` itself otherwise."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc
