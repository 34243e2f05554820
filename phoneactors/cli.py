"""The command line: ``python -m phoneactors [options]`` (or ``phoneactors``) serves calls.

Four commands; ``serve`` is the default, so ``phoneactors --port 9000`` serves::

    phoneactors [serve] [options]                  serve Twilio calls (and the softphone, /phone)
    phoneactors simulate [--say TEXT] [options]    one call in the terminal, no phone line
    phoneactors call TO --from FROM [options]      place an outbound call through Twilio's API
    phoneactors calls [CALL_SID]                   list recorded calls, or print one transcript

Every option can also be set through an environment variable, ``PHONEACTORS_`` followed by the
option's name in capitals with ``-`` as ``_`` (``--max-calls`` → ``PHONEACTORS_MAX_CALLS``); a
flag on the command line wins over the variable, and an empty variable counts as unset. The
Twilio auth token is read only from ``TWILIO_AUTH_TOKEN``, so it never shows in process lists.

Once the speech engines are loaded and the socket is bound, exactly one line goes to stdout::

    phoneactors listening on http://127.0.0.1:8080 (webhook POST /, stream /stream)

Ctrl-C or SIGTERM stops taking calls and lets those in progress finish (``--drain-timeout``);
a second signal ends them at once.

Exit status: 0 after a shutdown by signal; 2 for a bad command line or configuration (an
unknown option, a ``--conversation`` that cannot be imported, a value out of range, a model
that is not installed); 1 when serving fails otherwise (the port is taken, an engine crashes).

``simulate`` takes the same conversation, engine and turn-taking options as ``serve`` (and their
variables), and exits 0 once the call is over. ``call`` reads the Twilio credentials from
``TWILIO_ACCOUNT_SID`` and ``TWILIO_AUTH_TOKEN`` (missing: exit 2), and exits 1 when Twilio
refuses the call or cannot be reached.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import signal
import sys
import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Final

import trio

from .call import CallSettings
from .conversation import Conversation
from .engines import Engines
from .errors import ConfigurationError
from .segmenter import SegmenterSettings

if TYPE_CHECKING:
    from .server import ServerConfig

__all__ = ["build_parser", "load_conversation", "main", "parse_args"]

logger = logging.getLogger("phoneactors.cli")

PROG: Final = "phoneactors"
ENV_PREFIX: Final = "PHONEACTORS_"
AUTH_TOKEN_ENV: Final = "TWILIO_AUTH_TOKEN"
DEFAULT_CONVERSATION: Final = "phoneactors.conversation:Parrot"
LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR")
_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off"})

_SEGMENTER_DEFAULTS: Final = SegmenterSettings()
_CALL_DEFAULTS: Final = CallSettings()

EXIT_OK: Final = 0
EXIT_FAILURE: Final = 1
EXIT_USAGE: Final = 2
EXIT_INTERRUPTED: Final = 130


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0 or value == float("inf"):
        raise ValueError(f"expected a finite number, 0 or more, got {text!r}")
    return value


def _log_level(text: str) -> str:
    return text.strip().upper()


@dataclass(frozen=True)
class _Option:
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
    _Option("--host", "address to listen on", "127.0.0.1", metavar="HOST"),
    _Option("--port", "TCP port to listen on (0: any free port)", 8080, int, "PORT"),
    _Option(
        "--conversation",
        "the Conversation subclass to serve, as module:Class (the module is looked up in the "
        "current directory too)",
        DEFAULT_CONVERSATION,
        metavar="MODULE:CLASS",
    ),
    _Option(
        "--public-url",
        "the http(s) URL Twilio reaches this server at (ngrok, a proxy), used for the stream "
        "URL and signatures; default: from each request's Host and X-Forwarded-Proto",
        metavar="URL",
    ),
    _Option("--max-calls", "calls served at once; more hear the busy message", 20, int, "N"),
    _Option(
        "--max-message-bytes",
        "largest websocket message accepted; a larger one ends its call",
        65536,
        int,
        "BYTES",
    ),
    _Option(
        "--drain-timeout",
        "seconds calls in progress may go on after Ctrl-C or SIGTERM",
        30.0,
        _non_negative_float,
        "SECONDS",
    ),
    _Option(
        "--softphone",
        f"serve the browser softphone at /phone even though {AUTH_TOKEN_ENV} is set (it is on "
        "without a token): anyone who can load the page can then talk to your bot",
        False,
        switch=True,
    ),
    _Option("--vad", "voice activity detector", "webrtc", engine_role="vad"),
    _Option(
        "--vad-min-rms",
        "WebRTC VAD energy gate: frames with a lower RMS (int16) are never speech "
        "(default 50, about -56 dBFS; 0: off)",
        None,
        float,
        "RMS",
    ),
    _Option("--stt", "speech-to-text engine", "faster-whisper", engine_role="stt"),
    _Option("--tts", "text-to-speech engine", "hibari", engine_role="tts"),
    _Option("--stt-model", "speech-to-text model name or path (engine default)", metavar="MODEL"),
    _Option("--tts-voice", "text-to-speech voice name or path (engine default)", metavar="VOICE"),
    _Option(
        "--stt-url",
        "URL of the OpenAI-compatible speech server for --stt openai (its root or /v1 URL)",
        metavar="URL",
    ),
    _Option(
        "--tts-url",
        "URL of the OpenAI-compatible speech server for --tts openai (its root or /v1 URL)",
        metavar="URL",
    ),
    _Option("--tts-model", "speech model name for --tts openai (default: tts-1)", metavar="MODEL"),
    _Option(
        "--remote-api-key-env",
        "name of the environment variable holding the API key for the openai engines "
        "(default: OPENAI_API_KEY if set, else no key)",
        metavar="NAME",
    ),
    _Option("--threads", "inference threads (default: one per core)", None, int, "N"),
    _Option(
        "--stt-window",
        "faster-whisper encoder window in seconds, 1-30 (default 15; 30: Whisper's full window, "
        "slower, slightly more accurate)",
        None,
        float,
        "SECONDS",
    ),
    _Option(
        "--allow-download",
        "let engines download missing models (off: fail with instructions instead)",
        False,
        switch=True,
    ),
    _Option(
        "--end-silence-ms",
        "silence that ends a caller's turn whose words read complete (every turn, with "
        "--pause-ms 0)",
        _SEGMENTER_DEFAULTS.end_silence_ms,
        int,
        "MS",
    ),
    _Option(
        "--incomplete-silence-ms",
        "silence that ends a turn that trails off ('a table for', 'um', half a phone number), "
        "or whose words are not judged yet",
        _SEGMENTER_DEFAULTS.incomplete_silence_ms,
        int,
        "MS",
    ),
    _Option(
        "--pause-ms",
        "silence after which the caller's words so far are transcribed and judged (0: never, "
        "and --end-silence-ms ends every turn)",
        _SEGMENTER_DEFAULTS.pause_ms,
        int,
        "MS",
    ),
    _Option(
        "--no-noise-gate",
        "don't follow each line's noise floor (by default a frame counts as speech only when "
        "clearly above the line's own hiss)",
        False,
        switch=True,
    ),
    _Option(
        "--min-speech-ms",
        "speech needed before the caller counts as talking (and interrupts)",
        _SEGMENTER_DEFAULTS.min_speech_ms,
        int,
        "MS",
    ),
    _Option(
        "--reply-timeout",
        "seconds a reply may take to generate before the apology is spoken",
        _CALL_DEFAULTS.reply_timeout,
        float,
        "SECONDS",
    ),
    _Option(
        "--records",
        "SQLite file that every call's transcript is written to as it happens ('off': none)",
        DEFAULT_RECORDS,
        metavar="PATH",
    ),
    _Option("--log-level", "logging level", "INFO", _log_level, choices=LOG_LEVELS),
)
"""Every option of the ``serve`` command, in ``--help`` order."""


def _engine_choices() -> Mapping[str, tuple[str, ...]]:
    from .engines.registry import ENGINE_CHOICES  # looked up when used, like build_engines

    return ENGINE_CHOICES


SERVER_ONLY: Final = frozenset(
    {
        "--host",
        "--port",
        "--public-url",
        "--max-calls",
        "--max-message-bytes",
        "--drain-timeout",
        "--softphone",
        "--records",
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
            f"       {PROG} calls [CALL_SID] [--records PATH]"
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
    _add_options(parser, OPTIONS)
    return parser


def _add_options(
    parser: argparse.ArgumentParser,
    options: Sequence[_Option],
    defaults: Mapping[str, object] | None = None,
) -> None:
    """Add ``options`` with ``None`` defaults; ``--help`` shows each one's variable and
    default (from ``defaults`` when it names the option's ``dest``)."""
    engine_choices = _engine_choices()
    for option in options:
        choices = engine_choices[option.engine_role] if option.engine_role else option.choices
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
    _apply_environment(parser, args, OPTIONS, os.environ if environ is None else environ)
    return args


def _apply_environment(
    parser: argparse.ArgumentParser,
    args: argparse.Namespace,
    options: Sequence[_Option],
    environ: Mapping[str, str],
    defaults: Mapping[str, object] | None = None,
) -> None:
    """Fill each of ``options`` left out of ``args`` from its variable, else its default
    (``defaults`` overrides an option's own, by ``dest``)."""
    engine_choices = _engine_choices()
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
            choices = engine_choices[option.engine_role] if option.engine_role else option.choices
            if choices is not None and value not in choices:
                parser.error(f"{option.env}={raw!r}: choose from {', '.join(map(repr, choices))}")
        setattr(args, option.dest, value)


def load_conversation(spec: str) -> type[Conversation]:
    """Import ``module:Class`` (``Class`` may be dotted) and check it is a Conversation.

    Raises :class:`~phoneactors.errors.ConfigurationError` saying what is wrong; an exception
    raised while the module itself runs is chained as the cause.
    """
    module_name, colon, attribute = spec.partition(":")
    if not colon or not module_name.strip() or not attribute.strip():
        raise ConfigurationError(
            f"--conversation {spec!r}: expected module:Class, for example mybot:Parrot"
        )
    try:
        target: object = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (module_name + ".").startswith(exc.name + "."):
            raise ConfigurationError(
                f"--conversation {spec!r}: there is no module named {exc.name!r} (looked in "
                "the current directory and on the Python path)"
            ) from None
        raise ConfigurationError(
            f"--conversation {spec!r}: importing {module_name!r} failed: {exc}"
        ) from exc
    except Exception as exc:
        raise ConfigurationError(
            f"--conversation {spec!r}: importing {module_name!r} failed: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ConfigurationError(
                f"--conversation {spec!r}: {module_name!r} has no attribute {attribute!r}"
            ) from None
    if not (isinstance(target, type) and issubclass(target, Conversation)):
        raise ConfigurationError(
            f"--conversation {spec!r}: expected a subclass of phoneactors.Conversation, "
            f"got {target!r}"
        )
    return target


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # faster-whisper logs every transcription at INFO; at DEBUG the user asked for it.
    if logging.getLogger().level > logging.DEBUG:
        logging.getLogger("faster_whisper").setLevel(logging.WARNING)


def _error(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)


def _http_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _build_engines(args: argparse.Namespace) -> Engines:
    # Looked up at call time (not imported at the top) so that tests can swap it for fakes.
    from .engines.registry import build_engines

    # The remote engines' options, the STT window and the VAD gate are passed only when given.
    remote = ("stt_url", "tts_url", "tts_model", "remote_api_key_env", "stt_window", "vad_min_rms")
    return build_engines(
        vad=args.vad,
        stt=args.stt,
        tts=args.tts,
        stt_model=args.stt_model,
        tts_voice=args.tts_voice,
        threads=args.threads,
        allow_download=args.allow_download,
        **{name: getattr(args, name) for name in remote if getattr(args, name) is not None},
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (see the module docstring).

    ``--help`` and argparse's own errors raise ``SystemExit`` as argparse always does.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    match argv[:1]:
        case ["simulate"]:
            return _simulate_command(argv[1:])
        case ["call"]:
            return _call_command(argv[1:])
        case ["calls"]:
            return _calls_command(argv[1:])
        case ["serve"]:
            argv = argv[1:]
    args = parse_args(argv)
    _configure_logging(args.log_level)
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # as `python -m` does, for `phoneactors --conversation`

    from .server import ServerConfig  # quart and hypercorn: not needed for `--help`

    auth_token = os.environ.get(AUTH_TOKEN_ENV)
    try:
        if auth_token is not None and not auth_token.strip():
            raise ConfigurationError(
                f"{AUTH_TOKEN_ENV} is set but empty; unset it to run without signature checks"
            )
        conversation = load_conversation(args.conversation)
        config = ServerConfig(
            host=args.host,
            port=args.port,
            public_url=args.public_url,
            auth_token=auth_token,
            max_calls=args.max_calls,
            max_message_bytes=args.max_message_bytes,
            drain_timeout=args.drain_timeout,
            softphone=args.softphone,
            records=None if args.records in ("", "off") else args.records,
            call_settings=_call_settings(args),
        )
        engines = _build_engines(args)
    except ConfigurationError as exc:
        _error(str(exc))
        if exc.__cause__ is not None:
            traceback.print_exception(exc.__cause__, file=sys.stderr)
        return EXIT_USAGE
    return _run(conversation, engines, config)


def _call_settings(args: argparse.Namespace) -> CallSettings:
    return CallSettings(
        segmenter=SegmenterSettings(
            min_speech_ms=args.min_speech_ms,
            end_silence_ms=args.end_silence_ms,
            incomplete_silence_ms=args.incomplete_silence_ms,
            pause_ms=args.pause_ms,
        ),
        reply_timeout=args.reply_timeout,
        noise_gate=not args.no_noise_gate,
    )


def _run(conversation: Callable[[], Conversation], engines: Engines, config: ServerConfig) -> int:
    """Serve until a signal; map what went wrong to an exit status."""
    return _run_trio(
        partial(_serve_until_signalled, conversation, engines, config), "the server failed"
    )


def _run_trio(main: Callable[[], Awaitable[object]], failure: str) -> int:
    """``trio.run(main)``, with what went wrong mapped to an exit status (and said once)."""
    from .server import single_error

    try:
        trio.run(main)
    except BaseException as exc:
        error = single_error(exc)
        if isinstance(error, KeyboardInterrupt):  # before the signal handlers were in place
            return EXIT_INTERRUPTED
        if isinstance(error, ConfigurationError):
            _error(str(error))
            return EXIT_USAGE
        if isinstance(error, OSError):  # the port is taken, a file could not be used, …
            _error(str(error))
            return EXIT_FAILURE
        if isinstance(error, Exception):
            logger.critical(failure, exc_info=error)
            return EXIT_FAILURE
        raise
    return EXIT_OK


async def _serve_until_signalled(
    conversation: Callable[[], Conversation], engines: Engines, config: ServerConfig
) -> None:
    from .server import serve

    shutdown = trio.Event()
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        try:
            async with trio.open_nursery() as nursery:

                async def run_server(task_status: trio.TaskStatus[tuple[str, int]]) -> None:
                    await serve(
                        conversation,
                        engines,
                        config,
                        task_status=task_status,
                        shutdown_trigger=shutdown.wait,
                    )
                    nursery.cancel_scope.cancel()

                async def watch_signals() -> None:
                    async for signum in signals:
                        name = signal.Signals(signum).name
                        if not shutdown.is_set():
                            logger.info(
                                "%s: shutting down (send it again to end calls in progress now)",
                                name,
                            )
                            shutdown.set()
                        else:
                            logger.warning("%s again: ending calls in progress now", name)
                            nursery.cancel_scope.cancel()

                nursery.start_soon(watch_signals)
                host, port = await nursery.start(run_server)
                await engines.ready.wait()
                print(
                    f"{PROG} listening on {_http_url(host, port)} (webhook POST /, stream /stream)",
                    flush=True,
                )
        finally:
            await engines.aclose()  # the remote engines' connection pools


# --------------------------------------------------------------------------------------------
# phoneactors simulate


def _simulate_options() -> tuple[_Option, ...]:
    return tuple(option for option in OPTIONS if option.flag not in SERVER_ONLY)


def build_simulate_parser() -> argparse.ArgumentParser:
    """The parser of ``phoneactors simulate``: its own options, then every ``serve`` option
    that is not about serving (the conversation, the engines, turn-taking, logging)."""
    parser = argparse.ArgumentParser(
        prog=f"{PROG} simulate",
        description=(
            "Talk to your bot in the terminal: one whole call runs in this process, through "
            "the real call runtime and speech engines, against a fake Twilio, in real time. "
            "No phone line or Twilio account is needed. Each line (typed, --say, or from "
            "--script) is synthesized as the caller's speech and sent as 20 ms μ-law frames; "
            "a line starting with ! is spoken over the bot (barge-in); a line starting with ~ "
            "is a backchannel (~uh-huh) or a sound (~cough, ~breath, ~knock, ~click) over the "
            "bot, which pauses and plays on; other lines wait for the bot to finish. Both "
            "sides' transcript is printed as it happens, with the latency of each turn."
        ),
        epilog=(
            "Without --say or --script, lines come from standard input until end of file "
            "(Ctrl-D); then the caller hangs up. Options also read the environment variable "
            "shown with them, as for serve."
        ),
    )
    parser.add_argument(
        "--say",
        action="append",
        metavar="TEXT",
        help="a line for the caller to say; repeat it for more (said before --script's lines)",
    )
    parser.add_argument(
        "--script",
        metavar="FILE",
        help=(
            "a file of lines for the caller, one a line ('#' starts a comment, '!' barges in, "
            "'~' is a backchannel or a sound over the bot)"
        ),
    )
    parser.add_argument(
        "--record",
        metavar="WAV",
        help="write the call's audio to this stereo 8 kHz WAV file: caller left, bot right",
    )
    _add_options(parser, _simulate_options(), SIMULATE_DEFAULTS)
    return parser


def parse_simulate_args(
    argv: Sequence[str], environ: Mapping[str, str] | None = None
) -> argparse.Namespace:
    """Parse ``phoneactors simulate``'s arguments (after the word ``simulate``), filling options
    left out from their variables as :func:`parse_args` does."""
    parser = build_simulate_parser()
    args = parser.parse_args(argv)
    environ = os.environ if environ is None else environ
    _apply_environment(parser, args, _simulate_options(), environ, SIMULATE_DEFAULTS)
    return args


def _scripted_lines(args: argparse.Namespace) -> list[str] | None:
    """The lines from --say and --script, or ``None`` when neither is given (read stdin)."""
    if args.say is None and args.script is None:
        return None
    lines = list(args.say or [])
    if args.script is not None:
        try:
            with open(args.script, encoding="utf-8") as script:
                lines.extend(script.read().splitlines())
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigurationError(f"--script {args.script!r}: cannot read it: {exc}") from None
    return lines


async def _stdin_lines() -> AsyncIterator[str]:
    """Lines typed on standard input, until end of file."""
    while True:
        line = await trio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)
        if not line:
            return
        yield line


def _simulate_command(argv: Sequence[str]) -> int:
    """``phoneactors simulate``: exit 0 once the call is over, 2 for a bad command line or
    configuration, 1 when the engines or the call fail, 130 on Ctrl-C."""
    args = parse_simulate_args(argv)
    _configure_logging(args.log_level)
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        conversation = load_conversation(args.conversation)
        settings = _call_settings(args)
        lines = _scripted_lines(args)
        if args.record is not None and not os.path.isdir(os.path.dirname(args.record) or "."):
            raise ConfigurationError(f"--record {args.record!r}: its folder does not exist")
        engines = _build_engines(args)
    except ConfigurationError as exc:
        _error(str(exc))
        if exc.__cause__ is not None:
            traceback.print_exception(exc.__cause__, file=sys.stderr)
        return EXIT_USAGE

    from .simulate import simulate

    async def run() -> None:
        try:
            await simulate_with(engines)
        finally:
            await engines.aclose()

    async def simulate_with(engines: Engines) -> None:
        names = f"vad={engines.vad.name}, stt={engines.stt.name}, tts={engines.tts.name}"
        print(f"{PROG} simulate: {conversation.__name__} ({names})", flush=True)
        started = trio.current_time()
        await engines.load()
        how = (
            "type what the caller says and press Enter ('!' first: talk over the bot); "
            "Ctrl-D hangs up"
            if lines is None
            else "calling"
        )
        print(f"speech engines ready in {trio.current_time() - started:.1f} s; {how}", flush=True)
        await simulate(
            conversation,
            engines,
            _stdin_lines() if lines is None else lines,
            out=sys.stdout,
            record=args.record,
            settings=settings,
        )

    return _run_trio(run, "the simulation failed")


# --------------------------------------------------------------------------------------------
# phoneactors call

ACCOUNT_SID_ENV: Final = "TWILIO_ACCOUNT_SID"
FROM_ENV: Final = ENV_PREFIX + "FROM"
PUBLIC_URL_ENV: Final = ENV_PREFIX + "PUBLIC_URL"


def build_call_parser() -> argparse.ArgumentParser:
    """The parser of ``phoneactors call``."""
    parser = argparse.ArgumentParser(
        prog=f"{PROG} call",
        description=(
            "Place an outbound call through Twilio's REST API: Twilio calls TO from FROM and, "
            "once answered, connects it to the media stream of the phoneactors server at "
            "--public-url (which must be running: the person you call talks to its "
            "conversation). Prints the new call's sid."
        ),
        epilog=(
            f"Credentials come from {ACCOUNT_SID_ENV} and {AUTH_TOKEN_ENV} (Twilio console → "
            "Account → API keys & tokens). Exit status: 0 when Twilio accepted the call, 1 when "
            "it refused it or could not be reached, 2 for a bad command line or missing "
            "credentials."
        ),
    )
    parser.add_argument("to", metavar="TO", help="the number to call, as +15551234567")
    parser.add_argument(
        "--from",
        dest="from_",
        metavar="FROM",
        help=f"your Twilio number (or a verified caller id) to call from [env {FROM_ENV}]",
    )
    parser.add_argument(
        "--public-url",
        metavar="URL",
        help=(
            "the https:// URL the server is reachable at (as for serve); the call streams to "
            f"its /stream [env {PUBLIC_URL_ENV}]"
        ),
    )
    return parser


def _call_command(argv: Sequence[str]) -> int:
    """``phoneactors call``: see :func:`build_call_parser`."""
    parser = build_call_parser()
    args = parser.parse_args(argv)
    from_ = args.from_ or os.environ.get(FROM_ENV, "").strip() or None
    public_url = args.public_url or os.environ.get(PUBLIC_URL_ENV, "").strip() or None
    if from_ is None:
        parser.error(f"--from is required (or set {FROM_ENV}): the Twilio number to call from")
    if public_url is None:
        parser.error(
            f"--public-url is required (or set {PUBLIC_URL_ENV}): the https:// address Twilio "
            "reaches your phoneactors server at"
        )
    account_sid = os.environ.get(ACCOUNT_SID_ENV, "").strip()
    auth_token = os.environ.get(AUTH_TOKEN_ENV, "").strip()
    missing = [
        name
        for name, value in ((ACCOUNT_SID_ENV, account_sid), (AUTH_TOKEN_ENV, auth_token))
        if not value
    ]
    if missing:
        _error(
            f"{' and '.join(missing)} must be set to place calls (Twilio console → Account → "
            "API keys & tokens)"
        )
        return EXIT_USAGE
    logging.getLogger("twilio").setLevel(logging.WARNING)  # it logs every request at INFO

    from . import outbound

    try:
        placed = outbound.place_call(
            args.to,
            from_,
            public_url=public_url,
            account_sid=account_sid,
            auth_token=auth_token,
        )
    except ConfigurationError as exc:
        _error(str(exc))
        return EXIT_USAGE
    except outbound.TwilioApiError as exc:
        _error(str(exc))
        return EXIT_FAILURE
    print(
        f"placed call {placed.sid} to {placed.to} from {placed.from_} "
        f"(status: {placed.status or 'unknown'}); once answered it streams to {placed.stream_url}",
        flush=True,
    )
    return EXIT_OK


# --------------------------------------------------------------------------------------------
# phoneactors calls


def build_calls_parser() -> argparse.ArgumentParser:
    """The parser of ``phoneactors calls``: list recent calls, or print one call's transcript."""
    parser = argparse.ArgumentParser(
        prog=f"{PROG} calls",
        description="List the recorded calls, newest first, or print one call's transcript.",
    )
    parser.add_argument("call_sid", nargs="?", help="print this call's transcript")
    parser.add_argument(
        "--records",
        default=os.environ.get(ENV_PREFIX + "RECORDS", DEFAULT_RECORDS),
        metavar="PATH",
        help=f"the call records file [env {ENV_PREFIX}RECORDS; default: {DEFAULT_RECORDS}]",
    )
    parser.add_argument("--limit", type=int, default=50, help="calls to list (default: 50)")
    return parser


def _calls_command(argv: Sequence[str]) -> int:
    args = build_calls_parser().parse_args(argv)
    try:
        return _print_calls(args)
    except BrokenPipeError:  # `phoneactors calls | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _print_calls(args: argparse.Namespace) -> int:
    from . import records

    try:
        if args.call_sid is None:
            calls = records.list_calls(args.records, args.limit)
            if not calls:
                print(f"no calls recorded in {args.records}")
            for call in calls:
                started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(call["started_at"]))
                length = (
                    f"{call['ended_at'] - call['started_at']:6.1f} s"
                    if call["ended_at"] is not None
                    else "   (live)"
                )
                print(
                    f"{started}  {call['call_sid']}  {call['caller'] or '-':>16}  {length}  "
                    f"{call['turns']:3d} turns  {call['end_reason'] or ''}"
                )
            return 0
        call, events = records.read_transcript(args.records, args.call_sid)
    except ConfigurationError as exc:
        _error(str(exc))
        return EXIT_USAGE
    print(f"call {call['call_sid']} from {call['caller'] or 'unknown'}")
    for event in events:
        offset = event["at"] - call["started_at"]
        print(f"{offset:8.2f}  {_describe_event(event)}")
    if call["end_reason"] is not None:
        print(f"{call['ended_at'] - call['started_at']:8.2f}  (ended: {call['end_reason']})")
    return 0


def _describe_event(event: Mapping[str, Any]) -> str:
    data = json.loads(event["data"]) if event["data"] else {}
    match event["kind"]:
        case "caller":
            return f"caller: {event['text']}"
        case "bot":
            return f"bot: {event['text']}"
        case "interrupted":
            return f"bot (interrupted): {event['text']}  [not heard: {data.get('unheard', '')}]"
        case "dtmf":
            return f"caller pressed {event['text']}"
        case "resumed":
            if data.get("kind") == "backchannel":
                return f"(caller backchannel {event['text']!r} over the bot: it played on)"
            heard = f", heard as {event['text']!r}" if event["text"] else ""
            return f"(a sound over the bot{heard}: it played on)"
        case "timing":
            return "(turn: " + ", ".join(f"{k} {v:.0f} ms" for k, v in data.items() if v) + ")"
        case "failure":
            return f"({data.get('kind', 'error')} failed: {event['text']})"
    return f"({event['kind']}: {event['text']})"
