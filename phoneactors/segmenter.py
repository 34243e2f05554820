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
  the start so the first syllable is not clipped, less all but 100 ms of trailing silence
  and 300 ms of trailing faint sound.
  If the caller said nothing since the last pause, the utterance has exactly that pause's
  audio (``continues_pause``), and its early transcript can be used as it is.

**Faint sound.** Quiet here is any frame the VAD calls unvoiced, or a voiced one that is
*faint*: ``faint_db`` under the caller's loud level (the 90th percentile of the utterance's
voiced frames that were not faint, each frame's loudness averaged over 60 ms), as other people
talking in the caller's room are. Without that, their voices keep the turn open until they
pause too, and are transcribed as the caller's words. A pause comes after ``pause_ms`` of true
silence or ``faint_pause_ms`` of silence and faint sound. While the bot is replying (``feed``'s
``replying``), the caller's level is also remembered from their last utterances: faint sound
alone does not begin an utterance, so the room does not pause the reply, and an utterance that
the room does begin is measured against it, so it ends as soon as the room is faint again.
"""

from __future__ import annotations

import collections
import itertools
import math
from dataclasses import dataclass

import numpy as np

from .audio import FRAME_MS, PCM
from .errors import ConfigurationError

__all__ = ["SegmenterSettings", "SpeechBegan", "SpeechEnded", "SpeechPaused", "SpeechSegmenter"]

_TRAILING_FRAMES = 5
"""Frames of trailing silence kept on an utterance (whisper likes a soft ending)."""
_TRAILING_FAINT = 15
"""Frames of trailing faint sound kept: a last word fading out ("…two adults and") is heard
whole, and little of the room's words after it."""
_LEVEL_FRAMES = 250
"""The caller's loud level is measured over their last 5 s of voiced frames."""
_LEVEL_EVERY = 10
_LEVEL_MIN_FRAMES = 10
"""No frame is faint before 200 ms of voiced frames have set a level."""
_SMOOTH_FRAMES = 3
"""A frame's loudness is the mean energy of the last 60 ms: one quiet frame between two
syllables is not faint."""
_START_LOUD_FRAMES = 5
"""While the bot replies, speech starts only when this many of the voiced frames that start it
(at most all of ``min_speech_ms``) are not faint beside the caller's level, and one of them is
within 10 dB of it (``_START_STRONG``): a caller's words have vowels that loud (consonants and
soft syllables may be fainter, and still count toward ``min_speech_ms``), the room's voices
seldom. Measured offline on 62 short interruptions, answers and backchannels per voice
(hibari, Piper), after three phrases that set the caller's level: speech started as early as
without the rule, or at most 60 ms later (mean 1-2 ms)."""
_START_CLEAR = 4
"""Voiced frames (80 ms) that must be clear of the line's noise (the noise gate's verdict)
among those that start speech; the rest may be the VAD's alone. Offline, on 24 short
interruptions and answers per voice said over the bot on a line hissing at -45 dBFS, speech
started (after the word's first frame) at p95 340 ms for hibari when every frame had to be
clear, 180 ms with this rule (Piper: 200 and 180 ms; clean lines: 160 ms either way): the
soft start of a word is under the gate, 6 dB over the hiss. A click (up to 40 ms) is never
clear for long enough. Frames over the gate that the VAD did not call speech count toward
``min_speech_ms`` too (``feed``'s ``over``): see ``benchmarks/speech_start.py`` and
docs/turn-taking.md (fourteenth session)."""
_START_STRONG = 0.1
"""-10 dB."""
_REMEMBER_MIN_FRAMES = 25
"""An utterance with this many voiced frames that were not faint (0.5 s after speech started)
sets the caller's level for the utterances that follow; a cough or a click does not."""
_REMEMBERED = 3
"""The caller's level is the loudest of their last three such utterances: one said softly
does not lower it at once."""


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
    faint_db: float | None = 15.0
    """A voiced frame this far under the utterance's own loud level (its 90th percentile, the
    last 60 ms averaged) is *faint*: it counts toward the silence that ends the turn, as
    other people talking in the caller's room do: the VAD calls them speech, and without this
    the caller's turn would not end until they paused too. While the bot replies, a frame this
    far under the caller's level in their last utterances does not interrupt it. ``None``:
    every voiced frame is speech."""
    faint_pause_ms: int = 240
    """Quiet (silence or faint sound) after which the audio so far is handed on at a pause,
    when faint sound keeps the silence of ``pause_ms`` from coming."""

    def __post_init__(self) -> None:
        for name in ("min_speech_ms", "end_silence_ms", "max_utterance_ms"):
            value = getattr(self, name)
            if value < FRAME_MS:
                raise ConfigurationError(f"{name} must be at least {FRAME_MS} ms, got {value}")
        for name in ("pre_roll_ms", "pause_ms", "faint_pause_ms"):
            if getattr(self, name) < 0:
                raise ConfigurationError(f"{name} must not be negative, got {getattr(self, name)}")
        if self.faint_db is not None and not 0 < self.faint_db < math.inf:
            raise ConfigurationError(f"faint_db must be above 0 dB or None, got {self.faint_db!r}")
        if self.incomplete_silence_ms < self.end_silence_ms:
            raise ConfigurationError(
                f"incomplete_silence_ms ({self.incomplete_silence_ms}) must be at least "
                f"end_silence_ms ({self.end_silence_ms})"
            )


@dataclass(frozen=True, slots=True)
class SpeechBegan:
    """Enough voiced audio was heard: the caller is talking."""

    frames_voiced: int
    """Frames of the start window that were voiced (or over the noise gate)."""
    began_ms: int
    """How long ago the speech began: from the start of the oldest voiced frame among those
    that started it to the end of the frame that decided it (``min_speech_ms`` or more; on a
    line whose hiss the VAD calls speech, the whole window of recent frames)."""


@dataclass(frozen=True, slots=True)
class SpeechPaused:
    """The caller has been quiet for ``pause_ms`` (or, with faint sound, ``faint_pause_ms``);
    ``audio`` is the utterance so far."""

    audio: PCM
    number: int = 0
    """Counts the pauses of a segmenter: :meth:`SpeechSegmenter.judged` names the pause."""
    quiet_ms: int = 0
    """How long the caller has been quiet: since their last frame that was not faint."""


@dataclass(frozen=True, slots=True)
class SpeechEnded:
    """The caller stopped talking (or talked for too long); ``audio`` is the whole utterance."""

    audio: PCM
    truncated: bool
    """True when ``max_utterance_ms`` cut the utterance."""
    silence_ms: int
    """Silence since the last voiced frame that was not faint (the end-of-speech wait that
    just elapsed)."""
    continues_pause: bool
    """True when the last :class:`SpeechPaused` had exactly this audio (nothing but silence and
    faint sound since)."""
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
        self._loud_recent = self._strong_recent = self._clear_recent = 0
        self._loud_needed = min(_START_LOUD_FRAMES, self._needed)
        self._clear_needed = min(_START_CLEAR, self._needed)
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
        self._faint_pause_frames = (
            -(-settings.faint_pause_ms // FRAME_MS) if self._pause_frames else 0
        )
        self._pauses = 0
        self._paused = False
        self._max_frames = settings.max_utterance_ms // FRAME_MS
        self._speaking = False
        self._frames: list[PCM] = []
        self._quiet_run = 0
        """Frames since the last voiced frame that was not faint: the silence that ends a turn,
        trimmed from the audio."""
        self._silent_run = 0
        """Frames since the last voiced frame, faint or not: a pause of true silence."""
        self._level = _Level(settings.faint_db)
        self._pause_audio: PCM | None = None
        """The audio of the last pause: the utterance's, if nothing but quiet follows it."""

    @property
    def speaking(self) -> bool:
        """True between *speech started* and *utterance ended*."""
        return self._speaking

    def feed(
        self,
        frame: PCM,
        voiced: bool,
        *,
        replying: bool = False,
        clear: bool | None = None,
        over: bool = False,
    ) -> SpeechBegan | SpeechPaused | SpeechEnded | None:
        """Take the next frame and the VAD's verdict on it.

        ``clear``: the noise gate's verdict, whether the frame is voiced *and* clearly above
        the line's noise (``None``: the same as ``voiced``, a line without a gate). Speech
        starts on the VAD's voiced frames once :data:`_START_CLEAR` of them are clear: the
        soft start of a word on a hissy line ("h", "s", a quiet first syllable) counts toward
        ``min_speech_ms``, while hiss the VAD calls speech, never clear, starts nothing. Within
        an utterance only clear frames are speech, so the VAD's hangover after the last word
        does not stretch the end of the turn.

        ``over``: the frame is over the noise gate, whatever the VAD says
        (:meth:`~phoneactors.noise.NoiseGate.measure`). Such frames count toward
        ``min_speech_ms`` as voiced ones do (never toward the clear ones, nor the loud ones
        below): on a noisy line the VAD misses the soft start of many words ("Twenty", "Stop"),
        which the gate hears 6 dB over the hiss.

        ``replying``: the bot is replying (the caller's turn is being transcribed, or its reply
        thought or played). *Speech started* then also needs a few voiced frames that are not
        faint beside the caller's level of their last utterances: other people in the
        caller's room (or an echo of the bot) do not pause the reply, while the caller, louder,
        does as fast as ever.
        """
        if clear is None:
            clear = voiced
        if not self._speaking:
            self._history.append(frame)
            self._clear_recent = (self._clear_recent << 1 | clear) & self._window_mask
            beside = self._level.beside_caller(self._history) if voiced and replying else 1.0
            loud = voiced and beside >= self._level.faint_factor
            strong = voiced and beside >= _START_STRONG
            heard = voiced or over
            recent = (self._recent << 1 | 1 if heard else self._recent << 1) & self._window_mask
            self._recent = recent
            self._loud_recent = (self._loud_recent << 1 | loud) & self._window_mask
            self._strong_recent = (self._strong_recent << 1 | strong) & self._window_mask
            count = recent.bit_count()
            if count < self._needed or self._clear_recent.bit_count() < self._clear_needed:
                return None
            if replying and (
                self._loud_recent.bit_count() < self._loud_needed or not self._strong_recent
            ):
                return None
            self._speaking = True
            self._frames = list(self._history)
            self._history.clear()
            self._recent = self._loud_recent = self._strong_recent = self._clear_recent = 0
            self._quiet_run = self._silent_run = 0
            self._paused = False
            self._level.reset(over_reply=replying)
            return SpeechBegan(frames_voiced=count, began_ms=recent.bit_length() * FRAME_MS)
        self._frames.append(frame)
        voiced = clear
        faint = self._level.faint(frame, voiced)
        if voiced and not faint:
            self._quiet_run = self._silent_run = 0
            self._paused = False
            self._wait_frames = self._long_frames or self._end_frames
        else:
            self._quiet_run += 1
            self._silent_run = 0 if voiced else self._silent_run + 1
        if self._quiet_run >= self._wait_frames:
            return self._end(truncated=False)
        if len(self._frames) >= self._max_frames:
            return self._end(truncated=True)
        if (
            self._pause_frames
            and not self._paused
            and (
                self._silent_run == self._pause_frames
                or self._quiet_run == self._faint_pause_frames
            )
        ):
            self._paused = True
            self._pauses += 1
            self._pause_audio = self._audio()
            return SpeechPaused(
                audio=self._pause_audio, number=self._pauses, quiet_ms=self._quiet_run * FRAME_MS
            )
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
        if self._quiet_run >= self._wait_frames:
            return self._end(truncated=False)
        return None

    def _audio(self) -> PCM:
        """The utterance so far, less all but a little of its trailing quiet: silence, and
        faint sound (the room's words would be transcribed as the caller's)."""
        trim = max(0, self._silent_run - _TRAILING_FRAMES, self._quiet_run - _TRAILING_FAINT)
        return np.concatenate(self._frames[: len(self._frames) - trim])

    def _end(self, *, truncated: bool) -> SpeechEnded:
        self._level.remember()
        # Nothing but quiet since the last pause: its audio, and its transcript, are the
        # utterance's.
        same = self._paused and not truncated
        ended = SpeechEnded(
            audio=self._pause_audio if same and self._pause_audio is not None else self._audio(),
            truncated=truncated,
            silence_ms=self._quiet_run * FRAME_MS,
            continues_pause=same,
            pause=self._pauses if same else None,
        )
        self._speaking = False
        self._paused = False
        self._pause_audio = None
        self._wait_frames = self._long_frames or self._end_frames
        self._frames = []
        self._quiet_run = self._silent_run = 0
        return ended


class _Level:
    """How loud the caller is in this utterance, and whether a frame is faint beside it."""

    def __init__(self, faint_db: float | None) -> None:
        self.faint_factor = math.pow(10.0, -faint_db / 10.0) if faint_db is not None else 0.0
        """Faint is under this fraction of the caller's level (0.0: nothing is faint)."""
        self._voiced = np.zeros(_LEVEL_FRAMES, dtype=np.float32)
        """The energies of the utterance's last voiced frames, a ring."""
        self._count = 0
        self._recent: collections.deque[float] = collections.deque(maxlen=_SMOOTH_FRAMES)
        self._loud = 0.0
        self._remembered: collections.deque[float] = collections.deque(maxlen=_REMEMBERED)
        """The loud levels of the last utterances long enough to count."""
        self._least = 0.0
        """The loud level this utterance is measured against at least: the caller's, when it
        began over a reply; else 0."""

    def remember(self) -> None:
        """The utterance ended: keep its loud level if it had enough voiced frames."""
        if self.faint_factor and self._count >= _REMEMBER_MIN_FRAMES:
            self._remembered.append(self._loudness())

    def beside_caller(self, frames: collections.deque[PCM]) -> float:
        """The energy of the last 60 ms of ``frames`` (the newest last) as a fraction of the
        caller's level in their last utterances (``inf`` before one was long enough)."""
        if not self._remembered:
            return math.inf
        energy = 0.0
        for frame in itertools.islice(reversed(frames), _SMOOTH_FRAMES):
            samples = frame.astype(np.float32)
            energy += float(samples.dot(samples)) / max(1, len(samples))
        count = min(len(frames), _SMOOTH_FRAMES)
        return energy / count / max(self._remembered)

    def reset(self, *, over_reply: bool) -> None:
        """A new utterance. One that began over a reply is measured against the caller's
        level from the start: if the room got loud enough to begin it, its faint sound still
        ends it."""
        self._count = 0
        self._loud = 0.0
        self._recent.clear()
        self._least = max(self._remembered, default=0.0) if over_reply else 0.0

    def faint(self, frame: PCM, voiced: bool) -> bool:
        """Whether ``frame`` (voiced by the VAD, or not) is voiced and faint."""
        if not self.faint_factor:
            return False
        samples = frame.astype(np.float32)
        energy = float(samples.dot(samples)) / max(1, len(samples))
        self._recent.append(energy)
        if not voiced:
            return False
        loud = max(self._loud if self._count >= _LEVEL_MIN_FRAMES else 0.0, self._least)
        if sum(self._recent) / len(self._recent) < loud * self.faint_factor:
            return True  # not the caller: it does not lower their level
        self._voiced[self._count % _LEVEL_FRAMES] = energy
        self._count += 1
        if self._count % _LEVEL_EVERY == 0:
            self._loud = self._loudness()
        return False

    def _loudness(self) -> float:
        """The 90th percentile (the nearest rank below) of the voiced energies held."""
        held = self._voiced[: min(self._count, _LEVEL_FRAMES)]
        rank = (len(held) - 1) * 9 // 10
        return float(np.partition(held, rank)[rank])
