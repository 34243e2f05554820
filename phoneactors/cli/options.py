"""The options of ``phoneactors serve`` (most of which ``simulate`` shares) and their
environment variables; what the command line builds from them (the conversation, the engines,
the call settings) is in :mod:`phoneactors.cli.building`."""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from ..call import CallSettings
from ..segmenter import SegmenterSettings
from .common import AUTH_TOKEN_ENV, ENV_PREFIX, PROG

__all__ = [
    "DEFAULT_CONVERSATION",
    "DEFAULT_RECORDS",
    "OPTIONS",
    "Option",
    "add_options",
    "apply_environment",
    "build_parser",
    "parse_args",
]

DEFAULT_CONVERSATION: Final = "phoneactors.conversation:Parrot"
LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMATS: Final = ("text", "json")
_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off"})

_SEGMENTER_DEFAULTS: Final = SegmenterSettings()
_CALL_DEFAULTS: Final = CallSettings()
_CALL_DEFAULTS_SERVER_WAIT: Final = 250.0
"""The default of ``--max-inference-wait-ms`` (:attr:`ServerConfig.max_inference_wait_ms`)."""


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number, 0 or more, got {text!r}")
    return value


def _log_level(text: str) -> str:
    return text.strip().upper()


def _word(text: str) -> str:
    return text.strip().lower()


@dataclass(frozen=True)
class Option:
    """One command-line option and its environment variable."""

    flag: str
    help: str
    default: object = None
    type: Callable[[str], Any] = str
    metavar: str | None = None
    engine_role: str | None = None
    """Its choices are the registry's engines for this role ("vad", "stt", "tts")."""
    choices: tuple[str, ...] | None = None
    switch: bool = False
    """A flag without a value (``store_true``); its variable takes 1/0, true/false, yes/no."""

    @property
    def dest(self) -> str:
        return self.flag.removeprefix("--").replace("-", "_")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.dest.upper()


DEFAULT_RECORDS: Final = "phoneactors-calls.db"

OPTIONS: Final = (
    Option("--host", "address to listen on", "127.0.0.1", metavar="HOST"),
    Option("--port", "TCP port to listen on (0: any free port)", 8080, int, "PORT"),
    Option(
        "--conversation",
        "what makes each call's conversation, as module:name: a Conversation subclass, a "
        "function given the call, or an @asynccontextmanager lifespan yielding either (the "
        "module is looked up in the current directory first)",
        DEFAULT_CONVERSATION,
        metavar="MODULE:CLASS",
    ),
    Option(
        "--public-url",
        "the http(s) URL Twilio reaches this server at (ngrok, a proxy), used for the stream "
        "URL and signatures; default: from each request's Host and X-Forwarded-Proto",
        metavar="URL",
    ),
    Option("--max-calls", "calls served at once; more hear the busy message", 20, int, "N"),
    Option(
        "--workers",
        "server processes sharing the port (SO_REUSEPORT), each with its own speech engines "
        "(memory: one set of models each) and its share of the cores for inference",
        1,
        int,
        "N",
    ),
    Option(
        "--max-inference-wait-ms",
        "new callers hear the busy message while speech inferences wait longer than this for a "
        "CPU thread (the 90th percentile of the last 5 s): the box is full (0: never)",
        _CALL_DEFAULTS_SERVER_WAIT,
        _non_negative_float,
        "MS",
    ),
    Option(
        "--max-message-bytes",
        "largest websocket message accepted; a larger one ends its call",
        65536,
        int,
        "BYTES",
    ),
    Option(
        "--drain-timeout",
        "seconds calls in progress may go on after Ctrl-C or SIGTERM",
        30.0,
        _non_negative_float,
        "SECONDS",
    ),
    Option(
        "--softphone",
        f"serve the browser softphone at /phone even though {AUTH_TOKEN_ENV} is set (it is on "
        "without a token): anyone who can load the page can then talk to your bot",
        False,
        switch=True,
    ),
    Option("--vad", "voice activity detector", "webrtc", engine_role="vad"),
    Option(
        "--vad-min-rms",
        "WebRTC VAD energy gate: frames with a lower RMS (int16) are never speech "
        "(default 50, about -56 dBFS; 0: off)",
        None,
        float,
        "RMS",
    ),
    Option("--stt", "speech-to-text engine", "faster-whisper", engine_role="stt"),
    Option("--tts", "text-to-speech engine", "hibari", engine_role="tts"),
    Option("--stt-model", "speech-to-text model name or path (engine default)", metavar="MODEL"),
    Option("--tts-voice", "text-to-speech voice name or path (engine default)", metavar="VOICE"),
    Option(
        "--stt-url",
        "URL of the OpenAI-compatible speech server for --stt openai (its root or /v1 URL)",
        metavar="URL",
    ),
    Option(
        "--tts-url",
        "URL of the OpenAI-compatible speech server for --tts openai (its root or /v1 URL)",
        metavar="URL",
    ),
    Option(
        "--tts-model",
        "for --tts openai the speech model's name (default: tts-1); for --tts coqui the folder "
        "of a Coqui model (VITS, XTTS; required)",
        metavar="MODEL",
    ),
    Option(
        "--tts-language",
        "language of a multilingual --tts coqui model (XTTS: en, de, fr, ...; default: en if "
        "the model has it)",
        metavar="LANG",
    ),
    Option(
        "--tts-device",
        "device --tts coqui runs on: cpu (default) or cuda (the first GPU)",
        None,
        _word,
        "DEVICE",
        choices=("cpu", "cuda"),
    ),
    Option(
        "--remote-api-key-env",
        "name of the environment variable holding the API key for the openai engines "
        "(default: OPENAI_API_KEY if set, else no key)",
        metavar="NAME",
    ),
    Option(
        "--threads",
        "CPU threads inference may use at once, shared by all calls (default: one per core)",
        None,
        int,
        "N",
    ),
    Option(
        "--stt-device",
        "where faster-whisper runs: cpu, cuda (an NVIDIA GPU, with CUDA 12 and cuDNN 9 "
        "installed) or auto (default cpu)",
        None,
        choices=("cpu", "cuda", "auto"),
        metavar="DEVICE",
    ),
    Option(
        "--stt-window",
        "faster-whisper encoder window in seconds, 1-30 (default 12; 30: Whisper's full window, "
        "slower, slightly more accurate)",
        None,
        float,
        "SECONDS",
    ),
    Option(
        "--allow-download",
        "let engines download missing models (off: fail with instructions instead)",
        False,
        switch=True,
    ),
    Option(
        "--end-silence-ms",
        "silence that ends a caller's turn whose words read complete (every turn, with "
        "--pause-ms 0)",
        _SEGMENTER_DEFAULTS.end_silence_ms,
        int,
        "MS",
    ),
    Option(
        "--incomplete-silence-ms",
        "silence that ends a turn that trails off ('a table for', 'um', half a phone number), "
        "or whose words are not judged yet",
        _SEGMENTER_DEFAULTS.incomplete_silence_ms,
        int,
        "MS",
    ),
    Option(
        "--pause-ms",
        "silence after which the caller's words so far are transcribed and judged (0: never, "
        "and --end-silence-ms ends every turn)",
        _SEGMENTER_DEFAULTS.pause_ms,
        int,
        "MS",
    ),
    Option(
        "--faint-db",
        "a voiced sound this many dB under the caller's own loud level counts as quiet when "
        "ending their turn and does not interrupt the bot, as voices in their room do "
        "(0: every voiced sound is speech)",
        _SEGMENTER_DEFAULTS.faint_db,
        float,
        "DB",
    ),
    Option(
        "--no-noise-gate",
        "don't follow each line's noise floor (by default a frame counts as speech only when "
        "clearly above the line's own hiss)",
        False,
        switch=True,
    ),
    Option(
        "--min-speech-ms",
        "speech needed before the caller counts as talking (and interrupts)",
        _SEGMENTER_DEFAULTS.min_speech_ms,
        int,
        "MS",
    ),
    Option(
        "--reply-timeout",
        "seconds a reply may take to generate before the apology is spoken",
        _CALL_DEFAULTS.reply_timeout,
        float,
        "SECONDS",
    ),
    Option(
        "--idle-timeout",
        "seconds of quiet on both sides before the bot asks 'Are you still there?' (and "
        "after a second time says goodbye and hangs up; Conversation.on_idle decides) (0: never)",
        _CALL_DEFAULTS.idle_timeout,
        _non_negative_float,
        "SECONDS",
    ),
    Option(
        "--max-call-seconds",
        "longest call: past it the bot says the time-limit line and hangs up (0: no limit)",
        0.0,
        _non_negative_float,
        "SECONDS",
    ),
    Option(
        "--records",
        "SQLite file that every call's transcript is written to as it happens, or a "
        "postgresql://user@host/db URL of a database several servers share ('off': none)",
        DEFAULT_RECORDS,
        metavar="PATH|URL",
    ),
    Option(
        "--recordings",
        "folder that every call's audio is written to, as <stream sid>.wav (stereo: caller "
        "left, bot right), linked from the call records (default: none)",
        metavar="DIR",
    ),
    Option(
        "--records-retention-days",
        "delete recorded calls older than this, at start and every hour (0: keep them)",
        0.0,
        _non_negative_float,
        "DAYS",
    ),
    Option("--log-level", "logging level", "INFO", _log_level, choices=LOG_LEVELS),
    Option(
        "--log-format",
        "log lines on stderr: 'text' for people, 'json' for log shippers (one object a line, "
        "with the call sid as a field)",
        "text",
        _word,
        choices=LOG_FORMATS,
    ),
)
"""Every option of the ``serve`` command, in ``--help`` order."""


def engine_choices() -> Mapping[str, tuple[str, ...]]:
    from ..engines.registry import ENGINE_CHOICES  # looked up when used, like build_engines

    return ENGINE_CHOICES


SERVER_ONLY: Final = frozenset(
    {
        "--host",
        "--port",
        "--public-url",
        "--max-calls",
        "--workers",
        "--max-inference-wait-ms",
        "--max-message-bytes",
        "--drain-timeout",
        "--softphone",
        "--records",
        "--records-retention-days",
        "--recordings",
    }
)
"""Options of ``serve`` that ``simulate`` has no use for; it takes every other one."""
SIMULATE_DEFAULTS: Final = {"log_level": "WARNING"}
"""``simulate`` keeps the log quiet, so the transcript stays readable."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; its defaults are ``None`` so that :func:`parse_args` can tell a
    flag given from one left out (and then look at the environment)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        usage=(
            f"{PROG} [serve] [options]\n"
            f"       {PROG} simulate [--say TEXT] [--script FILE] [--record WAV] [options]\n"
            f"       {PROG} call TO --from FROM [--public-url URL]\n"
            f"       {PROG} calls [CALL_SID] [--records PATH|URL]"
        ),
        description=(
            "Answer Twilio phone calls with a Conversation: serves Twilio's voice webhook "
            "(POST /), its media streams (websocket /stream), a browser softphone (GET /phone), "
            "Prometheus metrics (GET /metrics) and a health check (GET /healthz). Other "
            "commands: 'simulate' talks to your bot in the terminal, 'call' places an outbound "
            "call, 'calls' shows the recorded calls; see "
            f"'{PROG} simulate --help', '{PROG} call --help' and '{PROG} calls --help'."
        ),
        epilog=(
            f"Every option also reads the environment variable shown with it; the flag wins. "
            f"Set {AUTH_TOKEN_ENV} to your Twilio auth token to enforce Twilio's request "
            "signatures (without it, requests are not authenticated)."
        ),
    )
    add_options(parser, OPTIONS)
    return parser


def add_options(
    parser: argparse.ArgumentParser,
    options: Sequence[Option],
    defaults: Mapping[str, object] | None = None,
) -> None:
    """Add ``options`` with ``None`` defaults; ``--help`` shows each one's variable and
    default (from ``defaults`` when it names the option's ``dest``)."""
    choices_of = engine_choices()
    for option in options:
        choices = choices_of[option.engine_role] if option.engine_role else option.choices
        where = f"env {option.env}"
        if option.switch:
            parser.add_argument(
                option.flag,
                action="store_true",
                default=None,
                help=f"{option.help} [{where}]",
            )
            continue
        value = (defaults or {}).get(option.dest, option.default)
        default = "" if value is None else f"; default: {value}"
        parser.add_argument(
            option.flag,
            type=option.type,
            choices=choices,
            default=None,
            metavar=option.metavar,
            help=f"{option.help} [{where}{default}]",
        )


def parse_args(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> argparse.Namespace:
    """Parse ``argv`` (default: ``sys.argv[1:]``), filling each option left out from its
    ``PHONEACTORS_…`` variable in ``environ`` (default: ``os.environ``), else its default.

    A bad flag or variable value exits with status 2 and a message, as argparse does; so
    does ``--help`` (with status 0).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    apply_environment(parser, args, OPTIONS, os.environ if environ is None else environ)
    return args


def apply_environment(
    parser: argparse.ArgumentParser,
    args: argparse.Namespace,
    options: Sequence[Option],
    environ: Mapping[str, str],
    defaults: Mapping[str, object] | None = None,
) -> None:
    """Fill each of ``options`` left out of ``args`` from its variable, else its default
    (``defaults`` overrides an option's own, by ``dest``)."""
    choices_of = engine_choices()
    for option in options:
        if getattr(args, option.dest) is not None:
            continue
        raw = environ.get(option.env, "")
        if not raw.strip():
            setattr(args, option.dest, (defaults or {}).get(option.dest, option.default))
            continue
        value: object
        if option.switch:
            word = raw.strip().lower()
            if word not in _TRUE | _FALSE:
                parser.error(f"{option.env}={raw!r}: expected 1/0, true/false, yes/no or on/off")
            value = word in _TRUE
        else:
            try:
                value = option.type(raw.strip())
            except (ValueError, argparse.ArgumentTypeError) as exc:
                parser.error(f"{option.env}={raw!r}: not a valid {option.flag} value ({exc})")
            choices = choices_of[option.engine_role] if option.engine_role else option.choices
            if choices is not None and value not in choices:
                parser.error(f"{option.env}={raw!r}: choose from {', '.join(map(repr, choices))}")
        setattr(args, option.dest, value)


_SETTING_FLAGS: Final = {"window_s": "--stt-window", "min_rms": "--vad-min-rms"}
"""Settings of the Python API whose option has another name."""


def name_flags(message: str) -> str:
    """``message`` (from a :class:`ConfigurationError` of the Python API) with the settings it
    names written as the options that set them: "max_calls must be at least 1" becomes
    "--max-calls must be at least 1". A plain word ("host", "port") is taken for a setting only
    at the start of the message."""
    names = {option.dest: option.flag for option in OPTIONS} | _SETTING_FLAGS
    for name, flag in names.items():
        if message.startswith(name + " "):
            message = flag + message[len(name) :]
        if "_" in name:
            message = re.sub(rf"(?<![\w-]){name}\b", flag, message)
    return message.replace(" (or None for the full window)", "")
