"""``phoneactors [serve]``: answer Twilio calls until a signal."""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING

import trio

from ..conversation import open_conversations
from ..engines import Engines
from ..errors import ConfigurationError
from ..workers import MAX_WORKERS, WorkerBoard
from .building import call_settings_from_args, engines_from_args, load_conversation
from .common import (
    AUTH_TOKEN_ENV,
    EXIT_USAGE,
    PROG,
    configure_logging,
    report_configuration_error,
    run_trio,
    use_working_directory,
)
from .options import parse_args

if TYPE_CHECKING:
    from ..server import ServerConfig

__all__ = ["serve_command"]

logger = logging.getLogger("phoneactors.cli")


def serve_command(argv: Sequence[str]) -> int:
    """``phoneactors [serve]``: exit 0 after a shutdown by signal, 2 for a bad command line or
    configuration, 1 when serving fails."""
    args = parse_args(argv)
    try:
        peers = WorkerBoard.from_environment(os.environ)  # this is one worker of several
    except ConfigurationError as exc:
        configure_logging(args.log_level, args.log_format)
        report_configuration_error(exc)
        return EXIT_USAGE
    configure_logging(args.log_level, args.log_format, None if peers is None else peers.index)
    use_working_directory()

    from ..server import ServerConfig  # quart and hypercorn: not needed for `--help`

    auth_token = os.environ.get(AUTH_TOKEN_ENV)
    try:
        if auth_token is not None and not auth_token.strip():
            raise ConfigurationError(
                f"{AUTH_TOKEN_ENV} is set but empty; unset it to run without signature checks"
            )
        if not 1 <= args.workers <= MAX_WORKERS:
            raise ConfigurationError(
                f"workers must be between 1 and {MAX_WORKERS}, got {args.workers}"
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
    if peers is None and args.workers > 1:
        from .workers import supervise

        return supervise(
            argv, args.workers, args.host, args.port, threads_chosen=args.threads is not None
        )
    return _run(conversation, engines, config, peers)


def _run(
    conversation: object, engines: Engines, config: ServerConfig, peers: WorkerBoard | None
) -> int:
    """Serve until a signal (or, as a worker, until the supervisor says); map what went wrong
    to an exit status."""
    return run_trio(
        partial(_serve_until_signalled, conversation, engines, config, peers),
        "the server failed",
    )


async def _serve_until_signalled(
    conversation: object, engines: Engines, config: ServerConfig, peers: WorkerBoard | None
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
                            peers=peers,
                        )
                    nursery.cancel_scope.cancel()

                async def watch_signals() -> None:
                    async for signum in signals:
                        name = signal.Signals(signum).name
                        if peers is not None:
                            logger.debug("%s: left to the supervisor", name)
                        elif not shutdown.is_set():
                            logger.info(
                                "%s: shutting down (send it again to end calls in progress now)",
                                name,
                            )
                            shutdown.set()
                        else:
                            logger.warning("%s again: ending calls in progress now", name)
                            nursery.cancel_scope.cancel()

                nursery.start_soon(watch_signals)
                if peers is not None:
                    nursery.start_soon(follow_supervisor, shutdown, nursery.cancel_scope)
                host, port = await nursery.start(run_server)
                await engines.ready.wait()
                if peers is not None:
                    logger.debug("worker %d ready", peers.index)  # the supervisor says so
                else:
                    url = _http_url(host, port)
                    print(f"{PROG} listening on {url} (webhook POST /, stream /stream)", flush=True)
                    logger.info("ready: listening on %s", url)
        finally:
            await engines.aclose()  # the remote engines' connection pools


def _http_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def follow_supervisor(shutdown: trio.Event, cancel_scope: trio.CancelScope) -> None:
    """A worker's orders from its supervisor, a line each on standard input: ``drain`` (take
    no new calls; those in progress finish) or ``now`` (end them). If the supervisor is gone
    (the input ends), drain."""
    stream = trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))
    pending = b""
    async with stream:
        while True:
            data = await stream.receive_some(256)
            if not data:
                if not shutdown.is_set():
                    logger.warning("the supervisor is gone: shutting down")
                shutdown.set()
                return
            pending += data
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                order = line.strip().decode("ascii", "replace")
                if order == "drain":
                    shutdown.set()
                elif order == "now":
                    shutdown.set()
                    cancel_scope.cancel()
                    return
                else:
                    logger.warning("unknown order from the supervisor: %r", order)
