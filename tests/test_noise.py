"""The noise gate: hiss kept out at every level a line has, speech let in, the floor's timing.

Every sound is seeded; a verdict of ``True`` stands for a VAD that calls every frame speech, so
the gate alone decides.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from phoneactors.audio import FRAME_MS, FRAME_SAMPLES, PCM, SAMPLE_RATE, ulaw_decode, ulaw_encode
from phoneactors.errors import ConfigurationError
from phoneactors.noise import DEFAULT_MAX_RMS, NoiseGate
from phoneactors.sounds import at_dbfs, hiss


def rms_at(dbfs: float) -> float:
    return 32768.0 * 10.0 ** (dbfs / 20.0)


def frames(audio: PCM) -> list[PCM]:
    return [audio[i : i + FRAME_SAMPLES] for i in range(0, len(audio), FRAME_SAMPLES)]


def voice(seconds: float, *, dbfs: float, rng: np.random.Generator) -> PCM:
    """A vowel-like harmonic complex: F0 110-220 Hz gliding, harmonics to 3.4 kHz falling 6 dB an
    octave, random phases; steady level."""
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    f0 = rng.uniform(110, 220) * (1.0 + 0.1 * np.sin(2 * np.pi * rng.uniform(1, 3) * t))
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    harmonics = range(1, 16)  # to about 3.4 kHz at the highest F0
    wave = sum(np.sin(k * phase + rng.uniform(0, 2 * np.pi)) / k for k in harmonics)
    return at_dbfs(np.asarray(wave), dbfs)


def talk(seconds: float, *, rng: np.random.Generator) -> tuple[PCM, list[bool]]:
    """Continuous speech-like audio: syllables at -30 to -20 dBFS (120-300 ms) with short
    quieter stretches at -42 to -38 dBFS (40-100 ms) between them, as a talker who never
    pauses. Returns the audio and, for each frame, whether it is a syllable."""
    pieces: list[PCM] = []
    loud: list[bool] = []
    total = 0
    while total < seconds * SAMPLE_RATE:
        syllable = round(rng.uniform(6, 15)) * FRAME_SAMPLES
        gap = round(rng.uniform(2, 5)) * FRAME_SAMPLES
        pieces.append(voice(syllable / SAMPLE_RATE, dbfs=rng.uniform(-30, -20), rng=rng))
        pieces.append(voice(gap / SAMPLE_RATE, dbfs=rng.uniform(-42, -38), rng=rng))
        loud += [True] * (syllable // FRAME_SAMPLES) + [False] * (gap // FRAME_SAMPLES)
        total += syllable + gap
    return np.concatenate(pieces), loud


def on_line(audio: PCM, *, line_dbfs: float, rng: np.random.Generator) -> PCM:
    """``audio`` on a phone line: white hiss added, then through μ-law as Twilio carries it."""
    line = hiss(len(audio) / SAMPLE_RATE, dbfs=line_dbfs, rng=rng)
    mixed = np.clip(audio.astype(np.int32) + line, -32768, 32767).astype(np.int16)
    return ulaw_decode(ulaw_encode(mixed))


@pytest.mark.parametrize("color", ["white", "pink"])
@pytest.mark.parametrize("dbfs", [-62.0, -50.0, -45.0, -40.0])
def test_hiss_is_never_admitted(dbfs: float, color: Literal["white", "pink"]) -> None:
    rng = np.random.default_rng(round(-dbfs))
    line = ulaw_decode(ulaw_encode(hiss(10.0, dbfs=dbfs, rng=rng, color=color)))
    gate = NoiseGate()
    admitted = [gate.admit(frame, True) for frame in frames(line)]
    assert not any(admitted)  # not even the first frame: it is measured against itself
    assert 0.5 * rms_at(dbfs) < gate.floor_rms < rms_at(dbfs)
    assert gate.gate_rms == pytest.approx(gate.floor_rms * 10 ** (6 / 20))


@pytest.mark.parametrize("dbfs", [-30.0, -25.0, -20.0])
def test_speech_levels_are_admitted_on_a_hissy_line(dbfs: float) -> None:
    rng = np.random.default_rng(1)
    audio = np.concatenate([np.zeros(SAMPLE_RATE, np.int16), voice(2.0, dbfs=dbfs, rng=rng)])
    gate = NoiseGate()
    admitted = [gate.admit(frame, True) for frame in frames(on_line(audio, line_dbfs=-45, rng=rng))]
    assert not any(admitted[:50])
    assert all(admitted[50:])


def test_a_caller_talking_from_the_first_frame_is_heard() -> None:
    """A first frame has no floor yet but itself: at ``max_rms`` or louder it is speech."""
    rng = np.random.default_rng(2)
    gate = NoiseGate()
    line = frames(on_line(voice(1.0, dbfs=-25, rng=rng), line_dbfs=-62, rng=rng))
    assert gate.admit(line[0], True)
    assert gate.gate_rms == DEFAULT_MAX_RMS
    assert all(gate.admit(frame, True) for frame in line[1:])


def test_a_quiet_speaker_on_a_clean_line_is_admitted() -> None:
    rng = np.random.default_rng(3)
    audio = np.concatenate([np.zeros(SAMPLE_RATE, np.int16), voice(2.0, dbfs=-38, rng=rng)])
    gate = NoiseGate()
    admitted = [gate.admit(frame, True) for frame in frames(on_line(audio, line_dbfs=-62, rng=rng))]
    assert not any(admitted[:50])
    assert all(admitted[50:])


def test_an_unvoiced_verdict_is_never_admitted_but_still_measured() -> None:
    rng = np.random.default_rng(4)
    gate = NoiseGate()
    for frame in frames(hiss(1.0, dbfs=-50, rng=rng)):
        assert not gate.admit(frame, False)
    assert 0.5 * rms_at(-50) < gate.floor_rms < rms_at(-50)
    assert not gate.admit(voice(0.02, dbfs=-20, rng=rng), False)


def test_continuous_speech_does_not_lift_the_floor() -> None:
    rng = np.random.default_rng(5)
    quiet = on_line(np.zeros(SAMPLE_RATE, np.int16), line_dbfs=-55, rng=rng)
    speech, loud = talk(4.0, rng=rng)
    gate = NoiseGate()
    for frame in frames(quiet):
        gate.admit(frame, False)
    floor = gate.floor_rms
    assert floor < rms_at(-55)
    verdicts = []
    for frame in frames(on_line(speech, line_dbfs=-55, rng=rng)):
        verdicts.append(gate.admit(frame, True))
        assert gate.floor_rms <= floor
    assert len(verdicts) * FRAME_MS >= 4000
    assert all(v for v, syllable in zip(verdicts, loud, strict=True) if syllable)


def test_the_floor_follows_a_line_that_gets_noisier_after_one_window() -> None:
    rng = np.random.default_rng(6)
    gate = NoiseGate()  # window 5 s, blocks of 0.5 s
    for frame in frames(hiss(2.0, dbfs=-60, rng=rng)):
        gate.admit(frame, True)
    quiet_floor = gate.floor_rms
    louder = frames(hiss(6.0, dbfs=-40, rng=rng))
    admitted = [gate.admit(frame, True) for frame in louder[:245]]  # 4.9 s: within the window
    assert quiet_floor <= gate.floor_rms < rms_at(-60)
    assert all(admitted[1:])  # meanwhile the louder hiss is above the old gate
    for frame in louder[245:]:  # by 6 s: a window and a block after the last quiet frame
        gate.admit(frame, True)
    assert 0.5 * rms_at(-40) < gate.floor_rms < rms_at(-40)
    assert not gate.admit(louder[-1], True)


def test_the_floor_follows_a_quieter_line_at_once() -> None:
    rng = np.random.default_rng(7)
    gate = NoiseGate()
    for frame in frames(hiss(1.0, dbfs=-40, rng=rng)):
        gate.admit(frame, True)
    quieter = frames(hiss(1.0, dbfs=-60, rng=rng))
    admitted = [gate.admit(frame, True) for frame in quieter]
    assert not any(admitted)
    assert gate.floor_rms < rms_at(-60)


def test_digital_silence_gates_at_min_rms() -> None:
    silent = np.zeros(FRAME_SAMPLES, np.int16)
    gate = NoiseGate(min_rms=50)
    assert (gate.floor_rms, gate.gate_rms) == (0.0, 50.0)
    assert not any(gate.admit(silent, True) for _ in range(400))
    assert (gate.floor_rms, gate.gate_rms) == (0.0, 50.0)
    assert gate.admit(np.full(FRAME_SAMPLES, 60, np.int16), True)
    # without a lower bound the gate is 0, which silence reaches (as ``WebRtcDetector`` does)
    assert NoiseGate().admit(silent, True)


def test_a_quiet_speaker_on_a_digitally_silent_line_is_admitted() -> None:
    """Zeros between words (a softphone, the simulator) are the floor once they last 100 ms."""
    rng = np.random.default_rng(11)
    gate = NoiseGate(min_rms=50)
    for _ in range(5):
        assert not any(gate.admit(np.zeros(FRAME_SAMPLES, np.int16), True) for _ in range(5))
        word = frames(voice(0.6, dbfs=-38, rng=rng))
        assert all(gate.admit(frame, True) for frame in word)
    assert gate.floor_rms == 0.0


def test_dropouts_of_digital_silence_do_not_open_the_gate_to_hiss() -> None:
    """A lost packet or three filled with zeros is no line: the hiss stays out."""
    rng = np.random.default_rng(8)
    line = frames(hiss(4.0, dbfs=-45, rng=rng))
    silent = np.zeros(FRAME_SAMPLES, np.int16)
    gate = NoiseGate(min_rms=50)
    admitted = [gate.admit(frame, True) for frame in line[:100]]
    admitted += [gate.admit(silent, True)]
    admitted += [gate.admit(frame, True) for frame in line[100:150]]
    admitted += [gate.admit(silent, True) for _ in range(4)]
    admitted += [gate.admit(frame, True) for frame in line[150:]]
    assert not any(admitted)
    assert gate.gate_rms > rms_at(-45)


def test_a_mute_is_the_floor_for_a_window() -> None:
    """The price of the rule above: hiss after a mute passes a ``min_rms`` gate for a while."""
    rng = np.random.default_rng(12)
    line = frames(hiss(7.0, dbfs=-45, rng=rng))
    gate = NoiseGate(min_rms=50)
    for frame in line[:50]:
        gate.admit(frame, True)
    for _ in range(5):
        gate.admit(np.zeros(FRAME_SAMPLES, np.int16), True)
    assert gate.gate_rms == 50.0  # from 1.08 s, in the block of 1.0-1.5 s
    assert all(gate.admit(frame, True) for frame in line[50:315])  # to 6.4 s
    for frame in line[315:325]:
        gate.admit(frame, True)  # the mute's block leaves the window at 6.5 s
    assert not any(gate.admit(frame, True) for frame in line[325:])


def test_a_soft_start_under_the_vad_is_over_the_gate() -> None:
    """``measure`` says whether a frame is over the gate, whatever a VAD says of it: the
    soft start of a word 10 dB over the hiss is, the hiss itself never is."""
    rng = np.random.default_rng(13)
    line = frames(hiss(3.0, dbfs=-45, rng=rng))
    gate = NoiseGate()
    assert not any(gate.measure(frame) for frame in line)
    onset = frames(on_line(voice(0.1, dbfs=-35, rng=rng), line_dbfs=-45, rng=rng))
    assert all(gate.measure(frame) for frame in onset)


def test_digital_silence_is_never_over_the_gate() -> None:
    """Even where the gate is 0 (no ``min_rms`` on a digitally silent line), zeros are no sound;
    one int16 step of it is."""
    gate = NoiseGate()
    silent = np.zeros(FRAME_SAMPLES, np.int16)
    assert not any(gate.measure(silent) for _ in range(10))
    assert gate.gate_rms == 0.0
    assert gate.measure(np.ones(FRAME_SAMPLES, np.int16))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.sampled_from([0, 1, 3, 10, 40, 200, 1000]), min_size=1, max_size=60))
def test_measure_is_admit_for_a_voiced_frame_but_for_digital_silence(
    amplitudes: list[int],
) -> None:
    admitting, measuring = NoiseGate(min_rms=2.0), NoiseGate(min_rms=2.0)
    for amplitude in amplitudes:
        frame = np.full(FRAME_SAMPLES, amplitude, np.int16)
        admitted, over = admitting.admit(frame, True), measuring.measure(frame)
        assert over == (admitted and amplitude > 0)
        assert measuring.floor_rms == admitting.floor_rms
    assert not NoiseGate().admit(np.full(FRAME_SAMPLES, 1000, np.int16), False)


def test_the_gate_stays_within_its_bounds() -> None:
    rng = np.random.default_rng(9)
    gate = NoiseGate(min_rms=100, max_rms=400)
    for frame in frames(hiss(0.5, dbfs=-70, rng=rng)):
        gate.admit(frame, False)
    assert gate.gate_rms == pytest.approx(100)
    loud = NoiseGate(min_rms=100, max_rms=400)
    for frame in frames(hiss(0.5, dbfs=-25, rng=rng)):
        loud.admit(frame, False)
    assert loud.gate_rms == pytest.approx(400)
    assert loud.admit(frames(hiss(0.02, dbfs=-25, rng=rng))[0], True)
    assert NoiseGate().gate_rms == 0.0


def test_frames_of_other_lengths_count_their_samples() -> None:
    rng = np.random.default_rng(10)
    gate = NoiseGate(window_ms=1000, block_ms=500)
    for frame in frames(hiss(1.0, dbfs=-60, rng=rng)):
        gate.admit(frame, False)
    louder = hiss(1.6, dbfs=-40, rng=rng)
    for i in range(0, 4800, 80):  # 0.6 s of 10 ms frames: 60 of them, but only 1.2 blocks
        gate.admit(louder[i : i + 80], False)
    assert gate.floor_rms < rms_at(-60)
    for i in range(4800, len(louder), 80):
        gate.admit(louder[i : i + 80], False)
    assert gate.floor_rms > 0.5 * rms_at(-40)
    with pytest.raises(ValueError, match="at least one sample"):
        gate.admit(np.zeros(0, np.int16), True)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_rms": 0}, "max_rms"),
        ({"max_rms": 32768}, "max_rms"),
        ({"max_rms": math.nan}, "max_rms"),
        ({"min_rms": -1}, "min_rms"),
        ({"min_rms": 900, "max_rms": 800}, "min_rms"),
        ({"min_rms": math.nan}, "min_rms"),
        ({"margin_db": -1}, "margin_db"),
        ({"margin_db": math.inf}, "margin_db"),
        ({"margin_db": math.nan}, "margin_db"),
        ({"window_ms": 0}, "window_ms"),
        ({"window_ms": 4990}, "window_ms"),
        ({"window_ms": 5100}, "window_ms"),
        ({"window_ms": 5000.0}, "window_ms"),
        ({"block_ms": -500}, "block_ms"),
        ({"block_ms": 30}, "block_ms"),
        ({"block_ms": True}, "block_ms"),
    ],
)
def test_bad_options_raise_configuration_error(options: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        NoiseGate(**options)


def floors_by_definition(levels: list[float], block: int, blocks: int) -> list[float]:
    """After each frame: the lowest mean energy of three measured frames (fewer at the start;
    digital silence is not measured, but is 0 from its fifth frame in a row on) whose last
    frame lies in the current block or the ``blocks`` before it."""
    floors = []
    measured: list[float] = []
    lows: list[tuple[int, float]] = []
    silent = 0
    for i, energy in enumerate(levels):
        silent = silent + 1 if energy < 1.0 else 0
        if silent >= 5:
            lows.append((i, 0.0))
        elif not silent:
            measured.append(energy)
            lows.append((i, sum(measured[-3:]) / len(measured[-3:])))
        current = (i + 1) // block
        kept = [low for j, low in lows if j // block >= current - blocks]
        floors.append(min(kept, default=0.0))
    return floors


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from([0, 3, 10, 40, 200, 1000]), st.integers(1, 8)),
        min_size=1,
        max_size=12,
    ),
    st.integers(1, 4),
    st.integers(1, 4),
)
def test_the_floor_is_the_windowed_minimum(
    runs: list[tuple[int, int]], block: int, blocks: int
) -> None:
    amplitudes = [amplitude for amplitude, length in runs for _ in range(length)]
    gate = NoiseGate(window_ms=FRAME_MS * block * blocks, block_ms=FRAME_MS * block)
    floors = []
    for amplitude in amplitudes:
        gate.admit(np.full(FRAME_SAMPLES, amplitude, np.int16), False)
        floors.append(gate.floor_rms**2)
    expected = floors_by_definition([a * a for a in amplitudes], block, blocks)
    assert floors == pytest.approx(expected)
