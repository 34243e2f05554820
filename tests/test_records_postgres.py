"""Call records in a shared PostgreSQL database: what only a database several servers share
needs. Each test gets a fresh database on a real server (the ``postgres`` fixture); what both
backends do alike is tested on both in ``tests/test_records.py``."""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
import trio
from trio.testing import MockClock, wait_all_tasks_blocked

pytest.importorskip(
    "psycopg", reason="needs the postgres extra: bash scripts/setup.sh dev,postgres"
)

from phoneactors import records_postgres
from phoneactors.cli import main
from phoneactors.errors import ConfigurationError
from phoneactors.records import (
    BotSaid,
    CallEnded,
    CallerSaid,
    CallEvent,
    CallStarted,
    CallStore,
    Failure,
    FalseInterruption,
    Interrupted,
    KeyPress,
    Recorded,
    TurnTimed,
    list_calls,
    read_transcript,
)
from phoneactors.server import ServerConfig
from phoneactors.testing import FakeSpeech, open_call
from tests.postgres_server import PASSWORD, PostgresServer
from tests.test_records import Desk
from tests.test_server import greeted, open_stream, running

SECRETS = (PASSWORD, quote(PASSWORD, safe=""))


def _no_password(text: str) -> bool:
    return not any(secret in text for secret in SECRETS)


def _messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records]


class Counter:
    """An observer that counts the events it is given."""

    def __init__(self) -> None:
        self.events = 0

    def observe(self, stream_sid: str, event: CallEvent) -> None:
        self.events += 1


STORY: list[tuple[str, CallEvent]] = [
    ("MZa", CallStarted("CA1", "MZa", "AC1", "+15550001", {"lang": "en", "vip": "yes"})),
    ("MZa", BotSaid("Hello, how can I help?")),
    ("MZa", CallerSaid("What time is it")),
    ("MZa", Interrupted("It is ten", "past four.")),
    ("MZa", FalseInterruption("backchannel", "uh-huh")),
    ("MZa", FalseInterruption("no words", "")),
    ("MZa", KeyPress("5")),
    ("MZa", TurnTimed({"end_of_speech": 300.0, "stt": None, "reply": 1.5})),
    ("MZa", Failure("reply", "database down")),
    ("MZa", Recorded("/srv/recordings/MZa.wav")),
    ("MZa", CallEnded("socket dropped")),
    # Three streams starting at the same moment: ordered by sid bytewise ("MZB" < "MZb"), not
    # as the test database's en-US collation would ("MZb" < "MZB").
    ("MZb", CallStarted("CA1", "MZb", "AC1", "+15550001", {})),
    ("MZB", CallStarted("CA2", "MZB", "AC1", None, {})),
    ("MZc", CallStarted("CA3", "MZc", "AC1", "+15550003", {})),
    ("MZb", CallerSaid("are you there")),
    ("MZB", CallerSaid("ünïcödé, \"quotes\" and 'apostrophes'; DROP TABLE streams")),
    ("MZb", CallEnded("caller hung up")),
]
"""Every kind of event, a reconnected call, and sids that sort differently by locale."""


async def _tell(store: CallStore, story: list[tuple[str, CallEvent]]) -> None:
    """Write ``story`` through a running ``store`` (its clock: the mock clock), then stop it."""
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        for stream_sid, event in story:
            store.observe(stream_sid, event)
            if stream_sid == "MZa" or isinstance(event, CallEnded):
                await trio.sleep(1)
        await store.wait_written(len(story))
        nursery.cancel_scope.cancel()


async def test_both_backends_answer_the_same_story_the_same(
    autojump_clock: MockClock, tmp_path: Path, postgres_url: str
) -> None:
    sqlite = str(tmp_path / "calls.db")
    for target in (sqlite, postgres_url):
        start = trio.current_time()
        clock = lambda: 1_800_000_000 + trio.current_time() - start  # noqa: E731, B023
        await _tell(CallStore(target, clock=clock), STORY)
    listed = list_calls(postgres_url)
    assert listed == list_calls(sqlite)
    assert [c["stream_sid"] for c in listed] == ["MZc", "MZb", "MZB", "MZa"]  # newest first
    assert list_calls(postgres_url, 2) == list_calls(sqlite, 2)
    assert list_calls(postgres_url, -1) == list_calls(sqlite, -1)
    for sid in ("CA1", "CA2", "CA3", "MZa", "MZb"):
        assert read_transcript(postgres_url, sid) == read_transcript(sqlite, sid), sid


async def test_two_servers_writing_into_one_database_at_once_both_land(
    postgres_url: str,
) -> None:
    stores = [CallStore(postgres_url), CallStore(postgres_url)]
    streams, lines = 30, 8

    async def serve_calls(store: CallStore, server: int) -> None:
        for n in range(streams):
            sid = f"MZ{server}x{n}"
            store.observe(sid, CallStarted(f"CA{server}x{n}", sid, "AC1", None, {}))
            for line in range(lines):
                store.observe(sid, CallerSaid(f"server {server} call {n} line {line}"))
                await trio.sleep(0.0005)  # batches of both servers interleave
            store.observe(sid, CallEnded("caller hung up"))

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            for store in stores:
                await nursery.start(store.run)
            async with trio.open_nursery() as callers:
                for server, store in enumerate(stores):
                    callers.start_soon(serve_calls, store, server)
            for store in stores:
                await store.wait_written(streams * (lines + 2))
            nursery.cancel_scope.cancel()
    assert all(store.failed_writes == store.dropped == 0 for store in stores)
    listed = list_calls(postgres_url, limit=1000)
    assert len(listed) == 2 * streams
    assert all(c["turns"] == lines and c["end_reason"] == "caller hung up" for c in listed)
    [(_, events)] = read_transcript(postgres_url, "CA1x7")
    assert [e["text"] for e in events] == [f"server 1 call 7 line {n}" for n in range(lines)]


async def test_servers_starting_at_once_on_an_empty_database_make_its_tables_once(
    postgres: PostgresServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="phoneactors.records")
    database = postgres.create_database()
    url = postgres.url(database)
    stores = [CallStore(url) for _ in range(4)]
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            for store in stores:
                nursery.start_soon(store.run)  # all open the database at the same moment
            for n, store in enumerate(stores):
                store.observe(f"MZ{n}", CallStarted(f"CA{n}", f"MZ{n}", "AC1", None, {}))
            for store in stores:
                await store.wait_written(1)
            nursery.cancel_scope.cancel()
    assert len(list_calls(url)) == 4
    assert sum("created the tables" in m for m in _messages(caplog)) == 1
    with postgres.admin(database) as connection:
        versions = connection.execute("SELECT version FROM phoneactors.schema_version")
        assert versions.fetchall() == [(2,)]


async def _old_and_new_calls(url: str) -> None:
    """A call started on day 100 (MZold) and one on day 110 (MZnew)."""
    day = 86400.0
    await _tell(
        CallStore(url, clock=lambda: 100 * day),
        [("MZold", CallStarted("CAold", "MZold", "AC1", None, {})), ("MZold", CallerSaid("x"))],
    )
    await _tell(
        CallStore(url, clock=lambda: 110 * day),
        [("MZnew", CallStarted("CAnew", "MZnew", "AC1", None, {}))],
    )


async def _purge_at_start(stores: list[CallStore]) -> None:
    """Start ``stores`` (with a retention) at once and stop them once each has purged."""
    async with trio.open_nursery() as nursery:
        for store in stores:
            await nursery.start(store.run)
        await wait_all_tasks_blocked()  # every store has queued its purge at start
        for store in stores:
            store.observe("MZmark", CallerSaid("after the purge"))
            await store.wait_written(1)
        nursery.cancel_scope.cancel()


async def test_servers_purging_at_once_delete_each_old_call_once(
    mock_clock: MockClock, postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    await _old_and_new_calls(postgres_url)
    day = 86400.0
    stores = [CallStore(postgres_url, clock=lambda: 110 * day, retention_days=7) for _ in "ab"]
    await _purge_at_start(stores)
    assert sum(store.purged for store in stores) == 1
    assert [c["stream_sid"] for c in list_calls(postgres_url)] == ["MZnew"]
    assert not [m for m in _messages(caplog) if "could not" in m]


async def test_a_server_leaves_old_calls_to_the_one_deleting_them_now(
    mock_clock: MockClock, postgres: PostgresServer
) -> None:
    database = postgres.create_database()
    url = postgres.url(database)
    await _old_and_new_calls(url)
    day = 86400.0
    with postgres.admin(database) as other:  # another server, in the middle of its purge
        other.execute("SELECT pg_advisory_lock(%s)", (records_postgres._PURGE_LOCK,))
        waiting = CallStore(url, clock=lambda: 110 * day, retention_days=7)
        await _purge_at_start([waiting])
        assert waiting.purged == 0
        assert len(list_calls(url)) == 2
    purging = CallStore(url, clock=lambda: 110 * day, retention_days=7)
    await _purge_at_start([purging])
    assert purging.purged == 1


async def test_a_dropped_connection_is_made_again_and_nothing_is_lost_or_doubled(
    autojump_clock: MockClock, postgres: PostgresServer, caplog: pytest.LogCaptureFixture
) -> None:
    database = postgres.create_database()
    url = postgres.url(database)
    store = CallStore(url, clock=trio.current_time)
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        store.observe("MZ1", CallStarted("CA1", "MZ1", "AC1", None, {}))
        store.observe("MZ1", CallerSaid("before"))
        await store.wait_written(2)
        assert await trio.to_thread.run_sync(postgres.drop_connections, database) == 1
        store.observe("MZ1", CallerSaid("after"))
        store.observe("MZ1", CallEnded("caller hung up"))
        await store.wait_written(4)
        nursery.cancel_scope.cancel()
    [(stream, events)] = read_transcript(url, "CA1")
    assert [e["text"] for e in events] == ["before", "after"]
    assert stream["end_reason"] == "caller hung up"
    assert store.failed_writes == 1
    [lost] = [m for m in _messages(caplog) if "cannot reach" in m]
    assert "server closed the connection unexpectedly" in lost
    assert f"postgresql://phoneactors:***@127.0.0.1:{postgres.port}/{database}" in lost
    assert "holding 2 events" in lost
    assert _no_password("\n".join(_messages(caplog)))


async def test_calls_go_on_while_the_database_is_down_and_their_records_land_after(
    autojump_clock: MockClock,
    speech: FakeSpeech,
    postgres: PostgresServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    database = postgres.create_database()
    url = postgres.url(database)
    store, counter = CallStore(url, clock=trio.current_time), Counter()
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        await trio.to_thread.run_sync(postgres.refuse_connections, database)
        observers = [store, counter]
        async with open_call(Desk, speech.engines(), speech=speech, observers=observers) as fake:
            await fake.wait_for_bot_to_finish()
            await fake.say("I lost my key")
            await fake.wait_for_bot_to_finish()
            await fake.say("ok bye")
            await fake.closed.wait()
        assert store.failed_writes >= 2  # tried, and tried again, while the call went on
        assert store.written == store.dropped == 0
        await trio.to_thread.run_sync(postgres.accept_connections, database)
        await store.wait_written(counter.events)
        nursery.cancel_scope.cancel()
    [(stream, events)] = read_transcript(url, fake.call_sid)
    assert stream["end_reason"] == "conversation hung up"
    said = [e["text"] for e in events if e["kind"] == "caller"]
    assert said == ["I lost my key", "ok bye"]
    messages = _messages(caplog)
    assert any("not currently accepting connections" in m for m in messages if "cannot reach" in m)
    assert any(re.search(r"writing to postgresql://\S+ again, after \d+ s", m) for m in messages)
    assert _no_password("\n".join(messages))


async def test_a_database_that_cannot_be_used_is_a_clear_error_without_the_password(
    postgres: PostgresServer,
) -> None:
    wrong = "not-the-password-4711"
    unusable = {
        postgres.url("postgres", password=wrong): "password authentication failed",
        postgres.url("no_such_database"): 'database "no_such_database" does not exist',
        f"postgresql://phoneactors:{quote(PASSWORD, safe='')}@127.0.0.1:1/calls": "refused",
    }
    for url, why in unusable.items():
        for attempt in (CallStore(url).run, lambda url=url: list_calls(url)):
            with pytest.raises(ConfigurationError) as caught:
                await attempt()  # type: ignore[operator]
            message = str(caught.value)
            assert message.startswith("cannot ")
            assert "postgresql://phoneactors:***@127.0.0.1:" in message
            assert why in message
            assert _no_password(message)
            assert wrong not in message
            assert "\n" not in message


async def test_a_database_of_a_newer_phoneactors_is_refused_not_changed(
    postgres: PostgresServer,
) -> None:
    database = postgres.create_database()
    url = postgres.url(database)
    await _tell(CallStore(url), [])
    with postgres.admin(database) as connection:
        connection.execute("UPDATE phoneactors.schema_version SET version = 99")
    for attempt in (CallStore(url).run, lambda: list_calls(url)):
        with pytest.raises(ConfigurationError, match=r"newer phoneactors \(schema 99"):
            await attempt()  # type: ignore[operator]


async def test_phoneactors_calls_reads_a_database(
    autojump_clock: MockClock, postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["calls", "--records", postgres_url]) == 0
    assert "no calls recorded in postgresql://phoneactors:***@" in capsys.readouterr().out
    await _tell(CallStore(postgres_url), STORY[:11])
    assert main(["calls", "--records", postgres_url]) == 0
    assert "CA1         +15550001" in capsys.readouterr().out
    assert main(["calls", "CA1", "--records", postgres_url]) == 0
    transcript = capsys.readouterr().out
    assert "caller: What time is it" in transcript
    assert "bot (interrupted): It is ten  [not heard: past four.]" in transcript
    assert "(ended: socket dropped)" in transcript
    assert main(["calls", "CA9", "--records", postgres_url]) == 2
    error = capsys.readouterr().err
    assert "no call or stream 'CA9' in postgresql://phoneactors:***@" in error
    assert _no_password(error)


def test_the_server_config_never_shows_the_records_url() -> None:
    url = f"postgresql://phoneactors:{quote(PASSWORD, safe='')}@db.example.com/calls"
    assert _no_password(repr(ServerConfig(records=url)))


async def test_a_server_writes_its_calls_to_the_database(
    speech: FakeSpeech, postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="phoneactors")
    with trio.fail_after(60):
        async with (
            running(speech.engines(), records=postgres_url) as server,
            open_stream(server.ws_url) as call,
        ):
            await greeted(call)
            greeting = call.media
            await call.say(speech, "hello")
            await call.wait_for(lambda: call.media >= greeting + 2)
            await call.stop()
            await call.wait_closed()
        await server.stopped.wait()  # the records writer flushes as the server stops
    [stream] = list_calls(postgres_url)
    assert stream["end_reason"] == "caller hung up"
    [(_, events)] = read_transcript(postgres_url, stream["call_sid"])
    assert [e["kind"] for e in events if e["kind"] != "timing"][:2] == ["bot", "caller"]
    messages = _messages(caplog)
    assert any(m.startswith("call records: postgresql://phoneactors:***@") for m in messages)
    assert _no_password("\n".join(messages))


@pytest.mark.e2e
def test_the_real_server_records_a_real_call_in_postgres_for_phoneactors_calls(
    postgres_url: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PHONEACTORS_", "TWILIO_"))}
    command = [sys.executable, "-m", "phoneactors"]
    argv = ["--port", "0", "--log-format", "json", "--records", postgres_url]
    with (
        (tmp_path / "log").open("w+") as log,
        subprocess.Popen(
            [*command, *argv], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=log, text=True
        ) as server,
    ):
        try:
            assert server.stdout is not None
            line = server.stdout.readline()
            found = re.search(r"http://127\.0\.0\.1:(\d+)", line)
            assert found, line
            call_sid = trio.run(_call_once_ready, f"127.0.0.1:{found.group(1)}")
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)
        finally:
            server.kill()
        log.seek(0)
        logged = log.read()
    assert server.returncode == 0, logged
    assert '"call records: postgresql://phoneactors:***@127.0.0.1:' in logged
    assert _no_password(logged)
    listing = subprocess.run(
        [*command, "calls", "--records", postgres_url], env=env, capture_output=True, text=True
    )
    assert call_sid in listing.stdout, listing.stderr
    transcript = subprocess.run(
        [*command, "calls", call_sid, "--records", postgres_url],
        env=env,
        capture_output=True,
        text=True,
    )
    assert "caller: What time do you open tomorrow" in transcript.stdout, transcript.stdout


async def _call_once_ready(address: str) -> str:
    """Wait for the server's engines, then call it once with a real voice: the call sid."""
    import httpx

    from phoneactors.testing import load_caller_voice, open_twilio_stream

    with trio.fail_after(180):
        async with httpx.AsyncClient() as client:
            while True:
                if (await client.get(f"http://{address}/healthz")).status_code == 200:
                    break
                await trio.sleep(0.2)
        voice = await load_caller_voice()
        async with open_twilio_stream(f"ws://{address}/stream", voice=voice) as fake:
            await fake.wait_for_bot_to_finish()
            await fake.say("What time do you open tomorrow?")
            await fake.wait_for_bot_to_finish()
    return fake.call_sid
