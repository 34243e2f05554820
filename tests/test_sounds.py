"""The synthetic sounds: the lengths, levels and band their docstrings promise, seeded and varied,
and the edges of ``at_dbfs`` and ``mix``."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import numpy as np
import pytest

from phoneactors.audio import FRAME_SAMPLES, PCM, SAMPLE_RATE
from phoneactors.sounds import at_dbfs, babble, breath, click, cough, hiss, knock, mix

Event = Callable[..., PCM]

EVENTS: dict[str, tuple[Event, float, float, float]] = {
    # name: (generator, default dbfs, shortest s, longest s) as documented
    "cough": (cough, -18.0, 0.25, 0.7),
    "breath": (breath, -35.0, 0.3, 0.9),
    "knock": (knock, -20.0, 0.15, 0.86),
    "click": (click, -20.0, 0.010, 0.040),
}
SEEDS = range(20)


def level(audio: PCM) -> float:
    samples = audio.astype(np.float64)
    return 20.0 * math.log10(math.sqrt(float(np.mean(samples * samples))) / 32768.0)


def band_share(audio: PCM, low: float = 300.0, high: float = 3400.0) -> float:
    power = np.abs(np.fft.rfft(audio.astype(np.float64))) ** 2
    freqs = np.fft.rfftfreq(len(audio), 1.0 / SAMPLE_RATE)
    return float(power[(freqs >= low) & (freqs <= high)].sum() / power.sum())


def centroid(audio: PCM) -> float:
    power = np.abs(np.fft.rfft(audio.astype(np.float64))) ** 2
    return float((power * np.fft.rfftfreq(len(audio), 1.0 / SAMPLE_RATE)).sum() / power.sum())


@pytest.fixture(scope="module")
def made() -> dict[str, list[PCM]]:
    """Twenty of each event at its default level, one seed each."""
    return {
        name: [make(np.random.default_rng(seed)) for seed in SEEDS]
        for name, (make, *_) in EVENTS.items()
    }


@pytest.mark.parametrize("name", EVENTS)
def test_events_keep_their_documented_length_level_and_band(
    made: dict[str, list[PCM]], name: str
) -> None:
    _, dbfs, shortest, longest = EVENTS[name]
    for audio in made[name]:
        assert audio.dtype == np.int16
        assert audio.ndim == 1
        assert shortest * SAMPLE_RATE - 1 <= len(audio) <= longest * SAMPLE_RATE + 1
        # only a cough is peaky enough to clip at its default level, and clipping costs level
        assert dbfs - (1.5 if name == "cough" else 0.1) <= level(audio) <= dbfs + 0.05
        assert band_share(audio) > 0.5


@pytest.mark.parametrize("name", EVENTS)
def test_events_are_the_same_for_a_seed_and_vary_between_seeds(
    made: dict[str, list[PCM]], name: str
) -> None:
    make = EVENTS[name][0]
    assert np.array_equal(make(np.random.default_rng(3)), made[name][3])
    sounds = made[name]
    assert len({audio.tobytes() for audio in sounds}) == len(sounds)
    lengths = [len(audio) / SAMPLE_RATE for audio in sounds]
    _, _, shortest, longest = EVENTS[name]
    assert max(lengths) - min(lengths) > 0.4 * (longest - shortest)
    centroids = [centroid(audio) for audio in sounds]
    assert max(centroids) - min(centroids) > 200.0


@pytest.mark.parametrize("name", EVENTS)
def test_events_take_any_level(name: str) -> None:
    make = EVENTS[name][0]
    quiet = make(np.random.default_rng(0), dbfs=-45.0)
    assert level(quiet) == pytest.approx(-45.0, abs=0.1)
    loud = make(np.random.default_rng(0), dbfs=0.0)  # clips, within int16
    assert loud.dtype == np.int16
    assert level(loud) < 0.0


def test_a_cough_bursts_and_a_breath_swells(made: dict[str, list[PCM]]) -> None:
    def frame_levels(audio: PCM) -> list[float]:
        whole = len(audio) // FRAME_SAMPLES * FRAME_SAMPLES
        frames = audio[:whole].astype(np.float64).reshape(-1, FRAME_SAMPLES)
        return [10.0 * math.log10(float(np.mean(f * f)) / 32768.0**2 + 1e-12) for f in frames]

    for audio in made["cough"]:
        assert max(frame_levels(audio)) - level(audio) > 3.0  # an explosive burst
    for audio in made["breath"]:
        levels = frame_levels(audio)
        assert levels[0] < max(levels) - 10.0
        assert levels[-1] < max(levels) - 10.0


@pytest.mark.parametrize("color", ["white", "pink"])
def test_hiss_has_its_length_and_exact_level(color: Literal["white", "pink"]) -> None:
    audio = hiss(2.5, dbfs=-45.0, rng=np.random.default_rng(0), color=color)
    assert audio.dtype == np.int16
    assert len(audio) == 20_000
    assert level(audio) == pytest.approx(-45.0, abs=0.02)
    assert np.array_equal(audio, hiss(2.5, dbfs=-45.0, rng=np.random.default_rng(0), color=color))
    assert not np.array_equal(
        audio, hiss(2.5, dbfs=-45.0, rng=np.random.default_rng(1), color=color)
    )


def test_hiss_colours() -> None:
    white = hiss(4.0, dbfs=-40.0, rng=np.random.default_rng(0))
    pink = hiss(4.0, dbfs=-40.0, rng=np.random.default_rng(0), color="pink")
    # white: as much power in 2-4 kHz as in 0-2 kHz; pink: 3 dB less an octave, none under 100 Hz
    assert band_share(white, 0, 2000) == pytest.approx(0.5, abs=0.02)
    assert band_share(pink, 100, 200) == pytest.approx(band_share(pink, 1000, 2000), rel=0.1)
    assert band_share(pink, 0, 99) < 1e-4


def test_hiss_edges() -> None:
    rng = np.random.default_rng(0)
    assert hiss(0.0, dbfs=-40.0, rng=rng).shape == (0,)
    assert hiss(0.0, dbfs=-40.0, rng=rng, color="pink").dtype == np.int16
    with pytest.raises(ValueError, match="seconds"):
        hiss(-1.0, dbfs=-40.0, rng=rng)
    with pytest.raises(ValueError, match="seconds"):
        hiss(math.inf, dbfs=-40.0, rng=rng)
    with pytest.raises(ValueError, match="color"):
        hiss(1.0, dbfs=-40.0, rng=rng, color="brown")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="dbfs"):
        hiss(1.0, dbfs=math.nan, rng=rng)


def test_at_dbfs_scales_to_an_rms_level() -> None:
    tone = np.sin(2 * np.pi * 440 * np.arange(8000) / SAMPLE_RATE)
    assert level(at_dbfs(tone, -20.0)) == pytest.approx(-20.0, abs=0.01)
    pcm = at_dbfs(tone, -20.0)
    assert level(at_dbfs(pcm, -30.0)) == pytest.approx(-30.0, abs=0.01)
    assert at_dbfs(tone.reshape(80, 100), -20.0).shape == (80, 100)


def test_at_dbfs_clips_within_int16() -> None:
    loud = at_dbfs(np.array([1.0, -1.0, 0.001, -0.001]), 12.0)
    assert loud.dtype == np.int16
    assert loud.tolist()[:2] == [32767, -32768]


def test_at_dbfs_edges() -> None:
    assert at_dbfs(np.zeros(0), -20.0).dtype == np.int16
    assert at_dbfs(np.zeros(0), -20.0).shape == (0,)
    assert not at_dbfs(np.zeros(100, np.int16), -20.0).any()
    with pytest.raises(ValueError, match="dbfs"):
        at_dbfs(np.ones(10), math.inf)


def test_mix_adds_at_an_offset_and_saturates() -> None:
    base = np.full(8000, 30000, np.int16)
    base[:4000] = -30000
    other = np.full(1000, 10000, np.int16)
    mixed = mix(base, other, at_s=0.25)
    assert mixed.dtype == np.int16
    assert len(mixed) == len(base)
    assert mixed[1999] == -30000
    assert mixed[2000] == -20000
    assert mixed[2999] == -20000
    assert mixed[3000] == -30000
    assert base[2000] == -30000  # a new array
    assert mix(base, -other, at_s=0.0)[0] == -32768
    assert mix(base, other, at_s=0.75)[6000] == 32767


def test_mix_edges() -> None:
    base = np.arange(100, dtype=np.int16)
    other = np.ones(1000, np.int16)
    assert np.array_equal(mix(base, other, at_s=0.0), base + 1)  # longer than base: cut off
    assert np.array_equal(mix(base, other, at_s=50 / SAMPLE_RATE)[49:51], [49, 51])
    assert np.array_equal(mix(base, other, at_s=1.0), base)  # past the end: nothing added
    assert np.array_equal(mix(base, np.zeros(0, np.int16), at_s=0.0), base)
    assert mix(np.zeros(0, np.int16), other, at_s=0.0).shape == (0,)
    with pytest.raises(ValueError, match="at_s"):
        mix(base, other, at_s=-0.01)
    with pytest.raises(ValueError, match="at_s"):
        mix(base, other, at_s=math.nan)


def talk_like(rng: np.random.Generator, seconds: float) -> PCM:
    """A stand-in for a speech clip: syllable-like bursts of a voiced buzz, 5 a second."""
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    buzz = np.sign(np.sin(2 * np.pi * rng.uniform(100, 220) * t))
    envelope = np.clip(np.sin(2 * np.pi * 2.5 * t), 0, None)
    return at_dbfs(buzz * envelope, -20.0)


def test_babble_has_its_length_and_exact_level_and_few_gaps() -> None:
    rng = np.random.default_rng(0)
    clips = [talk_like(rng, s) for s in (1.2, 2.0, 2.6)]
    room = babble(clips, 8.0, dbfs=-40.0, rng=np.random.default_rng(1), talkers=4)
    assert room.dtype == np.int16
    assert len(room) == 8 * SAMPLE_RATE
    assert level(room) == pytest.approx(-40.0, abs=0.05)
    frames = room.astype(np.float64).reshape(-1, FRAME_SAMPLES)
    loudness = np.sqrt((frames**2).mean(axis=1))
    # Each stand-in talker is silent half the time; four who never pause together leave few
    # silent 20 ms frames, one leaves many.
    assert float(np.mean(loudness < 10 ** (-60 / 20) * 32768)) < 0.15
    one = babble(clips, 8.0, dbfs=-40.0, rng=np.random.default_rng(1), talkers=1)
    assert (
        float(
            np.mean(
                np.sqrt((one.astype(np.float64).reshape(-1, FRAME_SAMPLES) ** 2).mean(axis=1))
                < 10 ** (-60 / 20) * 32768
            )
        )
        > 0.2
    )


def test_babble_is_the_same_for_a_seed_and_varies_between_seeds() -> None:
    clips = [talk_like(np.random.default_rng(s), 1.5) for s in range(3)]
    first = babble(clips, 3.0, dbfs=-35.0, rng=np.random.default_rng(7))
    assert np.array_equal(first, babble(clips, 3.0, dbfs=-35.0, rng=np.random.default_rng(7)))
    assert not np.array_equal(first, babble(clips, 3.0, dbfs=-35.0, rng=np.random.default_rng(8)))
    assert len(babble(clips, 0.0, dbfs=-35.0, rng=np.random.default_rng(7))) == 0


@pytest.mark.parametrize(
    ("clips", "seconds", "talkers", "message"),
    [
        ([], 1.0, 4, "at least one clip"),
        ([np.zeros(800, dtype=np.int16)], 1.0, 4, "at least one clip"),
        ([np.ones(800, dtype=np.int16)], -1.0, 4, "seconds"),
        ([np.ones(800, dtype=np.int16)], math.inf, 4, "seconds"),
        ([np.ones(800, dtype=np.int16)], 1.0, 0, "talkers"),
    ],
)
def test_babble_refuses_what_it_cannot_make(
    clips: list[PCM], seconds: float, talkers: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        babble(clips, seconds, dbfs=-40.0, rng=np.random.default_rng(0), talkers=talkers)
