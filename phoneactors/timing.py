"""Where the time of one turn goes: from the caller's last word to the bot's first audio."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TurnTiming"]


@dataclass(slots=True)
class TurnTiming:
    """When each stage of one turn finished, in trio time (seconds).

    Filled in by the runtime as the turn progresses; stages that never happened (the caller
    interrupted first, the reply said nothing) stay ``None``. :meth:`stages_ms` gives the
    breakdown that the per-turn log line, the metrics and ``Conversation.on_turn_timing`` use.
    """

    speech_ended: float
    """The caller's last voiced frame arrived."""
    utterance_ended: float
    """The end-of-speech silence had elapsed: the turn was over."""
    transcribed: float
    """The transcript was ready (with early transcription, often before ``utterance_ended``)."""
    first_sentence: float | None = None
    """``reply`` produced its first complete sentence."""
    first_audio: float | None = None
    """Text-to-speech returned the first sentence's audio."""
    first_sent: float | None = None
    """The first audio was handed to the websocket."""
    interrupted: bool = False

    def stages_ms(self) -> dict[str, float | None]:
        """Milliseconds per stage: ``end_of_speech``, ``stt`` (after the end of speech; 0 when
        the early transcript was ready in time), ``reply``, ``tts``, ``send``, and ``total``
        (last voiced frame to first audio sent)."""

        def ms(start: float | None, end: float | None) -> float | None:
            return None if start is None or end is None else round((end - start) * 1000, 1)

        ready = max(self.transcribed, self.utterance_ended)
        return {
            "end_of_speech": ms(self.speech_ended, self.utterance_ended),
            "stt": ms(self.utterance_ended, ready),
            "reply": ms(ready, self.first_sentence),
            "tts": ms(self.first_sentence, self.first_audio),
            "send": ms(self.first_audio, self.first_sent),
            "total": ms(self.speech_ended, self.first_sent),
        }

    def describe(self) -> str:
        """One log-friendly line: ``total=612ms end_of_speech=500ms stt=20ms …``."""
        parts = []
        stages = self.stages_ms()
        for name in ("total", "end_of_speech", "stt", "reply", "tts", "send"):
            value = stages[name]
            parts.append(f"{name}={'-' if value is None else f'{value:.0f}ms'}")
        if self.interrupted:
            parts.append("interrupted")
        return " ".join(parts)
