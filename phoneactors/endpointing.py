"""Turn-taking from words: has the caller finished, and is this a backchannel or a barge-in?

Pure and synchronous, no clocks and no event loop: text in, a decision out. The runtime
transcribes the caller's audio early, at a short pause (about 120 ms of silence), and asks
:func:`judge_turn` whether the words read like a finished turn: if they do, it answers after a
short silence; if they trail off, it waits longer (1.5 to 2 s) for the caller to go on. While
the bot is speaking, :func:`is_backchannel` tells a listener's "uh-huh" or "okay" (keep talking)
from a real interruption ("no, wait"). These are the English defaults; a
:class:`~phoneactors.Conversation` can replace either through its hooks.

The judgement of sounds over the bot lives in :mod:`phoneactors.backchannel` (its public names
are re-exported here), the words the rules read in :mod:`phoneactors.vocabulary`, the rules for
numbers, codes and addresses being read out in :mod:`phoneactors.read_out`, and the grouping of
numbers read out in :mod:`phoneactors.numbers`.

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
  with no verb ("Can you"), a subject with no verb ("So I", "And then we"), or a verb still
  waiting for its object ("I'd like", "can I get");
* each of those word rules knows the common ways the word ends a sentence after all and then
  stays quiet: a particle ("hold on", "log in"), an ellipsis ("Yes, it is.", "I think you are.",
  "I'd be happy to"), a stranded preposition in a question ("What is this for?", "Where are
  you from", "That's what I was looking for"), "I think so", "not yet", "that one".

Everything else **reads complete**. A final "." is no evidence either way (Whisper puts one on
fragments too); a final "?" is taken as a question, which ends the turn unless its last word
can never end one (an article, a filler, a number being read out, "I'd", "can I get"), or it is
a yes/no question ending in a preposition it cannot strand ("Can I get a pizza with?": Whisper
writes the caller's rising intonation as "?"), or it ends in a subordinating conjunction
("Could you tell me if?") or in the subject just after one ("Is it cheaper if I?").
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from .backchannel import (
    BACKCHANNEL_HINT,
    DEFAULT_BACKCHANNELS,
    has_interrupting_word,
    is_backchannel,
    is_only_fillers,
    is_only_function_words,
    may_be_misheard_backchannel,
    says_nothing,
    spoken_words,
)
from .read_out import ends_in_separator, unfinished_code, unfinished_number
from .vocabulary import (
    ANSWER_LEAD_INS,
    ANSWERS,
    AUXILIARIES,
    BARE_REQUESTS,
    BE_FORMS,
    CLOSED_BY_PREVIOUS,
    COMPARING,
    CONJUNCTIONS,
    CONTRACTED_AUXILIARIES,
    COPULAS,
    DATE_OPENERS,
    DATE_SUBJECTS,
    DETERMINERS,
    DISCOURSE,
    FRONTED_OBJECT,
    HOPING,
    IRREGULAR_PARTICIPLES,
    MISHEARD_ENDINGS,
    MODALS,
    MONTHS,
    NAMING,
    NEGATIONS,
    NEGATIVE_AUXILIARIES,
    NEGATIVE_MODALS,
    NOMINATIVE_PRONOUNS,
    OPENED_BY_PREVIOUS,
    PARTICLE_CLOSERS,
    PARTICLES,
    PEOPLE,
    PREPOSITIONS,
    SAYING,
    STATE_PARTICLES,
    STRANDING_WH,
    SUBJECT_WORDS,
    SUBJECTS,
    SUBJECTS_WITHOUT_CONTRACTION,
    SUBORDINATORS,
    TAKES_AN_OBJECT,
    TO_ELLIPSIS,
    WANTING,
    WANTS_OBJECT,
    WH,
    is_hesitation,
    words,
)

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
_TRAILING_MARKS: Final = ("...", "\u2026", ",", ";", ":", "-", "\u2013", "\u2014")
_CLAUSE_BREAK: Final = re.compile(r"[.?!,;:\u2026]+(?:\s+|$)")
_AMOUNT_AT_END: Final = re.compile(r"[$£€¥]\s?\d[\d,]*(?:\.\d+)?\W*$")
_LETTER_A_AT_END: Final = re.compile(r"\bA\W*$")
# fmt: on


UNSURE_LAST_WORD: Final = -0.15
"""A last word whose least likely token has a lower log-probability is one the speech-to-text
engine was unsure of."""
VERY_UNSURE_LAST_WORD: Final = -1.0
"""Below this the engine was guessing at the last word: it may be a cut-off word heard as
another, so a turn of three words or more waits for more whatever the word is."""


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
        and tokens[-1] in MISHEARD_ENDINGS
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
        if word not in DISCOURSE:
            return clause[i:]
    return clause


def _opens_with_answer(tokens: Sequence[str]) -> bool:
    for word in tokens:
        if word not in ANSWER_LEAD_INS:
            return word in ANSWERS
    return False


# -- the rules: each returns why the turn is incomplete, or None -----------------------------


def _ends_in_filler(turn: _Turn) -> str | None:
    if is_hesitation(turn.tokens, len(turn.tokens) - 1):
        return f"ends in the filler {turn.last!r}"
    return None


def _ends_in_conjunction(turn: _Turn) -> str | None:
    """Ends in "and", "because", "if"...; not "I think so", "for a while", "I don't know who"."""
    word, previous = turn.last, turn.previous
    if word not in CONJUNCTIONS or (turn.asks and word not in SUBORDINATORS):
        return None
    if word in OPENED_BY_PREVIOUS:
        if previous not in OPENED_BY_PREVIOUS[word] or turn.clause[0] in WH:
            return None
    elif previous in CLOSED_BY_PREVIOUS.get(word, ()) or _is_wh_question_word(turn):
        return None
    return f"ends in the conjunction {word!r}"


def _ends_in_preposition(turn: _Turn) -> str | None:
    """Ends in "for", "with", "to"...; not "hold on", "Where are you from", "Happy to"."""
    word, previous = turn.last, turn.previous
    if word not in PREPOSITIONS or _is_particle(word, previous):
        return None
    if turn.asks and not _yes_no_question_without_stranding(turn):
        return None
    if previous in CLOSED_BY_PREVIOUS.get(word, ()) or _strands_preposition(turn.clause):
        return None
    if word == "to" and _to_ends_sentence(turn):
        return None
    if word == "of" and list(turn.clause) == [previous, "of"] and previous in ("kind", "sort"):
        return None  # "Kind of.", "Yeah, sort of."
    return f"ends in the preposition {word!r}"


def _ends_in_determiner(turn: _Turn) -> str | None:
    kind = DETERMINERS.get(turn.last)
    article = turn.asks and turn.previous in TAKES_AN_OBJECT  # "Can I also get A?"
    if kind is None or (turn.last == "a" and turn.letter and not article):
        return None  # "Plan A.", but not "Can I also get A?"
    return f"ends in the {kind} {turn.last!r}"


def _ends_in_auxiliary(turn: _Turn) -> str | None:
    """Ends in "I'd", "it's", "My name is", "I was"; not "Yes, it is.", "Here it is."."""
    word, previous = turn.last, turn.previous
    reason = f"ends in the auxiliary {word!r}"
    if word in CONTRACTED_AUXILIARIES:
        return reason
    if word not in AUXILIARIES or turn.answers:
        return None
    if _asks_with_a_bare_modal(turn):
        return reason  # with or without its "?": the word order asks
    if turn.asks:
        return None
    if word == "have" and previous in MODALS | NEGATIVE_MODALS:
        return None  # "You shouldn't have.", "I could have."
    if word in ("be", "been", "being") or (previous not in SUBJECTS and previous != "please"):
        return reason  # "That would be", "My name is", but "Please do."
    opens_clause = list(turn.clause) == [previous, word]
    if opens_clause and (word in ("was", "were") or previous in SUBJECTS_WITHOUT_CONTRACTION):
        return reason  # "I was", "Hi, this is"
    if word in MODALS and _hopes_for_more(turn.tokens[:-2]):
        return reason  # "I was hoping you could", "I was wondering if you can"
    return None


def _ends_in_inverted_auxiliary(turn: _Turn) -> str | None:
    """Ends in "Can you", "Is there", "What time do you"; not "How are you", "So do I"."""
    word, previous = turn.last, turn.previous
    if turn.asks and tuple(turn.clause) in BARE_REQUESTS:
        return f"ends in {previous} {word!r} with no verb"  # "Could you?": what, is to come
    if turn.asks or word not in SUBJECTS or len(turn.clause) < 2:
        return None
    if previous not in AUXILIARIES and previous not in NEGATIVE_AUXILIARIES:
        return None
    if turn.clause[-2] != previous or turn.tokens[-3:-2] in (("so",), ("neither",), ("nor",)):
        return None  # "So do I."
    head = turn.clause[:-2]
    reason = f"ends in {previous} {word!r} with no verb"
    if not head or head[-1] in DISCOURSE:
        return reason  # "Can you", "I was wondering could you"
    if not WH.isdisjoint(head[-2:]) and previous not in BE_FORMS:
        return reason  # "What time do you", but not "How are you"
    return None


def _ends_in_subject_pronoun(turn: _Turn) -> str | None:
    """Ends in "I", "we", "he", "she" or "they" with no verb after it ("So I", "And then we",
    or "I'd like" heard as "I" on a hissing line), even asked when it opens a subordinate
    clause ("Is it cheaper if I?": Whisper writes the caller's rising voice as "?"); not "So
    do I.", "Mary and I.", "than I", "And I?", nor the letter I of a name spelled out."""
    word, previous = turn.last, turn.previous
    if word not in NOMINATIVE_PRONOUNS:
        return None
    if turn.asks and previous not in SUBORDINATORS - COMPARING:
        return None
    if previous in AUXILIARIES or previous in NEGATIVE_AUXILIARIES:
        return None  # "So do I.", "Neither can we.": the inverted auxiliary rule decides
    if previous == "than" or (word == "i" and previous in ("and", "or") and len(turn.clause) > 2):
        return None  # "Older than we.", "My wife and I." (but "I told him and he")
    if word == "i" and len(previous) == 1:
        return None  # the letter, spelling a name out: "K O W A L S K I."
    return f"ends in the subject {word!r} with no verb"


def _wants_object(turn: _Turn) -> str | None:
    """Ends in "I'd like", "can I get", "I need"; not "That's all I need", "What can I get"."""
    for size in (4, 3, 2):
        tail = tuple(turn.tokens[-size:])
        if len(tail) == size and tail in WANTS_OBJECT:
            before = turn.tokens[-size - 1] if len(turn.tokens) > size else ""
            clause_head = turn.clause[0] if turn.clause else ""
            if before in FRONTED_OBJECT or clause_head in WH:
                return None
            return f"{' '.join(tail)!r} still needs its object"
    return None


def _asks_with_a_bare_modal(turn: _Turn) -> bool:
    """A yes/no question whose last clause stops at its modal: "Is there any way you could?",
    "Do you think we can?"; not "Could you?" (a bare request, its own rule) or "What can I?"."""
    clause = turn.clause
    if turn.last not in MODALS or turn.previous not in SUBJECTS or len(clause) < 4:
        return False
    inverted = clause[0] in AUXILIARIES | NEGATIVE_AUXILIARIES and clause[1] in SUBJECTS
    return inverted and NEGATIONS.isdisjoint(clause)


def _hopes_for_more(head: Sequence[str]) -> bool:
    """``head`` (the words before "you could") ends in "hoping" or "wondering (if)"."""
    if head[-1:] and head[-1] in HOPING:
        return True
    return len(head) >= 2 and head[-1] in ("if", "whether") and head[-2] in HOPING


def _ends_in_a_name(text: str) -> bool:
    """The last word is capitalised mid-sentence: a name, which Whisper often spells unsurely."""
    found = re.findall(r"[^\W\d_][\w']*", text)
    return len(found) > 1 and found[-1][0].isupper() and found[-1] not in ("I", "A")


def _waits_for_content(turn: _Turn) -> str | None:
    """Ends where what a message says, a name or a day must follow: "The error message says",
    "It's called", "My date of birth is March"; not "That's what it says", "in March"."""
    word, previous = turn.last, turn.previous
    if turn.clause and (turn.clause[0] in WH or not FRONTED_OBJECT.isdisjoint(turn.clause[:-2])):
        return None
    if word in SAYING:
        return f"ends in {word!r}: what it says is to come"
    if word in NAMING and previous in COPULAS and tuple(turn.tokens[-3:-2]) not in PEOPLE:
        return f"ends in {previous} {word!r}: the name is to come"
    dated = not DATE_SUBJECTS.isdisjoint(turn.tokens)
    if word in MONTHS and previous in DATE_OPENERS and dated:
        return f"ends in {previous} {word!r}: the day is to come"
    return None


_RULES: Final[tuple[Callable[[_Turn], str | None], ...]] = (
    unfinished_number,
    unfinished_code,
    ends_in_separator,
    _waits_for_content,
    _ends_in_filler,
    _ends_in_conjunction,
    _ends_in_preposition,
    _ends_in_determiner,
    _wants_object,
    _ends_in_auxiliary,
    _ends_in_inverted_auxiliary,
    _ends_in_subject_pronoun,
)


# -- helpers of the rules --------------------------------------------------------------------


def _is_wh_question_word(turn: _Turn) -> bool:
    """Whether the turn is a wh-word alone, as a question ("Where.", "Okay, which one.")."""
    rest = _opening_dropped(turn.tokens)
    return rest[0] in WH and (len(rest) == 1 or list(rest[1:]) == ["one"])


def _is_particle(word: str, previous: str) -> bool:
    """Whether the preposition ``word`` ends the sentence as an adverb after ``previous``."""
    if word not in PARTICLES:
        return False
    return previous in PARTICLE_CLOSERS or (word in STATE_PARTICLES and previous in COPULAS)


def _strands_preposition(clause: Sequence[str]) -> bool:
    """Whether the clause's last word is a preposition whose object is a wh-word before it.

    A wh-question ("What is this for", "Which one should I go with", "Where are you from"), or
    a wh-clause with its subject right after the wh-word and nothing between that opens a new
    phrase ("That's what I was looking for", "I don't know who to talk to"). Not "What I need
    is a table for": the article shows the preposition has an object still to come.
    """
    if len(clause) >= 2 and clause[0] in STRANDING_WH:
        if clause[0].endswith("'s") or clause[1] in AUXILIARIES:
            return True
        if len(clause) >= 3 and clause[2] in AUXILIARIES:
            return True  # "Which one should I go with"
    for i, word in enumerate(clause[:-2]):
        if word in STRANDING_WH and (clause[i + 1] in SUBJECT_WORDS or clause[i + 1] == "to"):
            between = clause[i + 2 : -1]
            if DETERMINERS.keys().isdisjoint(between) and CONJUNCTIONS.isdisjoint(between):
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
    inverted = len(clause) >= 3 and clause[0] in AUXILIARIES | NEGATIVE_AUXILIARIES
    inverted = inverted and clause[1] in SUBJECTS
    participle = previous.endswith("ed") or previous in IRREGULAR_PARTICIPLES
    return inverted and WH.isdisjoint(clause) and not participle


def _to_ends_sentence(turn: _Turn) -> bool:
    """True for "I'd be happy to.", "No, I don't want to.", "Yes, I'd love to."; not "I want to"."""
    previous = turn.previous
    if previous in TO_ELLIPSIS:
        return True
    return previous in WANTING and (turn.answers or not NEGATIONS.isdisjoint(turn.tokens[-5:-1]))
