"""``phoneactors [serve]``: answer Twilio calls until a signal."""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING

import trio

from ..conversation import open_conversations
from ..engines import Engines
from ..errors import ConfigurationError
from .common import (
    AUTH_TOKEN_ENV,
    EXIT_USAGE,
    PROG,
    configure_logging,
    report_configuration_error,
    run_trio,
    use_working_directory,
)
from .options import call_settings_from_args, engines_from_args, load_conversation, parse_args

if TYPE_CHECKING:
    from ..server import ServerConfig

__all__ = ["serve_command"]

logger = logging.getLogger("phoneactors.cli")


def serve_command(argv: Sequence[str]) -> int:
    """``phoneactors [serve]``: exit 0 after a shutdown by signal, 2 for a bad command line or
    configuration, 1 when serving fails."""
    args = parse_args(argv)
    configure_logging(args.log_level, args.log_format)
    use_working_directory()

    from ..server import ServerConfig  # quart and hypercorn: not needed for `--help`

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
            max_inference_wait_ms=args.max_inference_wait_ms or None,
            max_message_bytes=args.max_message_bytes,
            drain_timeout=args.drain_timeout,
            softphone=args.softphone,
            records=None if args.records in ("", "off") else args.records,
            records_retention_days=args.records_retention_days or None,
            recordings=args.recordings or None,
            call_settings=call_settings_from_args(args),
        )
        engines = engines_from_args(args)
    except ConfigurationError as exc:
        report_configuration_error(exc)
        return EXIT_USAGE
    return _run(conversation, engines, config)


def _run(conversation: object, engines: Engines, config: ServerConfig) -> int:
    """Serve until a signal; map what went wrong to an exit status."""
    return run_trio(
        partial(_serve_until_signalled, conversation, engines, config), "the server failed"
    )


async def _serve_until_signalled(
    conversation: object, engines: Engines, config: ServerConfig
) -> None:
    from ..server import serve

    shutdown = trio.Event()
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        try:
            async with trio.open_nursery() as nursery:

                async def run_server(task_status: trio.TaskStatus[tuple[str, int]]) -> None:
                    # A lifespan's resources open before the first call and close after the last.
                    async with open_conversations(conversation) as factory:
                        await serve(
                            factory,
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
                url = _http_url(host, port)
                print(f"{PROG} listening on {url} (webhook POST /, stream /stream)", flush=True)
                logger.info("ready: listening on %s", url)
        finally:
            await engines.aclose()  # the remote engines' connection pools


def _http_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
