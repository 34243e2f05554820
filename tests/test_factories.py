"""Conversations made by factories (given the call) and lifespans (resources shared by calls)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
from trio.testing import MockClock

from phoneactors import cli
from phoneactors.conversation import (
    CallInfo,
    Conversation,
    Parrot,
    as_factory,
    is_lifespan,
    open_conversations,
)
from phoneactors.errors import ConfigurationError
from phoneactors.testing import FakeSpeech, open_call

CALL = CallInfo("CA1", "MZ1", "AC1", {"caller": "+15550100001"})


class Greeter(Conversation):
    def __init__(self, client: str, call: CallInfo) -> None:
        self.client = client
        self.who = call.caller

    async def reply(self, text: str) -> str:
        return f"{self.client} heard {self.who}"


def test_a_class_or_a_function_of_nothing_is_called_with_nothing() -> None:
    assert isinstance(as_factory(Parrot)(CALL), Parrot)
    assert isinstance(as_factory(lambda: Parrot())(CALL), Parrot)


def test_a_function_of_one_argument_is_given_the_call() -> None:
    made = as_factory(lambda call: Greeter("client", call))(CALL)
    assert isinstance(made, Greeter)
    assert made.who == "+15550100001"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda call, extra: Parrot(), "needs 2 arguments"),
        (CallInfo, "expected a subclass of Conversation"),
        ("Parrot", "expected a Conversation class or factory"),
    ],
)
def test_what_cannot_make_conversations_is_a_clear_error(make: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        as_factory(make)


async def test_a_lifespan_opens_before_the_calls_and_closes_after_them(
    autojump_clock: MockClock, speech: FakeSpeech
) -> None:
    events: list[str] = []

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[Any]:
        events.append("open")
        try:
            yield lambda call: Greeter("shared client", call)
        finally:
            events.append("closed")

    assert is_lifespan(lifespan)
    assert not is_lifespan(Parrot)
    async with open_conversations(lifespan) as factory:
        assert events == ["open"]
        for _ in range(2):
            async with open_call(factory, speech.engines(), speech=speech) as twilio:
                await twilio.say("hello")
                await twilio.wait_for_bot_to_finish()
            assert speech.spoken[-1] == "shared client heard +15550100001"
        assert events == ["open"]
    assert events == ["open", "closed"]


async def test_a_lifespan_that_yields_something_else_fails_at_start() -> None:
    @asynccontextmanager
    async def lifespan() -> AsyncIterator[Any]:
        yield "not a conversation"

    with pytest.raises(ConfigurationError, match="yielded 'not a conversation'"):
        async with open_conversations(lifespan):
            pass


LIFESPAN_BOT = """
from contextlib import asynccontextmanager

from phoneactors import Conversation

EVENTS = []


class Bot(Conversation):
    def __init__(self, client, call):
        self.client = client
        self.sid = call.call_sid

    async def reply(self, text):
        return f"{self.client} answers {text}"


@asynccontextmanager
async def lifespan():
    EVENTS.append("open")
    try:
        yield lambda call: Bot("the shared client", call)
    finally:
        EVENTS.append("closed")


def make(call):
    return Bot("a client per call", call)
"""


@pytest.mark.parametrize(
    ("name", "answer", "events"),
    [
        ("lifespan", "the shared client answers", ["open", "closed"]),
        ("make", "a client per call answers", []),
    ],
)
def test_the_command_line_takes_factories_and_lifespans(
    name: str,
    answer: str,
    events: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    fake_simulate: Callable[[str], None],
) -> None:
    """``phoneactors simulate --conversation module:name``, fake engines, real time (~2 s)."""
    (tmp_path / "lifespan_bot.py").write_text(LIFESPAN_BOT)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, "lifespan_bot", raising=False)
    for variable in ("PHONEACTORS_CONVERSATION", "PHONEACTORS_LOG_LEVEL"):
        monkeypatch.delenv(variable, raising=False)
    fake_simulate("good night\n")
    argv = ["simulate", "--conversation", f"lifespan_bot:{name}", "--end-silence-ms", "200"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert f"bot: {answer} good night" in out, out
    assert events == sys.modules["lifespan_bot"].EVENTS


def test_the_command_line_refuses_a_factory_of_two_arguments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "two_args_bot.py").write_text("def make(call, other):\n    return None\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    with pytest.raises(ConfigurationError, match="needs 2 arguments"):
        cli.load_conversation("two_args_bot:make")


async def test_trio_sleeps_in_a_lifespan_are_fine(autojump_clock: MockClock) -> None:
    @asynccontextmanager
    async def lifespan() -> AsyncIterator[type[Parrot]]:
        await trio.sleep(1)  # connecting a pool, say
        yield Parrot

    async with open_conversations(lifespan) as factory:
        assert isinstance(factory(CALL), Parrot)
