"""The HTTP and websocket server: Twilio's voice webhook, its media streams, and a health check.

::

    POST /         Twilio's voice webhook → TwiML that connects the call to ``/stream``
                   (or, when no line is free, TwiML that apologises and hangs up)
    WS   /stream   one Twilio Media Stream = one call, served by :func:`~phoneactors.call.run_call`
    POST /amd      Twilio's answering-machine detection result for an outbound call → its
                   conversation (``on_answered_by``); signed like the webhook
    GET  /healthz  200 {"status": "ok", "active_calls": N} once the speech engines are loaded;
                   503 {"status": "loading" | "draining", ...} before that and while shutting down
    GET  /metrics  Prometheus text: active calls, turns, barge-ins, errors by kind, and
                   histograms of voice-to-voice latency and of each stage of a turn
    GET  /phone    the browser softphone (:mod:`phoneactors.softphone`), and its scripts under
                   ``/phone/``; 404 when :attr:`ServerConfig.auth_token` is set, unless
                   :attr:`ServerConfig.softphone`

Call records: with :attr:`ServerConfig.records` set, :func:`serve` writes every call's story to
that SQLite file or PostgreSQL database as it happens (:class:`~phoneactors.records.CallStore`).

:func:`serve` listens through :mod:`phoneactors.front_door` (media streams served on trio
directly, the rest by the app on hypercorn), loads the engines in the background and drains
calls on shutdown; :func:`create_app` builds the app alone, for another ASGI server (which must
then ``await engines.load()`` itself, and serves ``/stream`` through quart-trio).

Authentication
--------------
With :attr:`ServerConfig.auth_token` set, every webhook request and every websocket upgrade must
carry Twilio's ``X-Twilio-Signature`` over the URL Twilio requested (and, for the webhook, its
form fields); anything else gets 403. The URL is rebuilt from :attr:`ServerConfig.public_url`
when given, else from the request's ``Host`` and ``X-Forwarded-Proto`` headers. Without a token
nothing is checked and a warning says so at start-up. The token is never logged.

The softphone page carries a token of its own; a stream opened with it (``/stream?softphone=…``)
needs no Twilio signature and also receives transcript messages. With an auth token set the page
is only served when :attr:`ServerConfig.softphone` says so; see :mod:`phoneactors.softphone`.

Capacity and shutdown
---------------------
At most :attr:`ServerConfig.max_calls` streams run at once; past that the webhook answers with
:attr:`ServerConfig.busy_message` and new streams are refused with 503. While the engines load
and once shutdown has begun, new calls are turned away the same way. Shutdown drains: calls in
progress may finish for up to :attr:`ServerConfig.drain_timeout` seconds, then they are
cancelled (each still closes its socket and runs its ``on_end`` hook) and the server stops.

Messages larger than :attr:`ServerConfig.max_message_bytes` end their call (close code 1009,
with the reason logged); other calls are not affected.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve
from quart_trio import QuartTrio

from .conversation import Conversation
from .engines import Engines
from .engines.scheduling import one_blas_thread
from .errors import ConfigurationError
from .front_door import serve_front_door
from .quart_socket import StreamConnection
from .records import CallStore
from .routes import PHONE_PATH, STREAM_PATH, Routes
from .server_config import ServerConfig
from .workers import WorkerBoard, share_with_peers

__all__ = ["ServerConfig", "create_app", "serve"]

logger = logging.getLogger("phoneactors.server")

MAX_WEBHOOK_BYTES: Final = 64 * 1024
"""Largest webhook request body accepted; Twilio's form posts are a few kilobytes."""
TRANSPORT_LIMIT_FACTOR: Final = 4
"""Hypercorn drops a websocket whose message exceeds this many times ``max_message_bytes``.

Messages over ``max_message_bytes`` are refused by the call itself, which logs why; hypercorn's
own limit is only a backstop that bounds memory (it counts text in characters, and cannot tell
the call why it closed), so it sits well above ours."""
CLOSE_GRACE: Final = 5.0
"""Seconds hypercorn gives connections to close once the drain is over."""


# --------------------------------------------------------------------------------------------
# The app


def create_app(
    make_conversation: Callable[..., Conversation], engines: Engines, config: ServerConfig
) -> QuartTrio:
    """The Quart-Trio app serving Twilio calls with ``make_conversation`` (one per call).

    It does not load ``engines``: :func:`serve` does, and an app run on another ASGI server
    needs ``await engines.load()`` alongside. Until :attr:`Engines.ready` is set, calls are
    turned away with the busy message and ``/healthz`` answers 503.
    """
    return _build(make_conversation, engines, config)[0]


def _build(
    make_conversation: Callable[..., Conversation],
    engines: Engines,
    config: ServerConfig,
    store: CallStore | None = None,
    peers: WorkerBoard | None = None,
) -> tuple[QuartTrio, Routes]:
    app = QuartTrio("phoneactors.app")
    app.asgi_websocket_class = StreamConnection
    app.config["MAX_CONTENT_LENGTH"] = MAX_WEBHOOK_BYTES
    routes = Routes(make_conversation, engines, config, store=store, peers=peers)
    routes.install(app)
    return app, routes


# --------------------------------------------------------------------------------------------
# Serving


def listening_socket(host: str, port: int, *, shared: bool = False) -> socket.socket:
    """A TCP socket bound to ``host:port`` (not yet listening), closed again if that fails;
    ``shared``: with ``SO_REUSEPORT``, so the workers of one server can all bind the port (and
    the kernel spreads connections over those listening).

    We bind it ourselves and hand hypercorn its file descriptor: hypercorn's own binding leaks
    the socket when the address is taken. Raises ``OSError`` naming the address.
    """
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if shared:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # 20 ms audio: no batching
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"could not listen on {host}:{port}: {exc.strerror}") from exc
    except BaseException:
        sock.close()
        raise
    return sock


def _hypercorn_config(config: ServerConfig) -> HypercornConfig:
    hyper = HypercornConfig()
    hyper.websocket_max_message_size = config.max_message_bytes * TRANSPORT_LIMIT_FACTOR
    hyper.graceful_timeout = CLOSE_GRACE
    hyper.accesslog = None
    hyper.errorlog = logging.getLogger("hypercorn.error")  # ours to configure, not hypercorn's
    return hyper


def _parse_bind(bind: str) -> tuple[str, int]:
    parts = urlsplit(bind)
    if parts.hostname is None or parts.port is None:
        raise RuntimeError(f"hypercorn reported an unexpected address: {bind!r}")
    return parts.hostname, parts.port


async def _load_engines(engines: Engines) -> None:
    names = f"vad={engines.vad.name}, stt={engines.stt.name}, tts={engines.tts.name}"
    if engines.ready.is_set():
        logger.info("speech engines already loaded (%s)", names)
        await trio.to_thread.run_sync(one_blas_thread)
        return
    logger.info("loading speech engines (%s)", names)
    started = trio.current_time()
    try:
        await engines.load()
    except Exception as exc:
        logger.error("could not load the speech engines (%s): %s", names, exc)
        raise
    logger.info("speech engines ready in %.2f s", trio.current_time() - started)
    await trio.to_thread.run_sync(one_blas_thread)


async def serve(
    make_conversation: Callable[..., Conversation],
    engines: Engines,
    config: ServerConfig,
    *,
    task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED,
    shutdown_trigger: Callable[[], Awaitable[object]] | None = None,
    peers: WorkerBoard | None = None,
) -> None:
    """Serve calls until ``shutdown_trigger()`` returns (forever without one), then drain.

    Reports the bound ``(host, port)`` through ``task_status`` as soon as the socket listens,
    so ``host, port = await nursery.start(serve, ...)`` works with port 0. The engines load in
    the background meanwhile; ``engines.ready`` says when calls can be taken. If loading fails,
    the error is logged and raised from here (and the server stops).

    Shutdown: new calls get the busy message, calls in progress have ``config.drain_timeout``
    seconds to end, the rest are cancelled, then the listening socket closes and this returns.
    Cancelling ``serve`` itself stops everything at once.

    ``peers``: this process is one worker of several sharing the port (``--workers``).
    """
    store = (
        CallStore(config.records, retention_days=config.records_retention_days)
        if config.records
        else None
    )
    if config.recordings is not None:
        try:
            await trio.to_thread.run_sync(
                partial(Path(config.recordings).mkdir, mode=0o700, parents=True, exist_ok=True)
            )
        except OSError as exc:
            raise ConfigurationError(
                f"cannot use the recordings folder {config.recordings}: {exc}"
            ) from exc
    app, routes = _build(make_conversation, engines, config, store, peers)
    board = routes.board
    hypercorn_config = _hypercorn_config(config)
    sock = listening_socket(config.host, config.port, shared=peers is not None)
    failure: list[Exception] = []

    async def drain_after_trigger() -> None:
        if shutdown_trigger is None:
            await trio.sleep_forever()
        else:
            await shutdown_trigger()
        await board.drain(config.drain_timeout, config.call_settings.hook_timeout + CLOSE_GRACE)

    async def load(cancel_scope: trio.CancelScope) -> None:
        try:
            await _load_engines(engines)
        except Exception as exc:
            failure.append(exc)
            cancel_scope.cancel()

    try:
        async with trio.open_nursery() as nursery:

            async def run_hypercorn(task_status: trio.TaskStatus[list[str]]) -> None:
                if config.short_streams:
                    await serve_front_door(
                        app,
                        hypercorn_config,
                        sock,
                        STREAM_PATH,
                        routes.answer_stream,
                        config.max_message_bytes,
                        shutdown_trigger=drain_after_trigger,
                        task_status=task_status,
                    )
                else:
                    hypercorn_config.bind = [f"fd://{sock.detach()}"]
                    await hypercorn_serve(
                        app,
                        hypercorn_config,
                        shutdown_trigger=drain_after_trigger,
                        task_status=task_status,
                        mode="asgi",
                    )
                nursery.cancel_scope.cancel()  # the engines may still be loading

            if store is not None:
                await nursery.start(store.run)  # stops (after a final flush) with the nursery
                logger.info("call records: %s", store.location)
            if peers is not None:
                # A worker joins the port only once it can take calls: the kernel would send
                # it its share of callers at once, to hear the busy message while it loads.
                await load(nursery.cancel_scope)  # a failure cancels the nursery
            binds = await nursery.start(run_hypercorn)
            if peers is None:
                nursery.start_soon(load, nursery.cancel_scope)
            else:
                board.publish()  # loaded and listening: the supervisor waits for this
            if peers is not None:
                nursery.start_soon(
                    share_with_peers, peers, board.publish, routes.metrics, routes.directory
                )
            host, port = _parse_bind(binds[0])
            if config.auth_token is None or config.softphone:
                address = f"[{host}]" if ":" in host else host
                logger.info("browser softphone: http://%s:%d%s", address, port, PHONE_PATH)
            task_status.started((host, port))
    except BaseExceptionGroup as group:
        error = single_error(group)
        if error is group:
            raise
        raise error from None
    finally:
        sock.close()  # if it never listened (closed already if it did)
    if failure:
        raise failure[0]


def single_error(error: BaseException) -> BaseException:
    """The one exception inside (nested) exception groups, or ``error`` itself if there are
    several or any is not an ``Exception`` (such as ``trio.Cancelled``)."""
    leaves: list[BaseException] = []

    def collect(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                collect(inner)
        else:
            leaves.append(exc)

    collect(error)
    if len(leaves) == 1 and isinstance(leaves[0], Exception):
        return leaves[0]
    return error
