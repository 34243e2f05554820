"""The English words the turn-taking rules read: :func:`words`, which reduces a transcript
to lower-case words, and the classes of words the rules look for (fillers, auxiliaries,
conjunctions, prepositions, determiners, ...).

Pure data and two small functions; :mod:`phoneactors.endpointing` (has the caller finished?)
and :mod:`phoneactors.backchannel` (is a sound over the bot a backchannel?) share them. The
tables are English defaults: a :class:`~phoneactors.Conversation` replaces the judgements
that read them through its hooks, not the tables.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Final

__all__ = [
    "ADDRESS_CONTEXT",
    "ANSWERS",
    "ANSWER_LEAD_INS",
    "ASSENT_PAIRS",
    "AUXILIARIES",
    "BARE_REQUESTS",
    "BE_FORMS",
    "CLOSED_BY_PREVIOUS",
    "CODE_PART",
    "CONJUNCTIONS",
    "CONTRACTED_AUXILIARIES",
    "COPULAS",
    "DATE_OPENERS",
    "DATE_SUBJECTS",
    "DETERMINERS",
    "DISCOURSE",
    "FRONTED_OBJECT",
    "FUNCTION_WORDS",
    "HESITATIONS",
    "HOPING",
    "IRREGULAR_PARTICIPLES",
    "LAST_FOUR",
    "LONG_IDENTIFIERS",
    "MISHEARD_ENDINGS",
    "MODALS",
    "MONTHS",
    "NAMING",
    "NEGATIONS",
    "NEGATIVE_AUXILIARIES",
    "NEGATIVE_MODALS",
    "OPENED_BY_PREVIOUS",
    "PARTICLES",
    "PARTICLE_CLOSERS",
    "PEOPLE",
    "PREPOSITIONS",
    "SAYING",
    "SEPARATORS",
    "STATE_PARTICLES",
    "STRANDING_WH",
    "SUBJECTS",
    "SUBJECTS_WITHOUT_CONTRACTION",
    "SUBJECT_WORDS",
    "SUBORDINATORS",
    "TAKES_AN_OBJECT",
    "TO_ELLIPSIS",
    "WANTING",
    "WANTS_OBJECT",
    "WH",
    "is_hesitation",
    "words",
]


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


# fmt: off
HESITATIONS: Final = frozenset({
    "um", "umm", "uhm", "uh", "uhh", "er", "erm", "ah", "ahh", "eh", "hmm", "hmmm", "hm",
})
ASSENT_PAIRS: Final = frozenset({("mm", "hmm"), ("mm", "hm"), ("um", "hmm"), ("um", "hm")})
"""Two sounds that together mean yes: neither is a hesitation there ("Mm-hmm.", "Um-hmm.")."""
DISCOURSE: Final = frozenset({
    "and", "but", "so", "or", "then", "okay", "ok", "alright", "right", "well", "oh", "hi",
    "hello", "hey", "yes", "yeah", "yep", "no", "sorry", "actually", "also", "now", "please",
    "anyway", "look", "listen", "wondering", *HESITATIONS,
})
"""Words that open a clause without being part of it ("Okay, so, um, can you")."""
ANSWERS: Final = frozenset({
    "yes", "yeah", "yep", "yup", "ya", "yea", "no", "nope", "nah", "sure", "maybe", "probably",
    "perhaps", "definitely", "absolutely", "certainly",
})
ANSWER_LEAD_INS: Final = frozenset({"oh", "well", *HESITATIONS})

WH: Final = frozenset({
    "what", "who", "whom", "which", "where", "when", "why", "how", "whose", "what's", "who's",
    "where's", "how's", "when's", "why's",
})
STRANDING_WH: Final = frozenset({
    "what", "who", "whom", "which", "where", "whose", "whatever", "whoever", "what's", "who's",
    "where's",
})
"""Wh-words that can be the object of a preposition at the end ("What is this for?")."""

AUXILIARIES: Final = frozenset({
    "am", "is", "are", "was", "were", "be", "been", "being", "do", "does", "did", "have", "has",
    "had", "can", "could", "will", "would", "shall", "should", "may", "might", "must",
})
BE_FORMS: Final = frozenset({
    "am", "is", "are", "was", "were", "isn't", "aren't", "wasn't", "weren't",
})
NEGATIVE_AUXILIARIES: Final = frozenset({
    "don't", "doesn't", "didn't", "can't", "couldn't", "won't", "wouldn't", "shouldn't",
    "isn't", "aren't", "wasn't", "weren't", "haven't", "hasn't", "hadn't",
})
CONTRACTED_AUXILIARIES: Final = frozenset({
    "i'm", "i'd", "i'll", "i've", "you're", "you'd", "you'll", "you've", "he's", "he'd",
    "he'll", "she's", "she'd", "she'll", "it's", "it'd", "it'll", "we're", "we'd", "we'll",
    "we've", "they're", "they'd", "they'll", "they've", "that's", "that'd", "that'll",
    "there's", "there'll", "here's", "what's", "where's", "who's", "how's", "let's", "gonna",
    "wanna", "gotta",
})
"""A contracted auxiliary never ends an English sentence ("Yes, it's." is not English)."""
SUBJECTS: Final = frozenset({
    "i", "you", "he", "she", "it", "we", "they", "there", "this", "that", "these", "those",
})
NOMINATIVE_PRONOUNS: Final = frozenset({"i", "we", "he", "she", "they"})
"""Pronouns that are only ever subjects: a turn that ends in one has not said its verb yet
("you" and "it" are objects too: "Thank you.", "I want it.")."""
SUBJECTS_WITHOUT_CONTRACTION: Final = frozenset({"this", "these", "those"})
"""Subjects said with an uncontracted "is"/"are" mid-sentence ("Hi, this is"); after the others
a full "is" or "are" is emphatic, so it ends the sentence ("It is.", "You are.")."""
SUBJECT_WORDS: Final = SUBJECTS | CONTRACTED_AUXILIARIES
NEGATIONS: Final = frozenset({"not", "never", *NEGATIVE_AUXILIARIES})

CONJUNCTIONS: Final = frozenset({
    "and", "or", "but", "so", "because", "cause", "cuz", "cos", "coz", "if", "when", "while",
    "although", "unless", "since", "whereas", "whether", "than", "as", "which", "who", "whom",
    "whose", "where", "plus", "nor", "that", "then", "also",
})
SUBORDINATORS: Final = frozenset({
    "because", "cause", "cuz", "cos", "coz", "if", "while", "although", "unless", "since",
    "whereas", "whether", "than", "as",
})
"""Conjunctions that no question ends with either ("Could you tell me if?"); after the others a
"?" makes a question ("And?", "Or?", "Where?")."""
COMPARING: Final = frozenset({"than", "as"})
"""The subordinators that compare: a subject pronoun may end the sentence after them ("Older
than I.", "As tall as we?")."""
PREPOSITIONS: Final = frozenset({
    "for", "to", "of", "in", "on", "at", "with", "from", "by", "about", "into", "onto", "over",
    "under", "after", "before", "between", "through", "during", "without", "around", "near",
    "towards", "toward", "until", "till", "via", "per", "like", "across", "against", "along",
    "among", "amongst", "behind", "beneath", "below", "beside", "besides", "beyond", "despite",
    "except", "including", "inside", "outside", "regarding", "concerning", "upon", "within",
    "throughout", "underneath", "versus", "unlike",
})
DETERMINERS: Final = MappingProxyType({
    **dict.fromkeys(("a", "an", "the"), "article"),
    **dict.fromkeys(("my", "your", "our", "their", "its", "his"), "possessive"),
    "every": "determiner",
})
"""Words that are never the last of a noun phrase. "this", "that", "some", "any" and "her"
are not here: they are pronouns just as often ("I'll take that.", "I called her.")."""

PARTICLES: Final = frozenset({
    "in", "on", "over", "around", "through", "by", "along", "across", "behind", "inside",
    "outside", "after", "before", "near", "under", "without", "within", "below", "beyond",
    "underneath", "besides",
})
"""Prepositions that also end sentences as adverbs ("hold on", "come in", "stop by")."""
STATE_PARTICLES: Final = frozenset({
    "in", "on", "over", "around", "through", "inside", "outside", "behind",
})
"""Particles that also end a sentence after a copula ("I'm in.", "It's over.")."""
FUNCTION_WORDS: Final = frozenset({
    *HESITATIONS, *SUBJECTS, *AUXILIARIES, *BE_FORMS, *CONTRACTED_AUXILIARIES,
    *CONJUNCTIONS, *PREPOSITIONS, *DETERMINERS, "me", "him", "her", "us", "them", "up",
    "out", "off", "down", "too", "yet", "just", "here", "oh", "ah", "ha", "hm", "mm",
})
"""Words that carry no content of their own (see :func:`is_only_function_words`)."""
COPULAS: Final = frozenset({
    "is", "are", "was", "were", "am", "be", "been", "being", "i'm", "it's", "we're", "you're",
    "they're", "he's", "she's", "that's",
})
PARTICLE_CLOSERS: Final = frozenset({
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
CLOSED_BY_PREVIOUS: Final[Mapping[str, frozenset[str]]] = MappingProxyType({
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
OPENED_BY_PREVIOUS: Final[Mapping[str, frozenset[str]]] = MappingProxyType({
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
IRREGULAR_PARTICIPLES: Final = frozenset({
    "paid", "done", "taken", "made", "seen", "given", "known", "sent", "thought", "told",
    "spoken", "heard", "brought", "bought", "set", "put", "cut", "dealt", "built", "sold",
})
"""Passive participles that strand a preposition in a yes/no question ("Was it paid for?")."""
TO_ELLIPSIS: Final = frozenset({"happy", "glad", "able", "willing"})
"""Words after which a final "to" ends the sentence ("I'd be happy to.")."""
WANTING: Final = frozenset({
    "want", "wanted", "like", "love", "need", "needed", "have", "going", "got", "try", "tried",
    "mean", "meant", "supposed", "used", "plan", "hope", "ought",
})
"""Verbs whose "to" ends a sentence in an answer or a negation ("No, I don't want to.")."""

WANTS_OBJECT: Final = frozenset({
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
FRONTED_OBJECT: Final = frozenset({
    "what", "whatever", "which", "whichever", "how", "all", "everything", "anything", "if", "as",
    "when", "whenever", "where", "wherever", "that", "else", "much", "many",
})
"""A word before "I need" that is (or brings) its object: "That's all I need.", "if you want"."""
# fmt: on

ADDRESS_CONTEXT: Final = frozenset({"address", "live", "lives", "living", "located", "house"})
"""Words after which even a short number is read out unfinished: a house number, the street
to come ("The address is 12", "I live at 4")."""
CODE_PART: Final = re.compile(r"(?=[a-z]*\d)(?=\d*[a-z])[a-z0-9]{2,8}")
"""A word of letters and digits both, as Whisper writes part of a code ("1z", "c99")."""
SEPARATORS: Final = frozenset({"dot", "underscore", "dash", "hyphen", "slash", "backslash"})
SAYING: Final = frozenset({"says", "reads", "states", "displays"})
NAMING: Final = frozenset({"called", "named", "spelled", "spelt"})
MONTHS: Final = frozenset({
    "january", "february", "march", "april", "may", "june", "july", "august", "september",
    "october", "november", "december",
})  # fmt: skip
LAST_FOUR: Final = frozenset({"ending", "ends", "ended", "last"})
"""Before four digits, these say the digits are a card's last four: nothing more to come."""
DATE_SUBJECTS: Final = frozenset({"birth", "birthday", "born", "date", "dob", "anniversary"})
PEOPLE: Final = frozenset({("i",), ("he",), ("she",), ("we",), ("they",), ("you",)})
DATE_OPENERS: Final = frozenset({"is", "was", "on", "born"})
"""Before a month, these leave its day to come ("My date of birth is March"); "in" does not."""
MODALS: Final = frozenset({"can", "could", "will", "would", "might", "may", "should"})
NEGATIVE_MODALS: Final = frozenset({
    "can't", "couldn't", "won't", "wouldn't", "shouldn't", "mightn't", "mustn't", "must",
})  # fmt: skip
"""Modals (and "must") that end a sentence before "have": "You shouldn't have."."""
HOPING: Final = frozenset({"hoping", "wondering", "wonder", "wondered"})
"""Before "you could" (or "if you could"), these leave what the caller hopes for to come;
"I hope you can." and "Let me know if you can." end where they are."""
TAKES_AN_OBJECT: Final = frozenset({
    "get", "have", "take", "need", "want", "like", "order", "book", "buy", "make", "add",
    "reserve", "send", "bring", "for", "with", "of", "to", "in", "on", "at", "about", "from",
})  # fmt: skip
"""After these a final capital "A" is the article Whisper capitalised, not the letter."""
LONG_IDENTIFIERS: Final = frozenset({
    "account", "card", "phone", "cell", "mobile", "zip", "postcode", "routing",
    "policy", "member", "confirmation", "tracking", "reference", "social", "license",
    "licence", "serial", "passport",
})  # fmt: skip
"""Numbers that are never one or two digits long: a short one is still being read out."""
BARE_REQUESTS: Final = frozenset({
    ("can", "you"), ("could", "you"), ("would", "you"), ("will", "you"),
})  # fmt: skip
"""A request without its verb, asked: "Could you?" is how a caller starts asking for something."""
MISHEARD_ENDINGS: Final = frozenset({
    "there", "their", "that", "it", "its", "mine", "them", "this", "then", "than",
    "butt", "bat", "four", "two", "too", "you", "your",
})  # fmt: skip
"""What Whisper makes of a function word cut off at the end of a fragment: "near the" → "near
there", "to my" → "to mine", "but" → "butt", "if" → "that", "for" → "four". Not "in" (for
"and"): too many turns end in one ("walk in", "log in")."""


def is_hesitation(tokens: Sequence[str], i: int) -> bool:
    """Whether ``tokens[i]`` is a filler, and not half of an "mm-hmm"."""
    if tokens[i] not in HESITATIONS:
        return False
    before = (tokens[i - 1], tokens[i]) if i > 0 else None
    after = (tokens[i], tokens[i + 1]) if i + 1 < len(tokens) else None
    return before not in ASSENT_PAIRS and after not in ASSENT_PAIRS
