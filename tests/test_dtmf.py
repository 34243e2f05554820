"""Key-press tones: the right two frequencies per key, heard back through μ-law, and a
conversation that presses keys (or plays audio) towards the other end."""

from __future__ import annotations

import numpy as np
import pytest
from trio.testing import MockClock

from phoneactors import Clip, Conversation
from phoneactors.audio import PCM, SAMPLE_RATE, ulaw_decode, ulaw_encode
from phoneactors.call import CallSettings
from phoneactors.dtmf import KEYS, tones
from phoneactors.testing import FakeSpeech, open_call


def power(samples: np.ndarray, frequency: float) -> float:
    """Goertzel: the power of ``frequency`` in ``samples``."""
    coefficient = 2 * np.cos(2 * np.pi * frequency / SAMPLE_RATE)
    s1 = s2 = 0.0
    for sample in samples.astype(np.float64):
        s1, s2 = sample + coefficient * s1 - s2, s1
    return float(s1 * s1 + s2 * s2 - coefficient * s1 * s2)


def heard_keys(audio: PCM) -> str:
    """Decode DTMF the way an IVR does: for each 20 ms frame with sound, the strongest row and
    column frequency, if both are strong; a key counts once per tone."""
    keys, previous = [], None
    by_pair = {pair: key for key, pair in KEYS.items()}
    rows = sorted({low for low, _ in KEYS.values()})
    columns = sorted({high for _, high in KEYS.values()})
    for start in range(0, len(audio) - 160, 160):
        frame = audio[start : start + 160]
        if np.sqrt(np.mean(frame.astype(np.float64) ** 2)) < 500:
            previous = None
            continue
        row = max(rows, key=lambda f: power(frame, f))
        column = max(columns, key=lambda f: power(frame, f))
        # Each of a key's two tones holds about a quarter of the frame's energy; other sounds
        # (a chime, a voice) put little of theirs at exactly those frequencies.
        energy = len(frame) * float(np.sum(frame.astype(np.float64) ** 2))
        if min(power(frame, row), power(frame, column)) < 0.1 * energy:
            previous = None
            continue
        key = by_pair[(row, column)]
        if key != previous:
            keys.append(key)
        previous = key
    return "".join(keys)


def test_every_key_is_its_two_frequencies_and_survives_the_phone_line() -> None:
    digits = "0123456789*#ABCD"
    audio = tones(digits)
    assert len(audio) == len(digits) * round(0.2 * SAMPLE_RATE)
    assert heard_keys(audio) == digits
    assert heard_keys(ulaw_decode(ulaw_encode(audio))) == digits
    low, high = KEYS["5"]
    tone = tones("5")[:800]
    others = [f for f in (697.0, 852.0, 1209.0, 1477.0)]
    assert min(power(tone, low), power(tone, high)) > 100 * max(power(tone, f) for f in others)


def test_w_waits_and_bad_keys_are_refused() -> None:
    assert len(tones("1w2")) == len(tones("12")) + SAMPLE_RATE // 2
    assert heard_keys(tones("1w1")) == "11"
    with pytest.raises(ValueError, match="cannot send 'x'"):
        tones("12x")
    with pytest.raises(ValueError, match="no digits"):
        tones("")


async def test_a_conversation_presses_keys_and_plays_audio_towards_the_other_end(
    autojump_clock: MockClock, speech: FakeSpeech
) -> None:
    chime = (np.sin(np.arange(4000) * 2 * np.pi * 440 / SAMPLE_RATE) * 8000).astype(np.int16)

    class Menu(Conversation):
        greeting = None

        async def reply(self, text: str) -> Clip:
            self.send_digits("12#")
            return Clip(chime, "[chime]")

    made: list[Menu] = []

    def make() -> Menu:
        made.append(Menu())
        return made[-1]

    settings = CallSettings(idle_timeout=None)
    async with open_call(make, speech.engines(), speech=speech, settings=settings) as fake:
        await fake.say("hello")
        await fake.wait_for(lambda: len(made[0].history) == 3)  # both have played
    assert speech.spoken == []  # nothing synthesized: both were ready-made audio
    assert heard_keys(fake.bot_audio) == "12#"
    assert [turn.text for turn in made[0].history] == ["hello", "[chime]", "[keys 12#]"]
    with pytest.raises(ValueError, match="cannot send"):
        Menu().send_digits("9!")
