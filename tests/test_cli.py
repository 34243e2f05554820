"""The command line: options and their environment variables, errors, and serving in-process.

Serving tests call :func:`phoneactors.cli.main` in this process with the engine registry's
``build_engines`` swapped for fake engines, and end it the way an operator would: with a real
SIGTERM or SIGINT to this process (sent only once ``main`` has printed its listening line, by
which time its signal handlers are in place).
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trio_websocket

from phoneactors import cli, twilio
from phoneactors.cli import OPTIONS, load_conversation, main, parse_args
from phoneactors.cli.building import call_settings_from_args
from phoneactors.cli.options import name_flags
from phoneactors.conversation import Conversation, Parrot
from phoneactors.engines import Engines
from phoneactors.errors import ConfigurationError, ModelNotFoundError
from phoneactors.segmenter import SegmenterSettings
from phoneactors.testing import FakeSpeech, FakeSpeechToText, FakeTextToSpeech

LISTENING = re.compile(
    r"phoneactors listening on http://127\.0\.0\.1:(\d+) \(webhook POST /, stream /stream\)\n"
)
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _isolate(monkeypatch: pytest.MonkeyPatch) -> None:
    """No PHONEACTORS_* or TWILIO_AUTH_TOKEN from the outside; sys.path restored after."""
    for name in list(os.environ):
        if name.startswith("PHONEACTORS_") or name == "TWILIO_AUTH_TOKEN":
            monkeypatch.delenv(name)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setenv("COLUMNS", "200")


# --------------------------------------------------------------------------------------------
# Options and environment variables


def test_help_documents_every_option_and_its_variable(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for option in OPTIONS:
        assert option.flag in out
        assert option.env in out
    assert "TWILIO_AUTH_TOKEN" in out
    for name in ("PHONEACTORS_PORT", "PHONEACTORS_CONVERSATION", "PHONEACTORS_PUBLIC_URL"):
        assert name in out


def test_defaults() -> None:
    args = parse_args([], {})
    assert args.host == "127.0.0.1"
    assert args.port == 8080
    assert args.conversation == "phoneactors.conversation:Parrot"
    assert args.public_url is None
    assert args.max_calls == 20
    assert args.max_message_bytes == 65536
    assert args.drain_timeout == 30.0
    assert (args.vad, args.stt, args.tts) == ("webrtc", "faster-whisper", "hibari")
    assert args.allow_download is False
    assert args.log_level == "INFO"


def test_environment_variables_fill_in_and_flags_win() -> None:
    environ = {
        "PHONEACTORS_PORT": "9000",
        "PHONEACTORS_HOST": "0.0.0.0",
        "PHONEACTORS_CONVERSATION": "mybot:Bot",
        "PHONEACTORS_PUBLIC_URL": "https://bot.example.com",
        "PHONEACTORS_DRAIN_TIMEOUT": "2.5",
        "PHONEACTORS_ALLOW_DOWNLOAD": "yes",
        "PHONEACTORS_STT": "whisper.cpp",
        "PHONEACTORS_LOG_LEVEL": "debug",
        "PHONEACTORS_END_SILENCE_MS": "300",
        "PHONEACTORS_INCOMPLETE_SILENCE_MS": "2000",
        "PHONEACTORS_NO_NOISE_GATE": "1",
        "PHONEACTORS_THREADS": "",  # empty counts as unset
    }
    args = parse_args([], environ)
    assert args.port == 9000
    assert args.host == "0.0.0.0"
    assert args.conversation == "mybot:Bot"
    assert args.public_url == "https://bot.example.com"
    assert args.drain_timeout == 2.5
    assert args.allow_download is True
    assert args.stt == "whisper.cpp"
    assert args.log_level == "DEBUG"
    assert args.end_silence_ms == 300
    assert args.incomplete_silence_ms == 2000
    assert args.pause_ms == SegmenterSettings().pause_ms  # not set: the default
    assert args.no_noise_gate is True
    settings = call_settings_from_args(args)
    assert settings.segmenter.incomplete_silence_ms == 2000
    assert settings.noise_gate is False
    assert args.threads is None

    flags = parse_args(
        ["--port", "9001", "--conversation", "other:Bot", "--allow-download"], environ
    )
    assert flags.port == 9001
    assert flags.conversation == "other:Bot"
    assert flags.allow_download is True
    assert parse_args([], {"PHONEACTORS_ALLOW_DOWNLOAD": "off"}).allow_download is False


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PHONEACTORS_PORT", "eighty"),
        ("PHONEACTORS_STT", "dragon"),
        ("PHONEACTORS_ALLOW_DOWNLOAD", "maybe"),
        ("PHONEACTORS_LOG_LEVEL", "loud"),
        ("PHONEACTORS_DRAIN_TIMEOUT", "-1"),
    ],
)
def test_a_bad_variable_is_a_usage_error(
    name: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        parse_args([], {name: value})
    assert exit_.value.code == 2
    assert f"{name}={value!r}" in capsys.readouterr().err


def test_a_bad_flag_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        parse_args(["--tts", "dragon"], {})
    assert exit_.value.code == 2
    assert "--tts" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# --conversation


def write_module(directory: Path, name: str, source: str) -> None:
    (directory / f"{name}.py").write_text(textwrap.dedent(source))


def test_load_conversation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_module(
        tmp_path,
        "cli_test_bot",
        """
        from phoneactors.conversation import Conversation

        class Bot(Conversation):
            async def reply(self, text):
                return text

        class Outer:
            Inner = Bot
        """,
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert load_conversation("phoneactors.conversation:Parrot") is Parrot
    bot = load_conversation("cli_test_bot:Bot")
    assert issubclass(bot, Conversation)
    assert load_conversation("cli_test_bot:Outer.Inner") is bot


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no_such_module_here:Bot", "there is no module named 'no_such_module_here'"),
        ("phoneactors.conversation:Nope", "has no attribute 'Nope'"),
        ("phoneactors.conversation:CallInfo", "expected a subclass of phoneactors.Conversation"),
        ("phoneactors.conversation", "expected module:Class"),
        ("cli_broken_bot:Bot", "importing 'cli_broken_bot' failed: RuntimeError: boom"),
        ("cli_needs_dependency:Bot", "No module named 'not_installed_anywhere'"),
    ],
)
def test_a_bad_conversation_exits_2(
    spec: str,
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    write_module(tmp_path, "cli_broken_bot", "raise RuntimeError('boom')\n")
    write_module(tmp_path, "cli_needs_dependency", "import not_installed_anywhere\n")
    monkeypatch.chdir(tmp_path)  # main() looks in the current directory
    assert main(["--conversation", spec]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"phoneactors: error: --conversation {spec!r}: ")
    assert message in err
    with pytest.raises(ConfigurationError):
        load_conversation(spec)


def test_main_finds_the_conversation_in_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    write_module(tmp_path, "cli_cwd_bot", "class NotAConversation: pass\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    assert main(["--conversation", "cli_cwd_bot:NotAConversation"]) == 2
    assert "expected a subclass" in capsys.readouterr().err  # imported: found in the cwd


# --------------------------------------------------------------------------------------------
# Configuration errors


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--max-calls", "0"], "--max-calls must be at least 1, got 0"),
        (["--max-calls", "-1"], "--max-calls must be at least 1, got -1"),
        (["--port", "70000"], "--port must be between 0 and 65535"),
        (["--public-url", "bot.example.com"], "--public-url must be an http:// or https:// URL"),
        (["--max-message-bytes", "10"], "--max-message-bytes must be at least 1024"),
        (["--end-silence-ms", "5"], "--end-silence-ms must be at least 20 ms"),
        (
            ["--incomplete-silence-ms", "200"],
            "--incomplete-silence-ms (200) must be at least --end-silence-ms (300)",
        ),
        (["--pause-ms", "-1"], "--pause-ms must not be negative"),
        (["--min-speech-ms", "0"], "--min-speech-ms must be at least 20 ms"),
        (["--reply-timeout", "0"], "--reply-timeout must be positive"),
        (["--stt-window", "99"], "--stt-window must be between 1 and 30 seconds, got 99"),
        (["--threads", "0"], "--threads must be at least 1, got 0"),
        (["--vad-min-rms", "-5"], "--vad-min-rms must be between 0 and 32767"),
    ],
)
def test_a_bad_value_exits_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--drain-timeout", "-1"], "argument --drain-timeout: expected a finite number, 0 or"),
        (["--records-retention-days", "x"], "argument --records-retention-days: expected a"),
    ],
)
def test_a_bad_number_is_an_argparse_error_naming_the_option(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_settings_are_named_as_options_only_where_they_are_settings() -> None:
    assert name_flags("host must be a non-empty string") == "--host must be a non-empty string"
    assert name_flags("public_url must be a URL with a host") == (
        "--public-url must be a URL with a host"
    )
    assert name_flags("the port is taken") == "the port is taken"
    assert name_flags(
        "window_s must be between 1 and 30 seconds (or None for the full window)"
    ) == ("--stt-window must be between 1 and 30 seconds")


def test_an_empty_auth_token_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "")
    assert main([]) == 2
    assert "TWILIO_AUTH_TOKEN is set but empty" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# Serving in-process


class Builder:
    """Stands in for ``registry.build_engines``: records its arguments, returns ``engines``."""

    def __init__(self, engines: Engines | Exception) -> None:
        self.engines = engines
        self.calls: list[dict[str, Any]] = []

    def __call__(self, **options: Any) -> Engines:
        self.calls.append(options)
        if isinstance(self.engines, Exception):
            raise self.engines
        return self.engines


class ClosingTts(FakeTextToSpeech):
    """A TTS engine with something to release at shutdown, as the remote engines have."""

    def __init__(self) -> None:
        super().__init__(delay=0.0, seconds_per_char=0.005)
        self.closed = 0

    async def aclose(self) -> None:
        self.closed += 1


def fake_engines() -> Engines:
    return FakeSpeech(stt=FakeSpeechToText(delay=0.01), tts=ClosingTts()).engines()


@pytest.fixture
def builder(monkeypatch: pytest.MonkeyPatch) -> Callable[[Engines | Exception], Builder]:
    from phoneactors.engines import registry

    def install(engines: Engines | Exception) -> Builder:
        fake = Builder(engines)
        monkeypatch.setattr(registry, "build_engines", fake)
        return fake

    return install


class Stdout(io.StringIO):
    """Captures stdout and runs ``on_listening(port)`` in a thread once the line is out."""

    def __init__(self, on_listening: Callable[[int], None]) -> None:
        super().__init__()
        self.on_listening = on_listening
        self.thread: threading.Thread | None = None

    def join(self) -> None:
        """Wait for ``on_listening`` to finish."""
        assert self.thread is not None, "main() never printed its listening line"
        self.thread.join(timeout=10)
        assert not self.thread.is_alive()

    def write(self, text: str) -> int:
        written = super().write(text)
        match = LISTENING.search(self.getvalue())
        if match and self.thread is None:
            self.thread = threading.Thread(target=self.on_listening, args=(int(match[1]),))
            self.thread.start()
        return written


@pytest.fixture
def stdout(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Callable[[int], None]], Stdout]]:
    made: list[Stdout] = []

    def install(on_listening: Callable[[int], None]) -> Stdout:
        made.append(Stdout(on_listening))
        monkeypatch.setattr(sys, "stdout", made[-1])
        return made[-1]

    yield install
    for capture in made:
        if capture.thread is not None:
            capture.thread.join(timeout=10)


def signal_self(signum: int) -> None:
    os.kill(os.getpid(), signum)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_main_serves_until_a_signal_then_exits_0(
    signum: int,
    builder: Callable[[Engines | Exception], Builder],
    stdout: Callable[[Callable[[int], None]], Stdout],
) -> None:
    fake = builder(fake_engines())
    assert isinstance(fake.engines, Engines)
    tts = fake.engines.tts
    assert isinstance(tts, ClosingTts)
    seen: dict[str, Any] = {}

    def operator(port: int) -> None:
        assert tts.closed == 0
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            seen["health"] = client.get("/healthz").json()
            seen["twiml"] = client.post("/", data={"From": "+15550001111"}).text
        signal_self(signum)

    out = stdout(operator)
    argv = ["--port", "0", "--stt-model", "tiny", "--threads", "2", "--allow-download"]
    assert main(argv) == 0
    out.join()
    assert LISTENING.fullmatch(out.getvalue()), out.getvalue()
    assert seen["health"] == {"status": "ok", "active_calls": 0}
    assert "<Connect><Stream" in seen["twiml"]
    assert tts.closed == 1  # the engines were closed on the way out
    assert fake.calls == [
        {
            "vad": "webrtc",
            "stt": "faster-whisper",
            "tts": "hibari",
            "stt_model": "tiny",
            "tts_voice": None,
            "threads": 2,
            "allow_download": True,
        }
    ]


def test_a_second_signal_ends_calls_in_progress(
    builder: Callable[[Engines | Exception], Builder],
    stdout: Callable[[Callable[[int], None]], Stdout],
) -> None:
    builder(fake_engines())
    seen: dict[str, Any] = {}

    async def caller(port: int) -> None:
        async with trio_websocket.open_websocket_url(f"ws://127.0.0.1:{port}/stream") as ws:
            await ws.send_message(twilio.encode_inbound(twilio.Connected("Call", "1.0.0")))
            await ws.send_message(twilio.encode_inbound(twilio.Start(1, "MZ1", "CA1", "AC1")))
            await ws.get_message()  # the greeting has begun: a call is in progress
            signal_self(signal.SIGTERM)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                while (health := (await client.get("/healthz")).json())["status"] != "draining":  # noqa: ASYNC110
                    await trio.sleep(0.01)  # polling the server, as a load balancer would
            seen["health"] = health
            signal_self(signal.SIGTERM)  # again: don't wait the 30 s drain timeout
            with trio.fail_after(5):
                try:
                    while True:
                        await ws.get_message()
                except trio_websocket.ConnectionClosed:
                    seen["closed"] = True
            await ws._stream.aclose()  # trio-websocket leaves it open when the server closes

    out = stdout(lambda port: trio.run(caller, port))
    assert main(["--port", "0", "--drain-timeout", "30"]) == 0
    out.join()
    assert LISTENING.fullmatch(out.getvalue())
    assert seen == {"health": {"status": "draining", "active_calls": 1}, "closed": True}


class FailingToLoad(FakeSpeechToText):
    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    async def load(self) -> None:
        raise self.error


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (ModelNotFoundError("model 'tiny' is not installed: pip install it"), 2),
        (RuntimeError("the engine crashed"), 1),
    ],
)
def test_engines_failing_to_load_end_the_process(
    error: Exception,
    status: int,
    builder: Callable[[Engines | Exception], Builder],
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    builder(FakeSpeech(stt=FailingToLoad(error)).engines())
    assert main(["--port", "0"]) == status
    captured = capsys.readouterr()
    assert "listening" not in captured.out
    assert any(str(error) in r.getMessage() for r in caplog.records)


def test_engines_that_cannot_be_built_exit_2(
    builder: Callable[[Engines | Exception], Builder], capsys: pytest.CaptureFixture[str]
) -> None:
    builder(ModelNotFoundError("no whisper.cpp model: download ggml-tiny.en.bin"))
    assert main(["--port", "0", "--stt", "whisper.cpp"]) == 2
    assert "download ggml-tiny.en.bin" in capsys.readouterr().err


def test_a_port_in_use_exits_1(
    builder: Callable[[Engines | Exception], Builder], capsys: pytest.CaptureFixture[str]
) -> None:
    builder(fake_engines())
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["--port", str(port)]) == 1
    assert f"could not listen on 127.0.0.1:{port}: " in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# python -m phoneactors


def run_module(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHONEACTORS_")}
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        [sys.executable, "-m", "phoneactors", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )


def test_python_m_phoneactors() -> None:
    help_ = run_module("--help")
    assert help_.returncode == 0
    assert "PHONEACTORS_CONVERSATION" in help_.stdout
    bad = run_module("--conversation", "no_such_module_here:Bot")
    assert bad.returncode == 2
    assert "no module named 'no_such_module_here'" in bad.stderr
    assert cli.PROG == "phoneactors"


@pytest.fixture(autouse=True)
def _records_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Serving writes call records; keep them out of the working directory."""
    monkeypatch.setenv("PHONEACTORS_RECORDS", str(tmp_path / "calls.db"))


async def test_calls_lists_and_prints_recorded_calls(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from phoneactors.records import (
        CallEnded,
        CallerSaid,
        CallStarted,
        CallStore,
        FalseInterruption,
        Interrupted,
        Recorded,
    )

    db = tmp_path / "records.db"
    store = CallStore(db)
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        store.observe("MZ1", CallStarted("CA1", "MZ1", "AC1", "+15550001", {}))
        store.observe("MZ1", CallerSaid("what time is it"))
        store.observe("MZ1", Interrupted("It is ten", "past four."))
        store.observe("MZ1", FalseInterruption("backchannel", "Okay."))
        store.observe("MZ1", FalseInterruption("no words", "Thank you."))
        store.observe("MZ1", FalseInterruption("unclear", "La la"))
        store.observe("MZ1", CallEnded("caller hung up"))
        store.observe("MZ1", Recorded("/srv/recordings/MZ1.wav"))
        nursery.cancel_scope.cancel()
    assert main(["calls", "--records", str(db)]) == 0
    listing = capsys.readouterr().out
    assert "CA1" in listing
    assert "+15550001" in listing
    assert "1 turns  caller hung up" in listing
    assert main(["calls", "CA1", "--records", str(db)]) == 0
    transcript = capsys.readouterr().out
    assert "caller: what time is it" in transcript
    assert "bot (interrupted): It is ten  [not heard: past four.]" in transcript
    assert "(caller backchannel 'Okay.' over the bot: it played on)" in transcript
    assert "(a sound over the bot, heard as 'Thank you.': it played on)" in transcript
    assert "(an unclear sound over the bot, heard as 'La la': it played on)" in transcript
    assert "(ended: caller hung up)" in transcript
    assert "(recorded to /srv/recordings/MZ1.wav)" in transcript
    assert main(["calls", "CA2", "--records", str(db)]) == 2
    assert "no call or stream 'CA2'" in capsys.readouterr().err
    assert main(["calls", "--records", str(tmp_path / "none.db")]) == 2


@pytest.mark.e2e
def test_the_real_server_logs_json_says_ready_once_and_keeps_records_private(
    tmp_path: Path,
) -> None:
    records = tmp_path / "calls.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PHONEACTORS_", "TWILIO_"))}
    argv = ["--port", "0", "--log-format", "json", "--records", str(records)]
    server = subprocess.Popen(
        [sys.executable, "-m", "phoneactors", *argv],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        assert LISTENING.fullmatch(line), line
        assert stat.S_IMODE(records.stat().st_mode) == 0o600
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=60)
    finally:
        server.kill()
    assert server.returncode == 0, err
    entries = [json.loads(line) for line in err.splitlines()]  # every line is one object
    messages = [entry["message"] for entry in entries]
    assert any(m.startswith("ready: listening on http://127.0.0.1:") for m in messages), messages
    assert not any(m.startswith("Running on") for m in messages), messages
