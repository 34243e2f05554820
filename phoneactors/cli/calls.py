"""``phoneactors calls``: list the recorded calls, or print one call's transcript."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import ConfigurationError
from .common import ENV_PREFIX, EXIT_USAGE, PROG, error
from .options import DEFAULT_RECORDS

__all__ = ["build_calls_parser", "calls_command"]


def build_calls_parser() -> argparse.ArgumentParser:
    """The parser of ``phoneactors calls``: list recent calls, or print one call's transcript."""
    parser = argparse.ArgumentParser(
        prog=f"{PROG} calls",
        description="List the recorded calls, newest first, or print one call's transcript.",
    )
    parser.add_argument("call_sid", nargs="?", help="print this call's transcript")
    parser.add_argument(
        "--records",
        default=os.environ.get(ENV_PREFIX + "RECORDS", DEFAULT_RECORDS),
        metavar="PATH",
        help=f"the call records file [env {ENV_PREFIX}RECORDS; default: {DEFAULT_RECORDS}]",
    )
    parser.add_argument("--limit", type=int, default=50, help="calls to list (default: 50)")
    return parser


def calls_command(argv: Sequence[str]) -> int:
    args = build_calls_parser().parse_args(argv)
    try:
        return _print_calls(args)
    except BrokenPipeError:  # `phoneactors calls | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _print_calls(args: argparse.Namespace) -> int:
    from .. import records

    try:
        if args.call_sid is None:
            calls = records.list_calls(args.records, args.limit)
            if not calls:
                print(f"no calls recorded in {args.records}")
            for call in calls:
                started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(call["started_at"]))
                length = (
                    f"{call['ended_at'] - call['started_at']:6.1f} s"
                    if call["ended_at"] is not None
                    else "   (live)"
                )
                print(
                    f"{started}  {call['call_sid']}  {call['caller'] or '-':>16}  {length}  "
                    f"{call['turns']:3d} turns  {call['end_reason'] or ''}"
                )
            return 0
        call, events = records.read_transcript(args.records, args.call_sid)
    except ConfigurationError as exc:
        error(str(exc))
        return EXIT_USAGE
    print(f"call {call['call_sid']} from {call['caller'] or 'unknown'}")
    for event in events:
        offset = event["at"] - call["started_at"]
        print(f"{offset:8.2f}  {_describe_event(event)}")
    if call["end_reason"] is not None:
        print(f"{call['ended_at'] - call['started_at']:8.2f}  (ended: {call['end_reason']})")
    return 0


def _describe_event(event: Mapping[str, Any]) -> str:
    data = json.loads(event["data"]) if event["data"] else {}
    match event["kind"]:
        case "caller":
            return f"caller: {event['text']}"
        case "bot":
            return f"bot: {event['text']}"
        case "interrupted":
            return f"bot (interrupted): {event['text']}  [not heard: {data.get('unheard', '')}]"
        case "dtmf":
            return f"caller pressed {event['text']}"
        case "resumed":
            if data.get("kind") == "backchannel":
                return f"(caller backchannel {event['text']!r} over the bot: it played on)"
            heard = f", heard as {event['text']!r}" if event["text"] else ""
            return f"(a sound over the bot{heard}: it played on)"
        case "timing":
            return "(turn: " + ", ".join(f"{k} {v:.0f} ms" for k, v in data.items() if v) + ")"
        case "failure":
            return f"({data.get('kind', 'error')} failed: {event['text']})"
    return f"({event['kind']}: {event['text']})"
