"""The bot's side of one call: one reply at a time, each in its own cancel scope.

A reply is generated, synthesized and played by three actors in a nursery of its own
(:meth:`Speaker.speak`). The responder (``phoneactors.call``) tells the :class:`Speaker` what
the caller does: a sound over the reply **pauses** it (``clear`` goes to Twilio, the reply
keeps its place and a streamed reply goes on being generated); words that are no
interruption **resume** it from the start of the word the caller was hearing; real words
**interrupt** it (its scope is cancelled and the conversation told what was heard).

One :class:`Speaker` per call, attached to the call's runtime, whose state it reads and
reports to: its settings, engines, conversation, log, records and history.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Final

import trio

from . import twilio
from .actors import generate_sentences, play_reply, synthesize_sentences
from .conversation import Clip, Interruption, Reply, ReplyText
from .errors import EngineError
from .messages import Sentence
from .playback import Pacer, Playback, ReplyAudio, ReplyLedger
from .records import BotSaid, FalseInterruption, Interrupted
from .timing import TurnTiming

if TYPE_CHECKING:
    from .call import _Call

__all__ = ["ActiveReply", "Speaker", "constant"]

SENTENCE_BUFFER: Final = 8
"""Sentences generated ahead of the speaker: lets a streaming reply run ahead while we talk
(and while the reply is paused over a sound from the caller)."""
TTS_LOOKAHEAD: Final = 1
"""Sentences synthesized ahead of the one playing: the next one is ready when it is due, and
a reply cut short has not spent the CPU to synthesize all of itself."""
MARK_GRACE: Final = 2.0
"""How long past the estimated end of playback we wait for Twilio's last mark echo."""


@dataclass(eq=False)
class ActiveReply:
    """The reply in progress (or the last one)."""

    scope: trio.CancelScope
    ledger: ReplyLedger
    timing: TurnTiming | None
    turn: str | None = None
    """What the caller said that this replies to (``None``: the greeting, a key, an apology)."""
    caller_stopped_at: float | None = None
    """When the caller's last voiced frame of ``turn`` arrived (trio time)."""
    playback: Playback = field(default_factory=Playback)
    speaking: bool = False
    """Whether the caller was hearing it when it was last paused (not still being thought)."""
    done: trio.Event = field(default_factory=trio.Event)


async def constant(text: str | Clip) -> ReplyText:
    """A reply that is always ``text`` (the greeting, the apology, a line the bot says)."""
    return text


class Speaker:
    """One call's replies, one at a time. ``current`` is the reply in progress, or the last
    one (see its ``done``); ``outbound`` is set by the responder before the first reply."""

    def __init__(self, call: _Call) -> None:
        self.call = call
        self.current: ActiveReply | None = None
        self.count = 0
        self.pacer = Pacer(call.settings.playback_lead)
        self.outbound: trio.MemorySendChannel[twilio.OutboundEvent]

    def in_progress(self) -> ActiveReply | None:
        """The reply still being thought or played, if any."""
        active = self.current
        return active if active is not None and not active.done.is_set() else None

    def listening_over_reply(self) -> bool:
        """Whether a reply the caller was hearing is paused over their sound."""
        active = self.in_progress()
        return active is not None and active.speaking and active.playback.paused

    def on_mark(self, name: str) -> None:
        if self.current is not None:
            self.current.ledger.mark_echoed(name)

    def start(
        self,
        make_reply: Callable[[], Reply],
        timing: TurnTiming | None = None,
        *,
        turn: str | None = None,
    ) -> None:
        """Start a reply in the call's nursery of replies."""
        call = self.call
        self.count += 1
        call.stats.replies += 1
        active = ActiveReply(
            trio.CancelScope(),
            ReplyLedger(f"r{self.count}"),
            timing,
            turn=turn,
            caller_stopped_at=timing.speech_ended if timing is not None else None,
        )
        if call.open_utterances:
            # The caller is talking (their next utterance began before this one's transcript
            # came): prepared, but held until that utterance says whether to play it.
            active.playback.pause()
        self.current = active
        call.replies.start_soon(self.run, active, make_reply)

    async def pause(self) -> None:
        """Caller sound over the reply in progress: stop its audio now (``clear``) and hold
        the reply until the caller's words say whether to resume or end it."""
        active = self.in_progress()
        if active is None or active.ledger.all_played.is_set():
            return  # nothing, or nothing more, to say
        speaking = active.ledger.chunks_sent > 0
        if not active.playback.pause():
            return
        active.speaking = speaking
        await self.outbound.send(twilio.SendClear())
        self.pacer.cleared()
        active.ledger.cleared()
        self.call.log.info("caller sound over the bot: reply paused")

    def resume(self, active: ActiveReply, kind: str, heard: str) -> None:
        """The sound over a paused reply was no interruption: play on, once the caller is not
        in the middle of another utterance (its transcript decides then)."""
        call = self.call
        if active.speaking:
            call.stats.false_interruptions += 1
            call.log.info("caller sound was %s (%r): reply resumed", kind, heard)
            call.observe(FalseInterruption(kind, heard))
        if not call.open_utterances:
            active.playback.resume()

    async def interrupt(self) -> Interruption | None:
        """Barge-in: cancel the reply in progress (its audio cleared, if not already), report
        what was heard; returns that, or ``None`` when no reply was in progress."""
        call = self.call
        active = self.in_progress()
        if active is None or active.ledger.all_played.is_set():
            return None  # nothing, or nothing more, to say
        active.scope.cancel()
        self.current = None
        call.stats.barge_ins += 1
        if not active.playback.paused:
            await self.outbound.send(twilio.SendClear())
            self.pacer.cleared()
        interruption = active.ledger.close()
        call.log.info("caller interrupted; heard %r", interruption.heard)
        call.observe(Interrupted(interruption.heard, interruption.unheard))
        call.history.bot_said(interruption.heard, interrupted=True)
        if (timing := active.timing) is not None:
            active.timing = None
            timing.interrupted = True
            await call.report_turn(timing)
        await call.run_hook(
            partial(call.conversation.on_interrupted, interruption), "on_interrupted"
        )
        if call.conversation.hang_up_requested:
            call.end_call("conversation hung up")
        return interruption

    async def run(self, active: ActiveReply, make_reply: Callable[[], Reply]) -> None:
        call = self.call
        try:
            await self.play(active, make_reply)
        finally:  # however it ended (played, interrupted, the call ending): whoever waits goes on
            active.done.set()
            call.quiet_since = trio.current_time()
        if not active.scope.cancelled_caught and call.conversation.hang_up_requested:
            call.end_call("conversation hung up")

    async def play(self, active: ActiveReply, make_reply: Callable[[], Reply]) -> None:
        call = self.call
        with active.scope:
            completed = False
            try:
                failure = await self.speak(
                    make_reply, active.ledger, active.playback, active.timing
                )
                completed = True
            finally:
                if not completed and self.current is active:
                    # Cut short, and not by a barge-in (interrupt() clears current first):
                    # the call is ending. Record what the caller heard of it.
                    cut = active.ledger.close()
                    call.observe(Interrupted(cut.heard, cut.unheard))
                    call.history.bot_said(cut.heard, interrupted=True)
                # Once per turn: here, or in interrupt() (which clears active.timing first).
                # Shielded, so a turn cut short by the end of the call is reported too.
                if (timing := active.timing) is not None:
                    active.timing = None
                    with trio.CancelScope(shield=True):
                        await call.report_turn(timing)
            if failure is None and active.ledger.sentences:
                said = " ".join(active.ledger.sentences)
                call.observe(BotSaid(said))
                call.history.bot_said(said)
            if failure is not None:
                call.stats.engine_errors += 1
                call.log.failed("tts", f"{failure}; trying to apologise")
                apology = partial(constant, call.conversation.apology)
                again = await self.speak(apology, active.ledger, active.playback)
                if again is not None:
                    call.log.error("could not apologise either: %s", again)

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
        call = self.call
        settings = call.settings
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
                        apology=call.conversation.apology,
                        stats=call.stats,
                        log=call.log,
                        timing=timing,
                    )
                )
                nursery.start_soon(
                    partial(
                        synthesize_sentences,
                        sentences_in,
                        audio,
                        tts=call.engines.tts,
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
