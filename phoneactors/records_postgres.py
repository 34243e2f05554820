"""Call records in a PostgreSQL database: the backend behind ``--records postgresql://…``.

Several servers behind a load balancer write into one database, each through its own
:class:`PostgresWriter` (one connection, used from a worker thread), and ``phoneactors calls``
reads it from any machine with :func:`list_calls` and :func:`read_transcript`. Blocking
throughout; needs the ``postgres`` extra (psycopg 3).

The tables live in the schema ``phoneactors``, with the columns and meaning of the SQLite file's
(:mod:`.records_sqlite`); ``phoneactors.schema_version`` holds the layout's version. The first
writer to find them missing creates them, holding an advisory lock: writers starting at the same
moment wait on it, then find the work done. Sids compare bytewise (``COLLATE "C"``), as in
SQLite, so both backends list in the same order. Retention deletes under another advisory lock,
tried rather than waited on: when several servers purge at once, one does it.

The URL is libpq's (``postgresql://user@host:5432/db?sslmode=verify-full``; a password is best
left to ``PGPASSWORD`` or ``~/.pgpass``), with defaults for what it leaves out: a connect
timeout and TCP keepalives (:data:`CONNECTION_DEFAULTS`), so a dead network breaks the
connection within half a minute instead of hanging the writer. A lost connection makes
:meth:`PostgresWriter.write` raise :class:`~phoneactors.records.WriteFailed` with ``retry``; the
next write connects again. The password never appears in a message.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext, suppress
from typing import Any, Final
from urllib.parse import unquote, urlsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import dict_row

from .errors import ConfigurationError
from .records import SCHEMA_VERSION, Entry, Purge, WriteFailed, describe, table_row

__all__ = ["CONNECTION_DEFAULTS", "PostgresWriter", "list_calls", "read_transcript"]

logger = logging.getLogger("phoneactors.records")

CONNECTION_DEFAULTS: Final = {
    "connect_timeout": "10",
    "keepalives": "1",
    "keepalives_idle": "10",
    "keepalives_interval": "5",
    "keepalives_count": "3",
    "tcp_user_timeout": "20000",
    "application_name": "phoneactors",
}
"""libpq settings used where the URL sets none: give up connecting after 10 s; probe an idle
connection after 10 s, then every 5 s, and drop it after 3 probes unanswered; drop it when data
sent goes unacknowledged for 20 s."""

_SCHEMA_LOCK: Final = 0x7068_6F6E_6501
"""Advisory lock held while the tables are created (any bigint unlikely to clash)."""
_PURGE_LOCK: Final = 0x7068_6F6E_6502
"""Advisory lock held while old calls are deleted."""

_TABLES: Final = (
    """CREATE TABLE IF NOT EXISTS phoneactors.streams (
        stream_sid text COLLATE "C" PRIMARY KEY,
        call_sid text COLLATE "C" NOT NULL,
        account_sid text NOT NULL,
        caller text,
        parameters text NOT NULL,
        started_at double precision NOT NULL,
        ended_at double precision,
        end_reason text
    )""",
    "CREATE INDEX IF NOT EXISTS streams_by_call ON phoneactors.streams (call_sid, started_at)",
    "CREATE INDEX IF NOT EXISTS streams_by_start ON phoneactors.streams (started_at)",
    """CREATE TABLE IF NOT EXISTS phoneactors.events (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        stream_sid text COLLATE "C" NOT NULL,
        at double precision NOT NULL,
        kind text NOT NULL,
        text text NOT NULL,
        data text
    )""",
    "CREATE INDEX IF NOT EXISTS events_by_stream ON phoneactors.events (stream_sid, id)",
    "CREATE INDEX IF NOT EXISTS events_by_time ON phoneactors.events (at)",
    "CREATE TABLE IF NOT EXISTS phoneactors.schema_version (version integer NOT NULL)",
)
"""The layout of :data:`~phoneactors.records.SCHEMA_VERSION`: SQLite's, in its own schema."""

_STATEMENTS: Final = {
    "start": "INSERT INTO phoneactors.streams (stream_sid, call_sid, account_sid, caller,"
    " parameters, started_at) VALUES (%s, %s, %s, %s, %s, %s)"
    " ON CONFLICT (stream_sid) DO UPDATE SET call_sid = excluded.call_sid,"
    " account_sid = excluded.account_sid, caller = excluded.caller,"
    " parameters = excluded.parameters, started_at = excluded.started_at,"
    " ended_at = NULL, end_reason = NULL",
    "end": "UPDATE phoneactors.streams SET ended_at = %s, end_reason = %s WHERE stream_sid = %s",
    "event": "INSERT INTO phoneactors.events (stream_sid, at, kind, text, data)"
    " VALUES (%s, %s, %s, %s, %s)",
}
"""The SQL of each kind of :func:`~phoneactors.records.table_row` (a stream started again
replaces its row, as SQLite's ``INSERT OR REPLACE`` does)."""

Connection = psycopg.Connection[tuple[Any, ...]]

_CONNECTION_ERRORS: Final = (
    psycopg.OperationalError,  # the connection is lost, or the server cannot take it now
    psycopg.InterfaceError,  # the connection is closed
    psycopg.errors.ReadOnlySqlTransaction,  # connected to a standby
)
"""What a new connection may cure: the batch is tried again."""

_PIPELINE: Final = psycopg.Pipeline.is_supported()


class PostgresWriter:
    """Writes batches of events to the database at ``url``: connects, and creates the tables if
    they are missing; :class:`ConfigurationError` (saying why) if the database cannot be used."""

    def __init__(self, url: str) -> None:
        self._url = url
        self.location = describe(url)
        self._connection: Connection | None = None
        try:
            self._connection = _connect(url)
            _prepare(self._connection, self.location)
        except (psycopg.Error, ConfigurationError) as exc:
            self.close()
            raise ConfigurationError(
                f"cannot use the call records at {self.location}: {_reason(exc, url)}"
            ) from None

    def write(self, batch: Sequence[Entry]) -> tuple[int, int]:
        """Write ``batch``'s events in one transaction, then delete what its purges ask for:
        (events written, streams purged).

        A lost connection, or one to a server that cannot write now (a standby, after a
        failover), raises :class:`WriteFailed` with ``retry``, and the next write connects
        again: the transaction was rolled back, so the batch can be given again (unless the
        connection was lost just as it committed: then its events are written twice). The
        database refusing the batch (a constraint, a permission) raises it without.
        """
        rows = [table_row(sid, at, e) for sid, at, e in batch if not isinstance(e, Purge)]
        try:
            if rows:
                connection = self._connected()
                # One round trip for the batch, where libpq can (14 and later; the wheel's is).
                pipeline = connection.pipeline() if _PIPELINE else nullcontext()
                with pipeline, connection.transaction():
                    cursor = connection.cursor()
                    for kind, values in rows:
                        cursor.execute(_STATEMENTS[kind], values)
        except _CONNECTION_ERRORS as exc:
            self._disconnect()
            raise WriteFailed(_reason(exc, self._url), retry=True) from exc
        except psycopg.Error as exc:
            raise WriteFailed(_reason(exc, self._url), retry=False) from exc
        purged = sum(self._purge(event.before) for _, _, event in batch if isinstance(event, Purge))
        return len(rows), purged

    def _purge(self, before: float) -> int:
        """Delete the streams that started before ``before``, and their events: how many. A
        failure is logged (the next purge tries again), never raised: the events are written."""
        try:
            connection = self._connected()
            with connection.transaction():
                return _delete_before(connection, before)
        except psycopg.Error as exc:
            if isinstance(exc, _CONNECTION_ERRORS):
                self._disconnect()
            logger.warning(
                "call records: could not delete old calls from %s: %s",
                self.location,
                _reason(exc, self._url),
            )
            return 0

    def _connected(self) -> Connection:
        if self._connection is None or self._connection.closed:
            self._connection = _connect(self._url)
        return self._connection

    def _disconnect(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def close(self) -> None:
        self._disconnect()


def _connect(url: str, *, autocommit: bool = True) -> Connection:
    """A connection to ``url``, with :data:`CONNECTION_DEFAULTS` for what the URL leaves out.
    No server-side prepared statements: a pooler in transaction mode (PgBouncer before 1.21)
    cannot carry them, and these inserts gain little from them (measured within noise)."""
    conninfo = make_conninfo("", **{**CONNECTION_DEFAULTS, **conninfo_to_dict(url)})
    return psycopg.connect(conninfo, autocommit=autocommit, prepare_threshold=None)


def _prepare(connection: Connection, location: str) -> None:
    """Create the schema and tables unless they are there, one server at a time."""
    if _version(connection) == SCHEMA_VERSION:
        return
    # A session lock, and the work in a transaction begun after it: a transaction begun before
    # would go on seeing the catalogue as it was, without what the lock's holder made.
    connection.execute("SELECT pg_advisory_lock(%s)", (_SCHEMA_LOCK,))
    try:
        with connection.transaction():
            if _version(connection) == SCHEMA_VERSION:
                return  # another server made them while this one waited
            if _one(connection, "SELECT to_regnamespace('phoneactors')") is None:
                connection.execute("CREATE SCHEMA phoneactors")
            for statement in _TABLES:
                connection.execute(statement)
            connection.execute("DELETE FROM phoneactors.schema_version")
            connection.execute(
                "INSERT INTO phoneactors.schema_version (version) VALUES (%s)", (SCHEMA_VERSION,)
            )
    finally:
        with suppress(psycopg.Error):  # a lost connection has let go of it already
            connection.execute("SELECT pg_advisory_unlock(%s)", (_SCHEMA_LOCK,))
    logger.info("call records: created the tables in %s", location)


def _version(connection: Connection) -> int:
    """The layout's version in the database (0: no tables yet); an error if it is newer than
    this phoneactors knows."""
    if _one(connection, "SELECT to_regclass('phoneactors.schema_version')") is None:
        return 0
    version = int(_one(connection, "SELECT max(version) FROM phoneactors.schema_version") or 0)
    if version > SCHEMA_VERSION:
        raise ConfigurationError(
            f"the database was written by a newer phoneactors (schema {version}; this one knows "
            f"{SCHEMA_VERSION})"
        )
    return version


def _one(connection: Connection, query: str) -> Any:
    row = connection.execute(query).fetchone()
    return None if row is None else row[0]


def _delete_before(connection: Connection, before: float) -> int:
    """Delete the streams that started before ``before``, and their events; how many (0 when
    another server is deleting right now)."""
    locked = connection.execute("SELECT pg_try_advisory_xact_lock(%s)", (_PURGE_LOCK,)).fetchone()
    if locked is None or not locked[0]:
        return 0
    connection.execute(
        "DELETE FROM phoneactors.events WHERE stream_sid IN"
        " (SELECT stream_sid FROM phoneactors.streams WHERE started_at < %s)",
        (before,),
    )
    deleted = connection.execute(
        "DELETE FROM phoneactors.streams WHERE started_at < %s", (before,)
    ).rowcount
    # Events of a stream whose start was never recorded (a full queue dropped it): by their age.
    connection.execute(
        "DELETE FROM phoneactors.events e WHERE at < %s AND NOT EXISTS"
        " (SELECT 1 FROM phoneactors.streams s WHERE s.stream_sid = e.stream_sid)",
        (before,),
    )
    return deleted


def _secrets(url: str) -> list[str]:
    """The password in ``url`` as written and as decoded, to keep out of messages."""
    found = []
    userinfo, at, _ = urlsplit(url).netloc.rpartition("@")
    if at and ":" in userinfo:
        found.append(userinfo.split(":", 1)[1])
    with suppress(psycopg.Error):  # not a URL libpq reads: nothing more to find
        found.append(str(conninfo_to_dict(url).get("password") or ""))
    found += [unquote(secret) for secret in found]
    return sorted({s for s in found if s}, key=len, reverse=True)


def _reason(exc: BaseException, url: str) -> str:
    """What went wrong, on one line, with no password in it."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    reason = "; ".join(lines) or type(exc).__name__
    for secret in _secrets(url):
        reason = reason.replace(secret, "***")
    return reason


@contextmanager
def _reading(url: str) -> Iterator[Connection | None]:
    """A read-only connection to ``url`` seeing one snapshot (``None`` when the database holds
    no records yet); errors become :class:`ConfigurationError`, without the password."""
    try:
        connection = _connect(url, autocommit=False)
    except psycopg.Error as exc:
        raise _unreadable(url, exc) from None
    with connection:
        try:
            connection.read_only = True
            connection.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            version = _version(connection)
        except (psycopg.Error, ConfigurationError) as exc:
            raise _unreadable(url, exc) from None
        try:
            yield connection if version == SCHEMA_VERSION else None
        except psycopg.Error as exc:
            raise _unreadable(url, exc) from None


def _unreadable(url: str, exc: Exception) -> ConfigurationError:
    return ConfigurationError(
        f"cannot read the call records at {describe(url)}: {_reason(exc, url)}"
    )


def list_calls(url: str, limit: int) -> list[dict[str, Any]]:
    """:func:`phoneactors.records.list_calls` for a database."""
    with _reading(url) as connection:
        if connection is None:
            return []
        rows = connection.cursor(row_factory=dict_row).execute(
            "SELECT s.*,"
            " (SELECT COUNT(*) FROM phoneactors.events e WHERE e.stream_sid = s.stream_sid"
            "  AND e.kind = 'caller') AS turns,"
            " (SELECT COUNT(*) FROM phoneactors.streams o WHERE o.call_sid = s.call_sid"
            "  AND (o.started_at, o.stream_sid) <= (s.started_at, s.stream_sid)) AS part,"
            " (SELECT COUNT(*) FROM phoneactors.streams o WHERE o.call_sid = s.call_sid) AS parts"
            " FROM phoneactors.streams s ORDER BY started_at DESC, stream_sid DESC LIMIT %s",
            (limit if limit >= 0 else None,),  # SQLite's LIMIT -1 is no limit
        )
        return rows.fetchall()


def read_transcript(url: str, sid: str) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """:func:`phoneactors.records.read_transcript` for a database."""
    with _reading(url) as connection:
        unknown = ConfigurationError(f"no call or stream {sid!r} in {describe(url)}")
        if connection is None:
            raise unknown
        cursor = connection.cursor(row_factory=dict_row)
        streams = cursor.execute(
            "SELECT * FROM phoneactors.streams WHERE call_sid = %s OR stream_sid = %s"
            " ORDER BY started_at, stream_sid",
            (sid, sid),
        ).fetchall()
        if not streams:
            raise unknown
        story = []
        for stream in streams:
            events = cursor.execute(
                "SELECT at, kind, text, data FROM phoneactors.events WHERE stream_sid = %s"
                " ORDER BY id",
                (stream["stream_sid"],),
            ).fetchall()
            story.append((stream, events))
    return story
