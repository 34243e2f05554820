"""Is a sound over the bot a backchannel, a hesitation, or words that interrupt?

Pure and synchronous, text in and a decision out, like :mod:`phoneactors.endpointing`.
:func:`is_backchannel` tells a listener's "uh-huh" or "okay" (keep talking) from a real
interruption ("no, wait"); :func:`may_be_misheard_backchannel` says which short unclear
transcripts are worth a second look (:mod:`phoneactors.second_look`), and
:func:`says_nothing` which readings carry nothing to answer. English defaults; a
:class:`~phoneactors.Conversation` replaces the backchannel judgement through its hooks.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from itertools import pairwise
from typing import Final

from .vocabulary import ASSENT_PAIRS, FUNCTION_WORDS, is_hesitation, words

__all__ = [
    "BACKCHANNEL_HINT",
    "BARELY_HEARD_LOGPROB",
    "DEFAULT_BACKCHANNELS",
    "UNCLEAR_LOGPROB",
    "UNCLEAR_SECONDS",
    "UNCLEAR_WORDS",
    "has_interrupting_word",
    "is_backchannel",
    "is_only_fillers",
    "is_only_function_words",
    "may_be_misheard_backchannel",
    "says_nothing",
    "spoken_words",
]


# fmt: off
DEFAULT_BACKCHANNELS: Final[frozenset[str]] = frozenset({
    # sounds of assent, in the spellings speech-to-text uses
    "uh huh", "uh hum", "aha", "ah ha", "mm hmm", "mm hm", "mhm", "mhmm", "mmhmm", "um hmm",
    "mm", "mmm", "hmm", "hm",
    # yes and okay
    "yeah", "yep", "yes", "yup", "ya", "yea", "yes sir", "yes ma'am", "uh yeah", "um yeah",
    "okay", "ok", "kay", "okey dokey", "okie dokie", "uh okay", "um okay", "alright", "all right",
    "right", "sure", "sure thing", "for sure", "fine",
    # understanding and agreement
    "i see", "got it", "gotcha", "i know", "i understand", "understood", "makes sense",
    "make sense", "that makes sense", "fair enough", "of course", "exactly", "true", "indeed",
    "absolutely", "definitely", "totally", "that's right", "that's true", "sounds good",
    "perfect",
    # reactions
    "cool", "great", "nice", "good", "very good", "oh", "ah", "wow", "oh wow",
})
# fmt: on
"""What a listener says to keep the speaker going, as :func:`words` normalises it, 1 to 3 words
each. Repeats and runs of them are backchannels too ("Yeah, yeah.", "Oh, okay, I see."); "no",
"wait", "stop", "what", "sorry", "uh-uh", "nope" and "hold on" are deliberately not here."""

_DEFAULT_LONGEST: Final = max(len(phrase.split()) for phrase in DEFAULT_BACKCHANNELS)


def is_backchannel(text: str, phrases: Collection[str] = DEFAULT_BACKCHANNELS) -> bool:
    """True when every word of ``text`` belongs to a backchannel phrase from ``phrases``.

    The words of ``text`` (see :func:`words`) must split, end to end, into phrases: "Uh-huh.",
    "Yeah, yeah.", "Okay, I see." and "Mm-hmm. Yes." are backchannels, and so is a hum in any
    spelling ("M.", "Mmmm.", "M-hm.") while "mm" is one of ``phrases``; "No.", "Wait.", "Uh-uh."
    (no) and "Yeah, but I already did that." are not, and neither is text without words.
    ``phrases`` may be written any way ("Mm-hmm", "I SEE"): phrases other than
    :data:`DEFAULT_BACKCHANNELS` are normalised with :func:`words` on each call, which costs a
    couple of microseconds a phrase; phrases without words are ignored. A plain ``str`` for
    ``phrases`` is a mistake (it would be read as single letters) and raises ``TypeError``.
    """
    if isinstance(phrases, str):
        raise TypeError("phrases must be a collection of phrases, not one string")
    tokens = words(text)
    if not tokens:
        return False
    if phrases is DEFAULT_BACKCHANNELS:
        known, longest = DEFAULT_BACKCHANNELS, _DEFAULT_LONGEST
    else:
        known = frozenset(normal for phrase in phrases if (normal := " ".join(words(phrase))))
        longest = max((phrase.count(" ") + 1 for phrase in known), default=0)
    if "mm" in known:  # a hum in any spelling: "M.", "Mmmm.", "M-hm.", "Hmmm.", "M-H-M."
        tokens = ["mm" if _HUM.fullmatch(token) else token for token in _spelled_out(tokens)]
    # reachable[i]: the first i words split into phrases.
    reachable = [True] + [False] * len(tokens)
    for end in range(1, len(tokens) + 1):
        reachable[end] = any(
            reachable[end - size] and " ".join(tokens[end - size : end]) in known
            for size in range(1, min(longest, end) + 1)
        )
    return reachable[-1]


_HUM: Final = re.compile(r"h?m+(?:h+[mn]+)*h?")
"""A hum as speech-to-text spells it, letter by letter: "m", "mmmm", "hmmm", "mhm", "mmhmm",
and with the nasal after the "h" heard as an "n": "mhn", "M-H-N"."""


def _spelled_out(tokens: list[str]) -> list[str]:
    """``tokens`` with each hum spelled out letter by letter written as one word ("M-H-M."
    is ``["m", "h", "m"]``: "mhm"); other letters stay as they are ("N." is a letter)."""
    out: list[str] = []
    run: list[str] = []
    for token in [*tokens, ""]:
        if len(token) == 1 and token in "mhn":
            run.append(token)
            continue
        if run:
            spelled = "".join(run)
            out += [spelled] if _HUM.fullmatch(spelled) else run
            run = []
        if token:
            out.append(token)
    return out


BACKCHANNEL_HINT: Final = "Mm-hmm. Uh-huh. Yeah. Okay. Right."
"""What a second transcription of a short unclear sound over the bot is told to expect."""
UNCLEAR_LOGPROB: Final = -0.6
"""A transcript whose mean token log-probability is lower is one the engine was unsure of."""
UNCLEAR_SECONDS: Final = 2.0
"""The longest utterance that gets a second look, measured as the audio transcribed: the
speech and about 0.3 s of quiet around it (pre-roll and trailing). Spoken backchannels ran
0.66 to 1.48 s so measured (``benchmarks/backchannels.py``), and a drawn-out "mm-hmm" runs
longer; three words at most is the main limit, this one only keeps a long utterance that the
engine garbled into a few words from being read as a backchannel."""
UNCLEAR_WORDS: Final = 3
BARELY_HEARD_LOGPROB: Final = -1.5
"""Under this mean token log-probability, even a word that interrupts ("No") is one the engine
barely heard: the short transcript still gets a second look (a hummed "mm-hmm" heard as "No")."""
_INTERRUPTING: Final = frozenset({
    "no", "nope", "nah", "not", "never", "wait", "stop", "hold", "hang", "what", "why", "who",
    "how", "when", "where", "sorry", "pardon", "excuse", "hello", "hey", "huh", "help",
    "cancel", "agent", "operator", "person", "human", "repeat", "again", "back", "wrong",
    "don't", "didn't", "can't", "won't", "but", "actually",
})  # fmt: skip
"""Words that make even an unclear short transcript an interruption, never a backchannel."""


def may_be_misheard_backchannel(text: str, avg_logprob: float | None, seconds: float) -> bool:
    """Whether a sound over the bot, heard as ``text`` (not a backchannel), is worth a second
    look as one: short (``seconds``, the utterance's audio with its pre-roll, at most
    :data:`UNCLEAR_SECONDS`, and at most three words, none of them a number: "730." is the
    caller's answer, not a hum), unclear to the engine (``avg_logprob`` under
    :data:`UNCLEAR_LOGPROB`) or words that say nothing however sure it was ("It has.": see
    :func:`says_nothing`), and without a word that interrupts
    ("no", "wait", "what", ...; see :func:`has_interrupting_word`) unless the engine barely
    heard it (under :data:`BARELY_HEARD_LOGPROB`). Whisper hears a hummed "mm-hmm" as "Hymn."
    or "La la"; told to expect backchannels (:data:`BACKCHANNEL_HINT`) it hears most of them
    right.
    """
    tokens = words(text)
    return (
        0 < len(tokens) <= UNCLEAR_WORDS
        and not any(char.isdigit() for char in text)
        and seconds <= UNCLEAR_SECONDS
        and avg_logprob is not None
        and (avg_logprob < UNCLEAR_LOGPROB or says_nothing(text))
        and (not _interrupts(tokens) or avg_logprob < BARELY_HEARD_LOGPROB)
    )


def has_interrupting_word(text: str) -> bool:
    """Whether ``text`` holds a word that makes even an unclear short sound over the bot an
    interruption: "no", "wait", "stop", "what" (and "what's"), "sorry", "hello", "cancel",
    "but", ..."""
    return _interrupts(words(text))


def _interrupts(tokens: Sequence[str]) -> bool:
    return any(
        token in _INTERRUPTING or token.removesuffix("'s") in _INTERRUPTING for token in tokens
    )


def is_only_fillers(text: str) -> bool:
    """True when ``text`` has words and every one is a filler ("Uh.", "Um, er."): a sound of
    hesitation, with nothing said yet. "Mm-hmm." is no filler (it is assent)."""
    tokens = words(text)
    return bool(tokens) and all(is_hesitation(tokens, i) for i in range(len(tokens)))


def spoken_words(text: str) -> int:
    """How many words ``text`` holds, a hum of assent counted as one word ("Mm-hmm. Mm-hmm."
    is two, like "Okay. Okay.")."""
    tokens = words(text)
    pairs = sum(pair in ASSENT_PAIRS for pair in pairwise(tokens))
    return len(tokens) - pairs


def is_only_function_words(text: str) -> bool:
    """True when ``text`` has words and none of them carries content: pronouns, auxiliaries,
    articles, prepositions, conjunctions and fillers ("It has.", "And the", "up"). Whisper
    hears a hummed backchannel as such words; a caller who answers over the bot ("Sales.",
    "Tomorrow.", "730.") says a word with content, however unsure the engine was of it."""
    tokens = words(text)
    return bool(tokens) and all(token in FUNCTION_WORDS for token in tokens)


def says_nothing(text: str) -> bool:
    """True when ``text`` has words and says nothing to answer: only function words
    (:func:`is_only_function_words`: "It has.", "And the"), none that interrupts, and no
    question ("Are you there?" and "So?" are made of function words too, and ask)."""
    return (
        is_only_function_words(text)
        and not has_interrupting_word(text)
        and not text.rstrip().endswith("?")
    )
