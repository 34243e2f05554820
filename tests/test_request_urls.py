"""The URLs Twilio signed, rebuilt from a request (``phoneactors.request_urls``): pure, no app."""

from __future__ import annotations

import base64
import hashlib
import hmac

from phoneactors.request_urls import (
    external_base,
    query_value,
    signed,
    stream_urls,
    webhook_urls,
)


def signature(token: str, url: str, params: dict[str, str]) -> str:
    """Twilio's algorithm, written out here: HMAC-SHA1 over the URL and the sorted fields."""
    data = url + "".join(k + params[k] for k in sorted(params))
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()


def test_the_base_is_the_public_url_when_configured() -> None:
    headers = {"Host": "internal:8080", "X-Forwarded-Proto": "http"}
    assert external_base("https://bot.example.com/voice/", headers, "http") == (
        "https://bot.example.com/voice"
    )


def test_the_base_follows_the_proxys_headers() -> None:
    assert external_base(None, {"Host": "bot.example.com"}, "http") == "http://bot.example.com"
    # The first hop of a forwarded scheme, whatever its case; a websocket's scheme is its own.
    forwarded = {"Host": "bot.example.com", "X-Forwarded-Proto": "HTTPS, http"}
    assert external_base(None, forwarded, "http") == "https://bot.example.com"
    assert external_base(None, {"Host": "[::1]:8080"}, "wss") == "https://[::1]:8080"


def test_a_host_header_that_is_no_host_gives_no_base() -> None:
    for host in ("", "evil.example.com/path?x=", "a b", "x" * 256):
        assert external_base(None, {"Host": host}, "https") is None
    assert external_base(None, {}, "https") is None


def test_the_webhook_may_be_signed_with_or_without_its_trailing_slash() -> None:
    base = "https://bot.example.com/voice"
    assert webhook_urls(base, "/", b"") == [base + "/", base]
    assert webhook_urls(base, "/amd", b"a=1") == [base + "/amd?a=1"]


def test_the_stream_may_be_signed_with_or_without_its_query() -> None:
    assert stream_urls("https://bot.example.com", "/stream", b"") == [
        "wss://bot.example.com/stream"
    ]
    assert stream_urls("http://localhost:8080", "/stream", b"softphone=1.abc") == [
        "ws://localhost:8080/stream",
        "ws://localhost:8080/stream?softphone=1.abc",
    ]


def test_query_value_is_the_first_and_keeps_blanks() -> None:
    assert query_value(b"a=1&a=2&b=", "a") == "1"
    assert query_value(b"a=1&b=", "b") == ""
    assert query_value(b"a=1", "c") is None
    assert query_value(b"t=%E2%9C%93", "t") == "\u2713"


def test_signed_checks_each_url_and_the_fields() -> None:
    token, params = "t0k3n", {"CallSid": "CA1", "From": "+15551234"}
    urls = webhook_urls("https://bot.example.com/voice", "/", b"")
    good = signature(token, "https://bot.example.com/voice", params)
    assert signed(token, urls, params, good)
    assert not signed(token, urls, {**params, "From": "+15550000"}, good)
    assert not signed("other", urls, params, good)
    assert not signed(token, urls, params, None)
    assert not signed(token, [], params, good)
