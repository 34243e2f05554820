"""Reading Twilio Media Streams text: :func:`parse_event` (Twilio → us), with its shortcut for
compact media messages, and :func:`parse_outbound` (us → Twilio, for the fake Twilio).

Both validate every field they read and raise only :class:`~phoneactors.errors.ProtocolError`
for what the peer sent (the error policy is in :mod:`phoneactors.twilio`'s docstring).
:mod:`phoneactors.twilio` re-exports both.
"""

from __future__ import annotations

import binascii
import json
import re
import types
from collections.abc import Callable, Mapping
from typing import Any, Final, NoReturn

from phoneactors.errors import ProtocolError
from phoneactors.twilio_events import (
    DEFAULT_MEDIA_FORMAT,
    DEFAULT_TRACKS,
    DTMF_DIGITS,
    EMPTY,
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

__all__ = ["DEFAULT_MAX_PAYLOAD_BYTES", "parse_event", "parse_outbound"]

DEFAULT_MAX_PAYLOAD_BYTES: Final = 16000
"""Largest decoded media payload :func:`parse_event` accepts by default: 2 s of 8 kHz μ-law.

Twilio sends 160 bytes (20 ms) per message; anything near this limit is not Twilio."""

_MAX_INT: Final = 2**63 - 1
"""Largest ``sequenceNumber`` / ``chunk`` / ``timestamp`` / format number accepted."""
_MAX_INT_DIGITS: Final = len(str(_MAX_INT))


# --------------------------------------------------------------------------------------------
# Field access with precise errors


class _Missing:
    pass


_MISSING: Final = _Missing()


def _describe(value: object) -> str:
    """A short, JSON-flavoured description of a value for an error message."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        text = str(value) if value.bit_length() < 200 else "a huge integer"
    else:
        text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _fail(path: str, problem: str) -> NoReturn:
    raise ProtocolError(f"{path}: {problem}")


def _wrong(path: str, expected: str, value: object) -> NoReturn:
    if value is _MISSING:
        _fail(path, "missing")
    _fail(path, f"expected {expected}, got {_describe(value)}")


def _obj(parent: dict[str, Any], key: str, path: str) -> dict[str, Any]:
    value = parent.get(key, _MISSING)
    if type(value) is dict:
        return value
    _wrong(path, "an object", value)


def _str(parent: dict[str, Any], key: str, path: str) -> str:
    value = parent.get(key, _MISSING)
    if type(value) is str:
        return value
    _wrong(path, "a string", value)


def _opt_str(parent: dict[str, Any], key: str, path: str, default: str) -> str:
    value = parent.get(key, _MISSING)
    if type(value) is str:
        return value
    if value is _MISSING:
        return default
    _wrong(path, "a string", value)


def _int(parent: dict[str, Any], key: str, path: str) -> int:
    """A non-negative integer sent as a decimal string (as Twilio does) or as a JSON number."""
    value = parent.get(key, _MISSING)
    if type(value) is str:
        if value.isascii() and value.isdigit():
            if len(value) <= _MAX_INT_DIGITS and (number := int(value)) <= _MAX_INT:
                return number
            _fail(path, f"out of range, got {_describe(value)}")
    elif type(value) is int:
        if 0 <= value <= _MAX_INT:
            return value
        _fail(path, f"out of range, got {_describe(value)}")
    _wrong(path, "a decimal string", value)


def _positive_int(parent: dict[str, Any], key: str, path: str) -> int:
    number = _int(parent, key, path)
    if number == 0:
        _fail(path, "expected a positive number, got 0")
    return number


def _payload(parent: dict[str, Any], path: str, max_bytes: int | None) -> bytes:
    value = parent.get("payload", _MISSING)
    if type(value) is not str:
        _wrong(path, "a base64 string", value)
    # Four base64 characters carry three bytes: refuse oversized text before decoding it.
    if max_bytes is not None and len(value) > (max_bytes + 2) // 3 * 4:
        _fail(path, f"longer than {max_bytes} bytes")
    # Strict mode still lets whole groups of surplus padding through ("AAAA=", "AAAA===="):
    # canonical base64 comes in groups of four with at most two "=" at the end.
    if len(value) & 3 or value.endswith("==="):
        _fail(path, "invalid base64")
    try:
        data = binascii.a2b_base64(value, strict_mode=True)
    except ValueError as exc:  # binascii.Error, and non-ASCII text
        raise ProtocolError(f"{path}: invalid base64") from exc
    if max_bytes is not None and len(data) > max_bytes:
        _fail(path, f"longer than {max_bytes} bytes")
    return data


def _load(message: str | bytes) -> dict[str, Any]:
    if isinstance(message, bytes | bytearray | memoryview):
        try:
            message = bytes(message).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolError("message: not valid UTF-8") from exc
    elif not isinstance(message, str):
        raise TypeError(f"message must be str or bytes, not {type(message).__name__}")
    try:
        obj = json.loads(message)
    except RecursionError as exc:
        raise ProtocolError("message: nested too deeply") from exc
    except ValueError as exc:  # json.JSONDecodeError, and integers over the digit limit
        raise ProtocolError(f"message: not valid JSON ({exc})") from exc
    if type(obj) is not dict:
        _fail("message", f"expected a JSON object, got {_describe(obj)}")
    return obj


# --------------------------------------------------------------------------------------------
# Parsing Twilio → us


def parse_event(
    message: str | bytes, *, max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
) -> InboundEvent:
    """Parse one websocket message from Twilio.

    Raises :class:`~phoneactors.errors.ProtocolError` for anything malformed: not UTF-8, not
    JSON, not an object, an unknown ``event``, a required field missing or of the wrong type,
    a payload that is not strict base64 or decodes to more than ``max_payload_bytes``.
    """
    # Media is 50 messages a second per call, everything else is rare: Twilio's own compact
    # media messages take a shortcut, and anything it is not sure of takes the general path.
    if type(message) is str:
        media = _parse_media_fast(message, max_payload_bytes)
        if media is not None:
            return media
    return _parse_event(message, max_payload_bytes)


def _parse_event(message: str | bytes, max_payload_bytes: int) -> InboundEvent:
    """:func:`parse_event` without the shortcut: every message, valid or not, can take it."""
    obj = _load(message)
    event = obj.get("event", _MISSING)
    if event == "media":
        media = _obj(obj, "media", "media")
        return Media(
            _int(obj, "sequenceNumber", "sequenceNumber"),
            _str(obj, "streamSid", "streamSid"),
            _opt_str(media, "track", "media.track", "inbound"),
            _int(media, "chunk", "media.chunk"),
            _int(media, "timestamp", "media.timestamp"),
            _payload(media, "media.payload", max_payload_bytes),
        )
    if type(event) is not str:
        _wrong("event", "a string", event)
    parser = _PARSERS.get(event)
    if parser is None:
        raise ProtocolError(f"unknown event {_describe(event)}")
    return parser(obj)


_PLAIN_STRING: Final = r'"([^"\\\x00-\x1f]*)"'
"""A JSON string without escapes (nor the control characters JSON forbids): its text is itself."""
_SHORT_NUMBER: Final = r'"([0-9]{1,18})"'
"""A decimal string of at most 18 digits, so never above :data:`_MAX_INT`."""
_MEDIA_MESSAGE: Final = re.compile(
    rf"""
    \{{"event":"media","sequenceNumber":{_SHORT_NUMBER},
    (?:"streamSid":{_PLAIN_STRING},)?
    "media":\{{"track":{_PLAIN_STRING},"chunk":{_SHORT_NUMBER},"timestamp":{_SHORT_NUMBER},
    "payload":"([^"]*)"\}}
    (?:,"streamSid":{_PLAIN_STRING})?
    \}}
    """,
    re.VERBOSE,
)
"""A compact media message as Twilio sends it (``streamSid`` last) or as :func:`encode_inbound`
writes it (``streamSid`` second). The payload's characters are left to the base64 decoder."""


def _parse_media_fast(message: str, max_payload_bytes: int) -> Media | None:
    """The :class:`Media` event of a compact media message, or ``None`` to take the general path.

    It returns an event only where the general path would return the same one: the message must
    match :data:`_MEDIA_MESSAGE` exactly, carry ``streamSid`` once, and its payload must pass the
    same checks as in :func:`_payload`. Anything else, valid or not, is left to the general path,
    which alone raises errors.
    """
    match = _MEDIA_MESSAGE.fullmatch(message)
    if match is None:
        return None
    sequence_number, stream_sid, track, chunk, timestamp, text, last_stream_sid = match.groups()
    if last_stream_sid is not None:
        if stream_sid is not None:
            return None  # a duplicate key: JSON keeps the last one, let the general path do it
        stream_sid = last_stream_sid
    elif stream_sid is None:
        return None
    if (
        len(text) & 3
        or text.endswith("===")
        or (max_payload_bytes is not None and len(text) > (max_payload_bytes + 2) // 3 * 4)
    ):
        return None
    try:
        payload = binascii.a2b_base64(text, strict_mode=True)
    except ValueError:  # binascii.Error, non-ASCII text, or a JSON escape
        return None
    if max_payload_bytes is not None and len(payload) > max_payload_bytes:
        return None
    return Media(int(sequence_number), stream_sid, track, int(chunk), int(timestamp), payload)


def _parse_connected(obj: dict[str, Any]) -> Connected:
    return Connected(_str(obj, "protocol", "protocol"), _str(obj, "version", "version"))


def _parse_start(obj: dict[str, Any]) -> Start:
    sequence_number = _int(obj, "sequenceNumber", "sequenceNumber")
    stream_sid = _str(obj, "streamSid", "streamSid")
    start = _obj(obj, "start", "start")
    inner_sid = _opt_str(start, "streamSid", "start.streamSid", stream_sid)
    if inner_sid != stream_sid:
        _fail("start.streamSid", f"{_describe(inner_sid)} differs from {_describe(stream_sid)}")
    call_sid = _str(start, "callSid", "start.callSid")
    account_sid = _str(start, "accountSid", "start.accountSid")

    tracks: tuple[str, ...] = DEFAULT_TRACKS
    raw_tracks = start.get("tracks", _MISSING)
    if raw_tracks is not _MISSING:
        if type(raw_tracks) is not list:
            _wrong("start.tracks", "an array of strings", raw_tracks)
        for i, track in enumerate(raw_tracks):
            if type(track) is not str:
                _wrong(f"start.tracks[{i}]", "a string", track)
        tracks = tuple(raw_tracks)

    parameters: Mapping[str, str] = EMPTY
    raw_parameters = start.get("customParameters", _MISSING)
    if raw_parameters is not _MISSING:
        if type(raw_parameters) is not dict:
            _wrong("start.customParameters", "an object", raw_parameters)
        for key, value in raw_parameters.items():
            if type(value) is not str:
                _wrong(f"start.customParameters[{_describe(key)}]", "a string", value)
        parameters = raw_parameters  # Start copies it into a read-only mapping

    media_format = DEFAULT_MEDIA_FORMAT
    if "mediaFormat" in start:
        raw_format = _obj(start, "mediaFormat", "start.mediaFormat")
        media_format = MediaFormat(
            _str(raw_format, "encoding", "start.mediaFormat.encoding"),
            _positive_int(raw_format, "sampleRate", "start.mediaFormat.sampleRate"),
            _positive_int(raw_format, "channels", "start.mediaFormat.channels"),
        )
    return Start(
        sequence_number, stream_sid, call_sid, account_sid, tracks, parameters, media_format
    )


def _parse_dtmf(obj: dict[str, Any]) -> Dtmf:
    sequence_number = _int(obj, "sequenceNumber", "sequenceNumber")
    stream_sid = _str(obj, "streamSid", "streamSid")
    dtmf = _obj(obj, "dtmf", "dtmf")
    track = _opt_str(dtmf, "track", "dtmf.track", "inbound_track")
    digit = _str(dtmf, "digit", "dtmf.digit")
    if digit not in DTMF_DIGITS:
        _fail("dtmf.digit", f"expected one of 0-9 * # A-D, got {_describe(digit)}")
    return Dtmf(sequence_number, stream_sid, track, digit)


def _parse_mark(obj: dict[str, Any]) -> Mark:
    sequence_number = _int(obj, "sequenceNumber", "sequenceNumber")
    stream_sid = _str(obj, "streamSid", "streamSid")
    mark = _obj(obj, "mark", "mark")
    return Mark(sequence_number, stream_sid, _str(mark, "name", "mark.name"))


def _parse_stop(obj: dict[str, Any]) -> Stop:
    sequence_number = _int(obj, "sequenceNumber", "sequenceNumber")
    stream_sid = _str(obj, "streamSid", "streamSid")
    stop = _obj(obj, "stop", "stop")
    return Stop(
        sequence_number,
        stream_sid,
        _str(stop, "callSid", "stop.callSid"),
        _str(stop, "accountSid", "stop.accountSid"),
    )


_PARSERS: Final[Mapping[str, Callable[[dict[str, Any]], InboundEvent]]] = types.MappingProxyType(
    {
        "connected": _parse_connected,
        "start": _parse_start,
        "dtmf": _parse_dtmf,
        "mark": _parse_mark,
        "stop": _parse_stop,
    }
)


# --------------------------------------------------------------------------------------------
# Parsing us → Twilio


def parse_outbound(message: str | bytes) -> tuple[str, OutboundEvent]:
    """Parse a message we send to Twilio back into ``(stream_sid, event)``; for the fake Twilio.

    Raises :class:`~phoneactors.errors.ProtocolError` for anything malformed.
    """
    obj = _load(message)
    event = obj.get("event", _MISSING)
    if type(event) is not str:
        _wrong("event", "a string", event)
    if event not in ("media", "mark", "clear"):
        raise ProtocolError(f"unknown event {_describe(event)}")
    stream_sid = _str(obj, "streamSid", "streamSid")
    if event == "media":
        return stream_sid, SendMedia(_payload(_obj(obj, "media", "media"), "media.payload", None))
    if event == "mark":
        return stream_sid, SendMark(_str(_obj(obj, "mark", "mark"), "name", "mark.name"))
    return stream_sid, SendClear()
