"""Telling words from coughs: the voicing measure and the rule that uses it."""

from __future__ import annotations

import numpy as np
import pytest

from phoneactors.audio import SAMPLE_RATE
from phoneactors.messages import Transcription
from phoneactors.nonspeech import MIN_VOICED_MS, voicing, words_heard
from phoneactors.sounds import breath, click, hiss
from phoneactors.testing import tone

RNG = np.random.default_rng(11)


def vowel(seconds: float, pitch: float = 150.0) -> np.ndarray:
    """A buzzy vowel-like sound: a pitch and its harmonics."""
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    wave = sum(np.sin(2 * np.pi * pitch * k * t) / k for k in range(1, 8))
    return (wave / np.abs(wave).max() * 8000).astype(np.int16)


def test_voiced_sound_is_voiced_and_noise_is_not() -> None:
    total, longest = voicing(vowel(0.5))
    assert total >= 200
    assert longest >= 200
    assert voicing(hiss(0.5, dbfs=-20, rng=RNG)) == (0, 0)
    assert voicing(breath(RNG, dbfs=-25))[0] < MIN_VOICED_MS
    assert voicing(click(RNG))[0] < MIN_VOICED_MS
    assert voicing(np.zeros(SAMPLE_RATE, dtype=np.int16)) == (0, 0)
    assert voicing(np.zeros(10, dtype=np.int16)) == (0, 0)


def test_voicing_stops_once_it_has_heard_enough() -> None:
    assert voicing(vowel(3.0), enough_ms=100) == (100, 100)
    assert voicing(vowel(3.0), max_ms=400) == (200, 200)  # enough_ms default: 200


def test_rumble_below_a_voice_is_not_voicing() -> None:
    assert voicing(tone(1.0, frequency=40.0))[0] < MIN_VOICED_MS


@pytest.mark.parametrize(
    ("audio", "heard", "expected"),
    [
        (vowel(0.6), Transcription("Hello."), "Hello."),
        (vowel(0.6), Transcription("   "), ""),
        (vowel(0.6), Transcription("..."), ""),
        (hiss(0.6, dbfs=-20, rng=RNG), Transcription("Thank you."), ""),  # no voicing
        (hiss(0.6, dbfs=-20, rng=RNG), Transcription("Thank you.", None, None), ""),
        # The engine doubts it, and the voicing is short: a throat clear, not a word.
        (vowel(0.12), Transcription("You.", 0.8, -0.5), ""),
        # The engine doubts it, but a long voiced stretch: a word it was unsure of.
        (vowel(0.6), Transcription("No.", 0.7, -1.5), "No."),
        # Unlikely tokens and no long voiced stretch.
        (
            np.concatenate([vowel(0.1), np.zeros(800, np.int16), vowel(0.1)]),
            Transcription("Okay.", 0.7, -1.5),
            "",
        ),
    ],
)
def test_words_heard(audio: np.ndarray, heard: Transcription, expected: str) -> None:
    assert words_heard(heard, audio) == expected


def test_words_after_seconds_of_noise_still_count() -> None:
    noise = hiss(3.5, dbfs=-25, rng=RNG)
    audio = np.concatenate([noise, vowel(0.8)])
    assert words_heard(Transcription("I want to cancel my order."), audio) != ""
