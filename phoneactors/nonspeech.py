"""Was anything said? Telling words from coughs, breaths and noise in a transcript.

Whisper-family engines "hear" words in sounds that hold none: a cough becomes "Thank you.", a
breath "You", line noise "Okay." (their well-known hallucination on non-speech). When the caller
makes such a sound over the bot, the bot should play on, and the sound must never be answered
as a turn. Two signals tell them apart (measured on 363 synthetic non-speech clips against 513
spoken backchannels and interruptions by three TTS engines, clean, with hiss and band-limited):

* **Voicing.** Words have vowels, and vowels are periodic: every spoken clip had at least
  140 ms of 20 ms frames whose normalized autocorrelation peaks above 0.5 at a pitch lag
  (60-400 Hz); breaths, sniffs, clicks, unvoiced coughs and line noise had at most 60 ms.
  Under :data:`MIN_VOICED_MS` there are no words.
* **The engine's own doubt.** Whisper's no-speech probability was above 0.6 for every
  non-speech clip, but also for some real words; so it only decides together with voicing:
  a transcript the engine thinks is no speech, with little voicing (under
  :data:`SURE_VOICED_MS`), or with unlikely tokens and no long voiced stretch, holds no words.

What neither signal can tell from a short word: voiced or ringing sounds (a throat clear, a
cough with a voiced part, a knock that rings, a laugh). Engines that give no signals
(``None``) are judged on their text and the voicing. Pure and synchronous; the voicing costs
about 25 µs a loud frame, stops as soon as it has heard enough and looks at no more than the
first :data:`SCAN_MS` of an utterance, so it runs on the call's own thread.
"""

from __future__ import annotations

from typing import Final

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .audio import FRAME_MS, FRAME_SAMPLES, PCM, SAMPLE_RATE
from .messages import Transcription

__all__ = ["MIN_VOICED_MS", "NO_SPEECH_PROB", "SURE_VOICED_MS", "voicing", "words_heard"]

MIN_VOICED_MS: Final = 100
"""Less periodic audio than this holds no words, whatever the transcript says."""
NO_SPEECH_PROB: Final = 0.6
"""Above this no-speech probability the engine doubts the transcript..."""
SURE_VOICED_MS: Final = 160
"""...and it is believed only with at least this much voicing..."""
UNSURE_LOGPROB: Final = -1.0
LONG_VOICED_RUN_MS: Final = 200
"""...and, when its tokens are unlikely (mean log-probability under ``UNSURE_LOGPROB``), only
with a voiced stretch at least this long."""

SCAN_MS: Final = 3000
"""Voicing is measured in the first this many ms of an utterance: words show within it."""

_MIN_RMS: Final = 100.0
"""Frames quieter than this (int16 RMS, about -50 dBFS) are not measured for voicing."""
_PERIODIC: Final = 0.5
"""A frame whose normalized autocorrelation peaks above this at a pitch lag is voiced."""
_LAGS: Final = (SAMPLE_RATE // 400, SAMPLE_RATE // 60)
"""Pitch lags in samples: 400 Hz down to 60 Hz."""


def voicing(
    audio: PCM, *, enough_ms: int = LONG_VOICED_RUN_MS, max_ms: int = SCAN_MS
) -> tuple[int, int]:
    """How much of ``audio`` is voiced (periodic at a pitch), in ms: ``(total, longest run)``.

    A 20 ms frame louder than about -50 dBFS is voiced when its normalized cross-correlation
    with itself shifted by a pitch lag (2.5-16.7 ms) peaks above 0.5. The peak is searched only
    past the first lag where the correlation turns down, so low-frequency rumble (which
    correlates at every short lag) is not voiced. Measuring stops once both figures reach
    ``enough_ms``, and looks at no more than the first ``max_ms`` of ``audio``: about 25 µs a
    loud frame, so at most a few milliseconds.
    """
    lo, hi = _LAGS
    samples = audio[: max_ms * SAMPLE_RATE // 1000].astype(np.float64)
    if len(samples) < FRAME_SAMPLES:
        return 0, 0
    samples -= samples.mean()
    padded = np.concatenate([samples, np.zeros(hi + 1)])
    windows = sliding_window_view(padded, FRAME_SAMPLES)
    energies = np.einsum("ij,ij->i", windows, windows)
    total = run = longest = 0
    for start in range(0, len(samples) - FRAME_SAMPLES + 1, FRAME_SAMPLES):
        frame = windows[start]
        if energies[start] < _MIN_RMS**2 * FRAME_SAMPLES or not _periodic(
            frame, windows[start + 1 : start + hi + 1], energies[start + 1 : start + hi + 1], lo
        ):
            run = 0
            continue
        total += FRAME_MS
        run += FRAME_MS
        longest = max(longest, run)
        if total >= enough_ms and longest >= enough_ms:
            break
    return total, longest


def _periodic(frame: np.ndarray, shifted: np.ndarray, shifted_energy: np.ndarray, lo: int) -> bool:
    """Whether ``frame`` correlates above :data:`_PERIODIC` with one of its shifts (lags 1…)."""
    energy = float(np.dot(frame, frame))
    correlation = (shifted @ frame) / np.sqrt(energy * shifted_energy + 1e-9)
    falling = np.flatnonzero(
        (correlation[:-2] < 0)
        | ((correlation[:-2] > correlation[1:-1]) & (correlation[1:-1] <= correlation[2:]))
    )
    if len(falling) == 0:
        return False
    first = max(int(falling[0]) + 1, lo - 1)  # correlation[k] is lag k + 1
    return bool(correlation[first:].max() > _PERIODIC)


def words_heard(transcription: Transcription, audio: PCM) -> str:
    """The transcript's text stripped, or '' when it holds no words (see the module docstring).

    ``audio`` is what was transcribed (8 kHz int16). Its voicing is measured at its start and,
    for a long utterance, at its end too (words after a few seconds of noise count).
    """
    text = transcription.text.strip()
    if not any(char.isalnum() for char in text):
        return ""
    voiced, longest = voicing(audio)
    tail = audio[-(SCAN_MS * SAMPLE_RATE // 1000) :]
    if len(audio) > len(tail) and (voiced < SURE_VOICED_MS or longest < LONG_VOICED_RUN_MS):
        voiced, longest = max((voiced, longest), voicing(tail))
    if voiced < MIN_VOICED_MS:
        return ""
    no_speech = transcription.no_speech_prob
    if no_speech is not None and no_speech > NO_SPEECH_PROB:
        logprob = transcription.avg_logprob
        unlikely = logprob is not None and logprob < UNSURE_LOGPROB
        if voiced < SURE_VOICED_MS or (unlikely and longest < LONG_VOICED_RUN_MS):
            return ""
    return text
