"""The small frozen messages that flow between a call's actors."""

from __future__ import annotations

from dataclasses import dataclass

from .audio import PCM

__all__ = [
    "KeyPressed",
    "Sentence",
    "SpeechStarted",
    "Transcript",
    "TranscriptionFailed",
    "TurnEvent",
    "Utterance",
]


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """The VAD heard enough voiced audio: the caller is talking (maybe over the bot)."""

    at: float
    """trio time of the frame that decided it."""


@dataclass(frozen=True, slots=True)
class Utterance:
    """Caller audio to transcribe: a whole utterance (``final``), or the audio so far after a
    short pause, transcribed early in case the caller has finished."""

    audio: PCM
    final: bool
    speech_ended_at: float
    """trio time of the last voiced frame."""
    ended_at: float
    """trio time at which the end-of-speech silence had elapsed (for ``final``)."""
    continues_pause: bool = False
    """``final`` and the same audio as the pause before it: the early transcript holds."""


@dataclass(frozen=True, slots=True)
class Transcript:
    """What the caller said in one utterance."""

    text: str
    speech_ended_at: float
    utterance_ended_at: float
    transcribed_at: float


@dataclass(frozen=True, slots=True)
class TranscriptionFailed:
    """The speech-to-text engine failed or timed out on an utterance."""

    reason: str


@dataclass(frozen=True, slots=True)
class KeyPressed:
    """The caller pressed a key (DTMF)."""

    digit: str


TurnEvent = SpeechStarted | Transcript | TranscriptionFailed | KeyPressed
"""Everything the responder reacts to."""


@dataclass(frozen=True, slots=True)
class Sentence:
    """One sentence of a reply, numbered within the reply, on its way to the speaker."""

    index: int
    text: str
