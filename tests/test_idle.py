"""Quiet lines and long calls: the bot asks whether the caller is still there, then says goodbye;
a call past its time limit ends with a line of its own."""

from __future__ import annotations

import pytest
import trio
from trio.testing import MockClock

from phoneactors.call import CallSettings
from phoneactors.conversation import Conversation
from phoneactors.errors import ConfigurationError
from phoneactors.testing import FakeSpeech, open_call

SETTINGS = CallSettings(idle_timeout=8.0)


class Desk(Conversation):
    greeting = "Hello."

    async def reply(self, text: str) -> str:
        return "Let me tell you a story that takes a good long while to tell. " * 3


def spoken_at(speech: FakeSpeech, text: str) -> int:
    return speech.spoken.index(text)


async def test_a_quiet_caller_is_asked_then_told_goodbye(
    autojump_clock: MockClock, speech: FakeSpeech
) -> None:
    async with open_call(Desk, speech.engines(), speech=speech, settings=SETTINGS) as fake:
        await fake.wait_for(lambda: "Are you still there?" in speech.spoken)
        asked = trio.current_time()
        await fake.closed.wait()
    assert 8.0 <= asked <= 9.0  # the greeting (half a second), then 8 s of quiet
    assert speech.spoken[-3:] == ["Are you still there?", "I'll hang up now.", "Goodbye."]
    assert fake.result is not None
    assert fake.result.reason == "conversation hung up"


async def test_speaking_starts_the_count_again(
    autojump_clock: MockClock, speech: FakeSpeech
) -> None:
    short = CallSettings(idle_timeout=4.0)

    class Brief(Desk):
        async def reply(self, text: str) -> str:
            return "Okay."

    async with open_call(Brief, speech.engines(), speech=speech, settings=short) as fake:
        await fake.wait_for(lambda: "Are you still there?" in speech.spoken)
        await fake.wait_for_bot_to_finish()
        await fake.say("yes I am")
        await fake.wait_for(lambda: speech.spoken.count("Are you still there?") == 2)
        assert "I'll hang up now." not in speech.spoken  # asked again, not dropped
        await fake.closed.wait()
    assert speech.spoken[-2:] == ["I'll hang up now.", "Goodbye."]


async def test_a_long_reply_is_not_quiet(autojump_clock: MockClock, speech: FakeSpeech) -> None:
    short = CallSettings(idle_timeout=2.0)
    async with open_call(Desk, speech.engines(), speech=speech, settings=short) as fake:
        await fake.wait_for_bot_to_finish()
        await fake.say("tell me a story")
        await fake.wait_for(lambda: len(speech.spoken) > 2)
        started = trio.current_time()
        await fake.wait_for(lambda: "Are you still there?" in speech.spoken)
        story = sum(len(p.audio) for p in fake.played if p.start >= started) / 8000
    assert story > 2.0  # the story lasted longer than the timeout, and nobody asked during it
    assert spoken_at(speech, "Are you still there?") == len(speech.spoken) - 1


async def test_a_conversation_decides_what_a_quiet_line_gets(
    autojump_clock: MockClock, speech: FakeSpeech
) -> None:
    class Patient(Desk):
        def __init__(self) -> None:
            self.silences: list[int] = []

        async def on_idle(self, silences: int) -> str | None:
            self.silences.append(silences)
            return None  # wait quietly

    made: list[Patient] = []

    def make() -> Patient:
        made.append(Patient())
        return made[-1]

    async with open_call(make, speech.engines(), speech=speech, settings=SETTINGS) as fake:
        await fake.wait_for_bot_to_finish()
        await trio.sleep(30)
        assert not fake.closed.is_set()
    assert made[0].silences == [1, 2, 3]
    assert speech.spoken == ["Hello."]


async def test_a_call_past_its_time_limit_ends_with_a_line(
    autojump_clock: MockClock, speech: FakeSpeech
) -> None:
    limited = CallSettings(max_call_seconds=20.0, idle_timeout=None)
    async with open_call(Desk, speech.engines(), speech=speech, settings=limited) as fake:
        await fake.wait_for_bot_to_finish()
        await trio.sleep(17)
        await fake.say("tell me a story", wait=False)
        await fake.closed.wait()
        ended = trio.current_time()
    assert " ".join(speech.spoken[-2:]) == Desk.time_limit_message
    assert fake.clears  # the story was cut for it
    assert 20.0 <= ended <= 27.0
    assert fake.result is not None
    assert fake.result.reason == "conversation hung up"


@pytest.mark.parametrize("name", ["idle_timeout", "max_call_seconds"])
def test_the_limits_must_be_positive(name: str) -> None:
    with pytest.raises(ConfigurationError, match=f"{name} must be positive"):
        CallSettings(**{name: 0})  # type: ignore[arg-type]


async def test_the_bot_can_speak_on_its_own_after_what_it_is_saying(
    autojump_clock: MockClock, speech: FakeSpeech
) -> None:
    class Holding(Desk):
        async def on_start(self) -> None:
            self.say("Please hold while I look that up.")

        async def on_dtmf(self, digit: str) -> str:
            self.say("Thanks for waiting.")
            return f"You pressed {digit}."

    made: list[Holding] = []

    def make() -> Holding:
        made.append(Holding())
        return made[-1]

    async with open_call(make, speech.engines(), speech=speech, settings=SETTINGS) as fake:
        await fake.wait_for_bot_to_finish()
        await fake.press("3")
        await fake.wait_for_bot_to_finish()
    assert speech.spoken == [
        "Hello.",  # the greeting plays first; what on_start said follows it
        "Please hold while I look that up.",
        "You pressed 3.",
        "Thanks for waiting.",
    ]
    assert [turn.text for turn in made[0].history if turn.speaker == "bot"] == [
        "Hello.",
        "Please hold while I look that up.",
        "You pressed 3.",
        "Thanks for waiting.",
    ]
    with pytest.raises(RuntimeError, match="once the call has started"):
        Holding().say("too early")


async def test_an_interrupted_reply_leaves_the_idle_watch_and_queued_lines_working(
    autojump_clock: MockClock, speech: FakeSpeech
) -> None:
    class Chatty(Desk):
        greeting = None

        async def reply(self, text: str) -> str:
            if text == "tell me a story":
                self.say("By the way, we close at five.")
            return await super().reply(text)

    short = CallSettings(idle_timeout=3.0)
    async with open_call(Chatty, speech.engines(), speech=speech, settings=short) as fake:
        await fake.say("tell me a story")
        await fake.wait_for(lambda: bool(fake.played))
        await trio.sleep(1.0)
        await fake.say("stop")  # talks over the story: it is cut
        await fake.wait_for(lambda: "Are you still there?" in speech.spoken)
    assert fake.clears
    assert "By the way, we close at five." in speech.spoken  # still said, after the story
    assert speech.spoken.index("By the way, we close at five.") < speech.spoken.index(
        "Are you still there?"
    )


async def test_an_idle_line_is_dropped_when_the_caller_speaks_up_meanwhile(
    autojump_clock: MockClock, speech: FakeSpeech
) -> None:
    class Slow(Desk):
        greeting = None

        async def reply(self, text: str) -> str:
            return "Yes?"

        async def on_idle(self, silences: int) -> str | None:
            await trio.sleep(2.0)  # an LLM writing the prompt, say
            return "Hello? Anyone?"

    short = CallSettings(idle_timeout=3.0)
    async with open_call(Slow, speech.engines(), speech=speech, settings=short) as fake:
        await trio.sleep(3.5)  # on_idle is thinking now
        await fake.say("I am here")
        await fake.wait_for(lambda: "Yes?" in speech.spoken)
        await fake.wait_for_bot_to_finish()
    assert speech.spoken[0] == "Yes?"  # the idle line of that moment was not said over it
