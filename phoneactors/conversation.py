"""What a user writes: a :class:`Conversation` subclass with an async ``reply``."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TypeAlias, cast

from . import dtmf
from .audio import PCM
from .endpointing import DEFAULT_BACKCHANNELS, is_backchannel, judge_turn
from .errors import ConfigurationError
from .history import History
from .timing import TurnTiming

__all__ = [
    "CallInfo",
    "Clip",
    "Conversation",
    "ConversationFactory",
    "Interruption",
    "Parrot",
    "Reply",
    "ReplyText",
    "TurnSoFar",
    "as_factory",
    "is_lifespan",
    "open_conversations",
]


@dataclass(frozen=True, slots=True, eq=False)
class Clip:
    """Audio to play as it is (8 kHz int16 mono): a reply, :meth:`Conversation.say` or
    :meth:`Conversation.play` may give one instead of text. ``text`` is what it stands for in
    the history ("[hold music]")."""

    audio: PCM
    text: str


ReplyText: TypeAlias = str | Clip | AsyncIterator[str] | None
"""What a reply produces: the whole text, text chunks as they are generated, a :class:`Clip`,
or nothing."""
Reply: TypeAlias = Awaitable[ReplyText] | AsyncIterator[str]
"""``reply`` may be ``async def`` returning :data:`ReplyText`, or an async generator of chunks."""


@dataclass(frozen=True, slots=True)
class CallInfo:
    """Facts about the call, from Twilio's ``start`` message."""

    call_sid: str
    stream_sid: str
    account_sid: str
    custom_parameters: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def caller(self) -> str | None:
        """The caller's number, from the ``caller`` parameter our TwiML adds (or ``None``)."""
        return self.custom_parameters.get("caller")


@dataclass(frozen=True, slots=True)
class Interruption:
    """The caller talked over a reply. ``heard`` played before they did; ``unheard`` did not.

    ``heard`` is accurate to one audio chunk (100 ms by default), from Twilio's mark echoes, and
    rounded down to whole words. ``unheard`` includes text generated but never spoken.
    """

    heard: str
    unheard: str


@dataclass(frozen=True, slots=True)
class TurnSoFar:
    """What the caller has said so far, at a pause: for :meth:`Conversation.is_turn_complete`."""

    text: str
    """The words, as the speech-to-text engine heard them (never empty)."""
    audio: PCM
    """The turn's audio so far (8 kHz int16), for an end-of-turn model of your own."""
    last_word_logprob: float | None = None
    """How sure the engine is of the last word: the log-probability of its least likely token
    (``None``: the engine does not say). A cut-off "the" is often heard as "there", unsurely."""
    alternatives: tuple[str, ...] = ()
    """Other readings of the audio the engine found nearly as likely (empty: it gives none)."""
    avg_logprob: float | None = None
    """How sure the engine is of the whole text: its mean token log-probability (``None``: the
    engine does not say)."""


class Conversation:
    """One instance per call. Subclass it and override :meth:`reply`; every hook is optional.

    The runtime calls the hooks one at a time from the call's own tasks; an instance never sees
    two calls. A hook that raises is logged with the call sid and the call goes on (``reply`` and
    ``on_dtmf`` then answer with :attr:`apology`).
    """

    greeting: str | None = None
    """Spoken as soon as the call connects (``None``: wait for the caller to speak first)."""
    apology: str = "Sorry, something went wrong on my side. Could you say that again?"
    """Spoken when ``reply`` raises, times out or returns the wrong type."""
    backchannels: Collection[str] = DEFAULT_BACKCHANNELS
    """What a caller says over the bot to show they are listening ("uh-huh", "okay", "I see"):
    said over a reply, the reply plays on and it is not answered (:meth:`is_backchannel`).
    Said while the bot is quiet, it is an ordinary turn."""

    unclear_sounds_play_on: bool = True
    """A short sound over a reply that the speech-to-text engine made no sense of, even on a
    second look told to expect a backchannel, and that it heard both times as words with no
    content ("It has.", "and the": pronouns, auxiliaries, articles, prepositions) and no word
    that interrupts ("no", "wait", "stop", "sorry", ...): ``True`` lets the reply play on (a
    caller who meant to stop the bot says it again, and it pauses at once); ``False`` answers
    what the engine heard as the caller's next turn. A word with content ("Sales.",
    "Tomorrow.") always interrupts, however unsure the engine was of it."""

    still_there: str = "Are you still there?"
    """What :meth:`on_idle` says, by default, the first time the line goes quiet."""
    idle_goodbye: str = "I'll hang up now. Goodbye."
    """What :meth:`on_idle` says, by default, before hanging up when the line stays quiet."""
    time_limit_message: str = "I'm sorry, this call has reached its time limit. Goodbye."
    """Said before the call ends at ``CallSettings.max_call_seconds``."""

    _call: CallInfo | None = None
    _history: History | None = None
    _say: Callable[[str | Clip], None] | None = None
    _transfer: Callable[[str, str | None], None] | None = None
    _answered_by: str | None = None
    _hang_up_requested: bool = False

    @property
    def call(self) -> CallInfo:
        """Facts about this call; available from :meth:`on_start` on."""
        if self._call is None:
            raise RuntimeError("call facts are available once the call has started")
        return self._call

    @property
    def history(self) -> History:
        """What has been said on this call so far, as the caller experienced it
        (:class:`~phoneactors.history.History`): when :meth:`reply` runs, its last turn is the
        caller's words being answered. ``history.as_messages(system=…)`` is an LLM prompt.
        Empty before the call starts."""
        if self._history is None:
            self._history = History()
        return self._history

    def reply(self, text: str) -> Reply:
        """Answer what the caller said. Return a string, or yield chunks (an LLM's tokens).

        Chunks are spoken sentence by sentence as they complete. If the caller talks over the
        reply, the reply is cancelled (your ``await`` raises ``trio.Cancelled``; don't catch it)
        and :meth:`on_interrupted` says what was heard.
        """
        raise NotImplementedError(f"{type(self).__name__} must override reply(text)")

    async def on_start(self) -> None:
        """The call connected; :attr:`call` is set. Runs before the greeting."""

    def on_dtmf(self, digit: str) -> Reply:
        """The caller pressed a key. Like speech, a key press interrupts the bot; what this
        returns (same forms as :meth:`reply`) is spoken. The default ignores keys."""

        async def nothing() -> ReplyText:
            return None

        return nothing()

    async def on_interrupted(self, interruption: Interruption) -> None:
        """The caller talked over a reply (or the reply was still being generated)."""

    def is_backchannel(self, text: str) -> bool:
        """Whether ``text``, said over a reply, only shows the caller is listening: then the
        reply, paused while they spoke, plays on, and ``text`` is not answered. The default:
        every word of it is one of :attr:`backchannels` ("Okay, I see." is; "Okay, but why?"
        is not). Must be quick: it runs while the caller waits."""
        return is_backchannel(text, self.backchannels)

    async def is_turn_complete(self, turn: TurnSoFar) -> bool:
        """Whether the caller, silent for a moment after saying ``turn.text``, has finished
        their turn. ``True`` answers after a short silence (``SegmenterSettings.end_silence_ms``);
        ``False`` waits longer for them to go on (``incomplete_silence_ms``). The default reads
        the words (:func:`phoneactors.endpointing.judge_turn`): a turn that ends in "and",
        "for", "the", "um", "because", halfway through a number, on a word the engine was
        unsure of and that is often a misheard cut-off word, or that the engine nearly heard as
        one that trails off (``turn.alternatives``), waits. Override it to plug in your
        own end-of-turn model; if it raises or is slow, the default decides. It is not asked
        about a backchannel or a filler said over a reply it paused (nor a short unclear sound
        that a second look hears as a backchannel): those end at once, so that the reply
        plays on after the short silence."""
        return judge_turn(
            turn.text, last_word_logprob=turn.last_word_logprob, alternatives=turn.alternatives
        ).complete

    async def on_turn_timing(self, timing: TurnTiming) -> None:
        """Where the time of a turn went (caller's last word → bot's first audio); called once
        per answered utterance, after the reply (or its interruption)."""

    async def on_end(self, reason: str) -> None:
        """The call is over (``reason`` says why). Runs exactly once per call."""

    async def on_idle(self, silences: int) -> str | None:
        """Nobody has said anything for ``CallSettings.idle_timeout`` seconds (the bot is done
        talking, the caller silent): what to say now (``None``: nothing). ``silences`` counts
        the quiet spells in a row (it starts again when the caller speaks or presses a key).
        The default asks :attr:`still_there` the first time, and then says
        :attr:`idle_goodbye` and hangs up."""
        if silences == 1:
            return self.still_there
        self.hang_up()
        return self.idle_goodbye

    def say(self, text: str | Clip) -> None:
        """Speak ``text`` on your own, not as an answer: now if the bot is quiet, else once
        what it is saying has played. The caller can interrupt it like any reply, and it goes
        into :attr:`history` as the bot's turn. Works from :meth:`on_start` on (any hook, or a
        task of your own during the call)."""
        if self._say is None:
            raise RuntimeError("say() works once the call has started (from on_start on)")
        self._say(text)

    transfer_failed_message: str = "Sorry, I could not put you through. How else can I help?"
    """What :meth:`on_transfer_failed` says, by default."""

    def play(self, audio: PCM, text: str = "[audio]") -> None:
        """Play ready-made ``audio`` (8 kHz int16 mono) as :meth:`say` speaks text: after what
        is playing, interruptible; ``text`` stands for it in :attr:`history`."""
        self.say(Clip(audio, text))

    def send_digits(self, digits: str) -> None:
        """Press keys towards the other end, as in-band tones (DTMF), to drive a phone menu
        the call is connected to: ``0``-``9``, ``*``, ``#``, ``A``-``D``, and ``w`` for a
        half-second wait. Played like :meth:`play`; raises ``ValueError`` for other keys."""
        self.play(dtmf.tones(digits), f"[keys {digits}]")

    def transfer(self, to: str, *, say: str | None = None) -> None:
        """Hand the caller on to ``to`` (a number, ``+15551234567``, or ``sip:desk@example.com``)
        once what is being said now (including this reply) has played: ``say`` is spoken, then
        Twilio is told to dial ``to``, and this call's stream ends. Needs the server's access to
        Twilio's API (``TWILIO_AUTH_TOKEN``). Raises
        :class:`~phoneactors.errors.ConfigurationError` at once for a bad ``to`` or no API
        access; if Twilio refuses, :meth:`on_transfer_failed` says what happens, and the call
        goes on."""
        if self._transfer is None:
            raise RuntimeError("transfer() works once the call has started (from on_start on)")
        self._transfer(to, say)

    @property
    def answered_by(self) -> str | None:
        """Who answered this outbound call, once Twilio's answering-machine detection knows
        (``phoneactors call --machine-detection``): ``human``, ``machine_end_beep``,
        ``machine_end_silence``, ``machine_end_other``, ``machine_start``, ``fax`` or
        ``unknown``. ``None`` until then, and on calls without detection."""
        return self._answered_by

    async def on_answered_by(self, answered_by: str) -> str | None:
        """Twilio has found out who answered (see :attr:`answered_by`): what to say now
        (``None``: nothing). A ``machine_end_*`` answer comes after the greeting and the beep:
        leave a message, then :meth:`hang_up`. The default does nothing."""
        return None

    async def on_transfer_failed(self, to: str, error: str) -> str | None:
        """Twilio refused to hand the call on to ``to`` (``error`` says why): what to say now
        (``None``: nothing). The default says :attr:`transfer_failed_message`."""
        return self.transfer_failed_message

    def hang_up(self) -> None:
        """End the call once what is being said now (including this reply) has been heard."""
        self._hang_up_requested = True

    @property
    def hang_up_requested(self) -> bool:
        return self._hang_up_requested


class Parrot(Conversation):
    """The built-in example: repeats what the caller said."""

    greeting = "Hi! Say something and I will repeat it."

    async def reply(self, text: str) -> str:
        return f'You said: "{text}"'


ConversationFactory: TypeAlias = "Callable[[CallInfo], Conversation]"
"""Makes the conversation of one call, given the call's facts (its sid, the caller, the stream's
custom parameters)."""


def as_factory(make: Callable[..., Conversation]) -> ConversationFactory:
    """``make`` as a :data:`ConversationFactory`: a :class:`Conversation` subclass, or a
    callable without required arguments, is called with none (a parameter with a default keeps
    it); a callable with one required argument is given the :class:`CallInfo`.

    Raises :class:`~phoneactors.errors.ConfigurationError` when ``make`` is not callable or
    needs more than one argument.
    """
    if isinstance(make, type):
        if not issubclass(make, Conversation):
            raise ConfigurationError(f"expected a subclass of Conversation, got {make!r}")
        return lambda call: make()
    if not callable(make):
        raise ConfigurationError(f"expected a Conversation class or factory, got {make!r}")
    try:
        signature = inspect.signature(make)
    except (TypeError, ValueError):  # some builtins: assume the documented contract
        return make
    required = [
        parameter
        for parameter in signature.parameters.values()
        if parameter.default is parameter.empty
        and parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD)
    ]
    if not required:  # parameters with defaults keep them (``def make(to=to)`` closures)
        return lambda call: make()
    if len(required) > 1:
        raise ConfigurationError(
            f"a conversation factory takes the call (a CallInfo) or nothing, but {make!r} "
            f"needs {len(required)} arguments"
        )
    return make


def is_lifespan(target: object) -> bool:
    """Whether ``target`` is a lifespan: a function decorated with
    :func:`contextlib.asynccontextmanager` that holds what every call shares (an HTTP client, a
    database pool) and yields the conversation class or factory that uses it."""
    return callable(target) and inspect.isasyncgenfunction(getattr(target, "__wrapped__", None))


@asynccontextmanager
async def open_conversations(target: object) -> AsyncIterator[ConversationFactory]:
    """The :data:`ConversationFactory` of ``target`` for as long as the block runs.

    ``target`` is a :class:`Conversation` subclass, a factory (see :func:`as_factory`), or a
    lifespan (:func:`is_lifespan`), which is entered here, so its resources open before the first
    call, and left when the block ends, after the last call. The server and ``phoneactors
    simulate`` run their calls inside this block.
    """
    if is_lifespan(target):
        async with cast(Callable[[], AbstractAsyncContextManager[object]], target)() as made:
            yield as_factory(_checked(made, f"the lifespan {target!r} yielded"))
    else:
        yield as_factory(_checked(target, "expected"))


def _checked(made: object, what: str) -> Callable[..., Conversation]:
    if isinstance(made, type) and issubclass(made, Conversation):
        return made
    if callable(made) and not isinstance(made, type):
        return cast(Callable[..., Conversation], made)
    raise ConfigurationError(
        f"{what} {made!r}: a Conversation subclass, or a function that makes one, is needed"
    )
