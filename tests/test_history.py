"""The call's history tells the truth: what the caller said and what they heard of the bot."""

from __future__ import annotations

import trio
from trio.testing import MockClock

from phoneactors import History, Turn
from phoneactors.conversation import Conversation
from phoneactors.testing import FakeSpeech, open_call
from tests.test_turns import LONG, Teller, start_long_reply


class Remembering(Teller):
    """A Teller that keeps a copy of the history each time it replies."""

    greeting = "Hello."

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[list[Turn]] = []

    async def reply(self, text: str) -> str:
        self.seen.append(list(self.history))
        return await super().reply(text)


async def test_turns_in_order_and_the_reply_sees_the_words_it_answers(
    autojump_clock: MockClock, speech: FakeSpeech
) -> None:
    bot = Remembering()
    bot.text = "Sure."
    async with open_call(lambda: bot, speech.engines(), speech=speech) as fake:
        await fake.wait_for_bot_to_finish()
        await fake.say("hello there")
        await fake.wait_for_bot_to_finish()
        await fake.press("4")
        await fake.press("2")
        await fake.silence(0.5)  # keys the conversation ignores: no reply
    assert bot.seen[0] == [Turn("bot", "Hello."), Turn("caller", "hello there")]
    assert list(bot.history) == [
        Turn("bot", "Hello."),
        Turn("caller", "hello there"),
        Turn("bot", "Sure."),
        Turn("caller", "42", keys=True),  # consecutive presses are one turn
    ]


async def test_a_reply_cut_short_is_kept_as_far_as_it_was_heard(
    autojump_clock: MockClock, speech: FakeSpeech
) -> None:
    bot = Remembering()
    bot.greeting = None
    async with open_call(lambda: bot, speech.engines(), speech=speech) as fake:
        await start_long_reply(fake)
        await fake.say("no wait stop")
        await fake.wait_for(lambda: len(bot.heard) == 2)
        await fake.wait_for_bot_to_finish()
    [interruption] = bot.interruptions
    cut = bot.history[1]
    assert cut == Turn("bot", interruption.heard, interrupted=True)
    assert cut.text.startswith("This is the first sentence")
    assert len(cut.text) < len(LONG)
    assert bot.history[2] == Turn("caller", "no wait stop")
    assert bot.history[3] == Turn("bot", LONG)
    assert bot.history.as_messages()[1] == {
        "role": "assistant",
        "content": f"{cut.text} [interrupted by the caller]",
    }


async def test_a_reply_that_played_on_over_a_cough_or_an_uh_huh_is_one_whole_turn(
    autojump_clock: MockClock, speech: FakeSpeech
) -> None:
    bot = Remembering()
    bot.greeting = None
    async with open_call(lambda: bot, speech.engines(), speech=speech) as fake:
        await start_long_reply(fake)
        await fake.play(speech.cough())
        await fake.silence(1.0)
        await fake.say("uh-huh")
        await fake.wait_for_bot_to_finish()
    assert list(bot.history) == [Turn("caller", "tell me something long"), Turn("bot", LONG)]


async def test_words_after_a_reply_nobody_heard_make_one_caller_turn(
    autojump_clock: MockClock, speech: FakeSpeech
) -> None:
    class Slow(Remembering):
        async def reply(self, text: str) -> str:
            self.seen.append(list(self.history))
            await trio.sleep(1.0)
            return "Sure."

    bot = Slow()
    bot.greeting = None
    async with open_call(lambda: bot, speech.engines(), speech=speech) as fake:
        await fake.say("I want to book a table")
        await fake.silence(0.5)
        await fake.say("for four people")
        await fake.wait_for_bot_to_finish()
    whole = "I want to book a table for four people"
    assert bot.seen[-1] == [Turn("caller", whole)]
    assert list(bot.history) == [Turn("caller", whole), Turn("bot", "Sure.")]


def test_as_messages_is_an_llm_prompt() -> None:
    history = History()
    history.bot_said("Hello, how can I help?")
    history.caller_said("What time is it?")
    history.bot_said("", interrupted=True)
    history.caller_pressed("1")
    history.caller_pressed("#")
    assert history.as_messages(system="You are a phone assistant.") == [
        {"role": "system", "content": "You are a phone assistant."},
        {"role": "assistant", "content": "Hello, how can I help?"},
        {"role": "user", "content": "What time is it?"},
        {
            "role": "assistant",
            "content": "[interrupted by the caller before any of it was heard]",
        },
        {"role": "user", "content": "[pressed 1 #]"},
    ]
    assert len(history) == 4
    assert history[-1] == Turn("caller", "1#", keys=True)
    assert "What time is it?" in repr(history)


def test_a_conversation_outside_a_call_has_an_empty_history() -> None:
    assert list(Conversation().history) == []


async def test_a_key_pressed_over_a_reply_comes_after_what_was_heard_of_it(
    autojump_clock: MockClock, speech: FakeSpeech
) -> None:
    class Greeter(Remembering):
        greeting = "Welcome to the library, where every book has a story of its own to tell."

        async def on_dtmf(self, digit: str) -> str:
            return "Opening hours."

    bot = Greeter()
    async with open_call(lambda: bot, speech.engines(), speech=speech) as fake:
        await fake.wait_for(lambda: bool(fake.played))
        await trio.sleep(0.5)
        await fake.press("1")
        await fake.wait_for_bot_to_finish()
    assert [(t.speaker, t.interrupted, t.keys) for t in bot.history] == [
        ("bot", True, False),
        ("caller", False, True),
        ("bot", False, False),
    ]


def test_a_turn_the_caller_went_on_with_replaces_the_reply_they_cut_short() -> None:
    history = History()
    history.bot_said("Hello.")
    history.caller_said("could you read me the opening hours")
    history.bot_said("You", interrupted=True)  # the reply had just begun
    history.caller_went_on("could you read me the opening hours weekends included")
    assert list(history) == [
        Turn("bot", "Hello."),
        Turn("caller", "could you read me the opening hours weekends included"),
    ]
    # A reply heard whole is never taken back.
    history.bot_said("We open at nine.")
    history.caller_went_on("and on Sundays")
    assert list(history)[-2:] == [
        Turn("bot", "We open at nine."),
        Turn("caller", "and on Sundays"),
    ]
