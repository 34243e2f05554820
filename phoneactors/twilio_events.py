"""The events of Twilio Media Streams, as frozen dataclasses: what Twilio sends us
(:data:`InboundEvent`) and what we send Twilio (:data:`OutboundEvent`).

Data only, no parsing and no I/O. :mod:`phoneactors.twilio_parse` reads them from text,
:mod:`phoneactors.twilio` writes them to text and re-exports them all.
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, TypeAlias

__all__ = [
    "DEFAULT_MEDIA_FORMAT",
    "DEFAULT_TRACKS",
    "DTMF_DIGITS",
    "EMPTY",
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
]

DTMF_DIGITS: Final = frozenset("0123456789*#ABCD")
"""The sixteen DTMF tones a caller's keypad can send."""


# --------------------------------------------------------------------------------------------
# Events: Twilio → us


@dataclass(frozen=True, slots=True)
class MediaFormat:
    """The audio format Twilio announces in ``start.mediaFormat``."""

    encoding: str
    sample_rate: int
    channels: int


DEFAULT_MEDIA_FORMAT: Final = MediaFormat("audio/x-mulaw", 8000, 1)
DEFAULT_TRACKS: Final = ("inbound",)
EMPTY: Final[Mapping[str, str]] = types.MappingProxyType({})


def _empty_parameters() -> Mapping[str, str]:
    return EMPTY


@dataclass(frozen=True, slots=True)
class Connected:
    """First message on a new stream: the websocket is up."""

    protocol: str
    version: str


@dataclass(frozen=True, slots=True)
class Start:
    """The stream's metadata; sent once, before any media.

    ``custom_parameters`` holds the ``<Parameter>`` values from the TwiML; it is stored as a
    read-only copy and left out of the hash (it still takes part in ``==``).
    """

    sequence_number: int
    stream_sid: str
    call_sid: str
    account_sid: str
    tracks: tuple[str, ...] = DEFAULT_TRACKS
    custom_parameters: Mapping[str, str] = field(default_factory=_empty_parameters, hash=False)
    media_format: MediaFormat = DEFAULT_MEDIA_FORMAT

    def __post_init__(self) -> None:
        if self.custom_parameters is not EMPTY:
            copy = types.MappingProxyType(dict(self.custom_parameters))
            object.__setattr__(self, "custom_parameters", copy)


@dataclass(frozen=True, slots=True)
class Media:
    """20 ms (usually) of the caller's audio.

    ``timestamp`` is in milliseconds since the stream started; ``payload`` is the decoded μ-law.
    """

    sequence_number: int
    stream_sid: str
    track: str
    chunk: int
    timestamp: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class Dtmf:
    """The caller pressed a key; ``digit`` is one of :data:`DTMF_DIGITS`."""

    sequence_number: int
    stream_sid: str
    track: str
    digit: str


@dataclass(frozen=True, slots=True)
class Mark:
    """Twilio echoes a mark we sent once the audio before it has played (or was cleared)."""

    sequence_number: int
    stream_sid: str
    name: str


@dataclass(frozen=True, slots=True)
class Stop:
    """The stream has ended: the call hung up or the stream was stopped."""

    sequence_number: int
    stream_sid: str
    call_sid: str
    account_sid: str


InboundEvent: TypeAlias = Connected | Start | Media | Dtmf | Mark | Stop


# --------------------------------------------------------------------------------------------
# Events: us → Twilio


@dataclass(frozen=True, slots=True)
class SendMedia:
    """Audio for Twilio to play: raw 8 kHz mono μ-law bytes, no header."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class SendMark:
    """Ask Twilio to echo ``name`` once everything sent before it has played."""

    name: str


@dataclass(frozen=True, slots=True)
class SendClear:
    """Throw away the audio Twilio still holds; pending marks are echoed back."""


OutboundEvent: TypeAlias = SendMedia | SendMark | SendClear
