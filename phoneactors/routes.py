"""The app's routes: Twilio's webhooks, its media streams, health, metrics and the softphone.

:class:`Routes` holds what the routes of one app share (the settings, the engines, the
:class:`~phoneactors.switchboard.Switchboard` of calls in progress, the metrics, the calls by
sid for ``/amd``, the softphone's tokens); each route is one of its methods, and
:meth:`Routes.install` adds them to a Quart-Trio app. Built by :mod:`phoneactors.server`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Final

import trio
from quart import Response, Websocket, request, websocket
from quart_trio import QuartTrio

from . import softphone
from .call import run_call
from .call_control import CallDirectory
from .conversation import Conversation
from .engines import Engines
from .metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from .metrics import Metrics, merge_exposition
from .outbound import AMD_PATH, STREAM_PATH, TwilioApi
from .quart_socket import QuartCallSocket
from .recording import RecordingSocket, record_call, recording_path
from .records import CallObserver, CallStore, Recorded
from .request_urls import external_base, query_value, signed, stream_urls, webhook_urls
from .server_config import ServerConfig
from .switchboard import Switchboard
from .transport import CallSocket, StreamRequest
from .twiml import connect_stream_twiml, say_and_hang_up_twiml
from .workers import WorkerBoard

__all__ = ["PHONE_PATH", "STREAM_PATH", "Routes"]

logger = logging.getLogger("phoneactors.server")

PHONE_PATH: Final = "/phone"
"""Where the browser softphone is served."""
_PHONE_POLICY: Final = (
    "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
"""The softphone page loads its own scripts and opens its own websocket, nothing else."""


def _text(body: str, status: int) -> Response:
    return Response(body, status=status, mimetype="text/plain")


def _xml(body: str) -> Response:
    return Response(body, status=200, mimetype="text/xml")


class Routes:
    """The routes of one app, and what they share. ``store`` (call records) and ``peers``
    (the other workers of a ``--workers`` server) are :func:`~phoneactors.server.serve`'s."""

    def __init__(
        self,
        make_conversation: Callable[..., Conversation],
        engines: Engines,
        config: ServerConfig,
        *,
        store: CallStore | None = None,
        peers: WorkerBoard | None = None,
    ) -> None:
        self.make_conversation = make_conversation
        self.engines = engines
        self.config = config
        self.store = store
        self.peers = peers
        self.metrics = Metrics()
        if engines.inference is not None:
            self.metrics.watch_inference(engines.inference)
        self.observers: list[CallObserver] = (
            [self.metrics] if store is None else [self.metrics, store]
        )
        # With the account's auth token, a conversation may hand its call on (transfer).
        self.twilio_api = None if config.auth_token is None else TwilioApi(config.auth_token)
        self.directory = CallDirectory()  # calls by sid, for who answered them (/amd)
        self.board = Switchboard(
            engines,
            config.max_calls,
            None if config.max_inference_wait_ms is None else config.max_inference_wait_ms / 1000,
            peers,
        )
        self.phone = (
            softphone.SoftphoneTokens(None if peers is None else peers.softphone_secret())
            if config.auth_token is None or config.softphone
            else None
        )

    def install(self, app: QuartTrio) -> None:
        """Add the routes to ``app``."""
        app.before_serving(self.warn_if_unauthenticated)
        app.add_url_rule("/metrics", "metrics", self.metrics_page, methods=["GET"])
        app.add_url_rule(PHONE_PATH, "phone", self.phone_page, methods=["GET"])
        app.add_url_rule(PHONE_PATH + "/<name>", "phone_asset", self.phone_asset, methods=["GET"])
        app.add_url_rule("/", "voice_webhook", self.voice_webhook, methods=["POST"])
        app.add_url_rule(AMD_PATH, "answered_by", self.answered_by_webhook, methods=["POST"])
        app.add_url_rule("/healthz", "healthz", self.healthz, methods=["GET"])
        app.add_websocket(STREAM_PATH, "stream", self.stream)

    async def warn_if_unauthenticated(self) -> None:
        """At start-up: say loudly when requests are not authenticated."""
        if self.config.auth_token is None:
            logger.warning(
                "TWILIO AUTH TOKEN NOT SET: requests are NOT authenticated; anyone who finds "
                "this server can place calls to it. Set TWILIO_AUTH_TOKEN to enforce Twilio's "
                "request signatures."
            )
        else:
            logger.info("Twilio request signatures are enforced")
        if self.phone is None:
            logger.info(
                "the browser softphone (%s) is off because TWILIO_AUTH_TOKEN is set; "
                "--softphone turns it on",
                PHONE_PATH,
            )

    async def voice_webhook(self) -> Response:
        """``POST /``: Twilio's voice webhook; TwiML that connects the call to ``/stream``, or
        that apologises and hangs up when no line is free."""
        form = await request.form
        params = {key: form[key] for key in form}
        call_sid = params.get("CallSid", "?")
        base = external_base(self.config.public_url, request.headers, request.scheme)
        if base is None:
            logger.warning(
                "webhook for call %s refused: no usable Host header",
                call_sid,
                extra={"call_sid": call_sid},
            )
            return _text("a valid Host header is required", 400)
        if self.config.auth_token is not None:
            urls = webhook_urls(base, request.path, request.query_string)
            if not signed(
                self.config.auth_token, urls, params, request.headers.get("X-Twilio-Signature")
            ):
                logger.warning(
                    "webhook from %s refused: missing or invalid X-Twilio-Signature for %s",
                    request.remote_addr,
                    urls[0],
                )
                return _text("invalid Twilio signature", 403)
        refusal = self.board.refusal(new_caller=True)
        if refusal is not None:
            logger.warning(
                "call %s answered busy: %s", call_sid, refusal, extra={"call_sid": call_sid}
            )
            return _xml(say_and_hang_up_twiml(self.config.busy_message))
        parameters = {
            name: params[field]
            for name, field in (("caller", "From"), ("called", "To"))
            if field in params
        }
        try:
            twiml = connect_stream_twiml(stream_urls(base, STREAM_PATH, b"")[0], parameters)
        except ValueError as exc:
            logger.warning(
                "webhook for call %s refused: %s", call_sid, exc, extra={"call_sid": call_sid}
            )
            return _text("the request has text XML cannot carry", 400)
        logger.info("call %s: connecting its media stream", call_sid, extra={"call_sid": call_sid})
        logger.debug(
            "call %s is from %s", call_sid, params.get("From"), extra={"call_sid": call_sid}
        )
        return _xml(twiml)

    async def answered_by_webhook(self) -> Response:
        """Twilio's answering-machine detection result for an outbound call (``AnsweredBy``):
        passed to the call's conversation."""
        form = await request.form
        params = {key: form[key] for key in form}
        if self.config.auth_token is not None:
            base = external_base(self.config.public_url, request.headers, request.scheme)
            urls = [] if base is None else webhook_urls(base, request.path, request.query_string)
            if not signed(
                self.config.auth_token, urls, params, request.headers.get("X-Twilio-Signature")
            ):
                logger.warning(
                    "answering-machine result from %s refused: missing or invalid "
                    "X-Twilio-Signature",
                    request.remote_addr,
                )
                return _text("invalid Twilio signature", 403)
        call_sid, answered_by = params.get("CallSid", ""), params.get("AnsweredBy", "")
        if not call_sid or not answered_by:
            return _text("CallSid and AnsweredBy are required", 400)
        if self.peers is not None and not self.directory.has(call_sid):
            self.peers.post_answer(call_sid, answered_by)  # its stream may be on another worker
            logger.info(
                "call %s answered by %s: passed to the workers",
                call_sid,
                answered_by,
                extra={"call_sid": call_sid},
            )
        elif not self.directory.answered(call_sid, answered_by):
            logger.info(
                "call %s answered by %s: kept for its stream",
                call_sid,
                answered_by,
                extra={"call_sid": call_sid},
            )
        return Response("", status=204)

    async def answer_stream(
        self, asked: StreamRequest, accept: Callable[[], Awaitable[CallSocket]]
    ) -> tuple[int, str] | None:
        """A media stream asks to be served: refuse it (status and reason), or run its call
        to the end (``None``)."""
        token = query_value(asked.query_string, softphone.TOKEN_PARAMETER)
        is_softphone = token is not None
        if token is not None and (self.phone is None or not self.phone.check(token)):
            logger.warning(
                "softphone stream from %s refused: %s",
                asked.remote_addr,
                "the softphone is off" if self.phone is None else "invalid or expired token",
            )
            return 403, "invalid or expired softphone token: reload the page"
        if self.config.auth_token is not None and not is_softphone:
            base = external_base(self.config.public_url, asked.headers, asked.scheme)
            urls = [] if base is None else stream_urls(base, STREAM_PATH, asked.query_string)
            if not signed(
                self.config.auth_token, urls, {}, asked.headers.get("X-Twilio-Signature")
            ):
                logger.warning(
                    "stream from %s refused: missing or invalid X-Twilio-Signature",
                    asked.remote_addr,
                )
                return 403, "invalid Twilio signature"
        refusal = self.board.refusal()
        if refusal is not None:
            logger.warning("stream from %s refused: %s", asked.remote_addr, refusal)
            return 503, refusal
        with self.board.line() as scope:
            await self.run_stream(await accept(), asked, is_softphone=is_softphone)
        if scope.cancelled_caught:
            logger.warning("a call was ended by the shutdown")
        return None

    async def run_stream(
        self, socket: CallSocket, asked: StreamRequest, *, is_softphone: bool
    ) -> None:
        """One call on an accepted stream, with its softphone transcripts and its recording
        when asked for, to its end."""
        call_engines = self.engines
        if is_softphone:
            logger.info("softphone call from %s", asked.remote_addr)
            transcripts = softphone.TranscriptSocket(socket)
            socket = transcripts
            call_engines = softphone.with_transcripts(self.engines, transcripts.send_transcript)
        recorder = RecordingSocket(socket) if self.config.recordings is not None else None
        async with trio.open_nursery() as taps:
            if recorder is not None and self.config.recordings is not None:
                socket = recorder
                taps.start_soon(record_call, recorder, Path(self.config.recordings))
            result = await run_call(
                socket,
                self.make_conversation,
                call_engines,
                self.config.call_settings,
                observers=self.observers,
                # A softphone's start message is the browser's own: its sids name no call.
                twilio_api=None if is_softphone else self.twilio_api,
                directory=None if is_softphone else self.directory,
            )
            taps.cancel_scope.cancel()  # the recorder writes the rest and closes its file
        if recorder is not None and recorder.stream_sid is not None and self.store is not None:
            path = recording_path(Path(str(self.config.recordings)), recorder.stream_sid)
            self.store.observe(recorder.stream_sid, Recorded(str(path)))
        logger.debug(
            "stream for call %s ended: %s",
            result.call_sid,
            result.reason,
            extra={"call_sid": result.call_sid},
        )

    async def stream(self) -> Response | None:
        """``WS /stream`` served by quart-trio (``short_streams`` off, or :func:`create_app
        <phoneactors.server.create_app>`)."""
        ws: Websocket = websocket._get_current_object()  # type: ignore[attr-defined]

        async def accept() -> CallSocket:
            await ws.accept()
            return QuartCallSocket(ws, self.config.max_message_bytes)

        asked = StreamRequest(ws.query_string, ws.headers, ws.remote_addr or "?", ws.scheme)
        refused = await self.answer_stream(asked, accept)
        return None if refused is None else _text(refused[1], refused[0])

    async def healthz(self) -> Response:
        """``GET /healthz``: 200 once the engines are loaded, 503 before and while draining."""
        if self.board.draining:
            status, code = "draining", 503
        elif not self.engines.ready.is_set():
            status, code = "loading", 503
        else:
            status, code = "ok", 200
        health: dict[str, object] = {"status": status, "active_calls": self.board.active}
        if self.peers is not None:
            health["worker"] = self.peers.index
        body = json.dumps(health)
        return Response(body, status=code, mimetype="application/json")

    async def phone_page(self) -> Response:
        """``GET /phone``: the browser softphone, with a fresh token."""
        if self.phone is None:
            logger.warning(
                "GET %s from %s: 404, the softphone is off because TWILIO_AUTH_TOKEN is set "
                "(--softphone turns it on)",
                PHONE_PATH,
                request.remote_addr,
            )
            return _text("not found", 404)
        response = Response(softphone.page_html(self.phone.mint()), mimetype="text/html")
        response.headers["Cache-Control"] = "no-store"  # the page carries a token
        response.headers["Content-Security-Policy"] = _PHONE_POLICY
        return response

    async def phone_asset(self, name: str) -> Response:
        """``GET /phone/<name>``: the softphone's scripts."""
        if self.phone is None or name not in softphone.STATIC_FILES:
            return _text("not found", 404)
        response = Response(softphone.static_file(name), mimetype=softphone.STATIC_FILES[name])
        response.headers["Cache-Control"] = "no-cache"
        return response

    async def metrics_page(self) -> Response:
        """``GET /metrics``: Prometheus text, every worker's together."""
        own = self.metrics.render()
        if self.peers is not None:
            own = merge_exposition([own.decode("utf-8"), *self.peers.others_metrics()])
        return Response(own, content_type=METRICS_CONTENT_TYPE)
