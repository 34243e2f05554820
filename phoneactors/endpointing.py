"""Turn-taking from words: has the caller finished, and is this a backchannel or a barge-in?

Pure and synchronous, no clocks and no event loop: text in, a decision out. The runtime
transcribes the caller's audio early, at a short pause (about 120 ms of silence), and asks
:func:`judge_turn` whether the words read like a finished turn: if they do, it answers after a
short silence; if they trail off, it waits longer (1.5 to 2 s) for the caller to go on. While
the bot is speaking, :func:`is_backchannel` tells a listener's "uh-huh" or "okay" (keep talking)
from a real interruption ("no, wait"). These are the English defaults; a
:class:`~phoneactors.Conversation` can replace either through its hooks.

The input is what speech-to-text writes. Whisper punctuates and capitalises, writes numbers as
digits ("555-1234", "7:30", "$20"), sometimes ends trailing-off speech with "...", and spells
"uh-huh" many ways ("Uh-huh.", "Uh huh", "Mm-hmm.", "Mhm."); other engines write numbers as words
("five five five") and may not punctuate at all. :func:`words` reduces both to the same lower-case
words, and every rule below works on those words, using punctuation only as extra evidence.

:func:`judge_turn` calls a turn **incomplete** when

* it is only fillers ("Um.", "Hmm."): the caller is thinking;
* the text ends in "...", "…", ",", ";", ":" or a dash: Whisper heard it trail off;
* it ends in a number being read out and unfinished: two or more groups of digits with fewer
  than ten digits in all ("555-12", "five five five"), or one group of three to nine digits
  just after a word such as "number", "code", "account" or "is" ("My PIN is 1234"). A single
  quantity ("a table for 2", "7:30", "$20", "two hundred"), a time or year in words ("seven
  thirty", "nineteen eighty"), hours and minutes in digits after "at", "by", "around" … ("at
  7 30", unless after "call" or "number"), a local phone number ("555-1234") and ten or more
  digits read complete;
* it ends in a code of letters and digits being read out after such a word ("The tracking
  number is 1Z 9", "The code is X 4"), a short house number after "address" or "live at"
  ("The address is 12"), or a spelled-out separator ("john dot", "underscore");
* it ends where what must follow is missing: what a message says ("The error message says"),
  a name ("It's called"), a day after a month ("My date of birth is March"; not "in March"), or
  a request without its verb, even asked ("Could you?"), or what to tell or send ("Could you
  tell me?");
* the speech-to-text engine guessed at its last word (log-probability under -1.0) in a turn of
  three words or more: a cut-off word is often heard as another;
* its last word leaves something open: a conjunction ("and", "because", "if"), a preposition
  ("for", "with", "to"), an article or possessive ("the", "my"), a filler ("um"), a contracted
  auxiliary ("I'd", "it's"), an auxiliary after a noun ("My name is"), an inverted auxiliary
  with no verb ("Can you"), or a verb still waiting for its object ("I'd like", "can I get");
* each of those word rules knows the common ways the word ends a sentence after all and then
  stays quiet: a particle ("hold on", "log in"), an ellipsis ("Yes, it is.", "I think you are.",
  "I'd be happy to"), a stranded preposition in a question ("What is this for?", "Where are
  you from", "That's what I was looking for"), "I think so", "not yet", "that one".

Everything else **reads complete**. A final "." is no evidence either way (Whisper puts one on
fragments too); a final "?" is taken as a question, which ends the turn unless its last word
can never end one (an article, a filler, a number being read out, "I'd", "can I get"), or it is
a yes/no question ending in a preposition it cannot strand ("Can I get a pizza with?": Whisper
writes the caller's rising intonation as "?"), or it ends in a subordinating conjunction
("Could you tell me if?").
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from types import MappingProxyType
from typing import Final

__all__ = [
    "BACKCHANNEL_HINT",
    "DEFAULT_BACKCHANNELS",
    "UNSURE_LAST_WORD",
    "TurnJudgement",
    "has_interrupting_word",
    "is_backchannel",
    "is_only_fillers",
    "is_only_function_words",
    "judge_turn",
    "may_be_misheard_backchannel",
    "says_nothing",
    "spoken_words",
    "words",
]


# -- words -----------------------------------------------------------------------------------

_APOSTROPHES: Final = str.maketrans(dict.fromkeys("\u2019\u2018\u02bc\u2032`", "'"))
_TOKEN: Final = re.compile(
    r"\d{1,3}(?:,\d{3})+(?:\.\d+)?(?!\d)"  # 1,250 (thousands, as Whisper writes amounts)
    r"|\d+(?:[:.]\d+)+"  # 7:30, 2.5
    r"|[^\W_]+(?:'[^\W_]+)*"  # words, digit groups, i'd, don't
)


def words(text: str) -> list[str]:
    """The words of ``text``, normalised: lower case, punctuation dropped.

    Hyphens, slashes and every other mark split words ("uh-huh" -> ``["uh", "huh"]``,
    "555-1234" -> ``["555", "1234"]``); apostrophes inside a word stay ("I'd" -> ``"i'd"``),
    curly ones become straight, and ones at a word's edge go ("'cause" -> ``"cause"``).
    Digits stay digits: a time or decimal is one word ("7:30", "2.5"), thousands separators go
    ("1,250" -> ``"1250"``) and currency signs are dropped ("$20" -> ``"20"``). Empty or
    punctuation-only text gives ``[]``.
    """
    tokens = _TOKEN.findall(text.translate(_APOSTROPHES).lower())
    return [token.replace(",", "") if "," in token else token for token in tokens]


# -- backchannels ----------------------------------------------------------------------------

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


_HUM: Final = re.compile(r"h?m+(?:h+m+)*h?")
"""A hum as speech-to-text spells it, letter by letter: "m", "mmmm", "hmmm", "mhm", "mmhmm"."""


def _spelled_out(tokens: list[str]) -> list[str]:
    """``tokens`` with each hum spelled out letter by letter written as one word ("M-H-M."
    is ``["m", "h", "m"]``: "mhm"); other letters stay as they are."""
    out: list[str] = []
    run: list[str] = []
    for token in [*tokens, ""]:
        if len(token) == 1 and token in "mh":
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
    return bool(tokens) and all(_is_hesitation(tokens, i) for i in range(len(tokens)))


def spoken_words(text: str) -> int:
    """How many words ``text`` holds, a hum of assent counted as one word ("Mm-hmm. Mm-hmm."
    is two, like "Okay. Okay.")."""
    tokens = words(text)
    pairs = sum(pair in _ASSENT_PAIRS for pair in pairwise(tokens))
    return len(tokens) - pairs


def is_only_function_words(text: str) -> bool:
    """True when ``text`` has words and none of them carries content: pronouns, auxiliaries,
    articles, prepositions, conjunctions and fillers ("It has.", "And the", "up"). Whisper
    hears a hummed backchannel as such words; a caller who answers over the bot ("Sales.",
    "Tomorrow.", "730.") says a word with content, however unsure the engine was of it."""
    tokens = words(text)
    return bool(tokens) and all(token in _FUNCTION_WORDS for token in tokens)


def says_nothing(text: str) -> bool:
    """True when ``text`` has words and says nothing to answer: only function words
    (:func:`is_only_function_words`: "It has.", "And the"), none that interrupts, and no
    question ("Are you there?" and "So?" are made of function words too, and ask)."""
    return (
        is_only_function_words(text)
        and not has_interrupting_word(text)
        and not text.rstrip().endswith("?")
    )


# -- the judgement ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TurnJudgement:
    """Whether a transcript reads like a finished turn, and why (see :func:`judge_turn`)."""

    complete: bool
    """True: answer after a short silence. False: wait longer for the caller to go on."""
    reason: str
    """Short and human-readable, for logs: "reads complete", "ends in the preposition 'for'"."""


@dataclass(frozen=True, slots=True)
class _Turn:
    """A transcript and what the rules ask of it, worked out once."""

    tokens: Sequence[str]
    clause: Sequence[str]
    """The words of the last clause (after the last ``. ? ! , ; :``), its opening discourse
    words ("so", "okay", "hi", "um") dropped; all the words when there is no punctuation."""
    asks: bool
    """The text ends in "?"."""
    answers: bool
    """The turn opens with an answer word ("Yes", "No", "Sure", "Oh yeah")."""
    amount: bool
    """The text ends in a currency amount ("$20", "£4.50")."""
    letter: bool
    """The text ends in a capital "A" after other words: the letter ("Plan A."), not the
    article, which Whisper writes in lower case there."""

    @property
    def last(self) -> str:
        return self.tokens[-1]

    @property
    def previous(self) -> str:
        """The word before the last ('' for a one-word turn)."""
        return self.tokens[-2] if len(self.tokens) > 1 else ""


# fmt: off
_HESITATIONS: Final = frozenset({
    "um", "umm", "uhm", "uh", "uhh", "er", "erm", "ah", "ahh", "eh", "hmm", "hmmm", "hm",
})
_ASSENT_PAIRS: Final = frozenset({("mm", "hmm"), ("mm", "hm"), ("um", "hmm"), ("um", "hm")})
"""Two sounds that together mean yes: neither is a hesitation there ("Mm-hmm.", "Um-hmm.")."""
_TRAILING_MARKS: Final = ("...", "\u2026", ",", ";", ":", "-", "\u2013", "\u2014")
_CLAUSE_BREAK: Final = re.compile(r"[.?!,;:\u2026]+(?:\s+|$)")
_AMOUNT_AT_END: Final = re.compile(r"[$£€¥]\s?\d[\d,]*(?:\.\d+)?\W*$")
_LETTER_A_AT_END: Final = re.compile(r"\bA\W*$")

_DISCOURSE: Final = frozenset({
    "and", "but", "so", "or", "then", "okay", "ok", "alright", "right", "well", "oh", "hi",
    "hello", "hey", "yes", "yeah", "yep", "no", "sorry", "actually", "also", "now", "please",
    "anyway", "look", "listen", "wondering", *_HESITATIONS,
})
"""Words that open a clause without being part of it ("Okay, so, um, can you")."""
_ANSWERS: Final = frozenset({
    "yes", "yeah", "yep", "yup", "ya", "yea", "no", "nope", "nah", "sure", "maybe", "probably",
    "perhaps", "definitely", "absolutely", "certainly",
})
_ANSWER_LEAD_INS: Final = frozenset({"oh", "well", *_HESITATIONS})

_WH: Final = frozenset({
    "what", "who", "whom", "which", "where", "when", "why", "how", "whose", "what's", "who's",
    "where's", "how's", "when's", "why's",
})
_STRANDING_WH: Final = frozenset({
    "what", "who", "whom", "which", "where", "whose", "whatever", "whoever", "what's", "who's",
    "where's",
})
"""Wh-words that can be the object of a preposition at the end ("What is this for?")."""

_AUXILIARIES: Final = frozenset({
    "am", "is", "are", "was", "were", "be", "been", "being", "do", "does", "did", "have", "has",
    "had", "can", "could", "will", "would", "shall", "should", "may", "might", "must",
})
_BE_FORMS: Final = frozenset({
    "am", "is", "are", "was", "were", "isn't", "aren't", "wasn't", "weren't",
})
_NEGATIVE_AUXILIARIES: Final = frozenset({
    "don't", "doesn't", "didn't", "can't", "couldn't", "won't", "wouldn't", "shouldn't",
    "isn't", "aren't", "wasn't", "weren't", "haven't", "hasn't", "hadn't",
})
_CONTRACTED_AUXILIARIES: Final = frozenset({
    "i'm", "i'd", "i'll", "i've", "you're", "you'd", "you'll", "you've", "he's", "he'd",
    "he'll", "she's", "she'd", "she'll", "it's", "it'd", "it'll", "we're", "we'd", "we'll",
    "we've", "they're", "they'd", "they'll", "they've", "that's", "that'd", "that'll",
    "there's", "there'll", "here's", "what's", "where's", "who's", "how's", "let's", "gonna",
    "wanna", "gotta",
})
"""A contracted auxiliary never ends an English sentence ("Yes, it's." is not English)."""
_SUBJECTS: Final = frozenset({
    "i", "you", "he", "she", "it", "we", "they", "there", "this", "that", "these", "those",
})
_SUBJECTS_WITHOUT_CONTRACTION: Final = frozenset({"this", "these", "those"})
"""Subjects said with an uncontracted "is"/"are" mid-sentence ("Hi, this is"); after the others
a full "is" or "are" is emphatic, so it ends the sentence ("It is.", "You are.")."""
_SUBJECT_WORDS: Final = _SUBJECTS | _CONTRACTED_AUXILIARIES
_NEGATIONS: Final = frozenset({"not", "never", *_NEGATIVE_AUXILIARIES})

_CONJUNCTIONS: Final = frozenset({
    "and", "or", "but", "so", "because", "cause", "cuz", "cos", "coz", "if", "when", "while",
    "although", "unless", "since", "whereas", "whether", "than", "as", "which", "who", "whom",
    "whose", "where", "plus", "nor", "that", "then", "also",
})
_SUBORDINATORS: Final = frozenset({
    "because", "cause", "cuz", "cos", "coz", "if", "while", "although", "unless", "since",
    "whereas", "whether", "than", "as",
})
"""Conjunctions that no question ends with either ("Could you tell me if?"); after the others a
"?" makes a question ("And?", "Or?", "Where?")."""
_PREPOSITIONS: Final = frozenset({
    "for", "to", "of", "in", "on", "at", "with", "from", "by", "about", "into", "onto", "over",
    "under", "after", "before", "between", "through", "during", "without", "around", "near",
    "towards", "toward", "until", "till", "via", "per", "like", "across", "against", "along",
    "among", "amongst", "behind", "beneath", "below", "beside", "besides", "beyond", "despite",
    "except", "including", "inside", "outside", "regarding", "concerning", "upon", "within",
    "throughout", "underneath", "versus", "unlike",
})
_DETERMINERS: Final = MappingProxyType({
    **dict.fromkeys(("a", "an", "the"), "article"),
    **dict.fromkeys(("my", "your", "our", "their", "its", "his"), "possessive"),
    "every": "determiner",
})
"""Words that are never the last of a noun phrase. "this", "that", "some", "any" and "her"
are not here: they are pronouns just as often ("I'll take that.", "I called her.")."""

_PARTICLES: Final = frozenset({
    "in", "on", "over", "around", "through", "by", "along", "across", "behind", "inside",
    "outside", "after", "before", "near", "under", "without", "within", "below", "beyond",
    "underneath", "besides",
})
"""Prepositions that also end sentences as adverbs ("hold on", "come in", "stop by")."""
_STATE_PARTICLES: Final = frozenset({
    "in", "on", "over", "around", "through", "inside", "outside", "behind",
})
"""Particles that also end a sentence after a copula ("I'm in.", "It's over.")."""
_FUNCTION_WORDS: Final = frozenset({
    *_HESITATIONS, *_SUBJECTS, *_AUXILIARIES, *_BE_FORMS, *_CONTRACTED_AUXILIARIES,
    *_CONJUNCTIONS, *_PREPOSITIONS, *_DETERMINERS, "me", "him", "her", "us", "them", "up",
    "out", "off", "down", "too", "yet", "just", "here", "oh", "ah", "ha", "hm", "mm",
})
"""Words that carry no content of their own (see :func:`is_only_function_words`)."""
_COPULAS: Final = frozenset({
    "is", "are", "was", "were", "am", "be", "been", "being", "i'm", "it's", "we're", "you're",
    "they're", "he's", "she's", "that's",
})
_PARTICLE_CLOSERS: Final = frozenset({
    # objects: "put it in", "let me in", "put you through"
    "it", "them", "me", "him", "us", "you",
    # adverbs: "over here", "come back in", "all over"
    "here", "there", "back", "already", "still", "all", "again",
    # verbs that take a particle
    "come", "comes", "came", "coming", "go", "goes", "went", "going", "gone", "get", "gets",
    "got", "getting", "put", "turn", "turned", "bring", "brought", "send", "sent", "hand",
    "handed", "hold", "holding", "hang", "log", "logged", "sign", "signed", "check", "checked",
    "stop", "stopped", "drop", "dropped", "pass", "passed", "move", "moved", "moving", "keep",
    "kept", "stay", "stayed", "look", "looked", "looking", "let", "fill", "filled", "plug",
    "plugged", "carry", "switch", "switched", "walk", "walked", "call", "called", "pull",
    "pulled", "fall", "fell", "left", "leave", "break", "broke", "run", "ran", "stand",
    "standing", "wait", "waiting", "sit", "sitting", "pop", "swing", "shop", "shopping", "ask",
    "asked", "think", "follow", "see", "seen", "done", "do",
})
_CLOSED_BY_PREVIOUS: Final[Mapping[str, frozenset[str]]] = MappingProxyType({
    # prepositions: "What for", "I've called before", "the day after", "from now on"
    "for": frozenset({"what"}),
    "before": frozenset({
        "ever", "never", "tried", "heard", "said", "told", "mentioned", "day", "week", "month",
        "year", "night", "time", "once", "twice", "long", "just", "used", "called", "been",
    }),
    "after": frozenset({
        "day", "week", "month", "year", "night", "morning", "shortly", "soon", "long", "ever",
    }),
    "on": frozenset({"then", "now", "so", "later", "early"}),
    "by": frozenset({"close", "nearby"}),
    "without": frozenset({"manage", "live"}),
    # "I'd like", "you like": the object rule decides; "if you like" then reads complete
    "like": frozenset({
        "i", "you", "we", "they", "he", "she", "would", "i'd", "you'd", "we'd", "they'd",
        "he'd", "she'd", "do", "don't", "didn't", "really",
    }),
    # conjunctions and wh-words that also end sentences
    "so": frozenset({
        "think", "thought", "hope", "guess", "believe", "suppose", "imagine", "expect", "say",
        "said", "told", "afraid", "if", "even", "not", "so", "is", "seems", "seemed", "why",
        "just",
    }),
    "while": frozenset({"a", "the", "little", "long", "whole"}),
    "since": frozenset({"ever", "long"}),
    "if": frozenset({"as"}),
    "cause": frozenset({
        "a", "the", "good", "great", "root", "main", "lost", "just", "common", "worthy", "no",
        "any", "this", "that", "same", "probable", "real",
    }),
    **dict.fromkeys(("which", "who", "whom", "whose", "where", "when"), frozenset({
        "know", "knew", "sure", "matter", "tell", "remember", "wonder", "ask", "idea", "decide",
        "decided", "care", "mind", "see", "say", "clue", "since",
    })),
})
"""Words before which a final conjunction or preposition ends the sentence after all. Never
"whether": "I don't know where." ends a sentence, "Do you know whether" does not."""
_OPENED_BY_PREVIOUS: Final[Mapping[str, frozenset[str]]] = MappingProxyType({
    "that": frozenset({
        "think", "thought", "so", "such", "now", "sure", "is", "was", "hope", "hoping", "guess",
        "realize", "realized", "assume", "suppose", "given", "except", "says", "saying", "mean",
        "means", "fact", "problem", "reason",
    }),
    "then": frozenset({"and", "but", "or"}),
    "also": frozenset({"and", "but"}),
})
"""Conjunctions that leave a sentence open only after these words: "I think that", but
"I'll take that"; "and then", but "see you then"."""
_IRREGULAR_PARTICIPLES: Final = frozenset({
    "paid", "done", "taken", "made", "seen", "given", "known", "sent", "thought", "told",
    "spoken", "heard", "brought", "bought", "set", "put", "cut", "dealt", "built", "sold",
})
"""Passive participles that strand a preposition in a yes/no question ("Was it paid for?")."""
_TO_ELLIPSIS: Final = frozenset({"happy", "glad", "able", "willing"})
"""Words after which a final "to" ends the sentence ("I'd be happy to.")."""
_WANTING: Final = frozenset({
    "want", "wanted", "like", "love", "need", "needed", "have", "going", "got", "try", "tried",
    "mean", "meant", "supposed", "used", "plan", "hope", "ought",
})
"""Verbs whose "to" ends a sentence in an answer or a negation ("No, I don't want to.")."""

_WANTS_OBJECT: Final = frozenset({
    ("i'd", "like"), ("we'd", "like"), ("i", "would", "like"), ("we", "would", "like"),
    ("i'd", "love"), ("we'd", "love"), ("i", "would", "love"), ("i'd", "prefer"),
    ("i", "want"), ("we", "want"), ("i", "wanted"), ("i", "need"), ("we", "need"),
    ("i", "needed"), ("i'll", "need"), ("i'll", "have"), ("we'll", "have"), ("i'll", "take"),
    ("we'll", "take"), ("i'll", "get"), ("can", "i", "get"), ("could", "i", "get"),
    ("can", "i", "have"), ("could", "i", "have"), ("may", "i", "have"), ("can", "we", "get"),
    ("could", "we", "get"), ("can", "we", "have"), ("could", "we", "have"),
    ("let", "me", "get"), ("let", "me", "have"), ("give", "me"), ("can", "you", "give", "me"),
    ("can", "you", "tell", "me"), ("could", "you", "tell", "me"), ("would", "you", "tell", "me"),
    ("can", "you", "show", "me"), ("could", "you", "show", "me"), ("can", "you", "send", "me"),
    ("could", "you", "send", "me"), ("would", "you", "send", "me"),
})
_FRONTED_OBJECT: Final = frozenset({
    "what", "whatever", "which", "whichever", "how", "all", "everything", "anything", "if", "as",
    "when", "whenever", "where", "wherever", "that", "else", "much", "many",
})
"""A word before "I need" that is (or brings) its object: "That's all I need.", "if you want"."""

_DIGIT_WORDS: Final = MappingProxyType({
    "zero": 0, "oh": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
    "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60,
    "seventy": 70, "eighty": 80, "ninety": 90,
})
_MAGNITUDES: Final = frozenset({"hundred", "thousand", "million", "billion"})
_REPEATS: Final = MappingProxyType({"double": 2, "triple": 3})
_DIGIT_TOKEN: Final = re.compile(r"\d+(?:[:.]\d+)*")
_DOTTED_DIGITS: Final = re.compile(r"\d(?:\.\d)+")
_NUMBER_CONTEXT: Final = frozenset({
    "number", "numbers", "phone", "cell", "mobile", "code", "account", "card", "zip",
    "postcode", "pin", "id", "reference", "confirmation", "order", "extension", "ext", "digits",
    "ending", "tracking", "policy", "member", "routing", "call", "reach", "dial", "text",
})
_WEAK_NUMBER_CONTEXT: Final = frozenset({"is", "are", "was", "it's", "that's"})
"""Read-out context too, but not before a year ("It was 1998.")."""
_CONTEXT_WINDOW: Final = 4
_TIME_PREPOSITIONS: Final = frozenset({
    "at", "by", "around", "until", "till", "before", "after", "about",
})
"""Words before a clock time: "at 7 30" (Whisper's digits for "seven thirty") is a time, not
digits being read out; after "call", "number" and the like it stays digits."""
_FULL_NUMBER_DIGITS: Final = 10
# fmt: on


_ADDRESS_CONTEXT: Final = frozenset({"address", "live", "lives", "living", "located", "house"})
"""Words after which even a short number is read out unfinished: a house number, the street
to come ("The address is 12", "I live at 4")."""
_CODE_PART: Final = re.compile(r"(?=[a-z]*\d)(?=\d*[a-z])[a-z0-9]{2,8}")
"""A word of letters and digits both, as Whisper writes part of a code ("1z", "c99")."""
_SEPARATORS: Final = frozenset({"dot", "underscore", "dash", "hyphen", "slash", "backslash"})
_SAYING: Final = frozenset({"says", "reads", "states", "displays"})
_NAMING: Final = frozenset({"called", "named", "spelled", "spelt"})
_MONTHS: Final = frozenset({
    "january", "february", "march", "april", "may", "june", "july", "august", "september",
    "october", "november", "december",
})  # fmt: skip
_LAST_FOUR: Final = frozenset({"ending", "ends", "ended", "last"})
"""Before four digits, these say the digits are a card's last four: nothing more to come."""
_CODE_PIECES_CHARS: Final = 5
"""A code read out in pieces ("1Z 9", "X 4") is this short when it is cut off."""
_DATE_SUBJECTS: Final = frozenset({"birth", "birthday", "born", "date", "dob", "anniversary"})
_PEOPLE: Final = frozenset({("i",), ("he",), ("she",), ("we",), ("they",), ("you",)})
_DATE_OPENERS: Final = frozenset({"is", "was", "on", "born"})
"""Before a month, these leave its day to come ("My date of birth is March"); "in" does not."""
_MODALS: Final = frozenset({"can", "could", "will", "would", "might", "may", "should"})
_NEGATIVE_MODALS: Final = frozenset({
    "can't", "couldn't", "won't", "wouldn't", "shouldn't", "mightn't", "mustn't", "must",
})  # fmt: skip
"""Modals (and "must") that end a sentence before "have": "You shouldn't have."."""
_HOPING: Final = frozenset({"hoping", "wondering", "wonder", "wondered"})
"""Before "you could" (or "if you could"), these leave what the caller hopes for to come;
"I hope you can." and "Let me know if you can." end where they are."""
_TAKES_AN_OBJECT: Final = frozenset({
    "get", "have", "take", "need", "want", "like", "order", "book", "buy", "make", "add",
    "reserve", "send", "bring", "for", "with", "of", "to", "in", "on", "at", "about", "from",
})  # fmt: skip
"""After these a final capital "A" is the article Whisper capitalised, not the letter."""
_LONG_IDENTIFIERS: Final = frozenset({
    "account", "card", "phone", "cell", "mobile", "zip", "postcode", "routing",
    "policy", "member", "confirmation", "tracking", "reference", "social", "license",
    "licence", "serial", "passport",
})  # fmt: skip
"""Numbers that are never one or two digits long: a short one is still being read out."""
_BARE_REQUESTS: Final = frozenset({
    ("can", "you"), ("could", "you"), ("would", "you"), ("will", "you"),
})  # fmt: skip
"""A request without its verb, asked: "Could you?" is how a caller starts asking for something."""

_MAX_VALUE_DIGITS: Final = 18
"""Longer runs of digits are read as digits only (Python refuses to parse thousands of them)."""
UNSURE_LAST_WORD: Final = -0.15
"""A last word whose least likely token has a lower log-probability is one the speech-to-text
engine was unsure of."""
VERY_UNSURE_LAST_WORD: Final = -1.0
"""Below this the engine was guessing at the last word: it may be a cut-off word heard as
another, so a turn of three words or more waits for more whatever the word is."""
_MISHEARD_ENDINGS: Final = frozenset({
    "there", "their", "that", "it", "its", "mine", "them", "this", "then", "than",
    "butt", "bat", "four", "two", "too", "you", "your",
})  # fmt: skip
"""What Whisper makes of a function word cut off at the end of a fragment: "near the" → "near
there", "to my" → "to mine", "but" → "butt", "if" → "that", "for" → "four". Not "in" (for
"and"): too many turns end in one ("walk in", "log in")."""


def judge_turn(
    text: str, *, last_word_logprob: float | None = None, alternatives: Sequence[str] = ()
) -> TurnJudgement:
    """Judge whether the transcript ``text`` reads like a finished turn (module docstring).

    ``last_word_logprob`` is how sure the speech-to-text engine was of the last word (the
    log-probability of its least likely token, when the engine says): an unsure last word that
    is what a cut-off function word is often misheard as ("…near there" for "…near the")
    makes a turn of three words or more incomplete. ``alternatives`` are other readings of the
    same audio that the engine found nearly as likely: when ``text`` reads complete but one
    with other words trails off ("Can I get a table four." beside "Can I get a table for"),
    the turn is incomplete too, since a reply too early costs more than a wait too long.

    Text without words is complete ("no words": there is nothing to wait for). Never raises;
    any text gets a judgement, in a few tens of microseconds.
    """
    tokens = words(text)
    if not tokens:
        return TurnJudgement(True, "no words")
    if (
        last_word_logprob is not None
        and last_word_logprob < UNSURE_LAST_WORD
        and len(tokens) >= 3
        and tokens[-1] in _MISHEARD_ENDINGS
    ):
        return TurnJudgement(False, f"the last word {tokens[-1]!r} is unsure: a cut-off word?")
    if (
        last_word_logprob is not None
        and last_word_logprob < VERY_UNSURE_LAST_WORD
        and len(tokens) >= 3
        and not _ends_in_a_name(text)
    ):
        return TurnJudgement(False, f"the last word {tokens[-1]!r} is a guess: a cut-off word?")
    if is_only_fillers(text):
        return TurnJudgement(False, "only fillers")
    mark = _trailing_mark(text)
    if mark is not None:
        return TurnJudgement(False, f"trails off ({mark!r})")
    turn = _Turn(
        tokens=tuple(tokens),
        clause=tuple(_opening_dropped(_last_clause(text) or tokens)),
        asks=text.rstrip().endswith("?"),
        answers=_opens_with_answer(tokens),
        amount=_AMOUNT_AT_END.search(text) is not None,
        letter=len(tokens) > 1 and _LETTER_A_AT_END.search(text) is not None,
    )
    for rule in _RULES:
        reason = rule(turn)
        if reason is not None:
            return TurnJudgement(False, reason)
    for other in alternatives:
        if words(other) != tokens and not (judged := judge_turn(other)).complete:
            return TurnJudgement(False, f"also heard as {other!r}: {judged.reason}")
    return TurnJudgement(True, "reads complete")


# -- what a turn is made of ------------------------------------------------------------------


def _is_hesitation(tokens: Sequence[str], i: int) -> bool:
    """Whether ``tokens[i]`` is a filler, and not half of an "mm-hmm"."""
    if tokens[i] not in _HESITATIONS:
        return False
    before = (tokens[i - 1], tokens[i]) if i > 0 else None
    after = (tokens[i], tokens[i + 1]) if i + 1 < len(tokens) else None
    return before not in _ASSENT_PAIRS and after not in _ASSENT_PAIRS


def _trailing_mark(text: str) -> str | None:
    """The mark the text trails off with ("..." for an ellipsis in any spelling), or None."""
    tail = text.rstrip()
    for mark in _TRAILING_MARKS:
        if tail.endswith(mark):
            return "..." if mark == "\u2026" else mark
    return None


def _last_clause(text: str) -> list[str]:
    """The words after the last punctuation that ends a clause ([] if none have words)."""
    for part in reversed(_CLAUSE_BREAK.split(text)):
        if found := words(part):
            return found
    return []


def _opening_dropped(clause: Sequence[str]) -> Sequence[str]:
    """``clause`` without its opening discourse words (all of it if that is all there is)."""
    for i, word in enumerate(clause):
        if word not in _DISCOURSE:
            return clause[i:]
    return clause


def _opens_with_answer(tokens: Sequence[str]) -> bool:
    for word in tokens:
        if word not in _ANSWER_LEAD_INS:
            return word in _ANSWERS
    return False


# -- the rules: each returns why the turn is incomplete, or None -----------------------------


def _unfinished_number(turn: _Turn) -> str | None:
    """Digits being read out and not finished: "555-12", "five five five", "My PIN is 12 34"."""
    run = _number_run(turn.tokens)
    if not run:
        return None
    before = turn.tokens[-len(run) - _CONTEXT_WINDOW : -len(run)]
    strong_context = not _NUMBER_CONTEXT.isdisjoint(before)
    if strong_context:  # "The zip code is 9.4": Whisper's dots between digits read out
        run = [part for word in run for part in _dotted_digits(word)]
    groups = _number_groups(run)
    reason = f"a number being read out ({' '.join(run)!r})"
    if sum(group.digits for group in groups) >= _FULL_NUMBER_DIGITS:
        return None
    if len(groups) == 1:
        (group,) = groups
        address = len(before) >= 2 and before[-1] in ("is", "at") and before[-2] in _ADDRESS_CONTEXT
        if address and not group.quantity and group.digits <= 5:
            return reason  # a house number: the street is to come
        identifier = _names_a_long_number(before)
        if identifier and not group.quantity and group.digits < 3:
            return reason  # "My account number is 47": more digits are to come
        if group.quantity or turn.amount or not 3 <= group.digits <= 9:
            return None
        if group.digits == 4 and not _LAST_FOUR.isdisjoint(before):
            return None  # "the card ending in 4242": the last four digits, all of them
        if strong_context or (not group.year and not _WEAK_NUMBER_CONTEXT.isdisjoint(before)):
            return reason
        return None
    if _time_or_year(groups) and not strong_context:
        return None
    if before and before[-1] in _TIME_PREPOSITIONS and _clock_time(groups) and not strong_context:
        return None  # "We'll be there at 7 30.": half past seven
    if _local_phone_number(groups):
        return None
    return reason


def _ends_in_filler(turn: _Turn) -> str | None:
    if _is_hesitation(turn.tokens, len(turn.tokens) - 1):
        return f"ends in the filler {turn.last!r}"
    return None


def _ends_in_conjunction(turn: _Turn) -> str | None:
    """Ends in "and", "because", "if"...; not "I think so", "for a while", "I don't know who"."""
    word, previous = turn.last, turn.previous
    if word not in _CONJUNCTIONS or (turn.asks and word not in _SUBORDINATORS):
        return None
    if word in _OPENED_BY_PREVIOUS:
        if previous not in _OPENED_BY_PREVIOUS[word] or turn.clause[0] in _WH:
            return None
    elif previous in _CLOSED_BY_PREVIOUS.get(word, ()) or _is_wh_question_word(turn):
        return None
    return f"ends in the conjunction {word!r}"


def _ends_in_preposition(turn: _Turn) -> str | None:
    """Ends in "for", "with", "to"...; not "hold on", "Where are you from", "Happy to"."""
    word, previous = turn.last, turn.previous
    if word not in _PREPOSITIONS or _is_particle(word, previous):
        return None
    if turn.asks and not _yes_no_question_without_stranding(turn):
        return None
    if previous in _CLOSED_BY_PREVIOUS.get(word, ()) or _strands_preposition(turn.clause):
        return None
    if word == "to" and _to_ends_sentence(turn):
        return None
    if word == "of" and list(turn.clause) == [previous, "of"] and previous in ("kind", "sort"):
        return None  # "Kind of.", "Yeah, sort of."
    return f"ends in the preposition {word!r}"


def _ends_in_determiner(turn: _Turn) -> str | None:
    kind = _DETERMINERS.get(turn.last)
    article = turn.asks and turn.previous in _TAKES_AN_OBJECT  # "Can I also get A?"
    if kind is None or (turn.last == "a" and turn.letter and not article):
        return None  # "Plan A.", but not "Can I also get A?"
    return f"ends in the {kind} {turn.last!r}"


def _ends_in_auxiliary(turn: _Turn) -> str | None:
    """Ends in "I'd", "it's", "My name is", "I was"; not "Yes, it is.", "Here it is."."""
    word, previous = turn.last, turn.previous
    reason = f"ends in the auxiliary {word!r}"
    if word in _CONTRACTED_AUXILIARIES:
        return reason
    if word not in _AUXILIARIES or turn.answers:
        return None
    if _asks_with_a_bare_modal(turn):
        return reason  # with or without its "?": the word order asks
    if turn.asks:
        return None
    if word == "have" and previous in _MODALS | _NEGATIVE_MODALS:
        return None  # "You shouldn't have.", "I could have."
    if word in ("be", "been", "being") or (previous not in _SUBJECTS and previous != "please"):
        return reason  # "That would be", "My name is", but "Please do."
    opens_clause = list(turn.clause) == [previous, word]
    if opens_clause and (word in ("was", "were") or previous in _SUBJECTS_WITHOUT_CONTRACTION):
        return reason  # "I was", "Hi, this is"
    if word in _MODALS and _hopes_for_more(turn.tokens[:-2]):
        return reason  # "I was hoping you could", "I was wondering if you can"
    return None


def _ends_in_inverted_auxiliary(turn: _Turn) -> str | None:
    """Ends in "Can you", "Is there", "What time do you"; not "How are you", "So do I"."""
    word, previous = turn.last, turn.previous
    if turn.asks and tuple(turn.clause) in _BARE_REQUESTS:
        return f"ends in {previous} {word!r} with no verb"  # "Could you?": what, is to come
    if turn.asks or word not in _SUBJECTS or len(turn.clause) < 2:
        return None
    if previous not in _AUXILIARIES and previous not in _NEGATIVE_AUXILIARIES:
        return None
    if turn.clause[-2] != previous or turn.tokens[-3:-2] in (("so",), ("neither",), ("nor",)):
        return None  # "So do I."
    head = turn.clause[:-2]
    reason = f"ends in {previous} {word!r} with no verb"
    if not head or head[-1] in _DISCOURSE:
        return reason  # "Can you", "I was wondering could you"
    if not _WH.isdisjoint(head[-2:]) and previous not in _BE_FORMS:
        return reason  # "What time do you", but not "How are you"
    return None


def _wants_object(turn: _Turn) -> str | None:
    """Ends in "I'd like", "can I get", "I need"; not "That's all I need", "What can I get"."""
    for size in (4, 3, 2):
        tail = tuple(turn.tokens[-size:])
        if len(tail) == size and tail in _WANTS_OBJECT:
            before = turn.tokens[-size - 1] if len(turn.tokens) > size else ""
            clause_head = turn.clause[0] if turn.clause else ""
            if before in _FRONTED_OBJECT or clause_head in _WH:
                return None
            return f"{' '.join(tail)!r} still needs its object"
    return None


def _unfinished_code(turn: _Turn) -> str | None:
    """A code of letters and digits being read out: "The tracking number is 1Z 9", "My
    booking reference is AB12", "The code is X 4"; not "It's room 4B" (no number context right
    before it)."""
    start = len(turn.tokens)
    while start > 0 and _is_code_word(turn.tokens[start - 1]):
        start -= 1
    run = turn.tokens[start:]
    letters = any(not word.isdigit() for word in run)
    if not letters or not any(char.isdigit() for word in run for char in word):
        return None
    if len(run) < 2 or sum(len(word) for word in run) > _CODE_PIECES_CHARS:
        return None  # one code said whole ("14F", "X7K9P2") is complete
    before = turn.tokens[max(0, start - _CONTEXT_WINDOW) : start]
    if _NUMBER_CONTEXT.isdisjoint(before):
        return None
    return f"a code being read out ({' '.join(run)!r})"


def _asks_with_a_bare_modal(turn: _Turn) -> bool:
    """A yes/no question whose last clause stops at its modal: "Is there any way you could?",
    "Do you think we can?"; not "Could you?" (a bare request, its own rule) or "What can I?"."""
    clause = turn.clause
    if turn.last not in _MODALS or turn.previous not in _SUBJECTS or len(clause) < 4:
        return False
    inverted = clause[0] in _AUXILIARIES | _NEGATIVE_AUXILIARIES and clause[1] in _SUBJECTS
    return inverted and _NEGATIONS.isdisjoint(clause)


def _hopes_for_more(head: Sequence[str]) -> bool:
    """``head`` (the words before "you could") ends in "hoping" or "wondering (if)"."""
    if head[-1:] and head[-1] in _HOPING:
        return True
    return len(head) >= 2 and head[-1] in ("if", "whether") and head[-2] in _HOPING


def _names_a_long_number(before: Sequence[str]) -> bool:
    """ "account number is", "card number": a number that is never one or two digits."""
    tail = list(before[-3:])
    if tail[-1:] == ["is"]:
        tail = tail[:-1]
    return len(tail) >= 2 and tail[-1] == "number" and tail[-2] in _LONG_IDENTIFIERS


def _ends_in_a_name(text: str) -> bool:
    """The last word is capitalised mid-sentence: a name, which Whisper often spells unsurely."""
    found = re.findall(r"[^\W\d_][\w']*", text)
    return len(found) > 1 and found[-1][0].isupper() and found[-1] not in ("I", "A")


def _is_code_word(word: str) -> bool:
    """Digits, letters and digits ("c99"), or a letter on its own that is not a word ("x")."""
    if word.isdigit() or _CODE_PART.fullmatch(word):
        return True
    return len(word) == 1 and word.isalpha() and word not in ("a", "i")


def _ends_in_separator(turn: _Turn) -> str | None:
    """An address or code being spelled out stops at "dot", "underscore", "dash": more follows."""
    if turn.last in _SEPARATORS and len(turn.tokens) > 1 and turn.previous not in _DETERMINERS:
        return f"ends in {turn.last!r}: the rest is being spelled out"
    return None


def _waits_for_content(turn: _Turn) -> str | None:
    """Ends where what a message says, a name or a day must follow: "The error message says",
    "It's called", "My date of birth is March"; not "That's what it says", "in March"."""
    word, previous = turn.last, turn.previous
    if turn.clause and (turn.clause[0] in _WH or not _FRONTED_OBJECT.isdisjoint(turn.clause[:-2])):
        return None
    if word in _SAYING:
        return f"ends in {word!r}: what it says is to come"
    if word in _NAMING and previous in _COPULAS and tuple(turn.tokens[-3:-2]) not in _PEOPLE:
        return f"ends in {previous} {word!r}: the name is to come"
    dated = not _DATE_SUBJECTS.isdisjoint(turn.tokens)
    if word in _MONTHS and previous in _DATE_OPENERS and dated:
        return f"ends in {previous} {word!r}: the day is to come"
    return None


_RULES: Final[tuple[Callable[[_Turn], str | None], ...]] = (
    _unfinished_number,
    _unfinished_code,
    _ends_in_separator,
    _waits_for_content,
    _ends_in_filler,
    _ends_in_conjunction,
    _ends_in_preposition,
    _ends_in_determiner,
    _wants_object,
    _ends_in_auxiliary,
    _ends_in_inverted_auxiliary,
)


# -- helpers of the rules --------------------------------------------------------------------


def _is_wh_question_word(turn: _Turn) -> bool:
    """Whether the turn is a wh-word alone, as a question ("Where.", "Okay, which one.")."""
    rest = _opening_dropped(turn.tokens)
    return rest[0] in _WH and (len(rest) == 1 or list(rest[1:]) == ["one"])


def _is_particle(word: str, previous: str) -> bool:
    """Whether the preposition ``word`` ends the sentence as an adverb after ``previous``."""
    if word not in _PARTICLES:
        return False
    return previous in _PARTICLE_CLOSERS or (word in _STATE_PARTICLES and previous in _COPULAS)


def _strands_preposition(clause: Sequence[str]) -> bool:
    """Whether the clause's last word is a preposition whose object is a wh-word before it.

    A wh-question ("What is this for", "Which one should I go with", "Where are you from"), or
    a wh-clause with its subject right after the wh-word and nothing between that opens a new
    phrase ("That's what I was looking for", "I don't know who to talk to"). Not "What I need
    is a table for": the article shows the preposition has an object still to come.
    """
    if len(clause) >= 2 and clause[0] in _STRANDING_WH:
        if clause[0].endswith("'s") or clause[1] in _AUXILIARIES:
            return True
        if len(clause) >= 3 and clause[2] in _AUXILIARIES:
            return True  # "Which one should I go with"
    for i, word in enumerate(clause[:-2]):
        if word in _STRANDING_WH and (clause[i + 1] in _SUBJECT_WORDS or clause[i + 1] == "to"):
            between = clause[i + 2 : -1]
            if _DETERMINERS.keys().isdisjoint(between) and _CONJUNCTIONS.isdisjoint(between):
                return True
    return False


def _yes_no_question_without_stranding(turn: _Turn) -> bool:
    """Whether the clause is a yes/no question that cannot end in a preposition.

    A question opened by an inverted auxiliary ("Can I get a large pizza with?") strands a
    preposition only with a wh-word ("Is that what you asked for?") or in the passive ("Was it
    paid for?"); without either, its "?" is intonation on a fragment. Echo questions ("You're
    calling from?") and wh-questions are left alone.
    """
    clause, previous = turn.clause, turn.previous
    inverted = len(clause) >= 3 and clause[0] in _AUXILIARIES | _NEGATIVE_AUXILIARIES
    inverted = inverted and clause[1] in _SUBJECTS
    participle = previous.endswith("ed") or previous in _IRREGULAR_PARTICIPLES
    return inverted and _WH.isdisjoint(clause) and not participle


def _to_ends_sentence(turn: _Turn) -> bool:
    """True for "I'd be happy to.", "No, I don't want to.", "Yes, I'd love to."; not "I want to"."""
    previous = turn.previous
    if previous in _TO_ELLIPSIS:
        return True
    return previous in _WANTING and (turn.answers or not _NEGATIONS.isdisjoint(turn.tokens[-5:-1]))


@dataclass(frozen=True, slots=True)
class _Group:
    """One group of a number: "555", "twenty five", "double five", "two hundred", "7:30"."""

    digits: int
    value: int | None = None
    """The group's value, when it is a plain whole number (not "7:30", not "two hundred")."""
    quantity: bool = False
    """A time, a decimal or a magnitude: read as an amount, not as digits."""
    spoken: bool = True
    """Said in words ("five") rather than written in digits ("5")."""

    @property
    def year(self) -> bool:
        return self.value is not None and 1900 <= self.value <= 2099


def _dotted_digits(word: str) -> list[str]:
    """ "9.4" -> ["9", "4"]: single digits with dots between, as Whisper writes digits said
    one at a time; any other word as it is."""
    return word.split(".") if _DOTTED_DIGITS.fullmatch(word) else [word]


def _number_run(tokens: Sequence[str]) -> Sequence[str]:
    """The numbers at the end of the turn ("my number is 555 12" -> ``["555", "12"]``).

    An "oh" counts only after another number ("five oh one"), not at the run's start ("Oh.").
    """
    start = len(tokens)
    while start > 0 and _is_number_word(tokens[start - 1]):
        start -= 1
    while start < len(tokens) and tokens[start] == "oh":
        start += 1
    run = tokens[start:]
    return run if any(word not in _REPEATS for word in run) else []


def _is_number_word(word: str) -> bool:
    return (
        word in _DIGIT_WORDS
        or word in _MAGNITUDES
        or word in _REPEATS
        or _DIGIT_TOKEN.fullmatch(word) is not None
    )


def _number_groups(run: Sequence[str]) -> list[_Group]:
    """Split a run of numbers into the groups a listener hears.

    Digit tokens are groups as written ("555", "12", "7:30"); spoken single digits and teens
    are a group each ("five five five"); a tens word takes a following unit ("twenty five");
    "double five" is one group of two digits; "hundred" or "thousand" makes the group before
    it, and the words after it, one quantity ("two hundred fifty").
    """
    groups: list[_Group] = []
    repeat = 0
    for word in run:
        last = groups[-1] if groups else None
        if word in _REPEATS:
            repeat = _REPEATS[word]
        elif word in _MAGNITUDES:
            if last is not None and last.value is not None:
                groups[-1] = _Group(last.digits + 2, quantity=True)
            else:
                groups.append(_Group(3, quantity=True))
        elif word in _DIGIT_WORDS:
            value = _DIGIT_WORDS[word]
            if repeat:
                groups.append(_Group(repeat))
                repeat = 0
            elif last is not None and last.spoken and last.quantity:
                pass  # "two hundred fifty": still the same amount
            elif (
                last is not None and last.value is not None and _takes_unit(last) and 0 < value < 10
            ):
                groups[-1] = _Group(2, last.value + value)
            else:
                groups.append(_Group(1 if value < 10 else 2, value))
        else:
            digits = sum(char.isdigit() for char in word)
            plain = word.isdigit() and digits <= _MAX_VALUE_DIGITS
            groups.append(_Group(digits, int(word) if plain else None, not plain, spoken=False))
    if repeat:
        groups.append(_Group(repeat))  # "five double": the doubled digit is still to come
    return groups


def _takes_unit(group: _Group) -> bool:
    """A spoken tens word still open for its unit ("twenty" before "five", not "oh")."""
    return group.spoken and group.value in range(20, 100, 10)


def _time_or_year(groups: Sequence[_Group]) -> bool:
    """Two spoken groups that read as a clock time ("seven thirty") or a year ("nineteen
    eighty", "twenty twenty four")."""
    if len(groups) != 2 or not all(group.spoken for group in groups):
        return False
    hour, rest = groups[0].value, groups[1].value
    if hour is None or rest is None or groups[0].digits > 2 or groups[1].digits != 2:
        return False
    clock = 1 <= hour <= 12 and 10 <= rest <= 59
    year = 10 <= hour <= 20 and groups[0].digits == 2 and 10 <= rest <= 99
    return clock or year


def _clock_time(groups: Sequence[_Group]) -> bool:
    """Two groups that read as hours and minutes, in words or digits ("7 30", "19 05")."""
    if len(groups) != 2:
        return False
    hour, minutes = groups[0].value, groups[1].value
    return (
        hour is not None
        and minutes is not None
        and groups[0].digits <= 2
        and groups[1].digits == 2
        and 0 <= hour <= 23
        and 0 <= minutes <= 59
    )


def _local_phone_number(groups: Sequence[_Group]) -> bool:
    """Whisper's "555-1234": a three-digit group then a four-digit one, seven digits in all."""
    return [group.digits for group in groups] == [3, 4] and not any(
        group.spoken or group.quantity for group in groups
    )
