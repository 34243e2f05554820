"""The responder of one call: what the caller does decides what the bot does.

``take_turns`` reads the call's turn events (speech started, transcripts, key presses) and
tells the call's :class:`~phoneactors.speaker.Speaker` to pause the reply in progress, resume
it, end it, or start the next one. The judgements it needs come from here too: whether the
words at a pause end the caller's turn (``judge_turn``, for the transcriber), whether words
said over a reply were a backchannel, a filler or an unclear sound given a second look
(``heard_over_reply``), and whether the caller was still going on with the turn a reply
answers (``went_on``). The rules are described in :mod:`phoneactors.call`.

One :class:`Responder` per call, attached to the call's runtime, whose state it shares with
the speaker and the call control: the utterances still open, when the line went quiet.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Final

import trio

from . import twilio
from .audio import PCM
from .conversation import TurnSoFar
from .endpointing import is_only_fillers, judge_turn
from .messages import KeyPressed, SpeechStarted, Transcript, TranscriptionFailed, TurnEvent
from .records import CallerSaid, KeyPress
from .second_look import SecondLook, Verdict
from .speaker import ActiveReply, constant
from .timing import TurnTiming

if TYPE_CHECKING:
    from .call import _Call

__all__ = ["WENT_ON_WITHIN", "Responder"]

WENT_ON_WITHIN: Final = 1.2
"""Caller speech that begins this soon (seconds) after the last voiced frame of the turn a
reply answers goes on with that turn, however little of the reply played: the caller paused
mid-sentence ("Could you read me the opening hours of every branch, … weekends included?"),
and the bot, taking the words for a finished turn, had begun to answer. The pause runs from
the end of one word to the start of the next (the first voiced frame of those that started
speech), not to the moment speech was heard, which comes ``min_speech_ms`` later on a clean
line and up to 100 ms later still on a hissy one, where a word's soft start is under the
noise gate."""


class Responder:
    """One call's responder: the caller's turns in, the speaker's orders out."""

    def __init__(self, call: _Call) -> None:
        self.call = call
        self.second_looks = SecondLook(
            call.engines.stt, self.is_backchannel, call.log.info, call.log.warning
        )

    async def judge_turn(self, turn: TurnSoFar) -> bool:
        """Whether the words at a pause end the caller's turn: the conversation's
        ``is_turn_complete``; if that fails or is slow, the built-in English rules.

        Over a reply paused by the caller's sound, a backchannel or a filler ("Oh, I see...",
        "Uh.") ends it at once, however it trails off, and so does a short unclear sound that
        a second look hears as a backchannel ("and the" for a hummed "mm-hmm"): the reply
        plays on after the short silence instead of the long one. Words the caller goes on
        with are a new sound over the reply, and pause it again."""
        call = self.call
        if call.speaker.listening_over_reply():
            heard = self.heard_over_reply(
                turn.text, turn.audio, turn.avg_logprob, unclear_plays_on=False
            )
            if await heard is not None:
                return True
        try:
            with trio.fail_after(call.settings.hook_timeout):
                return bool(await call.conversation.is_turn_complete(turn))
        except trio.TooSlowError:
            call.log.failed(
                "hook", f"is_turn_complete took longer than {call.settings.hook_timeout:g} s"
            )
        except Exception as exc:
            call.log.failed("hook", f"is_turn_complete raised {exc!r}", exc_info=exc)
        return judge_turn(
            turn.text, last_word_logprob=turn.last_word_logprob, alternatives=turn.alternatives
        ).complete

    def is_backchannel(self, text: str) -> bool:
        """The conversation's ``is_backchannel``; a failing hook counts as 'no'."""
        call = self.call
        try:
            return bool(call.conversation.is_backchannel(text))
        except Exception as exc:
            call.log.failed("hook", f"is_backchannel raised {exc!r}", exc_info=exc)
            return False

    async def take_turns(
        self,
        turns_in: trio.MemoryReceiveChannel[TurnEvent],
        outbound: trio.MemorySendChannel[twilio.OutboundEvent],
    ) -> None:
        """The responder: start a reply for each transcript (or key press), pause the one in
        progress when the caller makes a sound, then resume it or end it by what they said,
        and end the call when the conversation hangs up."""
        call = self.call
        conversation = call.conversation
        call.speaker.outbound = outbound
        async with outbound, turns_in, trio.open_nursery() as replies:
            call.replies = replies
            call.quiet_since = trio.current_time()
            if call.directory is not None:
                call.directory.enter(call.start.call_sid, call.control)
            if call.settings.idle_timeout is not None:
                replies.start_soon(call.control.watch_idle, call.settings.idle_timeout)
            await call.run_hook(conversation.on_start, "on_start")
            greeting = conversation.greeting
            if greeting:
                call.speaker.start(partial(constant, greeting))
            elif conversation.hang_up_requested:
                call.end_call("conversation hung up")
            async for event in turns_in:
                match event:
                    case SpeechStarted(began_at=began_at):
                        call.open_utterances += 1
                        call.quiet_since = call.caller_active_at = trio.current_time()
                        call.speech_began_at = began_at
                        await call.speaker.pause()
                    case Transcript():
                        call.open_utterances = max(0, call.open_utterances - 1)
                        call.quiet_since = trio.current_time()
                        await self.take_transcript(event)
                    case TranscriptionFailed():
                        call.open_utterances = max(0, call.open_utterances - 1)
                        await call.speaker.interrupt()
                        call.speaker.start(partial(constant, conversation.apology))
                    case KeyPressed(digit=digit):
                        call.log.info("caller pressed %r", digit)
                        call.quiet_since = call.caller_active_at = trio.current_time()
                        call.observe(KeyPress(digit))
                        await call.speaker.interrupt()
                        call.history.caller_pressed(digit)
                        call.speaker.start(partial(conversation.on_dtmf, digit))

    async def take_transcript(self, event: Transcript) -> None:
        """A caller turn ended: resume a paused reply over a sound or a backchannel, or answer."""
        call = self.call
        text = event.text
        active = call.speaker.in_progress()
        if active is not None and active.playback.paused:
            if not text:
                call.speaker.resume(active, "no words", event.sound)
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
                        unclear_plays_on=bool(call.conversation.unclear_sounds_play_on),
                    )
                )
                is not None
            ):
                call.speaker.resume(active, verdict.kind, verdict.text)
                return
        if not text:
            return  # a sound while the bot was quiet: nothing to answer
        interruption = await call.speaker.interrupt()
        call.observe(CallerSaid(text))
        # The caller heard nothing of the reply to their last turn, or spoke again at once:
        # they were still talking.
        if (
            interruption is not None
            and active is not None
            and active.turn
            and (not interruption.heard or self.went_on(active))
        ):
            call.log.info("caller went on with their turn: answering both parts as one")
            text = f"{active.turn} {text}"
            call.history.caller_went_on(text)
        else:
            call.history.caller_said(text)
        timing = TurnTiming(
            speech_ended=event.speech_ended_at,
            utterance_ended=event.utterance_ended_at,
            transcribed=event.transcribed_at,
        )
        call.speaker.start(partial(call.conversation.reply, text), timing, turn=text)

    def went_on(self, active: ActiveReply) -> bool:
        """Whether the caller's latest utterance began within :data:`WENT_ON_WITHIN` of the
        end of the turn that ``active`` answers."""
        call = self.call
        stopped = active.caller_stopped_at
        return stopped is not None and call.speech_began_at - stopped <= WENT_ON_WITHIN

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
