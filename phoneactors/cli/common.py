"""What every ``phoneactors`` command shares: its name, exit statuses, how errors are said and
logging is set up, and running a trio program with failures mapped to an exit status."""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Awaitable, Callable
from typing import Final

import trio

from ..errors import ConfigurationError

__all__ = [
    "AUTH_TOKEN_ENV",
    "ENV_PREFIX",
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "PROG",
    "configure_logging",
    "error",
    "report_configuration_error",
    "run_trio",
    "use_working_directory",
]

logger = logging.getLogger("phoneactors.cli")

PROG: Final = "phoneactors"
ENV_PREFIX: Final = "PHONEACTORS_"
AUTH_TOKEN_ENV: Final = "TWILIO_AUTH_TOKEN"

EXIT_OK: Final = 0
EXIT_FAILURE: Final = 1
EXIT_USAGE: Final = 2
EXIT_INTERRUPTED: Final = 130


def configure_logging(level: str, log_format: str = "text", worker: int | None = None) -> None:
    """Log to standard error at ``level``: readable lines (``text``) or one JSON object a line
    (``json``, see :mod:`phoneactors.logs`); a ``worker``'s lines say which it is."""
    from ..logs import TEXT_FORMAT, WORKER_TEXT_FORMAT, JsonFormatter, ServerNoise, WorkerTag

    handler = logging.StreamHandler(sys.stderr)
    text_format = TEXT_FORMAT if worker is None else WORKER_TEXT_FORMAT
    handler.setFormatter(
        JsonFormatter() if log_format == "json" else logging.Formatter(text_format)
    )
    handler.addFilter(ServerNoise())
    if worker is not None:
        handler.addFilter(WorkerTag(worker))
    logging.basicConfig(level=level, handlers=[handler])
    # faster-whisper logs every transcription at INFO; at DEBUG the user asked for it.
    if logging.getLogger().level > logging.DEBUG:
        logging.getLogger("faster_whisper").setLevel(logging.WARNING)


def error(message: str) -> None:
    """Say what is wrong, on one line of standard error, as argparse does."""
    print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)


def report_configuration_error(exc: ConfigurationError) -> None:
    """Say ``exc`` (naming options, not the Python API's settings); the exception that caused
    it (the user's module failing to import) follows with its traceback, which is where the
    user's mistake is."""
    from .options import name_flags

    error(name_flags(str(exc)))
    if exc.__cause__ is not None:
        traceback.print_exception(exc.__cause__, file=sys.stderr)


def use_working_directory() -> None:
    """Let ``--conversation mybot:Bot`` import ``mybot.py`` from the current directory, as
    ``python -m`` does."""
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())


def run_trio(main: Callable[[], Awaitable[object]], failure: str) -> int:
    """``trio.run(main)``, with what went wrong mapped to an exit status (and said once)."""
    from ..server import single_error

    try:
        trio.run(main)
    except BaseException as exc:
        problem = single_error(exc)
        if isinstance(problem, KeyboardInterrupt):  # before the signal handlers were in place
            return EXIT_INTERRUPTED
        if isinstance(problem, ConfigurationError):
            report_configuration_error(problem)
            return EXIT_USAGE
        if isinstance(problem, OSError):  # the port is taken, a file could not be used, …
            error(str(problem))
            return EXIT_FAILURE
        if isinstance(problem, Exception):
            logger.critical(failure, exc_info=problem)
            return EXIT_FAILURE
        raise
    return EXIT_OK
