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
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import closing, contextmanager
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
    "TurnTimed",
    "list_calls",
    "read_transcript",
]

logger = logging.getLogger("phoneactors.records")

QUEUE_SIZE: Final = 10_000
"""Events waiting for the writer. At a few events per turn this is minutes of every call."""


@dataclass(frozen=True, slots=True)
class CallStarted:
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
)


class CallObserver(Protocol):
    """Receives every call's events. Must return quickly and never block."""

    def observe(self, call_sid: str, event: CallEvent) -> None: ...


_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS calls (
    call_sid TEXT PRIMARY KEY,
    stream_sid TEXT NOT NULL,
    account_sid TEXT NOT NULL,
    caller TEXT,
    parameters TEXT NOT NULL,
    started_at REAL NOT NULL,
    ended_at REAL,
    end_reason TEXT
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    call_sid TEXT NOT NULL,
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    text TEXT NOT NULL,
    data TEXT
);
CREATE INDEX IF NOT EXISTS events_by_call ON events (call_sid, id);
"""


@contextmanager
def _connect(path: Path) -> Iterator[sqlite3.Connection]:
    with closing(sqlite3.connect(path, isolation_level=None)) as connection:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.executescript(_SCHEMA)
        yield connection


def _row(call_sid: str, at: float, event: CallEvent) -> tuple[str, tuple[Any, ...]]:
    """The SQL statement and parameters that record ``event``."""
    insert = "INSERT INTO events (call_sid, at, kind, text, data) VALUES (?, ?, ?, ?, ?)"
    match event:
        case CallStarted():
            return (
                "INSERT OR REPLACE INTO calls (call_sid, stream_sid, account_sid, caller,"
                " parameters, started_at) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    call_sid,
                    event.stream_sid,
                    event.account_sid,
                    event.caller,
                    json.dumps(dict(event.custom_parameters)),
                    at,
                ),
            )
        case CallEnded(reason=reason):
            return (
                "UPDATE calls SET ended_at = ?, end_reason = ? WHERE call_sid = ?",
                (at, reason, call_sid),
            )
        case CallerSaid(text=text):
            return insert, (call_sid, at, "caller", text, None)
        case BotSaid(text=text):
            return insert, (call_sid, at, "bot", text, None)
        case Interrupted(heard=heard, unheard=unheard):
            return insert, (call_sid, at, "interrupted", heard, json.dumps({"unheard": unheard}))
        case FalseInterruption(kind=kind, text=text):
            return insert, (call_sid, at, "resumed", text, json.dumps({"kind": kind}))
        case KeyPress(digit=digit):
            return insert, (call_sid, at, "dtmf", digit, None)
        case TurnTimed(stages_ms=stages):
            return insert, (call_sid, at, "timing", "", json.dumps(dict(stages)))
        case Failure(kind=kind, message=message):
            return insert, (call_sid, at, "failure", message, json.dumps({"kind": kind}))


class CallStore:
    """Durable call records in SQLite. ``observe`` from any call; :meth:`run` writes.

    ``path`` is created (with its table) when :meth:`run` starts; an unusable path raises
    :class:`ConfigurationError` there. ``clock`` stamps events (wall-clock seconds).
    """

    def __init__(self, path: str | Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self._clock = clock
        self._send, self._receive = trio.open_memory_channel[tuple[str, float, CallEvent]](
            QUEUE_SIZE
        )
        self.dropped = 0
        self.written = 0
        self._progress = trio.Event()

    def observe(self, call_sid: str, event: CallEvent) -> None:
        try:
            self._send.send_nowait((call_sid, self._clock(), event))
        except (trio.WouldBlock, trio.ClosedResourceError):
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                logger.warning("call records: writer behind, %d events dropped", self.dropped)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Write events until cancelled; on cancellation, write what is queued first."""
        connection = await trio.to_thread.run_sync(self._open)
        task_status.started()
        pending: list[tuple[str, float, CallEvent]] = []
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
                connection.close()

    async def wait_written(self, count: int) -> None:
        """Wait until ``count`` events in all have been written (for tests and tools)."""
        while self.written < count:
            await self._progress.wait()

    def _queued(self) -> list[tuple[str, float, CallEvent]]:
        events = []
        while True:
            try:
                events.append(self._receive.receive_nowait())
            except (trio.WouldBlock, trio.EndOfChannel):
                return events

    def _open(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigurationError(f"cannot open the call records at {self.path}: {exc}") from exc
        return connection

    def _write(
        self, connection: sqlite3.Connection, batch: list[tuple[str, float, CallEvent]]
    ) -> None:
        try:
            connection.execute("BEGIN")
            for call_sid, at, event in batch:
                connection.execute(*_row(call_sid, at, event))
            connection.execute("COMMIT")
            self.written += len(batch)
        except sqlite3.Error:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            logger.exception("call records: could not write %d events", len(batch))


def list_calls(path: str | Path, limit: int = 50) -> list[dict[str, Any]]:
    """The most recent calls, newest first."""
    if not Path(path).exists():
        raise ConfigurationError(f"no call records at {path}")
    with _connect(Path(path)) as connection:
        connection.row_factory = sqlite3.Row
        rows = connection.execute(
            "SELECT c.*, (SELECT COUNT(*) FROM events e WHERE e.call_sid = c.call_sid"
            " AND e.kind = 'caller') AS turns FROM calls c ORDER BY started_at DESC LIMIT ?",
            (limit,),
        ).fetchall()
    return [dict(row) for row in rows]


def read_transcript(path: str | Path, call_sid: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One call's facts and its events in order. Raises ConfigurationError if it is unknown."""
    if not Path(path).exists():
        raise ConfigurationError(f"no call records at {path}")
    with _connect(Path(path)) as connection:
        connection.row_factory = sqlite3.Row
        call = connection.execute("SELECT * FROM calls WHERE call_sid = ?", (call_sid,)).fetchone()
        if call is None:
            raise ConfigurationError(f"no call {call_sid!r} in {path}")
        events = connection.execute(
            "SELECT at, kind, text, data FROM events WHERE call_sid = ? ORDER BY id", (call_sid,)
        ).fetchall()
    return dict(call), [dict(e) for e in events]
