"""What happened on each call, as events, and a durable record of them (SQLite or PostgreSQL).

The runtime reports each call's story as small frozen events to every
:class:`CallObserver` it was given: the call started, the caller said something, the bot said
something (or was interrupted: what was heard and what not), a key was pressed, a turn's timing,
a failure, the end. Observers must not block: ``observe`` is called on the trio thread in the
middle of the call.

:class:`CallStore` writes them as they happen, to an SQLite file (:mod:`.records_sqlite`) or to
a PostgreSQL database shared by several servers (:mod:`.records_postgres`, for a
``postgresql://`` URL). Writes go through a bounded queue to one writer task, which commits
each batch in a worker thread, so a crash loses at most the events of the last moment, and a
slow disk or database never stalls a call (a full queue drops events, counted and logged). A
lost database connection is retried, the batch held, with a growing pause.

Records are kept per media stream: Twilio names each stream (``MZ…``) and each call (``CA…``),
and one call can have several streams one after the other (a reconnect). A stream is its own
entry, linked to the others of its call by the call sid. Both backends hold the same two tables
(``streams`` and ``events``, rows made by :func:`table_row`), and :func:`list_calls` and
:func:`read_transcript` answer the same from either.

The records hold callers' numbers and what they said: an SQLite file is created readable by its
owner only, and ``retention_days`` deletes calls older than that. A database URL's password is
never logged (:func:`describe`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

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
    "describe",
    "is_database_url",
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
    (a cough, a breath, noise, a lone "uh"; ``text`` is what the speech-to-text engine made of
    it), "backchannel" ("uh-huh"; ``text`` is the words) or "unclear" (a short sound the engine
    made no sense of, twice; ``text`` is its first reading). The reply paused, then played
    on."""

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
"""The layout of the tables, the same in both backends: SQLite keeps it in ``PRAGMA
user_version`` (0 is the first layout, calls keyed by call sid, migrated when a file of it is
opened), PostgreSQL in ``phoneactors.schema_version``."""


@dataclass(frozen=True, slots=True)
class Purge:
    """Delete the streams that started before ``before`` (wall-clock seconds), with events."""

    before: float


Entry = tuple[str, float, CallEvent | Purge]
"""What the writer is given: (stream sid, wall-clock seconds, event or purge)."""


class WriteFailed(Exception):
    """A backend could not write a batch (never raised out of :class:`CallStore`): ``reason``
    says why, with no password in it; ``retry``: the database may take the same batch later
    (the connection was lost), rather than refusing it for good."""

    def __init__(self, reason: str, *, retry: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry = retry


class RecordsWriter(Protocol):
    """A backend's writing side. Its methods block: :class:`CallStore` calls them from a worker
    thread, one at a time."""

    location: str
    """Where the records go, fit for a log line (a URL without its password)."""

    def write(self, batch: Sequence[Entry]) -> tuple[int, int]:
        """Write ``batch``: (events written, streams purged); :class:`WriteFailed` if not."""
        ...

    def close(self) -> None: ...


def table_row(
    stream_sid: str, at: float, event: CallEvent
) -> tuple[Literal["start", "end", "event"], tuple[Any, ...]]:
    """What ``event`` means for the tables, in either backend: ``start`` inserts (or replaces)
    the stream (stream sid, call sid, account sid, caller, parameters as JSON, started at);
    ``end`` ends it (ended at, reason, stream sid); ``event`` adds a row to ``events``
    (stream sid, at, kind, text, data as JSON or ``None``). Text that neither database can
    store (a NUL, a lone surrogate: a peer can send both) has those characters replaced."""
    kind, values = _table_row(stream_sid, at, event)
    return kind, tuple(_storable(v) if isinstance(v, str) else v for v in values)


def _storable(text: str) -> str:
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    if not text.isascii():
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def _table_row(
    stream_sid: str, at: float, event: CallEvent
) -> tuple[Literal["start", "end", "event"], tuple[Any, ...]]:
    match event:
        case CallStarted(call_sid=call, account_sid=account, caller=caller):
            parameters = json.dumps(dict(event.custom_parameters))
            return "start", (stream_sid, call, account, caller, parameters, at)
        case CallEnded(reason=reason):
            return "end", (at, reason, stream_sid)
        case _:
            return "event", (stream_sid, at, *_event_fields(event))


def _event_fields(event: CallEvent) -> tuple[str, str, str | None]:
    """An ``events`` row's kind, text and data."""
    match event:
        case CallerSaid(text=text):
            return "caller", text, None
        case BotSaid(text=text):
            return "bot", text, None
        case Interrupted(heard=heard, unheard=unheard):
            return "interrupted", heard, json.dumps({"unheard": unheard})
        case FalseInterruption(kind=kind, text=text):
            return "resumed", text, json.dumps({"kind": kind})
        case KeyPress(digit=digit):
            return "dtmf", digit, None
        case TurnTimed(stages_ms=stages):
            return "timing", "", json.dumps(dict(stages))
        case Failure(kind=kind, message=message):
            return "failure", message, json.dumps({"kind": kind})
        case Recorded(path=path):
            return "recording", path, None
    raise TypeError(f"not a call event with a row of its own: {event!r}")


def is_database_url(records: str | Path) -> bool:
    """Whether ``records`` names a PostgreSQL database (``postgresql://`` or ``postgres://``)
    rather than an SQLite file."""
    return isinstance(records, str) and records.lower().startswith(("postgresql://", "postgres://"))


def describe(records: str | Path) -> str:
    """``records`` fit for a log line or a message: a database URL's password (in the URL or
    its query) is replaced by ``***``."""
    if not is_database_url(records):
        return str(records)
    parts = urlsplit(str(records))
    netloc = parts.netloc
    userinfo, at, hosts = netloc.rpartition("@")
    if at and ":" in userinfo:
        netloc = f"{userinfo.split(':', 1)[0]}:***@{hosts}"
    query = [
        (key, "***" if key == "password" else value)
        for key, value in parse_qsl(parts.query, keep_blank_values=True)
    ]
    return urlunsplit(parts._replace(netloc=netloc, query=urlencode(query, safe="/:,*")))


@contextmanager
def _driver_needed() -> Iterator[None]:
    """Turn a missing psycopg into a clear error naming the extra that brings it."""
    try:
        yield
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] != "psycopg":
            raise
        raise ConfigurationError(
            "call records in PostgreSQL need the psycopg driver: "
            "pip install 'phoneactors[postgres]'"
        ) from None


def _open_writer(records: str | Path) -> RecordsWriter:
    """The backend's writer for ``records``; blocks (connects, creates the tables)."""
    if is_database_url(records):
        with _driver_needed():
            from .records_postgres import PostgresWriter
        return PostgresWriter(str(records))
    from .records_sqlite import SqliteWriter

    return SqliteWriter(Path(records))


PURGE_EVERY_S: Final = 3600.0
"""How often a store with ``retention_days`` deletes what has grown too old."""

RETRY_FIRST_S: Final = 0.5
RETRY_MAX_S: Final = 30.0
"""A batch the database could not take (the connection was lost) is tried again after
:data:`RETRY_FIRST_S`, then after twice as long each time, up to :data:`RETRY_MAX_S`. Calls
go on meanwhile; their events wait in the queue, and past :data:`QUEUE_SIZE` are dropped."""


class CallStore:
    """Durable call records. ``observe`` from any call; :meth:`run` writes.

    ``records`` is an SQLite file's path, created (owner-only, with its tables) when :meth:`run`
    starts, or a ``postgresql://`` URL, connected to (and its tables created) then. An unusable
    path or database raises :class:`ConfigurationError` there; a URL without the ``postgres``
    extra installed raises it here. ``clock`` stamps events (wall-clock seconds).
    ``retention_days``: streams that started longer ago are deleted at start and every hour
    (``None``: kept until you delete them).
    """

    def __init__(
        self,
        records: str | Path,
        *,
        clock: Callable[[], float] = time.time,
        retention_days: float | None = None,
    ) -> None:
        if retention_days is not None and not retention_days > 0:
            raise ConfigurationError(
                f"call records retention must be more than 0 days, got {retention_days}"
            )
        if is_database_url(records):
            with _driver_needed():
                from . import records_postgres  # noqa: F401  (fail now, not at run)
        self._records = records
        self.location = describe(records)
        """Where the records go, fit for a log line (a URL without its password)."""
        self.retention_days = retention_days
        self._clock = clock
        self._send, self._receive = trio.open_memory_channel[Entry](QUEUE_SIZE)
        self.dropped = 0
        self.written = 0
        self.purged = 0
        """Streams deleted for being older than ``retention_days``."""
        self.failed_writes = 0
        """Attempts at a batch that failed (each retry counts)."""
        self._failing_since: float | None = None
        self._progress = trio.Event()

    def observe(self, stream_sid: str, event: CallEvent) -> None:
        try:
            self._send.send_nowait((stream_sid, self._clock(), event))
        except (trio.WouldBlock, trio.ClosedResourceError):
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                logger.warning("call records: writer behind, %d events dropped", self.dropped)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Write events until cancelled; on cancellation, write what is queued first (one try)."""
        writer = await trio.to_thread.run_sync(_open_writer, self._records)
        try:
            async with trio.open_nursery() as nursery:
                if self.retention_days is not None:
                    nursery.start_soon(self._purge_old, self.retention_days)
                task_status.started()
                await self._write_events(writer)
        finally:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(writer.close)

    async def _write_events(self, writer: RecordsWriter) -> None:
        pending: list[Entry] = []
        try:
            async for first in self._receive:
                pending = [first, *self._queued()]
                delay = RETRY_FIRST_S
                while not await self._attempt(writer, pending):
                    await trio.sleep(delay)
                    delay = min(2 * delay, RETRY_MAX_S)
                pending = []
        finally:
            with trio.CancelScope(shield=True):
                pending += self._queued()
                if pending and not await self._attempt(writer, pending):
                    logger.error(
                        "call records: stopping with %d events not written to %s",
                        len(pending),
                        self.location,
                    )

    async def _attempt(self, writer: RecordsWriter, batch: list[Entry]) -> bool:
        """Write ``batch`` once: whether it is done with (written, or refused for good and
        dropped), rather than to be tried again."""
        try:
            written, purged = await trio.to_thread.run_sync(writer.write, batch)
        except WriteFailed as failure:
            self.failed_writes += 1
            self._pulse()
            if not failure.retry:
                logger.error(
                    "call records: could not write %d events to %s: %s",
                    len(batch),
                    self.location,
                    failure.reason,
                )
                return True
            if self._failing_since is None:
                self._failing_since = trio.current_time()
            logger.warning(
                "call records: cannot reach %s (%s); holding %d events, trying again",
                self.location,
                failure.reason,
                len(batch),
            )
            return False
        if self._failing_since is not None:
            logger.warning(
                "call records: writing to %s again, after %.0f s",
                self.location,
                trio.current_time() - self._failing_since,
            )
            self._failing_since = None
        self.written += written
        if purged:
            self.purged += purged
            logger.info("call records: deleted %d calls past the retention time", purged)
        self._pulse()
        return True

    def _pulse(self) -> None:
        self._progress.set()
        self._progress = trio.Event()

    async def _purge_old(self, days: float) -> None:
        """Ask the writer to delete old streams now and every :data:`PURGE_EVERY_S`."""
        while True:
            with suppress(trio.WouldBlock):  # the writer is far behind: next time, then
                self._send.send_nowait(("", self._clock(), Purge(self._clock() - days * 86400)))
            await trio.sleep(PURGE_EVERY_S)

    async def wait_written(self, count: int) -> None:
        """Wait until ``count`` events in all have been written (for tests and tools)."""
        while self.written < count:
            await self._progress.wait()

    async def next_write(self) -> None:
        """Wait until the writer's next attempt at a batch has ended, written or failed (for
        tests and tools)."""
        await self._progress.wait()

    def _queued(self) -> list[Entry]:
        events = []
        while True:
            try:
                events.append(self._receive.receive_nowait())
            except (trio.WouldBlock, trio.EndOfChannel):
                return events


def list_calls(records: str | Path, limit: int = 50) -> list[dict[str, Any]]:
    """The most recent media streams, newest first: one a call, unless Twilio reconnected it.

    ``records``: an SQLite file's path or a ``postgresql://`` URL, read only. Each row has the
    stream's facts (``stream_sid``, ``call_sid``, ``caller``, ``started_at``, ``ended_at``,
    ``end_reason``, …), ``turns`` (the caller's utterances), and ``part`` / ``parts``: which of
    its call's streams it is, and how many the call has.
    """
    if is_database_url(records):
        with _driver_needed():
            from . import records_postgres
        return records_postgres.list_calls(str(records), limit)
    from . import records_sqlite

    return records_sqlite.list_calls(records, limit)


def read_transcript(
    records: str | Path, sid: str
) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """The story of a call sid (every stream of the call, in order) or of one stream sid: a
    list of (the stream's facts, its events in order). Raises ConfigurationError if ``sid`` is
    unknown."""
    if is_database_url(records):
        with _driver_needed():
            from . import records_postgres
        return records_postgres.read_transcript(str(records), sid)
    from . import records_sqlite

    return records_sqlite.read_transcript(records, sid)
