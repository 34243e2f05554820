"""Twilio Media Streams, without I/O.

This module is the protocol core of phoneactors in the sans-IO style: text in, frozen event
dataclasses out, and events back to text. It never touches a socket, a clock or an event loop, so
the same code serves the real websocket, the fake Twilio in :mod:`phoneactors.testing` and the
fuzzers. It imports neither trio nor quart.

Twilio → us::

    parse_event(message) -> Connected | Start | Media | Dtmf | Mark | Stop

Us → Twilio::

    serialize(stream_sid, SendMedia(payload) | SendMark(name) | SendClear()) -> str

The reverse directions, :func:`encode_inbound` and :func:`parse_outbound`, exist for the fake
Twilio and for tests: ``parse_event(encode_inbound(event)) == event`` for every valid event.

The webhook's side of Twilio (TwiML answers, request signatures) is :mod:`phoneactors.twiml`.

The events are defined in :mod:`phoneactors.twilio_events` and the parser lives in
:mod:`phoneactors.twilio_parse`; this module writes messages to Twilio and re-exports both.

Error policy
------------
Whatever the peer sends, :func:`parse_event` and :func:`parse_outbound` either return an event or
raise :class:`~phoneactors.errors.ProtocolError`; no ``KeyError``, ``TypeError``, ``ValueError``,
``UnicodeDecodeError``, ``binascii.Error`` or ``RecursionError`` gets out. The message names the
field path and the problem, for example ``media.payload: invalid base64`` or
``start.callSid: missing``. Required fields must be present with the right type; optional fields
Twilio may leave out get documented defaults; unknown extra keys are ignored, so that Twilio can
add fields without breaking calls. Our own mistakes (serializing something that is not an
outbound event) raise ``TypeError`` instead.
"""

from __future__ import annotations

import binascii
import json
from typing import Never, NoReturn

from phoneactors.twilio_events import (
    DTMF_DIGITS,
    Connected,
    Dtmf,
    InboundEvent,
    Mark,
    Media,
    MediaFormat,
    OutboundEvent,
    SendClear,
    SendMark,
    SendMedia,
    Start,
    Stop,
)
from phoneactors.twilio_parse import DEFAULT_MAX_PAYLOAD_BYTES, parse_event, parse_outbound

__all__ = [
    "DEFAULT_MAX_PAYLOAD_BYTES",
    "DTMF_DIGITS",
    "Connected",
    "Dtmf",
    "InboundEvent",
    "Mark",
    "Media",
    "MediaFormat",
    "OutboundEvent",
    "SendClear",
    "SendMark",
    "SendMedia",
    "Start",
    "Stop",
    "encode_inbound",
    "parse_event",
    "parse_outbound",
    "serialize",
]


# --------------------------------------------------------------------------------------------
# Serializing us → Twilio


def _not_an_event(value: Never) -> NoReturn:
    """Checked exhaustively by mypy; at run time a caller passed something else."""
    raise TypeError(f"not an event of this direction: {value!r}")


def _b64(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).decode("ascii")


def _dumps(obj: object) -> str:
    return json.dumps(obj, separators=(",", ":"))


def serialize(stream_sid: str, event: OutboundEvent) -> str:
    """The compact JSON text of one message to Twilio, for the stream ``stream_sid``.

    Raises ``TypeError`` if ``event`` is not an outbound event (our mistake, not the peer's).
    """
    match event:
        case SendMedia(payload):
            return (
                f'{{"event":"media","streamSid":{_dumps(stream_sid)},'
                f'"media":{{"payload":"{_b64(payload)}"}}}}'
            )
        case SendMark(name):
            return _dumps({"event": "mark", "streamSid": stream_sid, "mark": {"name": name}})
        case SendClear():
            return _dumps({"event": "clear", "streamSid": stream_sid})
        case _:
            _not_an_event(event)


def encode_inbound(event: InboundEvent) -> str:
    """The JSON text Twilio would send for ``event``; for the fake Twilio and for tests.

    Numbers that Twilio sends as strings (``sequenceNumber``, ``chunk``, ``timestamp``) are
    strings here too. Nothing is validated: an event :func:`parse_event` would reject (a bad
    digit, an oversized payload) is encoded as it is, which is what a fuzzer wants.
    """
    obj: dict[str, object]
    match event:
        case Connected(protocol, version):
            obj = {"event": "connected", "protocol": protocol, "version": version}
        case Start(seq, sid, call_sid, account_sid, tracks, parameters, fmt):
            obj = {
                "event": "start",
                "sequenceNumber": str(seq),
                "streamSid": sid,
                "start": {
                    "accountSid": account_sid,
                    "streamSid": sid,
                    "callSid": call_sid,
                    "tracks": list(tracks),
                    "customParameters": dict(parameters),
                    "mediaFormat": {
                        "encoding": fmt.encoding,
                        "sampleRate": fmt.sample_rate,
                        "channels": fmt.channels,
                    },
                },
            }
        case Media(seq, sid, track, chunk, timestamp, payload):
            obj = {
                "event": "media",
                "sequenceNumber": str(seq),
                "streamSid": sid,
                "media": {
                    "track": track,
                    "chunk": str(chunk),
                    "timestamp": str(timestamp),
                    "payload": _b64(payload),
                },
            }
        case Dtmf(seq, sid, track, digit):
            obj = {
                "event": "dtmf",
                "sequenceNumber": str(seq),
                "streamSid": sid,
                "dtmf": {"track": track, "digit": digit},
            }
        case Mark(seq, sid, name):
            obj = {
                "event": "mark",
                "sequenceNumber": str(seq),
                "streamSid": sid,
                "mark": {"name": name},
            }
        case Stop(seq, sid, call_sid, account_sid):
            obj = {
                "event": "stop",
                "sequenceNumber": str(seq),
                "streamSid": sid,
                "stop": {"accountSid": account_sid, "callSid": call_sid},
            }
        case _:
            _not_an_event(event)
    return _dumps(obj)
