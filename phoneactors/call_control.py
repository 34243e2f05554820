"""What a conversation does on its own during a call, not as an answer: speak a line
(:meth:`~phoneactors.Conversation.say`), hand the call on
(:meth:`~phoneactors.Conversation.transfer`); and what the call does when the line goes quiet or
the call runs too long.

One :class:`CallControl` per call, attached to the call's runtime (``phoneactors.call``), whose
state it reads: the reply in progress, when the line went quiet, the conversation. A reply it
starts waits for the one in progress (:meth:`CallControl.say_when_free`), so two never play at
once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING

import trio

from .conversation import Clip
from .errors import ConfigurationError, TwilioApiError
from .outbound import CallControlApi
from .speaker import constant
from .twiml import dial_twiml

if TYPE_CHECKING:
    from .call import _Call

__all__ = ["CallControl", "CallDirectory"]


class CallControl:
    """The conversation's own actions in one call, and the idle and time-limit watches."""

    def __init__(self, call: _Call, twilio_api: CallControlApi | None) -> None:
        self.call = call
        self.twilio_api = twilio_api
        self.transferring = False
        """A transfer is under way: the line is not idle."""

    async def watch_idle(self, quiet_for: float) -> None:
        """Ask the conversation what to say after ``quiet_for`` seconds of quiet on both sides.
        The count of silences it is given starts again when the caller speaks or presses."""
        silences = 0
        asked_at = trio.current_time()
        while True:
            await trio.sleep_until(self.call.quiet_since + quiet_for)
            active = self.call.speaker.in_progress()
            if active is not None:
                await active.done.wait()  # the bot is talking (or thinking): not quiet
                continue
            if self.call.open_utterances:
                await trio.sleep(min(1.0, quiet_for))  # a long utterance: look again soon
                continue
            if trio.current_time() < self.call.quiet_since + quiet_for:
                continue  # something happened meanwhile
            if self.transferring:
                await trio.sleep(min(1.0, quiet_for))  # handing the call on: not idle
                continue
            silences = 1 if self.call.caller_active_at > asked_at else silences + 1
            asked_at = trio.current_time()
            self.call.log.info("quiet for %g s (%d in a row)", quiet_for, silences)
            text = await self.call.run_hook(
                partial(self.call.conversation.on_idle, silences), "on_idle"
            )
            self.call.quiet_since = trio.current_time()
            if self.call.caller_active_at > asked_at:
                continue  # the caller spoke up while the conversation was deciding
            if isinstance(text, str) and text.strip():
                await self.say_when_free(text)
            elif self.call.conversation.hang_up_requested:
                self.call.end_call("conversation hung up")

    def say(self, text: str | Clip) -> None:
        """The conversation speaks on its own: after the reply in progress, if any."""
        self.start_own(self.say_when_free, text)

    def start_own(self, work: Callable[..., Awaitable[None]], *args: object) -> None:
        """Start what the conversation asked for on its own (a line, a transfer) in the call."""
        try:
            self.call.replies.start_soon(work, *args)
        except RuntimeError:  # the replies' nursery is closed
            raise RuntimeError("the call is over: there is nobody left to speak to") from None

    async def say_when_free(self, text: str | Clip) -> None:
        """Start a reply of ``text`` once no other reply is in progress: the only way a reply
        starts outside the responder, so two never play at once."""
        while (active := self.call.speaker.in_progress()) is not None:
            await active.done.wait()
        # No checkpoint since the loop's test: nothing else can have started a reply.
        self.call.speaker.start(partial(constant, text))

    def transfer(self, to: str, say: str | None) -> None:
        """Check ``to`` and the API access now; hand the call on once the bot is quiet."""
        try:
            twiml = dial_twiml(to)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
        if self.twilio_api is None:
            raise ConfigurationError(
                f"transfer to {to!r}: the server has no access to Twilio's API (set "
                "TWILIO_AUTH_TOKEN)"
            )
        self.start_own(self.run_transfer, self.twilio_api, to, twiml, say)

    async def run_transfer(self, api: CallControlApi, to: str, twiml: str, say: str | None) -> None:
        self.transferring = True
        try:
            if say:  # after what is being said now (the reply asking, too)
                await self.say_when_free(say)
            while (active := self.call.speaker.in_progress()) is not None:
                await active.done.wait()
            self.call.log.info("transferring the call to %s", to)
            await api.redirect(self.call.start.account_sid, self.call.start.call_sid, twiml)
        except TwilioApiError as exc:
            self.call.log.failed("transfer", f"to {to}: {exc}")
            text = await self.call.run_hook(
                partial(self.call.conversation.on_transfer_failed, to, str(exc)),
                "on_transfer_failed",
            )
            if isinstance(text, str) and text.strip():
                await self.say_when_free(text)
            return
        finally:
            self.transferring = False
        self.call.end_call(f"transferred to {to}")

    def answered(self, answered_by: str) -> None:
        """Twilio says who answered (``human``, ``machine_end_beep``, ``fax``, ``unknown``…)."""
        self.call.log.info("answered by %s", answered_by)
        self.call.conversation._answered_by = answered_by
        self.call.replies.start_soon(self.tell_answered, answered_by)

    async def tell_answered(self, answered_by: str) -> None:
        hook = partial(self.call.conversation.on_answered_by, answered_by)
        text = await self.call.run_hook(hook, "on_answered_by")
        if isinstance(text, str) and text.strip():
            await self.say_when_free(text)
        elif self.call.conversation.hang_up_requested:
            self.call.end_call("conversation hung up")

    async def limit_call(self, seconds: float) -> None:
        """End the call after ``seconds``: stop the bot, say the time-limit line, hang up."""
        await trio.sleep(seconds)
        self.call.log.info("the call reached its time limit (%g s)", seconds)
        await self.call.speaker.interrupt()
        self.call.conversation.hang_up()  # once the line below has played
        await self.say_when_free(self.call.conversation.time_limit_message)


class CallDirectory:
    """The calls in progress by call sid, so that news of a call that arrives on another request
    (who answered it, from Twilio's answering-machine detection) reaches its conversation. News
    of a call whose stream has not started yet waits for it."""

    def __init__(self) -> None:
        self._calls: dict[str, CallControl] = {}
        self._waiting: dict[str, str] = {}

    def enter(self, call_sid: str, control: CallControl) -> None:
        self._calls[call_sid] = control
        if (answered_by := self._waiting.pop(call_sid, None)) is not None:
            control.answered(answered_by)

    def leave(self, call_sid: str, control: CallControl) -> None:
        if self._calls.get(call_sid) is control:
            del self._calls[call_sid]

    def has(self, call_sid: str) -> bool:
        """Whether ``call_sid``'s stream is in progress here."""
        return call_sid in self._calls

    def call_sids(self) -> list[str]:
        """The calls in progress here."""
        return list(self._calls)

    def answered(self, call_sid: str, answered_by: str) -> bool:
        """Tell the call who answered it; ``False`` when it is not (yet) here, and then it is
        kept for it (the last few hundred only)."""
        control = self._calls.get(call_sid)
        if control is None:
            self._waiting[call_sid] = answered_by
            while len(self._waiting) > 500:
                del self._waiting[next(iter(self._waiting))]
            return False
        control.answered(answered_by)
        return True
