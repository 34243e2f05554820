"""Speech engines behind small protocols: voice activity, speech-to-text, text-to-speech.

All audio crossing these interfaces is telephone audio: mono ``numpy.int16`` at 8 kHz
(:data:`phoneactors.audio.SAMPLE_RATE`). Engines convert to and from their own rates inside.

Model inference never runs on the trio thread: real engines run it with
:func:`run_inference`, in a worker thread behind a shared :class:`trio.CapacityLimiter`.
"""

from __future__ import annotations

from .base import (
    Engines,
    SpeechToText,
    TextToSpeech,
    Transcription,
    VoiceActivityDetector,
    VoiceActivityEngine,
    as_transcription,
    run_inference,
)

__all__ = [
    "Engines",
    "SpeechToText",
    "TextToSpeech",
    "Transcription",
    "VoiceActivityDetector",
    "VoiceActivityEngine",
    "as_transcription",
    "run_inference",
]
