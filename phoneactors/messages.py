"""The small frozen messages that flow between a call's actors."""

from __future__ import annotations

from dataclasses import dataclass, field

from .audio import PCM

__all__ = [
    "KeyPressed",
    "Sentence",
    "SpeechStarted",
    "Transcript",
    "Transcription",
    "TranscriptionFailed",
    "TurnEvent",
    "TurnJudged",
    "Utterance",
]


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """The VAD heard enough voiced audio: the caller is talking (maybe over the bot)."""

    at: float
    """trio time of the frame that decided it."""
    began_at: float
    """trio time the speech began: the start of the oldest voiced frame among those that
    decided it, ``min_speech_ms`` or a little more before ``at``."""


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
    pause: int | None = None
    """The segmenter's number for the pause this audio was taken at (early), or whose audio it
    repeats (``final`` and ``continues_pause``)."""


@dataclass(frozen=True, slots=True)
class TurnJudged:
    """The early transcript of pause ``pause`` reads ``complete`` (or trails off): goes back to
    the VAD actor, whose segmenter then knows how long a silence ends the turn."""

    pause: int
    complete: bool


@dataclass(frozen=True, slots=True)
class Transcription:
    """What a speech-to-text engine heard, with how sure it was, where the engine says.

    Whisper-family engines "hear" words in coughs, breaths and line noise ("Thank you.",
    "you"); their own signals tell such guesses from speech. ``None`` means the engine gives
    no such signal.
    """

    text: str
    no_speech_prob: float | None = None
    """The engine's probability that the audio held no speech at all (Whisper's)."""
    avg_logprob: float | None = None
    """Mean log-probability of the transcript's tokens (Whisper's; near 0 is sure)."""
    last_word_logprob: float | None = None
    """Log-probability of the last word's least likely token: how sure the engine is of the
    word the turn ends on (a cut-off "the" is often heard as "there", unsurely)."""
    alternatives: tuple[str, ...] = ()
    """Other readings of the same audio that the engine found nearly as likely ("Can I get a
    table for" beside "Can I get a table four."); empty when it gives none."""


@dataclass(frozen=True, slots=True)
class Transcript:
    """What the caller said in one utterance.

    ``text`` is empty when the utterance held no words: silence, or a sound (a cough, a
    breath, a door) that the speech-to-text engine may still have "heard" as words; then
    ``sound`` is what it made of it, for the log and the records."""

    text: str
    speech_ended_at: float
    utterance_ended_at: float
    transcribed_at: float
    sound: str = ""
    avg_logprob: float | None = None
    """How sure the engine was of ``text`` (its mean token log-probability; ``None``: it
    does not say)."""
    audio: PCM | None = field(default=None, repr=False, compare=False)
    """The utterance's audio, for a second look at a short sound over the bot."""


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
    audio: PCM | None = field(default=None, compare=False)
    """Ready-made audio to play instead of synthesizing ``text`` (a reply's ``Clip``)."""
