"""Call records in an SQLite file: the backend behind ``--records PATH``.

Blocking throughout: :class:`~phoneactors.records.CallStore` calls :class:`SqliteWriter` from
a worker thread, and ``phoneactors calls`` reads with :func:`list_calls` and
:func:`read_transcript`.

The file holds callers' numbers and what they said: it is created readable by its owner only
(and so are SQLite's ``-wal`` and ``-shm`` files beside it), and deleted rows are overwritten
(``secure_delete``). A file of the first layout (calls keyed by call sid, ``user_version`` 0)
is moved to the current one when a writer opens it; readers never change the file.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any, Final

from .errors import ConfigurationError
from .records import SCHEMA_VERSION, Entry, Purge, WriteFailed, table_row

__all__ = ["SqliteWriter", "list_calls", "read_transcript"]

logger = logging.getLogger("phoneactors.records")

OWNER_ONLY: Final = 0o600

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
"""The layout of :data:`~phoneactors.records.SCHEMA_VERSION`, kept in ``PRAGMA user_version``."""

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

_STATEMENTS: Final = {
    "start": "INSERT OR REPLACE INTO streams (stream_sid, call_sid, account_sid, caller,"
    " parameters, started_at) VALUES (?, ?, ?, ?, ?, ?)",
    "end": "UPDATE streams SET ended_at = ?, end_reason = ? WHERE stream_sid = ?",
    "event": "INSERT INTO events (stream_sid, at, kind, text, data) VALUES (?, ?, ?, ?, ?)",
}
"""The SQL of each kind of :func:`~phoneactors.records.table_row`."""


class SqliteWriter:
    """Writes batches of events to the file at ``path``, which it creates (owner-only, with its
    tables) or migrates; :class:`ConfigurationError` if the path cannot be used."""

    def __init__(self, path: Path) -> None:
        self.location = str(path)
        try:
            _create_private(path)
            self._connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            try:
                _prepare(self._connection)
            except BaseException:
                self._connection.close()
                raise
        except (OSError, sqlite3.Error) as exc:
            raise ConfigurationError(f"cannot open the call records at {path}: {exc}") from exc

    def write(self, batch: Sequence[Entry]) -> tuple[int, int]:
        """Write ``batch`` in one transaction: (events written, streams purged). An SQLite error
        rolls it back and raises :class:`WriteFailed` (not to be retried)."""
        connection = self._connection
        try:
            connection.execute("BEGIN")
            purged = written = 0
            for stream_sid, at, event in batch:
                if isinstance(event, Purge):
                    purged += _delete_before(connection, event.before)
                else:
                    kind, values = table_row(stream_sid, at, event)
                    connection.execute(_STATEMENTS[kind], values)
                    written += 1
            connection.execute("COMMIT")
        except sqlite3.Error as exc:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise WriteFailed(str(exc), retry=False) from exc
        if purged:  # the deleted rows leave the write-ahead log too
            try:
                connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as exc:
                logger.warning("call records: could not checkpoint %s: %s", self.location, exc)
        return written, purged

    def close(self) -> None:
        self._connection.close()


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
    _enter_wal_mode(connection)
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


def _enter_wal_mode(connection: sqlite3.Connection, patience: float = 10.0) -> None:
    """Switch the file to write-ahead logging. SQLite answers "database is locked" at once, without
    its busy wait, while another process opens the same new file (``--workers`` start together),
    so the switch is retried for up to ``patience`` seconds."""
    deadline = time.monotonic() + patience
    pause = 0.005
    while True:
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)  # on a start-up thread, never the trio thread
        pause = min(pause * 2, 0.2)


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


def list_calls(path: str | Path, limit: int) -> list[dict[str, Any]]:
    """:func:`phoneactors.records.list_calls` for a file."""
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
    """:func:`phoneactors.records.read_transcript` for a file."""
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
