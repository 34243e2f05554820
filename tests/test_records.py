"""Durable call records: every call's story, written as it happens, to SQLite or PostgreSQL.

The tests that take a ``target`` run once on each backend, against a real PostgreSQL server
(the ``postgres`` fixture starts one; ``tests/test_records_postgres.py`` has what only a shared
database needs).
"""

from __future__ import annotations

import re
import sqlite3
import stat
import sys
from contextlib import closing
from pathlib import Path

import pytest
import trio
from trio.testing import MockClock

import phoneactors
from phoneactors.conversation import Conversation, Interruption
from phoneactors.errors import ConfigurationError
from phoneactors.records import (
    CallEnded,
    CallerSaid,
    CallStarted,
    CallStore,
    describe,
    list_calls,
    read_transcript,
)
from phoneactors.testing import FakeSpeech, open_call


@pytest.fixture(params=["sqlite", "postgres"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a test's records go: a new SQLite file, or a new PostgreSQL database's URL."""
    if request.param == "sqlite":
        return str(tmp_path / "calls.db")
    return str(request.getfixturevalue("postgres_url"))


def _file_bytes(path: str) -> bytes:
    return Path(path).read_bytes()


def _count_events(target: str) -> int:
    if target.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(target) as connection:
            row = connection.execute("SELECT COUNT(*) FROM phoneactors.events").fetchone()
    else:
        with closing(sqlite3.connect(target)) as connection:
            row = connection.execute("SELECT COUNT(*) FROM events").fetchone()
    assert row is not None
    return int(row[0])


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
    autojump_clock: MockClock, speech: FakeSpeech, target: str
) -> None:
    db = target
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
            [(_, so_far)] = read_transcript(db, fake.call_sid)
            kinds = ["bot", "caller", "interrupted", "timing", "caller"]
            assert [e["kind"] for e in so_far] == kinds
            await fake.press("5")
            await fake.wait_for_bot_to_finish()
            await fake.say("ok bye")
            await fake.closed.wait()
        nursery.cancel_scope.cancel()
    [(call, events)] = read_transcript(db, fake.call_sid)
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
    autojump_clock: MockClock, speech: FakeSpeech, target: str
) -> None:
    class Broken(Conversation):
        async def reply(self, text: str) -> str:
            raise RuntimeError("database down")

    store = CallStore(target)
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        async with open_call(Broken, speech.engines(), speech=speech, observers=[store]) as fake:
            await fake.say("hello")
            await fake.wait_for_bot_to_finish()
        nursery.cancel_scope.cancel()  # the writer flushes what is queued before it stops
    [(_, events)] = read_transcript(target, fake.call_sid)
    failures = [e for e in events if e["kind"] == "failure"]
    assert len(failures) == 1
    assert "database down" in failures[0]["text"]


async def test_unusable_paths_are_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    store = CallStore(tmp_path / "file" / "calls.db")
    with pytest.raises(ConfigurationError, match="cannot open the call records"):
        await store.run()
    with pytest.raises(ConfigurationError, match="no call records"):
        list_calls(tmp_path / "missing.db")


async def test_records_with_no_calls_yet_list_none_and_know_no_call(target: str) -> None:
    if target.endswith(".db"):
        sqlite3.connect(target).close()  # a file, but no tables
    assert list_calls(target) == []
    with pytest.raises(ConfigurationError, match="no call or stream 'CAnope'"):
        read_transcript(target, "CAnope")
    await _record(CallStore(target), [])  # the tables, but no calls
    assert list_calls(target) == []
    with pytest.raises(ConfigurationError, match="no call or stream 'CAnope'"):
        read_transcript(target, "CAnope")


async def _record(store: CallStore, stories: list[tuple[str, list[object]]]) -> None:
    """Write ``(stream_sid, events)`` stories through a running store, then stop it."""
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        for stream_sid, events in stories:
            for event in events:
                store.observe(stream_sid, event)  # type: ignore[arg-type]
                await trio.sleep(1)
        nursery.cancel_scope.cancel()


async def test_each_stream_is_its_own_entry_linked_by_the_call_sid(
    autojump_clock: MockClock, target: str
) -> None:
    db = target
    started = CallStarted("CAone", "MZfirst", "AC1", "+15550001", {})
    again = CallStarted("CAone", "MZsecond", "AC1", "+15550001", {})
    other = CallStarted("CAtwo", "MZother", "AC1", "+15550002", {})
    await _record(
        CallStore(db, clock=trio.current_time),
        [
            ("MZfirst", [started, CallerSaid("hello"), CallEnded("socket dropped")]),
            ("MZsecond", [again, CallerSaid("are you there"), CallEnded("caller hung up")]),
            ("MZother", [other, CallerSaid("hi"), CallEnded("caller hung up")]),
        ],
    )
    listed = list_calls(db)
    assert [(c["stream_sid"], c["part"], c["parts"]) for c in listed] == [
        ("MZother", 1, 1),
        ("MZsecond", 2, 2),
        ("MZfirst", 1, 2),
    ]
    assert [c["turns"] for c in listed] == [1, 1, 1]
    story = read_transcript(db, "CAone")
    assert [stream["stream_sid"] for stream, _ in story] == ["MZfirst", "MZsecond"]
    assert [[e["text"] for e in events] for _, events in story] == [["hello"], ["are you there"]]
    for stream, events in story:
        assert all(e["at"] >= stream["started_at"] for e in events)
        assert stream["ended_at"] > stream["started_at"]
    [(only, _)] = read_transcript(db, "MZsecond")
    assert only["end_reason"] == "caller hung up"


async def test_two_test_kit_calls_are_two_calls(
    autojump_clock: MockClock, speech: FakeSpeech, target: str
) -> None:
    db = target
    store = CallStore(db, clock=trio.current_time)
    sids = []
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        for said in ("first call", "second call"):
            async with open_call(Desk, speech.engines(), speech=speech, observers=[store]) as fake:
                await fake.say(said)
                await fake.wait_for_bot_to_finish()
            sids.append(fake.call_sid)
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    assert sids[0] != sids[1]
    assert sorted(c["call_sid"] for c in list_calls(db)) == sorted(sids)
    for sid, said in zip(sids, ("first call", "second call"), strict=True):
        [(_, events)] = read_transcript(db, sid)
        assert [e["text"] for e in events if e["kind"] == "caller"] == [said]


async def test_text_a_database_cannot_hold_is_replaced_and_the_writer_goes_on(
    autojump_clock: MockClock, target: str
) -> None:
    # A peer's JSON can carry NULs and lone surrogates; neither may stop the writer.
    db = target
    started = CallStarted("CA1", "MZ\ud800", "AC1", "+1\x00", {"note": "\ud800"})
    await _record(
        CallStore(db, clock=trio.current_time),
        [("MZ\ud800", [started, CallerSaid("a\x00b\udc80"), CallerSaid("fine")])],
    )
    [(stream, events)] = read_transcript(db, "CA1")
    assert (stream["stream_sid"], stream["caller"]) == ("MZ?", "+1\ufffd")
    assert [e["text"] for e in events] == ["a\ufffdb?", "fine"]


async def test_the_records_are_private_to_their_owner(tmp_path: Path) -> None:
    db = tmp_path / "records" / "calls.db"
    await _record(CallStore(db), [("MZ1", [CallStarted("CA1", "MZ1", "AC1", None, {})])])
    for path in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
        if path.exists():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE(db.parent.stat().st_mode) == 0o700
    # A file made before (world-readable) is made private, with a warning.
    loose = tmp_path / "loose.db"
    sqlite3.connect(loose).close()
    loose.chmod(0o644)
    await _record(CallStore(loose), [])
    assert stat.S_IMODE(loose.stat().st_mode) == 0o600


async def test_retention_deletes_old_calls_at_start_and_every_hour(
    mock_clock: MockClock, target: str
) -> None:
    # Stepped by hand: an autojumping clock would race hours ahead while the writer's thread
    # works (a thread is not a runnable task), and the purges are hourly timers.
    db = target
    day = 86400.0
    old = CallStarted("CAold", "MZold", "AC1", None, {})
    earlier = CallStore(db, clock=lambda: 100 * day)
    earlier.observe("MZold", old)
    earlier.observe("MZold", CallerSaid("secret"))
    later = CallStore(db, clock=lambda: 106 * day)
    later.observe("MZnew", CallStarted("CAnew", "MZnew", "AC1", None, {}))
    for writer, count in ((earlier, 2), (later, 1)):
        async with trio.open_nursery() as nursery:
            await nursery.start(writer.run)
            await writer.wait_written(count)
            nursery.cancel_scope.cancel()

    store = CallStore(db, clock=lambda: 106 * day + trio.current_time(), retention_days=7)
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        await store.next_write()  # the purge at start: MZold is 6 days old and stays
        for _ in range(24):
            assert [c["stream_sid"] for c in list_calls(db)] == ["MZnew", "MZold"]
            mock_clock.jump(3600)
            await store.next_write()  # an hour on: the next purge
        assert store.purged == 0  # exactly 7 days old: kept
        mock_clock.jump(3600)
        await store.next_write()
        assert store.purged == 1
        assert [c["stream_sid"] for c in list_calls(db)] == ["MZnew"]
        nursery.cancel_scope.cancel()
    assert _count_events(db) == 0
    if db.endswith(".db"):
        assert b"secret" not in _file_bytes(db)  # overwritten, not just unlinked
    with pytest.raises(ConfigurationError, match="more than 0 days"):
        CallStore(db, retention_days=0)


async def test_a_file_of_the_first_layout_is_migrated(tmp_path: Path) -> None:
    db = tmp_path / "calls.db"
    with closing(sqlite3.connect(db)) as connection, connection:
        connection.executescript(
            """
            CREATE TABLE calls (call_sid TEXT PRIMARY KEY, stream_sid TEXT NOT NULL,
                account_sid TEXT NOT NULL, caller TEXT, parameters TEXT NOT NULL,
                started_at REAL NOT NULL, ended_at REAL, end_reason TEXT);
            CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, call_sid TEXT NOT NULL,
                at REAL NOT NULL, kind TEXT NOT NULL, text TEXT NOT NULL, data TEXT);
            CREATE INDEX events_by_call ON events (call_sid, id);
            INSERT INTO calls VALUES ('CA1', 'MZ1', 'AC1', '+1555', '{}', 10, 20, 'caller hung up');
            INSERT INTO events (call_sid, at, kind, text) VALUES ('CA1', 11, 'caller', 'hello');
            INSERT INTO events (call_sid, at, kind, text) VALUES ('CA1', 12, 'bot', 'hi there');
            INSERT INTO events (call_sid, at, kind, text) VALUES ('CA9', 13, 'caller', 'orphan');
            """
        )
    # Reading never changes the file (an older server may still be writing it): it says what
    # to do. The writer moves the file to the new layout.
    with pytest.raises(ConfigurationError, match="start the server on them once"):
        list_calls(db)
    await _record(CallStore(db), [("MZ2", [CallStarted("CA2", "MZ2", "AC1", None, {})])])
    assert [c["stream_sid"] for c in list_calls(db)] == ["MZ2", "MZ1"]
    [(_, events)] = read_transcript(db, "CA1")
    assert [e["text"] for e in events] == ["hello", "hi there"]
    with sqlite3.connect(db) as connection:  # an event whose call row was missing is kept
        assert connection.execute(
            "SELECT stream_sid FROM events WHERE text = 'orphan'"
        ).fetchone() == ("CA9",)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://bot:pw@db.example.com/calls", "postgresql://bot:***@db.example.com/calls"),
        (
            "postgres://bot:p%40w@db:5433/calls?sslmode=require",
            "postgres://bot:***@db:5433/calls?sslmode=require",
        ),
        (
            "postgresql://db/calls?user=bot&password=pw",
            "postgresql://db/calls?user=bot&password=***",
        ),
        ("postgresql://bot@db/calls", "postgresql://bot@db/calls"),
        ("calls.db", "calls.db"),
    ],
)
def test_a_database_url_is_described_without_its_password(url: str, shown: str) -> None:
    assert describe(url) == shown


def test_a_database_url_without_the_driver_says_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg: ModuleNotFoundError
    monkeypatch.delitem(sys.modules, "phoneactors.records_postgres", raising=False)
    monkeypatch.delattr(phoneactors, "records_postgres", raising=False)
    url = "postgresql://bot:pw@db.example.com/calls"
    message = "need the psycopg driver: pip install 'phoneactors[postgres]'"
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        CallStore(url)
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        list_calls(url)
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        read_transcript(url, "CA1")
    CallStore(tmp_path / "calls.db")  # a file needs no driver


class _LockedAtFirst:
    """A connection whose switch to WAL mode finds the file locked ``times`` times."""

    def __init__(self, times: int, message: str = "database is locked") -> None:
        self.left = times
        self.message = message
        self.tries = 0

    def execute(self, sql: str) -> None:
        assert sql == "PRAGMA journal_mode=WAL"
        self.tries += 1
        if self.left:
            self.left -= 1
            raise sqlite3.OperationalError(self.message)


def test_a_file_another_worker_is_opening_is_waited_for(monkeypatch: pytest.MonkeyPatch) -> None:
    from phoneactors import records_sqlite

    pauses: list[float] = []
    monkeypatch.setattr(records_sqlite.time, "sleep", pauses.append)
    connection = _LockedAtFirst(times=3)
    records_sqlite._enter_wal_mode(connection)  # type: ignore[arg-type]
    assert connection.tries == 4
    assert pauses == [0.005, 0.01, 0.02]


def test_a_file_locked_for_too_long_or_broken_is_an_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from phoneactors import records_sqlite

    monkeypatch.setattr(records_sqlite.time, "sleep", lambda seconds: None)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        records_sqlite._enter_wal_mode(_LockedAtFirst(times=10**9), patience=0.0)  # type: ignore[arg-type]
    broken = _LockedAtFirst(times=1, message="disk I/O error")
    with pytest.raises(sqlite3.OperationalError, match="disk"):
        records_sqlite._enter_wal_mode(broken)  # type: ignore[arg-type]
    assert broken.tries == 1
    # a real lock: another connection holds the new file exclusively
    path = tmp_path / "calls.db"
    with closing(sqlite3.connect(path, isolation_level=None)) as holder:
        holder.execute("BEGIN EXCLUSIVE")
        with (
            closing(sqlite3.connect(path, isolation_level=None, timeout=0)) as other,
            pytest.raises(sqlite3.OperationalError, match="locked"),
        ):
            records_sqlite._enter_wal_mode(other, patience=0.0)
        holder.execute("COMMIT")
