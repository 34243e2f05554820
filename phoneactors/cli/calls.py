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
    parser.add_argument(
        "sid",
        nargs="?",
        metavar="CALL_SID",
        help=(
            "print this call's transcript (every media stream of it, in order); a stream sid "
            "(MZ…) prints that stream only"
        ),
    )
    parser.add_argument(
        "--records",
        default=os.environ.get(ENV_PREFIX + "RECORDS", DEFAULT_RECORDS),
        metavar="PATH|URL",
        help=(
            "the call records: an SQLite file or a postgresql:// URL "
            f"[env {ENV_PREFIX}RECORDS; default: {DEFAULT_RECORDS}]"
        ),
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
        if args.sid is None:
            streams = records.list_calls(args.records, args.limit)
            _print_list(streams, records.describe(args.records))
            return 0
        story = records.read_transcript(args.records, args.sid)
    except ConfigurationError as exc:
        error(str(exc))
        return EXIT_USAGE
    for number, (stream, events) in enumerate(story):
        if number:
            print()
        part = f", stream {number + 1} of {len(story)}" if len(story) > 1 else ""
        print(
            f"call {stream['call_sid']} from {stream['caller'] or 'unknown'} "
            f"(stream {stream['stream_sid']}{part})"
        )
        for event in events:
            offset = event["at"] - stream["started_at"]
            print(f"{offset:8.2f}  {_describe_event(event)}")
        if stream["end_reason"] is not None:
            length = stream["ended_at"] - stream["started_at"]
            print(f"{length:8.2f}  (ended: {stream['end_reason']})")
    return 0


def _print_list(streams: Sequence[Mapping[str, Any]], where: str) -> None:
    if not streams:
        print(f"no calls recorded in {where}")
    for stream in streams:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stream["started_at"]))
        length = (
            f"{stream['ended_at'] - stream['started_at']:6.1f} s"
            if stream["ended_at"] is not None
            else "   (live)"
        )
        part = f"  (stream {stream['part']} of {stream['parts']})" if stream["parts"] > 1 else ""
        print(
            f"{started}  {stream['call_sid']}  {stream['caller'] or '-':>16}  {length}  "
            f"{stream['turns']:3d} turns  {stream['end_reason'] or ''}{part}"
        )


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
            sound = "an unclear sound" if data.get("kind") == "unclear" else "a sound"
            return f"({sound} over the bot{heard}: it played on)"
        case "recording":
            return f"(recorded to {event['text']})"
        case "timing":
            return "(turn: " + ", ".join(f"{k} {v:.0f} ms" for k, v in data.items() if v) + ")"
        case "failure":
            return f"({data.get('kind', 'error')} failed: {event['text']})"
    return f"({event['kind']}: {event['text']})"
