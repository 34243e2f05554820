"""The URLs Twilio signed: a request's URL as Twilio saw it, and the signature check over it.

Twilio signs the URL it requested (``X-Twilio-Signature``), which a proxy in front of the server
may have changed: the base is :attr:`ServerConfig.public_url
<phoneactors.server.ServerConfig.public_url>` when configured, else rebuilt from the request's
``Host`` and ``X-Forwarded-Proto`` headers. Pure functions; the HMAC itself is
:func:`phoneactors.twiml.request_is_signed`.
"""

from __future__ import annotations

import re
from typing import Any, Final
from urllib.parse import parse_qs

from . import twiml

__all__ = ["external_base", "query_value", "signed", "stream_urls", "webhook_urls"]

_HOST_HEADER: Final = re.compile(r"[A-Za-z0-9.\-_:\[\]]{1,255}")
"""What a Host header may look like before we put it into a stream URL."""


def _first(value: str | None) -> str:
    """The first entry of a possibly comma-separated proxy header, lower-cased."""
    return (value or "").split(",")[0].strip().lower()


def query_value(query: bytes, name: str) -> str | None:
    """The first value of ``name`` in a URL's query string, as quart's ``args.get`` gives it."""
    values = parse_qs(query.decode("utf-8", "replace"), keep_blank_values=True).get(name)
    return None if not values else values[0]


def _request_scheme(headers: Any, scheme: str) -> str:
    """``https`` or ``http``: from ``X-Forwarded-Proto`` when present, else the request's."""
    forwarded = _first(headers.get("X-Forwarded-Proto"))
    scheme = forwarded or scheme.lower()
    return "https" if scheme in ("https", "wss") else "http"


def _request_host(headers: Any) -> str | None:
    host = (headers.get("Host") or "").strip()
    return host if _HOST_HEADER.fullmatch(host) else None


def external_base(public_url: str | None, headers: Any, scheme: str) -> str | None:
    """``scheme://host[/prefix]`` as Twilio sees this server (``public_url`` when one is
    configured), or ``None`` if unknowable."""
    if public_url is not None:
        return public_url.rstrip("/")
    host = _request_host(headers)
    if host is None:
        return None
    return f"{_request_scheme(headers, scheme)}://{host}"


def _websocket_url(http_url: str) -> str:
    if http_url.startswith("https://"):
        return "wss://" + http_url.removeprefix("https://")
    return "ws://" + http_url.removeprefix("http://")


def _with_query(url: str, query: bytes) -> str:
    return f"{url}?{query.decode('latin-1')}" if query else url


def webhook_urls(base: str, path: str, query: bytes) -> list[str]:
    """The URLs Twilio may have signed for a webhook request: with ``public_url``
    ``https://host/voice`` the console may name ``https://host/voice`` or ``…/voice/``."""
    urls = [_with_query(base + path, query)]
    if path == "/":
        urls.append(_with_query(base, query))
    return urls


def stream_urls(base: str, path: str, query: bytes) -> list[str]:
    """The URLs Twilio may have signed for the upgrade: with and without the query string."""
    url = _websocket_url(base) + path
    return [url, _with_query(url, query)] if query else [url]


def signed(token: str, urls: list[str], params: dict[str, str], signature: str | None) -> bool:
    """Whether ``signature`` is Twilio's, with ``token``, over any of ``urls`` and ``params``
    (the webhook's form fields; none for the upgrade). No URLs, no signature: ``False``."""
    return any(twiml.request_is_signed(token, url, params, signature) for url in urls)
