"""One phone call: a nursery of actors joined by channels, and the turn-taking between them.

::

    socket ─▶ receive_twilio ─frames─▶ detect_speech ─utterances─▶ transcribe_utterances
       ▲            │ marks, keys          │ speech started                  │ transcripts
       │            ▼                      ▼                                 ▼
       └── transmit ◀── play_reply ◀── synthesize_sentences ◀── generate_sentences ◀── take_turns

Each reply runs in its own cancel scope (generation, synthesis and playing together), started,
paused, resumed and cancelled by the call's :class:`~phoneactors.speaker.Speaker`; the
responder (:class:`~phoneactors.responder.Responder`, ``take_turns``) decides which, from
what the caller does. Turn-taking:

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
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Final

import trio

from . import twilio
from .actors import detect_speech, receive_twilio, transmit
from .call_control import CallControl, CallDirectory
from .call_log import CallLog, CallStats, worth_logging
from .call_settings import CallSettings
from .conversation import CallInfo, Conversation, as_factory
from .engines import Engines
from .errors import (
    ConfigurationError,
    PhoneActorsError,
    ProtocolError,
    SocketClosed,
)
from .history import History
from .messages import TurnEvent
from .noise import NoiseGate
from .outbound import CallControlApi
from .records import CallEnded, CallEvent, CallObserver, CallStarted, Failure, TurnTimed
from .responder import Responder
from .speaker import Speaker
from .timing import TurnTiming
from .transcriber import transcribe_utterances
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


@dataclass(frozen=True)
class CallResult:
    """How a call went: why it ended, and its counters."""

    call_sid: str | None
    reason: str
    stats: CallStats


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
        self.speaker = Speaker(self)
        self.responder = Responder(self)
        self.open_utterances = 0
        """Caller utterances begun (``SpeechStarted``) and not yet transcribed: while any is
        open, the caller may be talking, and no reply plays."""
        self.history = History()
        self.quiet_since = 0.0
        """When the line last went quiet: the caller's last sound or key, a reply's end."""
        self.caller_active_at = 0.0
        """When the caller last began to speak or pressed a key."""
        self.speech_began_at = -math.inf
        """When the caller's latest utterance began (its first voiced frame)."""
        self.replies: trio.Nursery
        """The nursery replies run in (the responder's)."""
        self.end_reason = "call ended"
        self.call_scope = trio.CancelScope()
        self.conversation: Conversation

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
                            replying=self.replying,
                        )
                    )
                    nursery.start_soon(
                        partial(
                            transcribe_utterances,
                            utterances_in,
                            turns_out.clone(),
                            frames_out.clone(),
                            stt=self.engines.stt,
                            judge=self.responder.judge_turn,
                            time_limit=settings.stt_timeout,
                            stats=self.stats,
                            log=self.log,
                        )
                    )
                    nursery.start_soon(self.responder.take_turns, turns_in, outbound_out)
                    if settings.max_call_seconds is not None:
                        nursery.start_soon(self.control.limit_call, settings.max_call_seconds)
                    self.end_reason = await receive_twilio(
                        self.socket,
                        frames_out,
                        turns_out,
                        stream_sid=self.start.stream_sid,
                        on_mark=self.speaker.on_mark,
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

    def replying(self) -> bool:
        """Whether the bot is replying: a caller's turn is being transcribed, or its reply
        being thought or played. Sound faint beside the caller does not interrupt then."""
        return bool(self.open_utterances) or self.speaker.in_progress() is not None

    async def report_turn(self, timing: TurnTiming) -> None:
        """One log line per turn, and the conversation's ``on_turn_timing``."""
        self.log.info("turn: %s", timing.describe())
        self.observe(TurnTimed(timing.stages_ms()))
        await self.run_hook(partial(self.conversation.on_turn_timing, timing), "on_turn_timing")


def _first_error(exc: BaseException) -> BaseException:
    """The first leaf of a (possibly nested) exception group; ``exc`` itself otherwise."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc
