"""How every call behaves: timeouts, audio pacing, limits on what a caller may send, and the
segmenter's settings (:class:`CallSettings`, checked when made)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import ConfigurationError
from .segmenter import SegmenterSettings

__all__ = ["CallSettings"]


@dataclass(frozen=True)
class CallSettings:
    """Per-call behaviour. One instance serves every call."""

    segmenter: SegmenterSettings = field(default_factory=SegmenterSettings)
    reply_timeout: float = 30.0
    """Seconds a reply may take to generate (all of it); past that, the apology is spoken."""
    stt_timeout: float = 15.0
    tts_timeout: float = 15.0
    playback_lead: float = 0.3
    """Most audio (seconds) sent ahead of real time, so a barge-in throws little away."""
    chunk_ms: int = 100
    """Audio per media message; a mark follows each, so *heard* is accurate to this."""
    tts_leading_silence_ms: int | None = 20
    """Most silence kept before each synthesized sentence (``None``: all the engine made).
    Engines pad sentences with silence (hibari: ~300 ms) that callers hear as latency."""
    tts_trailing_silence_ms: int | None = 200
    """Most silence kept after each sentence: the pause between sentences (``None``: all)."""
    start_timeout: float = 10.0
    """Seconds to wait for Twilio's ``start`` message after the socket opens."""
    max_bad_messages: int = 50
    """Malformed messages skipped in one call before the call is ended."""
    max_payload_bytes: int = 16_000
    """Largest accepted inbound media payload (two seconds of μ-law)."""
    hook_timeout: float = 10.0
    """Seconds ``on_start``, ``on_interrupted`` and ``on_end`` may take."""
    noise_gate: bool = True
    """Follow each line's noise floor: a frame is speech only when clearly above the hiss of
    that line (:class:`~phoneactors.noise.NoiseGate`)."""
    idle_timeout: float | None = 10.0
    """Seconds of quiet on both sides (the bot done talking, the caller silent) after which the
    conversation's :meth:`~phoneactors.Conversation.on_idle` is asked what to say (by default
    "Are you still there?", then goodbye). ``None``: never."""
    max_call_seconds: float | None = None
    """Longest call: past it the bot stops, says
    :attr:`~phoneactors.Conversation.time_limit_message` and hangs up. ``None``: no limit."""

    def __post_init__(self) -> None:
        positive = ("reply_timeout", "stt_timeout", "tts_timeout", "playback_lead", "start_timeout")
        for name in positive:
            value = getattr(self, name)
            if not value > 0:
                raise ConfigurationError(f"{name} must be positive, got {value}")
        for name in ("idle_timeout", "max_call_seconds"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ConfigurationError(f"{name} must be positive (or None), got {value}")
        for name in ("tts_leading_silence_ms", "tts_trailing_silence_ms"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ConfigurationError(f"{name} must be at least 0 (or None), got {value}")
        if not 20 <= self.chunk_ms <= 1000 or self.chunk_ms % 20:
            raise ConfigurationError(
                f"chunk_ms must be a multiple of 20 between 20 and 1000, got {self.chunk_ms}"
            )
