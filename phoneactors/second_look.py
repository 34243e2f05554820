"""A second look at a short sound over the bot that the speech-to-text engine made no sense of.

Whisper hears a hummed "mm-hmm" as "Hymn." or "and make them". When such a transcript is
short and unclear (:func:`~phoneactors.backchannel.may_be_misheard_backchannel`), the same
audio is transcribed once more, told to expect backchannels
(:data:`~phoneactors.backchannel.BACKCHANNEL_HINT`). What that reading says decides:

* a backchannel: the sound was one;
* still no sense, and neither reading holds a word that interrupts ("no", "wait", ...), one
  with content or a question (both are function words, "It has." or "and the"; see
  :func:`~phoneactors.backchannel.says_nothing`): the sound is *unclear*, and
  the reply may play on (``Conversation.unclear_sounds_play_on``). An unclear "Sales." or
  "Tomorrow." is the caller answering over the bot: it interrupts;
* otherwise, or when the engine takes no hint or fails: the sound interrupts.

The call looks at the transcript at the caller's short pause (so that a backchannel misheard
as words that trail off, "and make them", need not wait the long silence) and again when the
turn ends, which is usually the same transcription: :class:`SecondLook` remembers the last
reading, so the engine runs once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import trio

from .audio import PCM, SAMPLE_RATE
from .backchannel import (
    BACKCHANNEL_HINT,
    UNCLEAR_WORDS,
    has_interrupting_word,
    may_be_misheard_backchannel,
    says_nothing,
    spoken_words,
)
from .engines.base import HintedSpeechToText, SpeechToText
from .errors import EngineError
from .vocabulary import words

__all__ = ["SECOND_LOOK_TIMEOUT", "SecondLook", "Verdict"]

SECOND_LOOK_TIMEOUT: Final = 1.0
"""Seconds a second look at an unclear sound over the bot may take; past that (a busy box)
the sound interrupts as it would have without one, and the caller's turn goes on."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """A sound over the bot that is no interruption: ``kind`` is "backchannel" or "unclear"
    after a second look (``text``: the second reading, or the first), or "no words" (the call's
    own verdict on a lone filler); the kind of :class:`~phoneactors.records.FalseInterruption`
    it becomes."""

    kind: str
    text: str


class SecondLook:
    """Second looks for one call: ``stt`` transcribes again, ``is_backchannel`` (the
    conversation's hook) judges the reading, ``log`` says what it heard and ``warn`` why a
    look failed."""

    def __init__(
        self,
        stt: SpeechToText,
        is_backchannel: Callable[[str], bool],
        log: Callable[[str], None],
        warn: Callable[[str], None],
    ) -> None:
        self._stt = stt
        self._is_backchannel = is_backchannel
        self._log = log
        self._warn = warn
        self._last: tuple[tuple[str, float | None], str | None] | None = None
        """The last transcription looked at again (its text and mean log-probability, which
        identify it), and its second reading (``None``: that failed)."""

    async def take(
        self, text: str, audio: PCM | None, avg_logprob: float | None, *, unclear_plays_on: bool
    ) -> Verdict | None:
        """The verdict on a sound over the bot heard as ``text``, or ``None``: it interrupts
        (not unclear enough for a second look, no engine that takes a hint, or it failed)."""
        stt = self._stt
        if audio is None or not isinstance(stt, HintedSpeechToText):
            return None
        if not may_be_misheard_backchannel(text, avg_logprob, len(audio) / SAMPLE_RATE):
            return None
        key = (text, avg_logprob)
        if self._last is None or self._last[0] != key:
            self._last = (key, await self._read_again(text, stt, audio))
        second = self._last[1]
        if second is None:
            return None
        # A hint makes Whisper loop on what it was told ("Okay. Okay. Okay. Okay."): no
        # backchannel. A long hum is heard twice ("Mm-hmm. Mm-hmm."): one.
        if 0 < spoken_words(second) <= UNCLEAR_WORDS and self._is_backchannel(second):
            return Verdict("backchannel", second)
        if unclear_plays_on and self._says_nothing(text) and self._says_nothing(second):
            return Verdict("unclear", text)
        return None

    def _says_nothing(self, reading: str) -> bool:
        """Whether a reading of an unclear sound holds no word that interrupts, none with
        content and no question: nothing, "It has.", "And the" (a hum misheard), or a
        backchannel the hint made Whisper loop on ("Okay. Okay. Okay. Okay.")."""
        if not words(reading) or says_nothing(reading):
            return True
        return not has_interrupting_word(reading) and self._is_backchannel(reading)

    async def _read_again(self, text: str, stt: HintedSpeechToText, audio: PCM) -> str | None:
        try:
            with trio.fail_after(SECOND_LOOK_TIMEOUT):
                second = (await stt.transcribe_hinted(audio, BACKCHANNEL_HINT)).text
        except (trio.TooSlowError, EngineError) as exc:
            self._warn(f"second look at {text!r} failed: {exc}")
            return None
        self._log(f"unclear sound {text!r} over the bot, heard again as {second!r}")
        return second
