"""The server's settings: :class:`ServerConfig`, checked when made.

Every value that cannot work (a port out of range, a ``public_url`` with a query, an empty auth
token, a busy message XML cannot carry, ...) raises
:class:`~phoneactors.errors.ConfigurationError` at once, naming the field, rather than when the
first call arrives. :mod:`phoneactors.server` re-exports it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from .call import CallSettings
from .errors import ConfigurationError
from .twiml import say_and_hang_up_twiml

__all__ = ["ServerConfig"]


@dataclass(frozen=True)
class ServerConfig:
    """How the server listens, authenticates and limits calls.

    Raises :class:`~phoneactors.errors.ConfigurationError` for a value that cannot work.
    """

    host: str = "127.0.0.1"
    port: int = 8080
    """TCP port; 0 picks a free one (:func:`~phoneactors.server.serve` reports which)."""
    public_url: str | None = None
    """The ``http(s)://`` URL Twilio reaches this server at (an ngrok or proxy address, with any
    path prefix the proxy strips). Stream URLs and signatures use it; without it they come from
    the request's ``Host`` and ``X-Forwarded-Proto`` headers."""
    auth_token: str | None = field(default=None, repr=False)
    """Twilio auth token: when set, request signatures are enforced. Never shown in ``repr``."""
    max_calls: int = 20
    """Calls served at once; more are answered with :attr:`busy_message`."""
    max_message_bytes: int = 65536
    """Largest websocket message accepted; a larger one ends its call."""
    short_streams: bool = True
    """:func:`~phoneactors.server.serve` reads and writes the media-stream websockets itself,
    on trio (:mod:`phoneactors.front_door`), at a half to two thirds of the CPU per message of
    hypercorn's ASGI websockets; ``False`` leaves them to hypercorn and quart-trio, as
    :func:`~phoneactors.server.create_app` must."""
    drain_timeout: float = 30.0
    """Seconds calls in progress may go on after shutdown begins; then they are cancelled."""
    busy_message: str = "Sorry, all our lines are busy. Please call again later."
    """What callers hear when no line is free (or the server is starting or stopping)."""
    call_settings: CallSettings = field(default_factory=CallSettings)
    max_inference_wait_ms: float | None = 250.0
    """New callers (at the webhook) hear :attr:`busy_message` while the speech engines are this
    far behind: the 90th percentile of the recent inferences' waits for a CPU thread
    (:meth:`~phoneactors.engines.scheduling.InferenceSlots.recent_wait`). ``None``: never."""
    records: str | None = field(default=None, repr=False)
    """SQLite file that :func:`~phoneactors.server.serve` writes every call's record to,
    created readable by its owner only, or a ``postgresql://`` URL of a database that several
    servers may share (``None``: no records). Never shown in ``repr``: a URL may hold a
    password."""
    recordings: str | None = None
    """Folder that every call's audio is written to as a stereo WAV (caller left, bot right),
    linked from the call records (``None``: no recordings)."""
    records_retention_days: float | None = None
    """Delete recorded calls older than this many days (``None``: keep them)."""
    softphone: bool = False
    """Serve the browser softphone (``/phone``) even with :attr:`auth_token` set. Without an
    auth token it is always served."""

    def __post_init__(self) -> None:
        if not isinstance(self.host, str) or not self.host.strip():
            raise ConfigurationError(f"host must be a non-empty string, got {self.host!r}")
        if _is_not_int(self.port) or not 0 <= self.port <= 65535:
            raise ConfigurationError(f"port must be between 0 and 65535, got {self.port!r}")
        if self.public_url is not None:
            _check_public_url(self.public_url)
        if self.auth_token is not None and (
            not isinstance(self.auth_token, str) or not self.auth_token.strip()
        ):
            raise ConfigurationError(
                "auth_token must not be empty (use None to turn signature checks off)"
            )
        if _is_not_int(self.max_calls) or self.max_calls < 1:
            raise ConfigurationError(f"max_calls must be at least 1, got {self.max_calls!r}")
        if _is_not_int(self.max_message_bytes) or self.max_message_bytes < 1024:
            raise ConfigurationError(
                f"max_message_bytes must be at least 1024, got {self.max_message_bytes!r}"
            )
        if (
            not isinstance(self.drain_timeout, int | float)
            or not math.isfinite(self.drain_timeout)
            or self.drain_timeout < 0
        ):
            raise ConfigurationError(
                "drain_timeout must be a finite number of seconds, 0 or more, "
                f"got {self.drain_timeout!r}"
            )
        for name, unit in (
            ("max_inference_wait_ms", "milliseconds"),
            ("records_retention_days", "days"),
        ):
            value = getattr(self, name)
            if value is not None and not _is_positive(value):
                raise ConfigurationError(
                    f"{name} must be a number of {unit} above 0 (or None), got {value!r}"
                )
        if not isinstance(self.busy_message, str) or not self.busy_message.strip():
            raise ConfigurationError("busy_message must not be empty")
        try:
            say_and_hang_up_twiml(self.busy_message)
        except ValueError as exc:
            raise ConfigurationError(f"busy_message: {exc}") from None
        if not isinstance(self.softphone, bool):
            raise ConfigurationError(f"softphone must be True or False, got {self.softphone!r}")
        if not isinstance(self.call_settings, CallSettings):
            raise ConfigurationError(
                f"call_settings must be a CallSettings, got {type(self.call_settings).__name__}"
            )


def _is_positive(value: object) -> bool:
    """A finite number above 0."""
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


def _is_not_int(value: object) -> bool:
    return not isinstance(value, int) or isinstance(value, bool)


def _check_public_url(url: str) -> None:
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(
            f"public_url must be an http:// or https:// URL with a host, got {url!r}"
        )
    if parts.query or parts.fragment:
        raise ConfigurationError(f"public_url must not have a query or fragment, got {url!r}")
