"""Outbound calls: ask Twilio to call a number and connect it to a running phoneactors server.

:func:`place_call` sends one request to Twilio's REST API with the official ``twilio`` client:
``calls.create(to=…, from_=…, twiml=…)``, where the TwiML is the same ``<Connect><Stream>`` the
server answers inbound calls with, pointing at ``wss://<public url>/stream``. When the person
answers, Twilio opens that media stream and the server's conversation talks to them; its
``self.call.caller`` is the number called, and ``custom_parameters["direction"]`` is
``"outbound"``.

If the server enforces signatures (``TWILIO_AUTH_TOKEN``), Twilio signs the stream's websocket
upgrade with the same account's token, so nothing else is needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Protocol
from urllib.parse import urlsplit

from .errors import ConfigurationError, TwilioApiError
from .twiml import connect_stream_twiml

if TYPE_CHECKING:
    from twilio.http import HttpClient

__all__ = [
    "AMD_PATH",
    "CallControlApi",
    "PlacedCall",
    "TwilioApi",
    "TwilioApiError",
    "place_call",
    "stream_url",
]

STREAM_PATH: Final = "/stream"
AMD_PATH: Final = "/amd"
"""Where Twilio posts who answered an outbound call (answering-machine detection)."""
API_TIMEOUT: Final = 30.0
"""Seconds to wait for Twilio's API to answer."""


@dataclass(frozen=True, slots=True)
class PlacedCall:
    """The call Twilio created: its sid and first status (usually ``queued``)."""

    sid: str
    status: str | None
    to: str
    from_: str
    stream_url: str


def stream_url(public_url: str) -> str:
    """The media stream URL for a server reachable at ``public_url``: ``https://host/prefix``
    gives ``wss://host/prefix/stream``.

    Raises :class:`ConfigurationError` unless ``public_url`` is an ``https://`` URL with a host
    and without a query or fragment (Twilio only streams to ``wss://``).
    """
    parts = urlsplit(public_url)
    if parts.scheme != "https" or not parts.hostname:
        raise ConfigurationError(
            f"the public URL must be an https:// URL with a host (Twilio only opens media "
            f"streams over wss://), got {public_url!r}"
        )
    if parts.query or parts.fragment:
        raise ConfigurationError(
            f"the public URL must not have a query or fragment, got {public_url!r}"
        )
    return "wss://" + public_url.removeprefix("https://").rstrip("/") + STREAM_PATH


def _http_client(timeout: float) -> HttpClient:
    """The HTTP client the ``twilio`` package talks to its API with (tests substitute one)."""
    from twilio.http.http_client import TwilioHttpClient

    return TwilioHttpClient(timeout=timeout)


def place_call(
    to: str,
    from_: str,
    *,
    public_url: str,
    account_sid: str,
    auth_token: str,
    http_client: HttpClient | None = None,
    machine_detection: bool = False,
) -> PlacedCall:
    """Have Twilio call ``to`` from ``from_`` and connect the call to ``public_url``'s stream.

    With ``machine_detection``, Twilio also listens for an answering machine while the call
    goes on, and posts who answered (``human``, ``machine_end_beep``, ``fax``, …) to the
    server's ``/amd`` (:data:`AMD_PATH`), which hands it to the call's conversation
    (:meth:`~phoneactors.Conversation.on_answered_by`).

    Blocking (one HTTPS request). ``http_client`` is a ``twilio.http.HttpClient`` to send it
    with (default: the ``twilio`` package's own, with a :data:`API_TIMEOUT` second timeout).
    Raises :class:`ConfigurationError` for a bad ``public_url`` or empty arguments, and
    :class:`TwilioApiError` when Twilio refuses the call (with its error code, message and
    documentation link) or cannot be reached.
    """
    for name, value in (("to", to), ("from", from_), ("account sid", account_sid)):
        if not value.strip():
            raise ConfigurationError(f"the {name} must not be empty")
    if not auth_token.strip():
        raise ConfigurationError("the auth token must not be empty")
    url = stream_url(public_url)
    try:
        twiml = connect_stream_twiml(url, {"caller": to, "direction": "outbound"})
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from None

    from twilio.base.exceptions import TwilioException
    from twilio.rest import Client

    client = Client(
        account_sid,
        auth_token,
        http_client=http_client if http_client is not None else _http_client(API_TIMEOUT),
    )
    options: dict[str, str] = {}
    if machine_detection:
        options = {
            "machine_detection": "DetectMessageEnd",
            "async_amd": "true",
            "async_amd_status_callback": public_url.rstrip("/") + AMD_PATH,
            "async_amd_status_callback_method": "POST",
        }
    try:
        call: Any = client.calls.create(to=to, from_=from_, twiml=twiml, **options)
    except TwilioException as exc:
        if getattr(exc, "status", None) is None:  # not an answer from the API
            raise TwilioApiError(f"the twilio client failed: {exc}") from exc
        raise TwilioApiError(_describe_refusal(exc)) from None
    except OSError as exc:  # requests' connection errors and timeouts are OSErrors
        raise TwilioApiError(f"could not reach Twilio's API: {exc}") from exc
    return PlacedCall(sid=str(call.sid), status=call.status, to=to, from_=from_, stream_url=url)


def _describe_refusal(exc: Any) -> str:
    """One line from a ``TwilioRestException`` or ``TwilioServiceException`` (whose own ``str``
    is coloured for a terminal)."""
    code = getattr(exc, "code", None)
    message = (
        getattr(exc, "msg", None)
        or getattr(exc, "detail", None)
        or getattr(exc, "title", None)
        or "no message"
    )
    text = f"Twilio refused the call (HTTP {exc.status}"
    text += f", error {code}): {str(message).strip()}" if code is not None else f"): {message}"
    if code is not None:
        text += f" (see https://www.twilio.com/docs/errors/{code})"
    return text


class CallControlApi(Protocol):
    """What a call needs to hand itself on: Twilio's API (:class:`TwilioApi`), or a fake."""

    async def redirect(self, account_sid: str, call_sid: str, twiml: str) -> None: ...


@dataclass(frozen=True)
class TwilioApi:
    """What a call in progress needs of Twilio's REST API (to hand the call on): the account's
    auth token; the account sid comes with each call. ``http_client`` as for
    :func:`place_call`."""

    auth_token: str
    http_client: HttpClient | None = None

    async def redirect(self, account_sid: str, call_sid: str, twiml: str) -> None:
        """Replace the call's instructions with ``twiml`` (one HTTPS request, in a worker
        thread). Raises :class:`TwilioApiError` when Twilio refuses or cannot be reached."""
        import trio

        await trio.to_thread.run_sync(
            self.redirect_blocking, account_sid, call_sid, twiml, abandon_on_cancel=True
        )

    def redirect_blocking(self, account_sid: str, call_sid: str, twiml: str) -> None:
        """:meth:`redirect`, blocking."""
        from twilio.base.exceptions import TwilioException
        from twilio.rest import Client

        client = Client(
            account_sid,
            self.auth_token,
            http_client=self.http_client or _http_client(API_TIMEOUT),
        )
        try:
            client.calls(call_sid).update(twiml=twiml)
        except TwilioException as exc:
            if getattr(exc, "status", None) is None:
                raise TwilioApiError(f"the twilio client failed: {exc}") from exc
            raise TwilioApiError(_describe_refusal(exc)) from None
        except OSError as exc:
            raise TwilioApiError(f"could not reach Twilio's API: {exc}") from exc
