"""What happened on each call, as events, and a durable SQLite record of them.

The runtime reports each call's story as small frozen events to every
:class:`CallObserver` it was given: the call started, the caller said something, the bot said
something (or was interrupted: what was heard and what not), a key was pressed, a turn's timing,
a failure, the end. Observers must not block: ``observe`` is called on the trio thread in the
middle of the call.

:class:`CallStore` writes them to SQLite as they happen. Writes go through a bounded queue to one
writer task, which commits each batch in a worker thread, so a crash loses at most the events of
the last moment, and a slow disk never stalls a call (a full queue drops events, counted and
logged).

Records are kept per media stream: Twilio names each stream (``MZ…``) and each call (``CA…``),
and one call can have several streams one after the other (a reconnect). A stream is its own
entry, linked to the others of its call by the call sid.

The file holds callers' numbers and what they said: it is created readable by its owner only
(and so are SQLite's ``-wal`` and ``-shm`` files beside it), deleted rows are overwritten
(``secure_delete``), and ``retention_days`` deletes calls older than that.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

import trio

from .errors import ConfigurationError

__all__ = [
    "BotSaid",
    "CallEnded",
    "CallEvent",
    "CallObserver",
    "CallStarted",
    "CallStore",
    "CallerSaid",
    "Failure",
    "FalseInterruption",
    "Interrupted",
    "KeyPress",
    "Recorded",
    "TurnTimed",
    "list_calls",
    "read_transcript",
]

logger = logging.getLogger("phoneactors.records")

QUEUE_SIZE: Final = 10_000
"""Events waiting for the writer. At a few events per turn this is minutes of every call."""


@dataclass(frozen=True, slots=True)
class CallStarted:
    call_sid: str
    stream_sid: str
    account_sid: str
    caller: str | None
    custom_parameters: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class CallerSaid:
    text: str


@dataclass(frozen=True, slots=True)
class BotSaid:
    """A reply that played in full."""

    text: str


@dataclass(frozen=True, slots=True)
class Interrupted:
    """The caller talked over a reply."""

    heard: str
    unheard: str


@dataclass(frozen=True, slots=True)
class FalseInterruption:
    """The caller made a sound over a reply that was no interruption: ``kind`` is "no words"
    (a cough, a breath, noise; ``text`` is what the speech-to-text engine made of it) or
    "backchannel" ("uh-huh"; ``text`` is the words). The reply paused, then played on."""

    kind: str
    text: str


@dataclass(frozen=True, slots=True)
class KeyPress:
    digit: str


@dataclass(frozen=True, slots=True)
class TurnTimed:
    stages_ms: Mapping[str, float | None]


@dataclass(frozen=True, slots=True)
class Failure:
    """Something went wrong and was contained: ``kind`` is reply, stt, tts, hook or protocol."""

    kind: str
    message: str


@dataclass(frozen=True, slots=True)
class CallEnded:
    reason: str


@dataclass(frozen=True, slots=True)
class Recorded:
    """The call's audio is in the stereo WAV file at ``path`` (``--recordings``)."""

    path: str


CallEvent = (
    CallStarted
    | CallerSaid
    | BotSaid
    | Interrupted
    | FalseInterruption
    | KeyPress
    | TurnTimed
    | Failure
    | CallEnded
    | Recorded
)


class CallObserver(Protocol):
    """Receives every call's events, keyed by media stream (``stream_sid``; the call sid is
    in :class:`CallStarted`). Must return quickly and never block."""

    def observe(self, stream_sid: str, event: CallEvent) -> None: ...


SCHEMA_VERSION: Final = 2
"""``PRAGMA user_version`` of the current layout; 0 is the first one (calls keyed by call sid),
which is migrated when a file of it is opened."""

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS streams (
    stream_sid TEXT PRIMARY KEY,
    call_sid TEXT NOT NULL,
    account_sid TEXT NOT NULL,
    caller TEXT,
    parameters TEXT NOT NULL,
    started_at REAL NOT NULL,
    ended_at REAL,
    end_reason TEXT
);
CREATE INDEX IF NOT EXISTS streams_by_call ON streams (call_sid, started_at);
CREATE INDEX IF NOT EXISTS streams_by_start ON streams (started_at);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    stream_sid TEXT NOT NULL,
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    text TEXT NOT NULL,
    data TEXT
);
CREATE INDEX IF NOT EXISTS events_by_stream ON events (stream_sid, id);
"""

_MIGRATE_FROM_0: Final = (
    """
ALTER TABLE calls RENAME TO calls_v0;
ALTER TABLE events RENAME TO events_v0;
DROP INDEX IF EXISTS events_by_call;
"""
    + _SCHEMA
    + """
INSERT INTO streams SELECT stream_sid, call_sid, account_sid, caller, parameters, started_at,
    ended_at, end_reason FROM calls_v0;
INSERT INTO events (stream_sid, at, kind, text, data)
    SELECT COALESCE(c.stream_sid, e.call_sid), e.at, e.kind, e.text, e.data FROM events_v0 e
    LEFT JOIN calls_v0 c ON c.call_sid = e.call_sid ORDER BY e.id;
DROP TABLE calls_v0;
DROP TABLE events_v0;
"""
)

OWNER_ONLY: Final = 0o600


def _create_private(path: Path) -> None:
    """Create ``path`` (and its folder) readable by its owner only, if it does not exist; an
    existing file readable by others is made private, with a warning."""
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, OWNER_ONLY))
    except FileExistsError:
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            logger.warning(
                "call records: %s was readable by others (%o); making it private (600)", path, mode
            )
            path.chmod(OWNER_ONLY)
    for companion in (Path(f"{path}-wal"), Path(f"{path}-shm")):
        if companion.exists() and companion.stat().st_mode & 0o077:
            companion.chmod(OWNER_ONLY)


def _prepare(connection: sqlite3.Connection) -> None:
    """WAL mode, overwrite on delete, and the current schema (migrating an older file)."""
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("PRAGMA secure_delete=ON")
    if _version(connection) == SCHEMA_VERSION:
        return
    connection.execute("BEGIN IMMEDIATE")  # one process migrates; the others see it done
    try:
        version = _version(connection)
        if version == SCHEMA_VERSION:
            connection.execute("COMMIT")
            return
        old = _has_old_layout(connection)
        script = _MIGRATE_FROM_0 if old else _SCHEMA
        for statement in _statements(script):
            connection.execute(statement)
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    if old:
        logger.info("call records: moved the file to the per-stream layout")


def _version(connection: sqlite3.Connection) -> int:
    version = int(connection.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise sqlite3.DatabaseError(
            f"the file was written by a newer phoneactors (schema {version}; this one knows "
            f"{SCHEMA_VERSION})"
        )
    return version


def _has_old_layout(connection: sqlite3.Connection) -> bool:
    found = connection.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'calls'"
    ).fetchone()
    return found is not None


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


@contextmanager
def _reading(path: str | Path) -> Iterator[sqlite3.Connection | None]:
    """The records file opened read-only (``None`` when it holds no records yet): reading never
    changes the file, even while a server of another version writes it."""
    if not Path(path).exists():
        raise ConfigurationError(f"no call records at {path}")
    uri = f"{Path(path).resolve().as_uri()}?mode=ro"
    try:
        with closing(sqlite3.connect(uri, uri=True, isolation_level=None)) as connection:
            if _version(connection) != SCHEMA_VERSION:
                if _has_old_layout(connection):
                    raise ConfigurationError(
                        f"the call records at {path} are in the layout of an older phoneactors; "
                        "start the server on them once (--records PATH) to move them to this one"
                    )
                yield None
                return
            connection.row_factory = sqlite3.Row
            yield connection
    except sqlite3.DatabaseError as exc:
        raise ConfigurationError(f"cannot read the call records at {path}: {exc}") from exc


@dataclass(frozen=True, slots=True)
class _Purge:
    """Delete the streams that started before ``before`` (wall-clock seconds), with events."""

    before: float


def _row(stream_sid: str, at: float, event: CallEvent) -> tuple[str, tuple[Any, ...]]:
    """The SQL statement and parameters that record ``event``."""
    insert = "INSERT INTO events (stream_sid, at, kind, text, data) VALUES (?, ?, ?, ?, ?)"
    match event:
        case CallStarted():
            return (
                "INSERT OR REPLACE INTO streams (stream_sid, call_sid, account_sid, caller,"
                " parameters, started_at) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    stream_sid,
                    event.call_sid,
                    event.account_sid,
                    event.caller,
                    json.dumps(dict(event.custom_parameters)),
                    at,
                ),
            )
        case CallEnded(reason=reason):
            return (
                "UPDATE streams SET ended_at = ?, end_reason = ? WHERE stream_sid = ?",
                (at, reason, stream_sid),
            )
        case CallerSaid(text=text):
            return insert, (stream_sid, at, "caller", text, None)
        case BotSaid(text=text):
            return insert, (stream_sid, at, "bot", text, None)
        case Interrupted(heard=heard, unheard=unheard):
            return insert, (stream_sid, at, "interrupted", heard, json.dumps({"unheard": unheard}))
        case FalseInterruption(kind=kind, text=text):
            return insert, (stream_sid, at, "resumed", text, json.dumps({"kind": kind}))
        case KeyPress(digit=digit):
            return insert, (stream_sid, at, "dtmf", digit, None)
        case TurnTimed(stages_ms=stages):
            return insert, (stream_sid, at, "timing", "", json.dumps(dict(stages)))
        case Failure(kind=kind, message=message):
            return insert, (stream_sid, at, "failure", message, json.dumps({"kind": kind}))
        case Recorded(path=path):
            return insert, (stream_sid, at, "recording", path, None)


PURGE_EVERY_S: Final = 3600.0
"""How often a store with ``retention_days`` deletes what has grown too old."""


class CallStore:
    """Durable call records in SQLite. ``observe`` from any call; :meth:`run` writes.

    ``path`` is created (owner-only, with its tables) when :meth:`run` starts; an unusable path
    raises :class:`ConfigurationError` there. ``clock`` stamps events (wall-clock seconds).
    ``retention_days``: streams that started longer ago are deleted at start and every hour
    (``None``: kept until you delete them).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        clock: Callable[[], float] = time.time,
        retention_days: float | None = None,
    ) -> None:
        if retention_days is not None and not retention_days > 0:
            raise ConfigurationError(
                f"call records retention must be more than 0 days, got {retention_days}"
            )
        self.path = Path(path)
        self.retention_days = retention_days
        self._clock = clock
        self._send, self._receive = trio.open_memory_channel[tuple[str, float, CallEvent | _Purge]](
            QUEUE_SIZE
        )
        self.dropped = 0
        self.written = 0
        self.purged = 0
        """Streams deleted for being older than ``retention_days``."""
        self._progress = trio.Event()

    def observe(self, stream_sid: str, event: CallEvent) -> None:
        try:
            self._send.send_nowait((stream_sid, self._clock(), event))
        except (trio.WouldBlock, trio.ClosedResourceError):
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                logger.warning("call records: writer behind, %d events dropped", self.dropped)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Write events until cancelled; on cancellation, write what is queued first."""
        connection = await trio.to_thread.run_sync(self._open)
        try:
            async with trio.open_nursery() as nursery:
                if self.retention_days is not None:
                    nursery.start_soon(self._purge_old, self.retention_days)
                task_status.started()
                await self._write_events(connection)
        finally:
            connection.close()

    async def _write_events(self, connection: sqlite3.Connection) -> None:
        pending: list[tuple[str, float, CallEvent | _Purge]] = []
        try:
            async for first in self._receive:
                pending = [first, *self._queued()]
                await trio.to_thread.run_sync(self._write, connection, pending)
                pending = []
                self._progress.set()
                self._progress = trio.Event()
        finally:
            with trio.CancelScope(shield=True):
                pending += self._queued()
                if pending:
                    await trio.to_thread.run_sync(self._write, connection, pending)

    async def _purge_old(self, days: float) -> None:
        """Ask the writer to delete old streams now and every :data:`PURGE_EVERY_S`."""
        while True:
            with suppress(trio.WouldBlock):  # the writer is far behind: next time, then
                self._send.send_nowait(("", self._clock(), _Purge(self._clock() - days * 86400)))
            await trio.sleep(PURGE_EVERY_S)

    async def wait_written(self, count: int) -> None:
        """Wait until ``count`` events in all have been written (for tests and tools)."""
        while self.written < count:
            await self._progress.wait()

    async def next_write(self) -> None:
        """Wait until the writer has finished its next batch (for tests and tools)."""
        await self._progress.wait()

    def _queued(self) -> list[tuple[str, float, CallEvent | _Purge]]:
        events = []
        while True:
            try:
                events.append(self._receive.receive_nowait())
            except (trio.WouldBlock, trio.EndOfChannel):
                return events

    def _open(self) -> sqlite3.Connection:
        try:
            _create_private(self.path)
            connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            _prepare(connection)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigurationError(f"cannot open the call records at {self.path}: {exc}") from exc
        return connection

    def _write(
        self, connection: sqlite3.Connection, batch: list[tuple[str, float, CallEvent | _Purge]]
    ) -> None:
        try:
            connection.execute("BEGIN")
            purged = written = 0
            for stream_sid, at, event in batch:
                if isinstance(event, _Purge):
                    purged += _delete_before(connection, event.before)
                else:
                    connection.execute(*_row(stream_sid, at, event))
                    written += 1
            connection.execute("COMMIT")
            self.written += written
            if purged:
                self.purged += purged
                logger.info("call records: deleted %d calls past the retention time", purged)
                connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            logger.exception("call records: could not write %d events", len(batch))


def _delete_before(connection: sqlite3.Connection, before: float) -> int:
    """Delete the streams that started before ``before``, and their events; how many."""
    connection.execute(
        "DELETE FROM events WHERE stream_sid IN"
        " (SELECT stream_sid FROM streams WHERE started_at < ?)",
        (before,),
    )
    deleted = connection.execute("DELETE FROM streams WHERE started_at < ?", (before,)).rowcount
    # Events of a stream whose start was never recorded (a full queue dropped it): by their age.
    connection.execute(
        "DELETE FROM events WHERE at < ? AND stream_sid NOT IN (SELECT stream_sid FROM streams)",
        (before,),
    )
    return int(deleted)


def list_calls(path: str | Path, limit: int = 50) -> list[dict[str, Any]]:
    """The most recent media streams, newest first: one a call, unless Twilio reconnected it.

    Each row has the stream's facts (``stream_sid``, ``call_sid``, ``caller``, ``started_at``,
    ``ended_at``, ``end_reason``, …), ``turns`` (the caller's utterances), and ``part`` /
    ``parts``: which of its call's streams it is, and how many the call has.
    """
    with _reading(path) as connection:
        if connection is None:
            return []
        rows = connection.execute(
            "SELECT s.*,"
            " (SELECT COUNT(*) FROM events e WHERE e.stream_sid = s.stream_sid"
            "  AND e.kind = 'caller') AS turns,"
            " (SELECT COUNT(*) FROM streams o WHERE o.call_sid = s.call_sid"
            "  AND (o.started_at, o.stream_sid) <= (s.started_at, s.stream_sid)) AS part,"
            " (SELECT COUNT(*) FROM streams o WHERE o.call_sid = s.call_sid) AS parts"
            " FROM streams s ORDER BY started_at DESC, stream_sid DESC LIMIT ?",
            (limit,),
        ).fetchall()
    return [dict(row) for row in rows]


def read_transcript(
    path: str | Path, sid: str
) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """The story of a call sid (every stream of the call, in order) or of one stream sid: a
    list of (the stream's facts, its events in order). Raises ConfigurationError if ``sid`` is
    unknown."""
    with _reading(path) as connection:
        if connection is None:
            raise ConfigurationError(f"no call or stream {sid!r} in {path}")
        streams = connection.execute(
            "SELECT * FROM streams WHERE call_sid = ? OR stream_sid = ?"
            " ORDER BY started_at, stream_sid",
            (sid, sid),
        ).fetchall()
        if not streams:
            raise ConfigurationError(f"no call or stream {sid!r} in {path}")
        story = []
        for stream in streams:
            events = connection.execute(
                "SELECT at, kind, text, data FROM events WHERE stream_sid = ? ORDER BY id",
                (stream["stream_sid"],),
            ).fetchall()
            story.append((dict(stream), [dict(e) for e in events]))
    return story
