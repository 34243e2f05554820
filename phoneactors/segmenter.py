"""Turn per-frame voice activity into *speech started* and *utterance ended* decisions.

Pure and synchronous, and free of clocks: it counts 20 ms frames, so the same input always gives
the same output. The VAD actor feeds it one frame and one ``is_speech`` verdict at a time.

* **speech started** once ``min_speech_ms`` of voiced frames fall within a short window
  (a click or a cough shorter than that never interrupts the bot);
* **speech paused** after ``pause_ms`` of silence: the audio so far, numbered, so that it can
  be transcribed while we wait to see whether the caller has finished.
* **utterance ended** once the silence is long enough *for what the words say*. The transcript
  of the last pause is judged (:meth:`SpeechSegmenter.judged`): a turn that reads complete ends
  after ``end_silence_ms``; one that trails off ("I'd like to book a table for …") waits up to
  ``incomplete_silence_ms`` for the caller to go on, and so does a turn whose judgement has not
  come yet. Without early transcription (``pause_ms`` 0) the words cannot decide, and
  ``end_silence_ms`` ends every turn. An utterance also ends when it reaches
  ``max_utterance_ms``. It carries its audio, including ``pre_roll_ms`` of audio from before
  the start so the first syllable is not clipped. If the caller stayed quiet since the last
  pause, the utterance has exactly that pause's audio (``continues_pause``), and its early
  transcript can be used as it is.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass

import numpy as np

from .audio import FRAME_MS, PCM
from .errors import ConfigurationError

__all__ = ["SegmenterSettings", "SpeechBegan", "SpeechEnded", "SpeechPaused", "SpeechSegmenter"]

_TRAILING_FRAMES = 5
"""Frames of trailing silence kept on an utterance (whisper likes a soft ending)."""


@dataclass(frozen=True, slots=True)
class SegmenterSettings:
    min_speech_ms: int = 160
    """Voiced audio needed before *speech started*; shorter blips are ignored."""
    end_silence_ms: int = 300
    """Silence that ends a turn that reads complete (every turn, without early transcription)."""
    incomplete_silence_ms: int = 1600
    """Silence that ends a turn that trails off, or one whose words have not been judged yet."""
    pre_roll_ms: int = 200
    """Audio kept from before *speech started*."""
    max_utterance_ms: int = 30_000
    """An utterance this long is ended even if the caller is still talking."""
    pause_ms: int = 120
    """Silence after which the audio so far is handed on for early transcription and judged
    (0, or anything not below ``end_silence_ms``: never, and the words never decide)."""

    def __post_init__(self) -> None:
        for name in ("min_speech_ms", "end_silence_ms", "max_utterance_ms"):
            value = getattr(self, name)
            if value < FRAME_MS:
                raise ConfigurationError(f"{name} must be at least {FRAME_MS} ms, got {value}")
        for name in ("pre_roll_ms", "pause_ms"):
            if getattr(self, name) < 0:
                raise ConfigurationError(f"{name} must not be negative, got {getattr(self, name)}")
        if self.incomplete_silence_ms < self.end_silence_ms:
            raise ConfigurationError(
                f"incomplete_silence_ms ({self.incomplete_silence_ms}) must be at least "
                f"end_silence_ms ({self.end_silence_ms})"
            )


@dataclass(frozen=True, slots=True)
class SpeechBegan:
    """Enough voiced audio was heard: the caller is talking."""

    frames_voiced: int


@dataclass(frozen=True, slots=True)
class SpeechPaused:
    """The caller has been quiet for ``pause_ms``; ``audio`` is the utterance so far."""

    audio: PCM
    number: int = 0
    """Counts the pauses of a segmenter: :meth:`SpeechSegmenter.judged` names the pause."""


@dataclass(frozen=True, slots=True)
class SpeechEnded:
    """The caller stopped talking (or talked for too long); ``audio`` is the whole utterance."""

    audio: PCM
    truncated: bool
    """True when ``max_utterance_ms`` cut the utterance."""
    silence_ms: int
    """Silence since the last voiced frame (the end-of-speech wait that just elapsed)."""
    continues_pause: bool
    """True when the last :class:`SpeechPaused` had exactly this audio (no speech since)."""
    pause: int | None = None
    """The number of that pause, when ``continues_pause``."""

    @property
    def duration_ms(self) -> int:
        return len(self.audio) * 1000 // 8000


class SpeechSegmenter:
    """Frame-by-frame speech segmentation; see the module docstring."""

    def __init__(self, settings: SegmenterSettings | None = None) -> None:
        self.settings = settings = settings or SegmenterSettings()
        self._needed = -(-settings.min_speech_ms // FRAME_MS)
        window = self._needed + self._needed // 2
        # The verdicts of the last ``window`` frames as bits, the newest lowest: one shift and a
        # bit count per frame instead of summing a deque.
        self._recent = 0
        self._window_mask = (1 << window) - 1
        pre_roll_frames = settings.pre_roll_ms // FRAME_MS + window
        self._history: collections.deque[PCM] = collections.deque(maxlen=pre_roll_frames)
        self._end_frames = -(-settings.end_silence_ms // FRAME_MS)
        self._pause_frames = -(-settings.pause_ms // FRAME_MS)
        if not 0 < self._pause_frames < self._end_frames:
            self._pause_frames = 0
        # Frames of silence that end the turn while its words are unjudged or trail off.
        self._long_frames = (
            -(-settings.incomplete_silence_ms // FRAME_MS) if self._pause_frames else 0
        )
        self._wait_frames = self._long_frames or self._end_frames
        self._pauses = 0
        self._paused = False
        self._max_frames = settings.max_utterance_ms // FRAME_MS
        self._speaking = False
        self._frames: list[PCM] = []
        self._silent_run = 0

    @property
    def speaking(self) -> bool:
        """True between *speech started* and *utterance ended*."""
        return self._speaking

    def feed(self, frame: PCM, voiced: bool) -> SpeechBegan | SpeechPaused | SpeechEnded | None:
        if not self._speaking:
            self._history.append(frame)
            recent = (self._recent << 1 | 1 if voiced else self._recent << 1) & self._window_mask
            self._recent = recent
            count = recent.bit_count()
            if count < self._needed:
                return None
            self._speaking = True
            self._frames = list(self._history)
            self._history.clear()
            self._recent = 0
            self._silent_run = 0
            self._paused = False
            return SpeechBegan(frames_voiced=count)
        self._frames.append(frame)
        if voiced:
            self._silent_run = 0
            self._paused = False
            self._wait_frames = self._long_frames or self._end_frames
        else:
            self._silent_run += 1
        if self._silent_run >= self._wait_frames:
            return self._end(truncated=False)
        if len(self._frames) >= self._max_frames:
            return self._end(truncated=True)
        if self._silent_run == self._pause_frames and self._pause_frames:
            self._paused = True
            self._pauses += 1
            return SpeechPaused(audio=self._audio(), number=self._pauses)
        return None

    def judged(self, pause: int, complete: bool) -> SpeechEnded | None:
        """The words of pause number ``pause`` were judged: ``complete``, or trailing off.

        A complete turn ends after ``end_silence_ms`` of silence (now, if that much has
        passed: the utterance is returned); one that trails off after
        ``incomplete_silence_ms``. A judgement of an older pause (the caller spoke since) or
        one that comes after the utterance ended is ignored: returns ``None``.
        """
        if not (self._speaking and self._paused and pause == self._pauses):
            return None
        self._wait_frames = self._end_frames if complete else self._long_frames
        if self._silent_run >= self._wait_frames:
            return self._end(truncated=False)
        return None

    def _audio(self) -> PCM:
        """The utterance so far, less all but a little of its trailing silence."""
        keep = len(self._frames) - max(0, self._silent_run - _TRAILING_FRAMES)
        return np.concatenate(self._frames[:keep])

    def _end(self, *, truncated: bool) -> SpeechEnded:
        ended = SpeechEnded(
            audio=self._audio(),
            truncated=truncated,
            silence_ms=self._silent_run * FRAME_MS,
            continues_pause=self._paused and not truncated,
            pause=self._pauses if self._paused and not truncated else None,
        )
        self._speaking = False
        self._paused = False
        self._wait_frames = self._long_frames or self._end_frames
        self._frames = []
        self._silent_run = 0
        return ended
