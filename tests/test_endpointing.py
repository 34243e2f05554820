"""The English turn-taking defaults: :func:`words`, :func:`is_backchannel`, :func:`judge_turn`.

Transcripts come in two styles: Whisper's (capitals, punctuation, digits) and that of engines
which write lower case without punctuation and spell numbers out (Moonshine). Both are here.
"""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from phoneactors.endpointing import (
    DEFAULT_BACKCHANNELS,
    TurnJudgement,
    is_backchannel,
    judge_turn,
    words,
)

# -- words -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello, world!", ["hello", "world"]),
        ("Uh-huh.", ["uh", "huh"]),
        ("and/or", ["and", "or"]),
        ("I'd like it, don't you?", ["i'd", "like", "it", "don't", "you"]),
        ("I\u2019d say it\u2019s fine", ["i'd", "say", "it's", "fine"]),
        ("'cause it's late", ["cause", "it's", "late"]),
        ("the dogs' bowls", ["the", "dogs", "bowls"]),
        ("Call 555-1234.", ["call", "555", "1234"]),
        ("At 7:30.", ["at", "7:30"]),
        ("It's $20.", ["it's", "20"]),
        ("It costs 1,250 dollars", ["it", "costs", "1250", "dollars"]),
        ("555, 12", ["555", "12"]),
        ("2.5 kilos", ["2.5", "kilos"]),
        ("The 3rd of May", ["the", "3rd", "of", "may"]),
        ("Caf\u00e9 au lait", ["caf\u00e9", "au", "lait"]),
        ("MM-HMM", ["mm", "hmm"]),
        ("snake_case", ["snake", "case"]),
        ("...", []),
        ("", []),
    ],
)
def test_words_normalises_transcripts(text: str, expected: list[str]) -> None:
    assert words(text) == expected


@given(st.text())
def test_words_are_lower_case_and_never_blank(text: str) -> None:
    for word in words(text):
        assert word
        assert word == word.lower()
        assert not any(char.isspace() for char in word)


# -- backchannels ------------------------------------------------------------------------------


def test_default_backchannels_are_normalised_phrases_of_one_to_three_words() -> None:
    for phrase in DEFAULT_BACKCHANNELS:
        assert " ".join(words(phrase)) == phrase
        assert 1 <= len(phrase.split()) <= 3


@pytest.mark.parametrize(
    "word", ["no", "wait", "stop", "what", "sorry", "uh uh", "nope", "hold on", "uh", "um"]
)
def test_default_backchannels_leave_out_words_that_interrupt(word: str) -> None:
    assert word not in DEFAULT_BACKCHANNELS


@pytest.mark.parametrize(
    "text",
    [
        "Uh-huh.",
        "Uh huh",
        "uh huh",
        "Aha.",
        "Mm-hmm.",
        "Mhm.",
        "Mm hmm",
        "Hmm.",
        "Mm.",
        "Yeah.",
        "Yep.",
        "Yes.",
        "Okay.",
        "OK.",
        "ok",
        "Right.",
        "Alright.",
        "All right.",
        "Sure.",
        "I see.",
        "Got it.",
        "Gotcha.",
        "Cool.",
        "Great.",
        "Oh.",
        "Oh, okay.",
        "Ok cool",
        "Wow.",
        "Exactly.",
        "Of course.",
        "Makes sense.",
        "Sounds good.",
        "That's right.",
        "That\u2019s right.",
        "Uh, yeah.",
        "Yeah, yeah.",
        "Yeah, yeah, yeah.",
        "Okay, I see.",
        "Uh-huh, right.",
        "Mm-hmm. Yes.",
        "Oh, I see, okay.",
        "right right",
        "yes that's right",
        # hums, in the spellings Whisper gives them
        "M.",
        "Mmmm.",
        "Hmmm.",
        "M-hm.",
        "Mm-m.",
        "M M M.",
        "M-H-M.",  # spelled out letter by letter
        "H-M-M.",
        "M-H-N?",  # the nasal after the "h" heard as an "n"
        "Mhn.",
    ],
)
def test_backchannels(text: str) -> None:
    assert is_backchannel(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "...",
        "No.",
        "Wait.",
        "Stop.",
        "Uh-uh.",
        "Um.",
        "Nope.",
        "Hold on.",
        "Sorry?",
        "What?",
        "Yeah, but I already did that.",
        "Okay, but what about the fee?",
        "Yeah, no.",
        "Okay, stop.",
        "Right, so my order is wrong.",
        "I see what you mean, but no.",
        "yeah but",
        "okay wait",
        "Actually, can I change my order?",
        "Mom.",  # a word, not a hum
        "Hm, wait.",
        "M-A-M.",  # letters, but no hum
        "H.",
        "N.",
        "M-N.",  # no "h" before the "n"
        "N-H-M.",
        "M-H-M, no.",
    ],
)
def test_not_backchannels(text: str) -> None:
    assert not is_backchannel(text)


def test_backchannel_phrases_given_any_way_are_normalised() -> None:
    phrases = frozenset({"Mm-HMM", "Sure thing!", "You bet", "..."})
    assert is_backchannel("mm hmm, you bet", phrases)
    assert is_backchannel("Sure thing.", phrases)
    assert not is_backchannel("Yeah.", phrases)  # only the phrases given count
    assert not is_backchannel("You", phrases)  # half a phrase is not one


def test_hums_in_any_spelling_count_only_while_mm_is_a_backchannel() -> None:
    assert is_backchannel("Mmmm.", ["Mm"])
    assert not is_backchannel("Mmmm.", ["yeah", "okay"])


def test_backchannel_phrases_may_be_any_collection_and_longer_than_three_words() -> None:
    phrases = ["that is exactly right", "yes"]
    assert is_backchannel("Yes, that is exactly right.", phrases)
    assert not is_backchannel("That is exactly", phrases)
    assert not is_backchannel("Yes.", [])


def test_backchannel_phrases_as_one_string_are_refused() -> None:
    with pytest.raises(TypeError):
        is_backchannel("y", "yeah")


# -- judge_turn: complete ----------------------------------------------------------------------

COMPLETE_WHISPER = [
    # statements and requests
    "Hi, I'd like to book a table for four tonight.",
    "I'm calling about a charge on my credit card.",
    "My package hasn't arrived yet.",
    "I already restarted the router twice.",
    "I want to cancel my subscription.",
    "Let me think.",
    "Okay, thanks so much for your help.",
    "It's for a good cause.",
    "I'll take that.",
    "Please hold on.",
    "Sure, log me in.",
    "I'm in.",
    "It's over.",
    "I've called before.",
    "I'll call you the day after.",
    "From now on.",
    "It's been broken ever since.",
    "We've been waiting for a while.",
    "That's all I need.",
    "Plan A.",
    "Oh no.",
    # questions, including stranded prepositions
    "Can we sit outside?",
    "What is this charge for?",
    "What's it for?",
    "Where are you calling from?",
    "Who am I talking to?",
    "Which one should I go with?",
    "That's exactly what I was looking for.",
    "I don't know who to talk to.",
    "What can I get you?",
    "How are you?",
    "It's nice, isn't it?",
    "Could you repeat that?",
    "And?",
    "Or?",
    "Is it?",
    "What for?",
    "Was that paid for?",
    "Has it been dealt with?",
    "Is that what you asked for?",
    "You're calling from?",
    "Who are you with?",
    # answers
    "Yes, please.",
    "No, that's all, thank you.",
    "Yes, it is.",
    "Here it is.",
    "That's what it was.",
    "I think you are.",
    "Yes, I do.",
    "Yes, we can.",
    "I do.",
    "So do I.",
    "Neither can we.",
    "My wife and I.",
    "She's older than I.",
    "Who, me? Or they?",
    "It's spelled K O W A L S K I.",
    "Please do.",
    "I think so.",
    "I hope so.",
    "Not yet.",
    "Kind of.",
    "Yeah, sort of.",
    "Yes, I'd like to.",
    "No, I don't want to.",
    "I'd be happy to.",
    "I don't know where.",
    "Where?",
    "Mm-hmm.",
    "Uh-huh.",
    "Oh.",
    "Tomorrow.",
    "Two.",
    # numbers that are finished
    "At 7:30.",
    "We'll be there at 7 30.",  # Whisper's digits for "seven thirty": a time after "at"
    "Can we make it by 10 05?",
    "I'll come around 19 30.",
    "A table for 2.",
    "In 1990.",
    "It was 1998.",
    "$20.",
    "The total is $200.",
    "My number is 555-1234.",
    "Call me at 415-555-0199.",
    "My account number is 12345678901.",
    "My PIN is 12.",
]

COMPLETE_MOONSHINE = [
    "hi i'd like to book a table for four tonight",
    "what is this for",
    "where are you from",
    "who am i talking to",
    "which one should i go with",
    "thats all",
    "how are you",
    "it's nice isn't it",
    "so do i",
    "yes it is",
    "yes we can",
    "here it is",
    "i think so",
    "hold on",
    "log in",
    "see you then",
    "and so on",
    "for a while",
    "if you want",
    "if you like",
    "thank you",
    "yeah sort of",
    "at seven thirty",
    "we'll be there at eight fifteen",
    "for two",
    "i was born in nineteen eighty",
    "twenty twenty four",
    "two hundred fifty",
    "twenty five",
    "four one five five five five one two three four",
    "mm hmm",
    "tomorrow",
]


@pytest.mark.parametrize("text", COMPLETE_WHISPER + COMPLETE_MOONSHINE)
def test_complete_turns(text: str) -> None:
    judgement = judge_turn(text)
    assert judgement == TurnJudgement(True, "reads complete")


def test_no_words_is_complete() -> None:
    for text in ("", "   ", "...?", "\u2026"):
        assert judge_turn(text) == TurnJudgement(True, "no words")


# -- judge_turn: incomplete --------------------------------------------------------------------

FRAGMENTS_WHISPER = [
    # only fillers
    ("Um.", "only fillers"),
    ("Hmm.", "only fillers"),
    ("Um, uh...", "only fillers"),
    # trailing punctuation
    ("I'd like to book...", "trails off ('...')"),
    ("So I was thinking\u2026", "trails off ('...')"),
    ("My card number is,", "trails off (',')"),
    ("I want the -", "trails off ('-')"),
    ("I'd like\u2014", "trails off ('\u2014')"),
    ("Two things;", "trails off (';')"),
    ("The options are:", "trails off (':')"),
    ("Okay, I see...", "trails off ('...')"),
    # conjunctions
    ("I was charged twice and", "conjunction 'and'"),
    ("I'm calling because", "conjunction 'because'"),
    ("I'm calling 'cause", "conjunction 'cause'"),
    ("Could you tell me if", "conjunction 'if'"),
    ("I ordered a blue one, but", "conjunction 'but'"),
    ("I ordered a blue one but", "conjunction 'but'"),
    ("I'm not home, so", "conjunction 'so'"),
    ("I'm not home so", "conjunction 'so'"),
    ("It's more expensive than", "conjunction 'than'"),
    ("I think that", "conjunction 'that'"),
    ("The problem is that", "conjunction 'that'"),
    ("And then", "conjunction 'then'"),
    ("My son, who", "conjunction 'who'"),
    # prepositions
    ("I'd like to book a table for", "preposition 'for'"),
    ("I'd like to book a table for.", "preposition 'for'"),
    ("Can I book a table for", "preposition 'for'"),
    ("Can I get a large pizza with", "preposition 'with'"),
    ("What I need is a table for", "preposition 'for'"),
    ("The reservation is under", "preposition 'under'"),
    ("I have an appointment on", "preposition 'on'"),
    ("I'm flying from Chicago to", "preposition 'to'"),
    ("I want to", "preposition 'to'"),
    ("I wanted to ask about", "preposition 'about'"),
    ("What about", "preposition 'about'"),
    ("It looks like", "preposition 'like'"),
    ("It's kind of", "preposition 'of'"),
    ("It started hurting after", "preposition 'after'"),
    ("Is there a flight that leaves before", "preposition 'before'"),
    # articles, possessives
    ("Can you put it on the", "article 'the'"),
    ("I need a", "article 'a'"),
    ("I need a.", "article 'a'"),
    ("I'm calling about my", "possessive 'my'"),
    ("Is that your", "possessive 'your'"),
    ("Can I get the?", "article 'the'"),
    # fillers
    ("I tried restarting it, um", "filler 'um'"),
    ("The number is uh", "filler 'uh'"),
    # auxiliaries
    ("I'd", 'auxiliary "i\'d"'),
    ("We're", 'auxiliary "we\'re"'),
    ("Let me check, it's", 'auxiliary "it\'s"'),
    ("My name is", "auxiliary 'is'"),
    ("So the thing is", "auxiliary 'is'"),
    ("The last four digits are", "auxiliary 'are'"),
    ("Hi, this is", "auxiliary 'is'"),
    ("So I was", "auxiliary 'was'"),
    ("That would be", "auxiliary 'be'"),
    ("Can you", "can 'you' with no verb"),
    ("Could you", "could 'you' with no verb"),
    ("Excuse me, could you", "could 'you' with no verb"),
    ("What time do you", "do 'you' with no verb"),
    ("Why don't you", "don't 'you' with no verb"),
    ("Is there", "is 'there' with no verb"),
    # a verb waiting for its object
    ("I'd like", '"i\'d like" still needs its object'),
    ("I would like", "'i would like' still needs its object"),
    ("I want", "'i want' still needs its object"),
    ("I need", "'i need' still needs its object"),
    ("Can I get", "'can i get' still needs its object"),
    ("Hi, could I have", "'could i have' still needs its object"),
    ("I'll have", '"i\'ll have" still needs its object'),
    # numbers being read out
    ("555-12", "a number being read out ('555 12')"),
    ("555, 12.", "a number being read out ('555 12')"),
    ("5 5 5", "a number being read out ('5 5 5')"),
    ("My number is 555.", "a number being read out ('555')"),
    ("My PIN is 1234.", "a number being read out ('1234')"),
    ("My account number is 4 8 1", "a number being read out ('4 8 1')"),
    ("Can you call me back at 555?", "a number being read out ('555')"),
    ("It's 4512", "a number being read out ('4512')"),
    ("My zip code is 94110.", "a number being read out ('94110')"),
]

FRAGMENTS_MOONSHINE = [
    ("um", "only fillers"),
    ("um uh", "only fillers"),
    ("i was charged twice and", "conjunction 'and'"),
    ("could you tell me if", "conjunction 'if'"),
    ("i'm not home so", "conjunction 'so'"),
    ("id like to book a table for", "preposition 'for'"),
    ("can i book a table for", "preposition 'for'"),
    ("i want to", "preposition 'to'"),
    ("can you put it on the", "article 'the'"),
    ("it's for my", "possessive 'my'"),
    ("i tried restarting it um", "filler 'um'"),
    ("i'd", 'auxiliary "i\'d"'),
    ("my name is", "auxiliary 'is'"),
    ("hi this is", "auxiliary 'is'"),
    ("can you", "can 'you' with no verb"),
    ("i was wondering could you", "could 'you' with no verb"),
    ("is it", "is 'it' with no verb"),
    ("i'd like", '"i\'d like" still needs its object'),
    ("I.", "subject 'i' with no verb"),  # "I'd like" on a hissing line, heard as "I"
    ("Uh, so I", "subject 'i' with no verb"),
    ("and then we", "subject 'we' with no verb"),
    ("I told him and he", "subject 'he' with no verb"),
    ("Yesterday they", "subject 'they' with no verb"),
    ("can i get", "'can i get' still needs its object"),
    ("my number is five five five", "a number being read out ('five five five')"),
    ("five five five one", "a number being read out ('five five five one')"),
    ("my order number is forty five twelve", "a number being read out ('forty five twelve')"),
    ("it's five double", "a number being read out ('five double')"),
    ("my code is seven oh", "a number being read out ('seven oh')"),
    ("my pin is seven thirty", "a number being read out ('seven thirty')"),
    ("Call me at 7 30", "a number being read out ('7 30')"),  # "call": a phone number
    ("We'll be there at 7 30 5", "a number being read out ('7 30 5')"),
    ("My PIN is 7 30.", "a number being read out ('7 30')"),
]


@pytest.mark.parametrize(("text", "reason"), FRAGMENTS_WHISPER + FRAGMENTS_MOONSHINE)
def test_fragments(text: str, reason: str) -> None:
    judgement = judge_turn(text)
    assert not judgement.complete
    assert reason in judgement.reason


@pytest.mark.parametrize(
    "text",
    [text for text, reason in FRAGMENTS_WHISPER + FRAGMENTS_MOONSHINE if "trails" not in reason],
)
def test_a_final_full_stop_does_not_finish_a_fragment(text: str) -> None:
    assert not judge_turn(text.rstrip("?.") + ".").complete


@pytest.mark.parametrize(
    ("fragment", "question"),
    [
        ("What is this for", "What is this for?"),
        ("Are you", "Are you?"),
        ("So", "So?"),
        ("My name is", "Your name is?"),
    ],
)
def test_a_question_mark_is_evidence_of_a_finished_question(fragment: str, question: str) -> None:
    assert judge_turn(question).complete
    if fragment != "What is this for":
        assert not judge_turn(fragment).complete


@pytest.mark.parametrize(
    "text",
    [
        "Can I get the?",
        "I'd like?",
        "555-12?",
        "Um?",
        "It's?",
        "My number is five five?",
        "Can I get a large pizza with?",
        "Do you have a table for?",
        "Could you tell me if?",
        "It's cheaper than?",
    ],
)
def test_a_question_mark_does_not_finish_what_no_question_ends_with(text: str) -> None:
    assert not judge_turn(text).complete


@pytest.mark.parametrize(
    ("fragment", "rest"),
    [
        ("I'd like to book a table for", "four people at seven."),
        ("My number is five five five", "one two three four five six seven."),
        ("Can I get a large pizza with", "mushrooms?"),
        ("I'm calling because", "my card isn't working."),
        ("Could you", "check if there's an earlier flight?"),
    ],
)
def test_the_whole_turn_reads_complete_once_the_caller_goes_on(fragment: str, rest: str) -> None:
    assert not judge_turn(fragment).complete
    assert judge_turn(f"{fragment} {rest}").complete


@given(st.text())
def test_any_text_gets_a_judgement(text: str) -> None:
    judgement = judge_turn(text)
    assert judgement.reason
    assert judgement.complete == (judgement.reason in ("reads complete", "no words"))


def test_a_judgement_is_frozen() -> None:
    judgement = judge_turn("Yes.")
    with pytest.raises(dataclasses.FrozenInstanceError):
        judgement.complete = False  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "logprob", "complete"),
    [
        ("The hotel is near there.", -0.48, False),  # "near the", cut off and misheard
        ("I need to transfer money to mine.", -0.58, False),
        ("I ordered a blue one butt.", -0.92, False),
        ("The hotel is near there.", -0.01, True),  # sure of it: it was said
        ("The hotel is near there.", None, True),  # the engine does not say
        ("Could you repeat that?", -0.01, True),
        ("Is there a fee for that?", -0.3, False),
        ("Near there.", -0.9, True),  # too short to be a cut-off fragment
        ("It's under the name Garsha.", -0.57, True),  # unsure, but not a misheard ending
    ],
)
def test_an_unsure_last_word_that_is_often_a_misheard_cut_off_word_waits(
    text: str, logprob: float | None, complete: bool
) -> None:
    judgement = judge_turn(text, last_word_logprob=logprob)
    assert judgement.complete is complete, judgement.reason
    if not complete:
        assert "unsure" in judgement.reason


def test_an_unsure_particle_at_the_end_is_no_cut_off_word() -> None:
    assert judge_turn("Does the clinic take walk in?", last_word_logprob=-0.7).complete


def test_a_huge_run_of_digits_still_gets_a_judgement() -> None:
    assert judge_turn("my pin is " + "1" * 5000).reason


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("The error message says.", "'says': what it says is to come"),
        ("It says", "'says': what it says is to come"),
        ("The restaurant is called", "is 'called': the name is to come"),
        ("My date of birth is March.", "is 'march': the day is to come"),
        ("I was born on July", "on 'july': the day is to come"),
        ("The address is 12.", "a number being read out ('12')"),
        ("I live at 4", "a number being read out ('4')"),
        ("The tracking number is 1-C99.", "a code being read out ('1 c99')"),
        ("My booking reference is A B 1", "a code being read out ('b 1')"),
        ("Could you?", "could 'you' with no verb"),
        ("Could you tell me?", "tell me' still needs its object"),
        ("Can you send me", "send me' still needs its object"),
    ],
)
def test_what_must_follow_a_message_a_name_a_month_an_address_or_a_code(
    text: str, reason: str
) -> None:
    judgement = judge_turn(text)
    assert not judgement.complete
    assert reason in judgement.reason


@pytest.mark.parametrize(
    "text",
    [
        "That's what it says.",
        "As the sign says.",
        "My birthday is in March.",
        "They called.",
        "It's in room 4B.",
        "Apartment 12.",
        "I'm at 12 Main Street.",
        "What can you tell me?",
        "Are you?",
        "Will you? Thanks.",
    ],
)
def test_a_message_a_name_a_month_or_a_code_that_is_there_reads_complete(text: str) -> None:
    judgement = judge_turn(text)
    assert judgement.complete, judgement.reason


def test_a_last_word_the_engine_guessed_at_waits_in_a_longer_turn() -> None:
    guessed = judge_turn("I'd like a window seat.", last_word_logprob=-1.3)
    assert not guessed.complete
    assert "'seat' is a guess" in guessed.reason
    assert judge_turn("I'd like a window seat.", last_word_logprob=-0.8).complete
    assert judge_turn("Yes, please.", last_word_logprob=-2.0).complete  # too short to tell


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("My email address is john dot", "ends in 'dot': the rest is being spelled out"),
        ("It's jane underscore", "ends in 'underscore'"),
        ("The code is X 4", "a code being read out ('x 4')"),
    ],
)
def test_a_spelling_or_a_code_cut_short_waits(text: str, reason: str) -> None:
    judgement = judge_turn(text)
    assert not judgement.complete
    assert reason in judgement.reason


@pytest.mark.parametrize("text", ["Dot.", "I'll take plan B 2.", "Is it a 4 or a 5?"])
def test_a_lone_separator_or_a_letter_and_digit_in_passing_reads_complete(text: str) -> None:
    assert judge_turn(text).complete, judge_turn(text).reason


@pytest.mark.parametrize(
    ("text", "logprob", "seconds", "worth"),
    [
        ("Hymn.", -1.4, 0.4, True),
        ("La la", -1.5, 0.4, True),
        ("Hymn.", -0.3, 0.4, False),  # the engine was sure
        ("It has.", -0.3, 0.8, True),  # ... of words with no content: a hum misheard
        ("And on.", -0.5, 0.8, True),
        ("Hymn.", None, 0.4, False),  # the engine does not say
        ("Uh uh yeah", -1.2, 1.4, True),  # the audio holds ~0.3 s of quiet around the words
        ("Hymn.", -1.4, 2.1, False),  # too long for a backchannel
        ("and make a chance now", -1.0, 0.6, False),  # too many words
        ("Stop.", -1.4, 0.4, False),  # an interrupting word is no second look...
        ("No, no.", -1.0, 0.4, False),
        ("Wait, what?", -0.9, 0.6, False),
        ("No", -2.1, 0.8, True),  # ... unless the engine barely heard it
        ("730.", -0.8, 1.1, False),  # a number is the caller's answer, not a hum
        ("Seven thirty.", -0.8, 1.1, True),
        ("", -1.4, 0.4, False),
    ],
)
def test_which_unclear_sounds_over_the_bot_get_a_second_look(
    text: str, logprob: float | None, seconds: float, worth: bool
) -> None:
    from phoneactors.endpointing import may_be_misheard_backchannel

    assert may_be_misheard_backchannel(text, logprob, seconds) is worth


@pytest.mark.parametrize(
    ("text", "says_nothing"),
    [
        ("It has.", True),
        ("And the", True),
        ("up", True),
        ("Uh, them.", True),
        ("That's it.", True),
        ("Sales.", False),
        ("Tomorrow", False),
        ("Hymn.", False),
        ("730.", False),
        ("Up down.", True),
        ("", False),
    ],
)
def test_words_with_no_content(text: str, says_nothing: bool) -> None:
    from phoneactors.endpointing import is_only_function_words

    assert is_only_function_words(text) is says_nothing


@pytest.mark.parametrize(
    ("text", "nothing"),
    [
        ("It has.", True),
        ("and the", True),
        ("Are you there?", False),  # function words, but it asks
        ("So?", False),
        ("Hold on", False),  # a word that interrupts
        ("Sales.", False),
        ("", False),
    ],
)
def test_what_says_nothing_over_the_bot(text: str, nothing: bool) -> None:
    from phoneactors.endpointing import says_nothing

    assert says_nothing(text) is nothing


@pytest.mark.parametrize(
    ("text", "count"),
    [("Mm-hmm. Mm-hmm.", 2), ("Okay. Okay.", 2), ("Um-hm, yeah.", 2), ("Mm, mm.", 2), ("", 0)],
)
def test_a_hum_of_assent_is_one_spoken_word(text: str, count: int) -> None:
    from phoneactors.endpointing import spoken_words

    assert spoken_words(text) == count


@pytest.mark.parametrize(
    ("text", "interrupting"),
    [
        ("Hang on.", True),
        ("Oh no", True),
        ("Sorry?", True),
        ("Hello?", True),
        ("What's the deal?", True),
        ("How's that?", True),
        ("It has.", False),
        ("That's it.", False),
        ("Okay. Okay. Okay.", False),
        ("", False),
    ],
)
def test_words_that_make_an_unclear_sound_an_interruption(text: str, interrupting: bool) -> None:
    from phoneactors.endpointing import has_interrupting_word

    assert has_interrupting_word(text) is interrupting


@pytest.mark.parametrize(
    ("text", "complete"),
    [
        ("My account number is 47.", False),  # account numbers are longer: more to come
        ("My room number is 12.", True),  # a room number can be two digits
        ("I was hoping you could.", False),
        ("I wonder if you could", False),
        ("Yes, you could.", True),
        ("I think you could.", True),
        ("Can I also get A?", False),  # the article, capitalised at the end
        ("I'll take plan A.", True),  # the letter
    ],
)
def test_short_account_numbers_hopes_and_a_capital_article(text: str, complete: bool) -> None:
    judgement = judge_turn(text)
    assert judgement.complete is complete, judgement.reason


@pytest.mark.parametrize(
    "text",
    [
        # names the engine spells unsurely are names, not cut-off words (see the guess test)
        "I'd appreciate it if you could.",
        "That would be great if you could.",
        "Let me know if you can.",
        "I hope you can.",
        "Tell me.",
        "Don't tell me.",
        "I live in apartment 12.",
        "We live at number 42.",
        "My phone is an iPhone 15.",
        "My card ends in 47.",
        "My booking reference is X7K9P2.",
        "My seat number is 14F.",
        "It was March.",
        "The deadline is June.",
        "It's a dash.",
        "I'll take A.",
        "I was called.",
    ],
)
def test_complete_turns_that_look_like_the_new_fragments(text: str) -> None:
    judgement = judge_turn(text)
    assert judgement.complete, judgement.reason


def test_a_name_the_engine_guessed_at_is_still_a_name() -> None:
    assert judge_turn("My last name is Newin.", last_word_logprob=-2.1).complete
    assert not judge_turn("I'd like a window seat.", last_word_logprob=-1.3).complete


@pytest.mark.parametrize(
    ("text", "complete"),
    [
        ("My card ends in 4242.", True),
        ("Put it on the card ending in 4242.", True),
        ("The last four digits are 1234.", True),
        ("My card number is 4242", False),  # a card number is longer
    ],
)
def test_a_cards_last_four_digits_are_all_of_them(text: str, complete: bool) -> None:
    judgement = judge_turn(text)
    assert judgement.complete is complete, judgement.reason


@pytest.mark.parametrize(
    ("text", "complete"),
    [
        # a question that stops at its modal is waiting for the verb
        ("Is there any way you could?", False),
        ("Do you think we can?", False),
        ("Is there any way you could.", False),  # the word order asks, whatever the mark
        ("Could you?", False),  # the bare request: a rule of its own
        ("Yes, I could.", True),
        ("I don't think I can.", True),
        ("Do you think you couldn't?", True),  # a negation: an answer of its own
        # "whether" never ends a sentence, asked or not; "where" does
        ("Do you know whether?", False),
        ("I wasn't sure whether", False),
        ("I don't know where.", True),
        # "have" after a modal ends an elliptical sentence
        ("My dog ate something he shouldn't have.", True),
        ("You could have.", True),
        ("I must have.", True),
        ("It has been", False),
        # digits said one at a time, written with dots where a number is being read out
        ("The zip code is 9.4.", False),
        ("My PIN is 4.5.", False),
        ("The rating is 4.5.", True),  # no number being read out: a decimal
        ("It went up by 2.5.", True),
    ],
)
def test_bare_modals_whether_elliptical_have_and_dotted_digits(text: str, complete: bool) -> None:
    judgement = judge_turn(text)
    assert judgement.complete is complete, judgement.reason


@pytest.mark.parametrize(
    ("text", "complete"),
    [
        # a subordinate clause stopped at its subject is unfinished, asked or not
        ("Is it cheaper if I?", False),
        ("Would it be faster if we?", False),
        ("Can I come in tomorrow because I?", False),
        ("Is it cheaper if I", False),
        # but a question may end in a subject pronoun elsewhere
        ("And I?", True),
        ("Who, I?", True),
        ("Is she older than I?", True),
        ("Is it cheaper if I pay now?", True),
    ],
)
def test_a_question_stopped_at_the_subject_of_its_clause(text: str, complete: bool) -> None:
    judgement = judge_turn(text)
    assert judgement.complete is complete, judgement.reason


def test_a_turn_the_engine_nearly_heard_as_a_fragment_waits() -> None:
    judgement = judge_turn("Can I get a table four.", alternatives=["Can I get a table for"])
    assert not judgement.complete
    assert judgement.reason.startswith("also heard as 'Can I get a table for': ")
    assert "preposition" in judgement.reason


@pytest.mark.parametrize(
    "alternatives",
    [
        [],
        ["I think so..."],  # the same words: only the punctuation trails off
        ["I think, so."],
        ["I think sew."],  # other words, but complete too
    ],
)
def test_readings_that_trail_off_only_in_punctuation_or_read_complete_change_nothing(
    alternatives: list[str],
) -> None:
    assert judge_turn("I think so.", alternatives=alternatives).complete


def test_a_fragment_stays_a_fragment_whatever_the_alternatives() -> None:
    judgement = judge_turn("I'd like a table for", alternatives=["I'd like a table four."])
    assert not judgement.complete
    assert "preposition" in judgement.reason


@pytest.mark.parametrize(
    ("text", "fillers"),
    [
        ("Uh.", True),
        ("Um, er...", True),
        ("Mm-hmm.", False),  # assent, not hesitation
        ("Uh huh.", False),
        ("Uh, wait.", False),
        ("", False),
    ],
)
def test_only_fillers(text: str, fillers: bool) -> None:
    from phoneactors.endpointing import is_only_fillers

    assert is_only_fillers(text) is fillers


def test_the_backchannel_judgement_is_also_importable_from_endpointing() -> None:
    """``phoneactors.endpointing`` re-exports the judgement of sounds over the bot, which lives
    in ``phoneactors.backchannel``: both paths give the same objects."""
    from phoneactors import backchannel, endpointing

    for name in (
        "BACKCHANNEL_HINT",
        "DEFAULT_BACKCHANNELS",
        "has_interrupting_word",
        "is_backchannel",
        "is_only_fillers",
        "is_only_function_words",
        "may_be_misheard_backchannel",
        "says_nothing",
        "spoken_words",
    ):
        assert name in endpointing.__all__
        assert getattr(endpointing, name) is getattr(backchannel, name)
