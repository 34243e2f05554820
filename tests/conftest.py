from __future__ import annotations

import io
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from phoneactors.testing import FakeSpeech
from tests.postgres_server import HOW_TO_INSTALL, PostgresServer, find_binaries, start_postgres


@pytest.fixture
def speech() -> FakeSpeech:
    return FakeSpeech()


@pytest.fixture
def fake_simulate(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """Make ``phoneactors simulate`` run on fast fake engines, with the caller's lines read from
    the given text as standard input. In real time: about two seconds a line."""
    from phoneactors import simulate as sim
    from phoneactors.engines import registry
    from phoneactors.testing import FakeTextToSpeech

    speech = FakeSpeech(tts=FakeTextToSpeech(delay=0.0, seconds_per_char=0.005))
    monkeypatch.setattr(registry, "build_engines", lambda **options: speech.engines())
    monkeypatch.setattr(sim, "QUIET", 0.3)
    # The fake STT knows the fake caller's voice only: give the simulator that voice.
    real_simulate = sim.simulate

    async def with_fake_voice(*args: Any, **kwargs: Any) -> Any:
        return await real_simulate(*args, voice=speech.caller_voice, **kwargs)

    monkeypatch.setattr(sim, "simulate", with_fake_voice)

    def lines(text: str) -> None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(text))

    return lines


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL server for the whole test session (skips, saying how to get one, when
    psycopg or PostgreSQL itself is not installed)."""
    pytest.importorskip(
        "psycopg", reason="needs the postgres extra: bash scripts/setup.sh dev,postgres"
    )
    bindir = find_binaries()
    if bindir is None:
        pytest.skip(f"PostgreSQL is not installed: {HOW_TO_INSTALL}")
    server = start_postgres(bindir)
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres: PostgresServer) -> str:
    """A ``postgresql://`` URL (with a password) of a fresh, empty database."""
    return postgres.url(postgres.create_database())
