"""``phoneactors call``: place an outbound call through Twilio's REST API."""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence
from typing import Final

from ..errors import ConfigurationError
from .common import AUTH_TOKEN_ENV, ENV_PREFIX, EXIT_FAILURE, EXIT_OK, EXIT_USAGE, PROG, error

__all__ = ["build_call_parser", "call_command"]

ACCOUNT_SID_ENV: Final = "TWILIO_ACCOUNT_SID"
FROM_ENV: Final = ENV_PREFIX + "FROM"
PUBLIC_URL_ENV: Final = ENV_PREFIX + "PUBLIC_URL"


def build_call_parser() -> argparse.ArgumentParser:
    """The parser of ``phoneactors call``."""
    parser = argparse.ArgumentParser(
        prog=f"{PROG} call",
        description=(
            "Place an outbound call through Twilio's REST API: Twilio calls TO from FROM and, "
            "once answered, connects it to the media stream of the phoneactors server at "
            "--public-url (which must be running: the person you call talks to its "
            "conversation). Prints the new call's sid."
        ),
        epilog=(
            f"Credentials come from {ACCOUNT_SID_ENV} and {AUTH_TOKEN_ENV} (Twilio console → "
            "Account → API keys & tokens). Exit status: 0 when Twilio accepted the call, 1 when "
            "it refused it or could not be reached, 2 for a bad command line or missing "
            "credentials."
        ),
    )
    parser.add_argument("to", metavar="TO", help="the number to call, as +15551234567")
    parser.add_argument(
        "--from",
        dest="from_",
        metavar="FROM",
        help=f"your Twilio number (or a verified caller id) to call from [env {FROM_ENV}]",
    )
    parser.add_argument(
        "--public-url",
        metavar="URL",
        help=(
            "the https:// URL the server is reachable at (as for serve); the call streams to "
            f"its /stream [env {PUBLIC_URL_ENV}]"
        ),
    )
    parser.add_argument(
        "--machine-detection",
        action="store_true",
        help=(
            "have Twilio tell the conversation whether a person or an answering machine "
            "answered (Conversation.on_answered_by), while the call goes on"
        ),
    )
    return parser


def call_command(argv: Sequence[str]) -> int:
    """``phoneactors call``: see :func:`build_call_parser`."""
    parser = build_call_parser()
    args = parser.parse_args(argv)
    from_ = args.from_ or os.environ.get(FROM_ENV, "").strip() or None
    public_url = args.public_url or os.environ.get(PUBLIC_URL_ENV, "").strip() or None
    if from_ is None:
        parser.error(f"--from is required (or set {FROM_ENV}): the Twilio number to call from")
    if public_url is None:
        parser.error(
            f"--public-url is required (or set {PUBLIC_URL_ENV}): the https:// address Twilio "
            "reaches your phoneactors server at"
        )
    account_sid = os.environ.get(ACCOUNT_SID_ENV, "").strip()
    auth_token = os.environ.get(AUTH_TOKEN_ENV, "").strip()
    missing = [
        name
        for name, value in ((ACCOUNT_SID_ENV, account_sid), (AUTH_TOKEN_ENV, auth_token))
        if not value
    ]
    if missing:
        error(
            f"{' and '.join(missing)} must be set to place calls (Twilio console → Account → "
            "API keys & tokens)"
        )
        return EXIT_USAGE
    logging.getLogger("twilio").setLevel(logging.WARNING)  # it logs every request at INFO

    from .. import outbound

    try:
        placed = outbound.place_call(
            args.to,
            from_,
            public_url=public_url,
            account_sid=account_sid,
            auth_token=auth_token,
            machine_detection=args.machine_detection,
        )
    except ConfigurationError as exc:
        error(str(exc))
        return EXIT_USAGE
    except outbound.TwilioApiError as exc:
        error(str(exc))
        return EXIT_FAILURE
    print(
        f"placed call {placed.sid} to {placed.to} from {placed.from_} "
        f"(status: {placed.status or 'unknown'}); once answered it streams to {placed.stream_url}",
        flush=True,
    )
    return EXIT_OK
