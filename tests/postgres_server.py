"""A real PostgreSQL server for the tests (and benchmarks), started from the distribution's
binaries in a temporary folder of its own and stopped at the end.

``initdb`` refuses to run as root. As root (CI), the server runs as the ``postgres`` user that
Debian's package creates (``nobody`` where there is none): its folder is made in ``/tmp`` and
handed to that user, and every command runs as it (``subprocess``'s ``user``/``group``). As
anyone else it runs as yourself.

The server listens on 127.0.0.1 at a free port, with password (SCRAM) authentication, as a
real deployment would; its Unix socket sits in its private folder, where the superuser may
connect without a password to create a database for each test.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path
from typing import Any
from urllib.parse import quote

HOW_TO_INSTALL = "apt-get install postgresql (bash .ci/run does)"

USER = "phoneactors"
PASSWORD = "s3cret:p@ss/w0rd"  # characters a URL must escape, so that both forms are checked
SUPERUSER = "postgres"

ICU_ORDER = "TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C'"

FAST = ("-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
"""Settings for throwaway test data: nothing waits for the disk."""


def find_binaries() -> Path | None:
    """The folder holding ``initdb``, ``pg_ctl`` and ``postgres``: ``$PHONEACTORS_TEST_PG_BIN``,
    else Debian's ``/usr/lib/postgresql/<newest>/bin``, else wherever ``PATH`` has them."""
    candidates = [os.environ.get("PHONEACTORS_TEST_PG_BIN", "")]
    candidates += sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True
    )
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(str(Path(on_path).resolve().parent))
    for folder in filter(None, candidates):
        if all((Path(folder) / name).is_file() for name in ("initdb", "pg_ctl", "postgres")):
            return Path(folder)
    return None


@dataclass
class PostgresServer:
    """A running server: :meth:`create_database` gives each test a fresh database owned by
    :data:`USER`, reached at :meth:`url`."""

    bindir: Path
    root: Path
    port: int
    run_as: dict[str, Any]
    _names: Iterator[int] = field(default_factory=count)

    @property
    def socket_dir(self) -> Path:
        return self.root

    def url(self, database: str, *, password: str = PASSWORD) -> str:
        return f"postgresql://{USER}:{quote(password, safe='')}@127.0.0.1:{self.port}/{database}"

    def admin(self, database: str = "postgres") -> Any:
        """A superuser connection (autocommit) over the Unix socket."""
        import psycopg  # the postgres extra: imported only once a server is wanted

        return psycopg.connect(
            host=str(self.socket_dir),
            port=self.port,
            user=SUPERUSER,
            dbname=database,
            autocommit=True,
        )

    def create_database(self) -> str:
        """A new empty database owned by :data:`USER`: its name."""
        import psycopg

        name = f"calls_{os.getpid()}_{next(self._names)}"
        with self.admin() as connection:
            create = f'CREATE DATABASE "{name}" OWNER {USER}'
            if connection.info.server_version >= 150000:
                # Sorting text as people do (not bytewise, as the phoneactors tables must), and
                # copying the template's files, quicker than logging them (15's default).
                try:
                    connection.execute(f"{create} {ICU_ORDER} STRATEGY FILE_COPY")
                    return name
                except psycopg.Error:  # PostgreSQL built without ICU
                    pass
            connection.execute(create)
        return name

    def drop_connections(self, database: str) -> int:
        """Cut every connection to ``database``, as a restart or a network failure would: how
        many there were."""
        with self.admin() as connection:
            cut = connection.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (database,),
            ).fetchall()
        return len(cut)

    def refuse_connections(self, database: str) -> None:
        """Cut every connection to ``database`` and let none in: the database is down."""
        with self.admin() as connection:
            connection.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
        self.drop_connections(database)

    def accept_connections(self, database: str) -> None:
        with self.admin() as connection:
            connection.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')

    def pg_ctl(self, *arguments: str) -> None:
        _run([str(self.bindir / "pg_ctl"), "-D", str(self.root / "data"), *arguments], self.run_as)

    def stop(self) -> None:
        with contextlib.suppress(PostgresFailed):
            self.pg_ctl("stop", "-m", "immediate", "-w")
        shutil.rmtree(self.root, ignore_errors=True)


def start_postgres(bindir: Path, *, settings: tuple[str, ...] = FAST) -> PostgresServer:
    """initdb a new cluster in a new folder in ``/tmp`` and start it; the caller stops it."""
    root = Path(tempfile.mkdtemp(prefix="phoneactors-pg-"))
    run_as = _unprivileged_user(root)
    try:
        _run(
            [
                str(bindir / "initdb"),
                "-D",
                str(root / "data"),
                "-U",
                SUPERUSER,
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            run_as,
        )
        server = _start_on_a_free_port(bindir, root, run_as, settings)
        with server.admin() as connection:
            connection.execute(f"CREATE ROLE {USER} LOGIN PASSWORD '{PASSWORD}'")
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    return server


def _start_on_a_free_port(
    bindir: Path, root: Path, run_as: dict[str, Any], settings: tuple[str, ...]
) -> PostgresServer:
    for attempt in range(5):  # another process may take the free port before the server does
        server = PostgresServer(bindir, root, _free_port(), run_as)
        options = [
            "-c listen_addresses=127.0.0.1",
            f"-p {server.port}",
            f"-k {root}",
            "-c shared_buffers=32MB",
            *(" ".join(settings[i : i + 2]) for i in range(0, len(settings), 2)),
        ]
        try:
            server.pg_ctl(
                "start", "-w", "-t", "60", "-l", str(root / "log"), "-o", " ".join(options)
            )
        except PostgresFailed as exc:
            if attempt == 4:
                log = root / "log"
                raise PostgresFailed(
                    f"{exc}\n{log.read_text(errors='replace') if log.exists() else ''}"
                ) from None
            continue
        return server
    raise AssertionError("unreachable")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _unprivileged_user(root: Path) -> dict[str, Any]:
    """``subprocess`` options to run as someone initdb accepts, owning ``root``."""
    if os.geteuid() != 0:
        return {}
    try:
        account = pwd.getpwnam("postgres")
    except KeyError:
        account = pwd.getpwnam("nobody")
    os.chown(root, account.pw_uid, account.pw_gid)
    return {
        "user": account.pw_uid,
        "group": account.pw_gid,
        "extra_groups": [],
        "env": {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(root), "LANG": "C"},
        "cwd": str(root),
    }


class PostgresFailed(RuntimeError):
    """A PostgreSQL command failed; the message has its output."""


def _run(command: list[str], run_as: dict[str, Any]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False, **run_as)
    if done.returncode != 0:
        raise PostgresFailed(f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}")
