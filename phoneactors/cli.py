"""The command line: ``python -m phoneactors [options]`` (or ``phoneactors``) serves calls.

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
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
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
    _Option("--vad", "voice activity detector", "webrtc", engine_role="vad"),
    _Option("--stt", "speech-to-text engine", "faster-whisper", engine_role="stt"),
    _Option("--tts", "text-to-speech engine", "hibari", engine_role="tts"),
    _Option("--stt-model", "speech-to-text model name or path (engine default)", metavar="MODEL"),
    _Option("--tts-voice", "text-to-speech voice name or path (engine default)", metavar="VOICE"),
    _Option("--threads", "inference threads (default: one per core)", None, int, "N"),
    _Option(
        "--allow-download",
        "let engines download missing models (off: fail with instructions instead)",
        False,
        switch=True,
    ),
    _Option(
        "--end-silence-ms",
        "silence that ends the caller's turn",
        _SEGMENTER_DEFAULTS.end_silence_ms,
        int,
        "MS",
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
    _Option("--log-level", "logging level", "INFO", _log_level, choices=LOG_LEVELS),
)
"""Every option of the ``serve`` command, in ``--help`` order."""


def _engine_choices() -> Mapping[str, tuple[str, ...]]:
    from .engines.registry import ENGINE_CHOICES  # looked up when used, like build_engines

    return ENGINE_CHOICES


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; its defaults are ``None`` so that :func:`parse_args` can tell a
    flag given from one left out (and then look at the environment)."""
    engine_choices = _engine_choices()
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Answer Twilio phone calls with a Conversation: serves Twilio's voice webhook "
            "(POST /), its media streams (websocket /stream) and a health check (GET /healthz)."
        ),
        epilog=(
            f"Every option also reads the environment variable shown with it; the flag wins. "
            f"Set {AUTH_TOKEN_ENV} to your Twilio auth token to enforce Twilio's request "
            "signatures (without it, requests are not authenticated)."
        ),
    )
    for option in OPTIONS:
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
        default = "" if option.default is None else f"; default: {option.default}"
        parser.add_argument(
            option.flag,
            type=option.type,
            choices=choices,
            default=None,
            metavar=option.metavar,
            help=f"{option.help} [{where}{default}]",
        )
    return parser


def parse_args(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> argparse.Namespace:
    """Parse ``argv`` (default: ``sys.argv[1:]``), filling each option left out from its
    ``PHONEACTORS_…`` variable in ``environ`` (default: ``os.environ``), else its default.

    A bad flag or variable value exits with status 2 and a message, as argparse does; so
    does ``--help`` (with status 0).
    """
    environ = os.environ if environ is None else environ
    parser = build_parser()
    args = parser.parse_args(argv)
    engine_choices = _engine_choices()
    for option in OPTIONS:
        if getattr(args, option.dest) is not None:
            continue
        raw = environ.get(option.env, "")
        if not raw.strip():
            setattr(args, option.dest, option.default)
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
    return args


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

    return build_engines(
        vad=args.vad,
        stt=args.stt,
        tts=args.tts,
        stt_model=args.stt_model,
        tts_voice=args.tts_voice,
        threads=args.threads,
        allow_download=args.allow_download,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (see the module docstring).

    ``--help`` and argparse's own errors raise ``SystemExit`` as argparse always does.
    """
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
            call_settings=CallSettings(
                segmenter=SegmenterSettings(
                    min_speech_ms=args.min_speech_ms, end_silence_ms=args.end_silence_ms
                ),
                reply_timeout=args.reply_timeout,
            ),
        )
        engines = _build_engines(args)
    except ConfigurationError as exc:
        _error(str(exc))
        if exc.__cause__ is not None:
            traceback.print_exception(exc.__cause__, file=sys.stderr)
        return EXIT_USAGE
    return _run(conversation, engines, config)


def _run(conversation: Callable[[], Conversation], engines: Engines, config: ServerConfig) -> int:
    """Serve until a signal; map what went wrong to an exit status."""
    from .server import single_error

    try:
        trio.run(_serve_until_signalled, conversation, engines, config)
    except BaseException as exc:
        error = single_error(exc)
        if isinstance(error, KeyboardInterrupt):  # before the signal handlers were in place
            return EXIT_INTERRUPTED
        if isinstance(error, ConfigurationError):
            _error(str(error))
            return EXIT_USAGE
        if isinstance(error, OSError):  # the port is taken, a model file is unreadable, …
            _error(str(error))
            return EXIT_FAILURE
        if isinstance(error, Exception):
            logger.critical("the server failed", exc_info=error)
            return EXIT_FAILURE
        raise
    return EXIT_OK


async def _serve_until_signalled(
    conversation: Callable[[], Conversation], engines: Engines, config: ServerConfig
) -> None:
    from .server import serve

    shutdown = trio.Event()
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
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
                            "%s: shutting down (send it again to end calls in progress now)", name
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
