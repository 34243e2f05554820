"""Durable call records: every call's story in SQLite, written as it happens."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import trio
from trio.testing import MockClock

from phoneactors.conversation import Conversation, Interruption
from phoneactors.errors import ConfigurationError
from phoneactors.records import CallStore, list_calls, read_transcript
from phoneactors.testing import FakeSpeech, open_call


class Desk(Conversation):
    greeting = "Hello, this is the front desk. How can I help you today?"

    async def reply(self, text: str) -> str:
        if "bye" in text:
            self.hang_up()
            return "Goodbye."
        return "Let me look into that for you, it will only take a moment of your time."

    async def on_dtmf(self, digit: str) -> str:
        return f"You pressed {digit}."

    async def on_interrupted(self, interruption: Interruption) -> None:
        pass


async def test_a_call_is_recorded_as_it_happens(
    autojump_clock: MockClock, speech: FakeSpeech, tmp_path: Path
) -> None:
    db = tmp_path / "calls.db"
    store = CallStore(db, clock=trio.current_time)
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        async with open_call(Desk, speech.engines(), speech=speech, observers=[store]) as fake:
            await fake.wait_for_bot_to_finish()
            await fake.say("I lost my key")
            greeting = len(fake.played)
            await fake.wait_for(lambda: len(fake.played) > greeting + 20)
            await fake.say("wait a moment", wait=False)  # talks over the reply
            await fake.wait_for(lambda: bool(fake.clears))
            # Durable before the call is over: a crash now would keep all of this.
            await store.wait_written(5)
            _, so_far = read_transcript(db, fake.call_sid)
            kinds = ["bot", "caller", "interrupted", "timing", "caller"]
            assert [e["kind"] for e in so_far] == kinds
            await fake.press("5")
            await fake.wait_for_bot_to_finish()
            await fake.say("ok bye")
            await fake.closed.wait()
        nursery.cancel_scope.cancel()
    call, events = read_transcript(db, fake.call_sid)
    assert call["end_reason"] == "conversation hung up"
    assert call["caller"] == "+15550100001"
    assert call["ended_at"] > call["started_at"]
    story = [(e["kind"], e["text"]) for e in events if e["kind"] != "timing"]
    assert story[0] == ("bot", Desk.greeting)
    assert story[1] == ("caller", "I lost my key")
    assert story[2][0] == "interrupted"
    assert story[2][1].startswith("Let me look")
    assert story[3] == ("caller", "wait a moment")
    assert ("dtmf", "5") in story
    assert ("bot", "You pressed 5.") in story
    assert story[-2:] == [("caller", "ok bye"), ("bot", "Goodbye.")]
    assert [e["at"] for e in events] == sorted(e["at"] for e in events)
    assert sum(e["kind"] == "timing" for e in events) == 3  # one per answered utterance
    [listed] = list_calls(db)
    assert listed["call_sid"] == fake.call_sid
    assert listed["turns"] == 3


async def test_failures_are_recorded(
    autojump_clock: MockClock, speech: FakeSpeech, tmp_path: Path
) -> None:
    class Broken(Conversation):
        async def reply(self, text: str) -> str:
            raise RuntimeError("database down")

    store = CallStore(tmp_path / "calls.db")
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        async with open_call(Broken, speech.engines(), speech=speech, observers=[store]) as fake:
            await fake.say("hello")
            await fake.wait_for_bot_to_finish()
        nursery.cancel_scope.cancel()  # the writer flushes what is queued before it stops
    _, events = read_transcript(tmp_path / "calls.db", fake.call_sid)
    failures = [e for e in events if e["kind"] == "failure"]
    assert len(failures) == 1
    assert "database down" in failures[0]["text"]


async def test_unusable_paths_and_unknown_calls_are_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    store = CallStore(tmp_path / "file" / "calls.db")
    with pytest.raises(ConfigurationError, match="cannot open the call records"):
        await store.run()
    with pytest.raises(ConfigurationError, match="no call records"):
        list_calls(tmp_path / "missing.db")
    db = tmp_path / "calls.db"
    sqlite3.connect(db).close()
    with pytest.raises(ConfigurationError, match="no call 'CAnope'"):
        read_transcript(db, "CAnope")
