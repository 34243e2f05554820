"""Turn per-frame voice activity into *speech started* and *utterance ended* decisions.

Pure and synchronous, and free of clocks: it counts 20 ms frames, so the same input always gives
the same output. The VAD actor feeds it one frame and one ``is_speech`` verdict at a time.

* **speech started** once ``min_speech_ms`` of voiced frames fall within a short window
  (a click or a cough shorter than that never interrupts the bot);
* **utterance ended** after ``end_silence_ms`` of consecutive unvoiced frames, or when the
  utterance reaches ``max_utterance_ms``; the utterance carries its audio, including
  ``pre_roll_ms`` of audio from before the start so the first syllable is not clipped.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass

import numpy as np

from .audio import FRAME_MS, PCM
from .errors import ConfigurationError

__all__ = ["SegmenterSettings", "SpeechBegan", "SpeechEnded", "SpeechSegmenter"]


@dataclass(frozen=True, slots=True)
class SegmenterSettings:
    min_speech_ms: int = 160
    """Voiced audio needed before *speech started*; shorter blips are ignored."""
    end_silence_ms: int = 500
    """Unvoiced audio that ends an utterance."""
    pre_roll_ms: int = 200
    """Audio kept from before *speech started*."""
    max_utterance_ms: int = 30_000
    """An utterance this long is ended even if the caller is still talking."""

    def __post_init__(self) -> None:
        for name in ("min_speech_ms", "end_silence_ms", "max_utterance_ms"):
            value = getattr(self, name)
            if value < FRAME_MS:
                raise ConfigurationError(f"{name} must be at least {FRAME_MS} ms, got {value}")
        if self.pre_roll_ms < 0:
            raise ConfigurationError(f"pre_roll_ms must not be negative, got {self.pre_roll_ms}")


@dataclass(frozen=True, slots=True)
class SpeechBegan:
    """Enough voiced audio was heard: the caller is talking."""

    frames_voiced: int


@dataclass(frozen=True, slots=True)
class SpeechEnded:
    """The caller stopped talking (or talked for too long); ``audio`` is the whole utterance."""

    audio: PCM
    truncated: bool
    """True when ``max_utterance_ms`` cut the utterance."""

    @property
    def duration_ms(self) -> int:
        return len(self.audio) * 1000 // 8000


class SpeechSegmenter:
    """Frame-by-frame speech segmentation; see the module docstring."""

    def __init__(self, settings: SegmenterSettings | None = None) -> None:
        self.settings = settings = settings or SegmenterSettings()
        self._needed = -(-settings.min_speech_ms // FRAME_MS)
        self._window: collections.deque[bool] = collections.deque(
            maxlen=self._needed + self._needed // 2
        )
        pre_roll_frames = settings.pre_roll_ms // FRAME_MS + self._window.maxlen  # type: ignore[operator]
        self._history: collections.deque[PCM] = collections.deque(maxlen=pre_roll_frames)
        self._end_frames = -(-settings.end_silence_ms // FRAME_MS)
        self._max_frames = settings.max_utterance_ms // FRAME_MS
        self._speaking = False
        self._frames: list[PCM] = []
        self._silent_run = 0

    @property
    def speaking(self) -> bool:
        """True between *speech started* and *utterance ended*."""
        return self._speaking

    def feed(self, frame: PCM, voiced: bool) -> SpeechBegan | SpeechEnded | None:
        if not self._speaking:
            self._history.append(frame)
            self._window.append(voiced)
            count = sum(self._window)
            if count < self._needed:
                return None
            self._speaking = True
            self._frames = list(self._history)
            self._history.clear()
            self._window.clear()
            self._silent_run = 0
            return SpeechBegan(frames_voiced=count)
        self._frames.append(frame)
        self._silent_run = 0 if voiced else self._silent_run + 1
        if self._silent_run >= self._end_frames:
            return self._end(truncated=False)
        if len(self._frames) >= self._max_frames:
            return self._end(truncated=True)
        return None

    def _end(self, *, truncated: bool) -> SpeechEnded:
        # Keep a little of the trailing silence (whisper likes a soft ending), drop the rest.
        keep = len(self._frames) - max(0, self._silent_run - 5)
        audio = np.concatenate(self._frames[:keep])
        self._speaking = False
        self._frames = []
        self._silent_run = 0
        return SpeechEnded(audio=audio, truncated=truncated)
