"""Outbound calls through the official twilio client, against a local fake of Twilio's REST API.

The fake is a plain HTTP server on 127.0.0.1 that records each request and answers as Twilio
does; the twilio client reaches it through an ``HttpClient`` that sends every request for
``https://api.twilio.com`` there instead. Nothing leaves the machine.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest
from twilio.http.http_client import TwilioHttpClient

from phoneactors import cli, outbound
from phoneactors.errors import ConfigurationError
from phoneactors.outbound import TwilioApiError, place_call, stream_url

ACCOUNT = "AC" + "1" * 32
TOKEN = "secret-token"
CALL_SID = "CA" + "2" * 32


@dataclass
class FakeTwilioApi:
    """Records requests; answers each with ``status`` and ``body`` (JSON)."""

    url: str
    status: int = 201
    body: dict[str, Any] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
def api() -> Iterator[FakeTwilioApi]:
    fake = FakeTwilioApi("")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            fake.requests.append(
                {"path": self.path, "form": form, "auth": self.headers["Authorization"]}
            )
            body = json.dumps(fake.body).encode()
            self.send_response(fake.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    fake.body = {"sid": CALL_SID, "status": "queued", "account_sid": ACCOUNT}
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()
    thread.join()


class LocalTwilio(TwilioHttpClient):  # type: ignore[misc]
    """The twilio package's own HTTP client, sending Twilio's API requests to ``base``."""

    def __init__(self, base: str) -> None:
        super().__init__(timeout=5)
        self.base = base

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        assert url.startswith("https://api.twilio.com/"), url
        return super().request(
            method, self.base + url.removeprefix("https://api.twilio.com"), *args, **kwargs
        )


def test_stream_url() -> None:
    assert stream_url("https://bot.example.com") == "wss://bot.example.com/stream"
    assert stream_url("https://bot.example.com/") == "wss://bot.example.com/stream"
    assert stream_url("https://h.example:8443/voice/") == "wss://h.example:8443/voice/stream"
    for bad in ("http://bot.example.com", "bot.example.com", "https://", "https://h/?x=1"):
        with pytest.raises(ConfigurationError):
            stream_url(bad)


def test_place_call_sends_the_stream_twiml(api: FakeTwilioApi) -> None:
    placed = place_call(
        "+15551234567",
        "+15557654321",
        public_url="https://bot.example.com",
        account_sid=ACCOUNT,
        auth_token=TOKEN,
        http_client=LocalTwilio(api.url),
    )
    assert placed.sid == CALL_SID
    assert placed.status == "queued"
    assert placed.stream_url == "wss://bot.example.com/stream"
    [request] = api.requests
    assert request["path"] == f"/2010-04-01/Accounts/{ACCOUNT}/Calls.json"
    assert request["auth"] == "Basic " + base64.b64encode(f"{ACCOUNT}:{TOKEN}".encode()).decode()
    form = request["form"]
    assert (form["To"], form["From"]) == ("+15551234567", "+15557654321")
    stream = ET.fromstring(form["Twiml"]).find("./Connect/Stream")
    assert stream is not None
    assert stream.get("url") == "wss://bot.example.com/stream"
    parameters = {p.get("name"): p.get("value") for p in stream.findall("Parameter")}
    assert parameters == {"caller": "+15551234567", "direction": "outbound"}


def test_an_api_error_is_explained(api: FakeTwilioApi) -> None:
    api.status = 400
    api.body = {
        "code": 21211,
        "message": "The 'To' number +1555 is not a valid phone number.",
        "more_info": "https://www.twilio.com/docs/errors/21211",
        "status": 400,
    }
    with pytest.raises(TwilioApiError) as error:
        place_call(
            "+1555",
            "+15557654321",
            public_url="https://bot.example.com",
            account_sid=ACCOUNT,
            auth_token=TOKEN,
            http_client=LocalTwilio(api.url),
        )
    message = str(error.value)
    assert message.startswith("Twilio refused the call (HTTP 400, error 21211): ")
    assert "The 'To' number +1555 is not a valid phone number." in message
    assert "https://www.twilio.com/docs/errors/21211" in message
    assert "\033" not in message  # not the twilio client's coloured text


def test_an_unreachable_api_is_explained(api: FakeTwilioApi) -> None:
    with pytest.raises(TwilioApiError, match="could not reach Twilio's API"):
        place_call(
            "+15551234567",
            "+15557654321",
            public_url="https://bot.example.com",
            account_sid=ACCOUNT,
            auth_token=TOKEN,
            http_client=LocalTwilio("http://127.0.0.1:9"),  # nothing listens on port 9
        )


# --------------------------------------------------------------------------------------------
# phoneactors call


@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("PHONEACTORS_", "TWILIO_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", ACCOUNT)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", TOKEN)


@pytest.fixture
def local_api(api: FakeTwilioApi, monkeypatch: pytest.MonkeyPatch) -> FakeTwilioApi:
    monkeypatch.setattr(outbound, "_http_client", lambda timeout: LocalTwilio(api.url))
    return api


ARGV = ["call", "+15551234567", "--from", "+15557654321", "--public-url", "https://bot.example"]


@pytest.mark.usefixtures("credentials")
def test_cli_call_prints_the_call_sid(
    local_api: FakeTwilioApi, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(ARGV) == 0
    assert capsys.readouterr().out == (
        f"placed call {CALL_SID} to +15551234567 from +15557654321 (status: queued); "
        "once answered it streams to wss://bot.example/stream\n"
    )
    assert local_api.requests[0]["form"]["To"] == "+15551234567"


@pytest.mark.usefixtures("credentials")
def test_cli_call_reads_from_and_public_url_from_the_environment(
    local_api: FakeTwilioApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PHONEACTORS_FROM", "+15550000000")
    monkeypatch.setenv("PHONEACTORS_PUBLIC_URL", "https://env.example/bot")
    assert cli.main(["call", "+15551234567"]) == 0
    form = local_api.requests[0]["form"]
    assert form["From"] == "+15550000000"
    assert 'url="wss://env.example/bot/stream"' in form["Twiml"]


@pytest.mark.usefixtures("credentials")
def test_cli_call_api_error_exits_1(
    local_api: FakeTwilioApi, capsys: pytest.CaptureFixture[str]
) -> None:
    local_api.status = 401
    local_api.body = {"code": 20003, "message": "Authenticate", "status": 401}
    assert cli.main(ARGV) == 1
    err = capsys.readouterr().err
    assert err == (
        "phoneactors: error: Twilio refused the call (HTTP 401, error 20003): "
        "Unable to create record: Authenticate (see https://www.twilio.com/docs/errors/20003)\n"
    )


@pytest.mark.parametrize("missing", ["TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"])
@pytest.mark.usefixtures("credentials")
def test_cli_call_without_credentials_exits_2(
    missing: str,
    local_api: FakeTwilioApi,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv(missing)
    assert cli.main(ARGV) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"phoneactors: error: {missing} must be set to place calls")
    assert not local_api.requests


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["call", "+15551234567", "--public-url", "https://x.example"], "--from is required"),
        (["call", "+15551234567", "--from", "+1555"], "--public-url is required"),
        (["call", "--from", "+1555", "--public-url", "https://x.example"], "TO"),
    ],
)
@pytest.mark.usefixtures("credentials")
def test_cli_call_usage_errors_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.usefixtures("credentials")
def test_cli_call_refuses_a_public_url_twilio_cannot_stream_to(
    local_api: FakeTwilioApi, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [*ARGV[:-1], "http://bot.example"]
    assert cli.main(argv) == 2
    assert "must be an https:// URL" in capsys.readouterr().err
    assert not local_api.requests


def test_machine_detection_asks_twilio_to_post_who_answered(api: FakeTwilioApi) -> None:
    place_call(
        "+15551234567",
        "+15557654321",
        public_url="https://bot.example.com/",
        account_sid=ACCOUNT,
        auth_token=TOKEN,
        http_client=LocalTwilio(api.url),
        machine_detection=True,
    )
    form = api.requests[0]["form"]
    assert form["MachineDetection"] == "DetectMessageEnd"
    assert form["AsyncAmd"] == "true"
    assert form["AsyncAmdStatusCallback"] == "https://bot.example.com/amd"
    assert form["AsyncAmdStatusCallbackMethod"] == "POST"
