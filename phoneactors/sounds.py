"""Synthetic non-speech sounds, for tests, benchmarks and the simulator.

Pure numpy and synchronous. Every generator draws all its randomness from the
``numpy.random.Generator`` it is given, so the same seed always makes the same sound, and twenty
seeds make twenty different ones. Everything comes back as :data:`~phoneactors.audio.PCM`: int16
mono at 8 kHz, as a caller's audio arrives.

These imitate what a phone line carries besides speech, none of it recorded: stationary line
noise (:func:`hiss`), other people talking in the caller's room (:func:`babble`, made from speech
clips you give it), and short events a caller makes while the bot talks (:func:`cough`,
:func:`breath`, :func:`knock`, :func:`click`). The events pass a telephone band (most of their
energy between 300 and 3400 Hz, as after a real handset and codec), and vary by seed in length,
resonances and structure. They are plausible, not faithful: good for asking "does the runtime
ignore this?", not for training a classifier.

Levels are dBFS of the whole clip's RMS, full scale being 32768 (a full-scale square wave is
0 dBFS, a full-scale sine -3 dBFS). A short loud event's loudest 20 ms is several dB above its
clip level, and samples beyond int16 are clipped, as a phone's converter would.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt

from .audio import PCM, SAMPLE_RATE

__all__ = ["at_dbfs", "babble", "breath", "click", "cough", "hiss", "knock", "mix"]

_Floats = npt.NDArray[np.float64]

_FULL_SCALE: Final = 32768.0
"""0 dBFS as an RMS in int16 units."""
_BAND_LOW_HZ: Final = 300.0
_BAND_HIGH_HZ: Final = 3400.0
"""The telephone band: the events' energy is mostly between these."""
_PINK_LOW_HZ: Final = 100.0
"""Pink hiss has no energy below this: a phone path passes little of it, and 1/f noise down to
0 Hz would be mostly a slow wander of the waveform, not hiss."""
_EDGE_S: Final = 0.005
"""Every event fades out over its last 5 ms, so being cut off makes no click of its own."""


def at_dbfs(audio: npt.NDArray[Any], dbfs: float) -> PCM:
    """``audio`` (int16 or float, any scale) scaled so its RMS is ``dbfs``, as int16.

    Samples that the scaling pushes beyond int16 are clipped to -32768..32767, so a loud,
    peaky clip comes out a little quieter than asked. Empty audio gives empty audio, and audio
    that is all zeros stays all zeros (there is nothing to scale). ``dbfs`` must be finite
    (``ValueError`` otherwise); above about 0 dBFS everything clips.
    """
    if not math.isfinite(dbfs):
        raise ValueError(f"dbfs must be a finite number, got {dbfs!r}")
    samples = np.asarray(audio, dtype=np.float64)
    rms = math.sqrt(float(np.mean(samples * samples))) if samples.size else 0.0
    if rms == 0.0:
        return np.zeros(samples.shape, dtype=np.int16)
    scaled = samples * (_FULL_SCALE * math.pow(10.0, dbfs / 20.0) / rms)
    return np.clip(np.round(scaled), -32768, 32767).astype(np.int16)


def mix(base: PCM, other: PCM, *, at_s: float) -> PCM:
    """``base`` with ``other`` added in starting ``at_s`` seconds into it; a new array.

    The result is always as long as ``base``: whatever of ``other`` runs past the end of
    ``base`` is cut off, and an ``at_s`` at or past the end adds nothing. Sums beyond int16
    saturate at -32768 and 32767 rather than wrap. ``at_s`` is rounded to the nearest sample;
    a negative or non-finite ``at_s`` raises ``ValueError``.
    """
    if not 0.0 <= at_s < math.inf:
        raise ValueError(f"at_s must be a finite number of seconds >= 0, got {at_s!r}")
    out = np.asarray(base, dtype=np.int32).copy()
    start = round(at_s * SAMPLE_RATE)
    if start < len(out):
        count = min(len(other), len(out) - start)
        out[start : start + count] += np.asarray(other[:count], dtype=np.int32)
    return np.clip(out, -32768, 32767).astype(np.int16)


def hiss(
    seconds: float,
    *,
    dbfs: float,
    rng: np.random.Generator,
    color: Literal["white", "pink"] = "white",
) -> PCM:
    """``seconds`` of stationary line noise at an RMS of ``dbfs``.

    ``"white"`` is flat from 0 to 4 kHz (the hiss of an analogue line, or of μ-law's own
    quantisation); ``"pink"`` falls 3 dB an octave from 100 Hz to 4 kHz, with nothing below
    100 Hz (a duller rumble, its energy swinging more from one 20 ms frame to the next). The
    level is exact over the whole clip, to within int16 rounding. ``seconds`` is rounded to
    the nearest sample; 0 gives empty audio. A negative or non-finite ``seconds``, or another
    ``color``, raises ``ValueError``.
    """
    if not 0.0 <= seconds < math.inf:
        raise ValueError(f"seconds must be a finite number >= 0, got {seconds!r}")
    if color not in ("white", "pink"):
        raise ValueError(f"color must be 'white' or 'pink', got {color!r}")
    noise = rng.standard_normal(round(seconds * SAMPLE_RATE))
    if color == "pink" and len(noise):
        spectrum = np.fft.rfft(noise)  # circular filtering: the noise stays stationary
        freqs = np.fft.rfftfreq(len(noise), 1.0 / SAMPLE_RATE)
        spectrum *= np.where(freqs >= _PINK_LOW_HZ, 1.0 / np.sqrt(np.maximum(freqs, 1.0)), 0.0)
        noise = np.fft.irfft(spectrum, len(noise))
    return at_dbfs(noise, dbfs)


def babble(
    clips: Sequence[npt.NDArray[Any]],
    seconds: float,
    *,
    dbfs: float,
    rng: np.random.Generator,
    talkers: int = 4,
) -> PCM:
    """``seconds`` of ``talkers`` people talking at once at an RMS of ``dbfs``: voices in the
    background of a call (a café, an office, a television), made from speech ``clips``.

    Each talker says clips drawn at random one after another, with 0.1-0.6 s between them,
    starting at a random point of their first clip, so the talkers never start or pause
    together; the sum is scaled to ``dbfs`` over the whole clip. It is as loud in its quietest
    stretches as speech babble is: several talkers leave few gaps. ``clips`` are 8 kHz audio
    (int16 or float); at least one must have sound. ``talkers`` is at least 1; ``seconds``
    follows :func:`hiss`. Anything else raises ``ValueError``.
    """
    if not 0.0 <= seconds < math.inf:
        raise ValueError(f"seconds must be a finite number >= 0, got {seconds!r}")
    if talkers < 1:
        raise ValueError(f"talkers must be at least 1, got {talkers!r}")
    voiced = [np.asarray(clip, dtype=np.float64) for clip in clips if np.any(clip)]
    if not voiced:
        raise ValueError("babble needs at least one clip with sound in it")
    n = round(seconds * SAMPLE_RATE)
    room = np.zeros(n)
    for _ in range(talkers):
        clip = voiced[int(rng.integers(len(voiced)))]
        at = -int(rng.integers(0, len(clip)))  # some way into their first clip
        while at < n:
            start, end = max(at, 0), min(at + len(clip), n)
            room[start:end] += clip[start - at : end - at]
            at += len(clip) + round(rng.uniform(0.1, 0.6) * SAMPLE_RATE)
            clip = voiced[int(rng.integers(len(voiced)))]
    return at_dbfs(room, dbfs)


def cough(rng: np.random.Generator, *, dbfs: float = -18.0) -> PCM:
    """A cough, 0.25-0.7 s long, at an RMS of ``dbfs`` over the whole clip.

    One or two explosive bursts (two only in coughs of 0.45 s or more; the second 0.5-0.9 times
    as loud as the first, 45-60% of the way in). Each burst rises in 5-10 ms and decays
    exponentially (time constant 50-130 ms); its first ~25 ms are a broadband blast, the rest
    turbulent noise through the cough's own vocal tract: three resonances (350-900, 1000-2000
    and 2200-3200 Hz, 120-450 Hz wide) and a random spectral tilt. About half the bursts also
    carry 60-200 ms of rough glottal buzz through the same tract (F0 130-380 Hz, 3-12% jitter,
    some shimmer), so neither periodicity nor spectrum alone tells a cough from speech.

    A cough is peaky: its loudest 20 ms is 4-11 dB above its clip level, and at the default
    level a few samples clip, which can leave the clip up to 1.5 dB quieter than ``dbfs``.
    """
    seconds = rng.uniform(0.25, 0.7)
    n = round(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    starts = [rng.uniform(0.0, 0.02)]
    if seconds >= 0.45 and rng.random() < 0.6:
        starts.append(rng.uniform(0.45, 0.6) * seconds)
    tract = _tract(
        centres=(rng.uniform(350, 900), rng.uniform(1000, 2000), rng.uniform(2200, 3200)),
        widths=tuple(rng.uniform(120, 450, size=3)),
        gains=(1.0, rng.uniform(0.4, 1.0), rng.uniform(0.2, 0.7)),
        tilt_db=rng.uniform(-6.0, 0.0),
    )
    blast = _unit(_filtered(rng.standard_normal(n), _tilt(rng.uniform(-3.0, 0.0))))
    turbulence = _unit(_filtered(rng.standard_normal(n), tract))
    sound = np.zeros(n)
    for i, start in enumerate(starts):
        amplitude = 1.0 if i == 0 else rng.uniform(0.5, 0.9)
        since = np.maximum(t - start, 0.0)
        attack = rng.uniform(0.005, 0.010)
        envelope = np.where(
            t < start,
            0.0,
            np.where(
                since < attack, since / attack, np.exp(-(since - attack) / rng.uniform(0.05, 0.13))
            ),
        )
        blast_share = np.exp(-since / 0.025)
        sound += amplitude * envelope * (blast_share * blast + (1.0 - blast_share) * turbulence)
        if rng.random() < 0.5:
            onset = start + rng.uniform(0.02, 0.06)
            sound += amplitude * rng.uniform(0.3, 0.8) * _buzz(rng, t, onset, tract)
    return at_dbfs(_faded(sound), dbfs)


def breath(rng: np.random.Generator, *, dbfs: float = -35.0) -> PCM:
    """A breath into the mouthpiece, 0.3-0.9 s long, at an RMS of ``dbfs`` over the whole clip.

    Soft noise, low-passed by a random tilt and shaped by one broad resonance (500-1500 Hz,
    600-1500 Hz wide) and a weaker second one (1500-2800 Hz). It swells smoothly for 30-60% of
    its length and fades for the rest, with a slow 5-15% flutter on top.
    """
    seconds = rng.uniform(0.3, 0.9)
    n = round(seconds * SAMPLE_RATE)
    shape = _tract(
        centres=(rng.uniform(500, 1500), rng.uniform(1500, 2800)),
        widths=(rng.uniform(600, 1500), rng.uniform(400, 1000)),
        gains=(1.0, rng.uniform(0.2, 0.5)),
        tilt_db=rng.uniform(-6.0, -2.0),
    )
    noise = _filtered(rng.standard_normal(n), shape)
    rise = max(1, round(n * rng.uniform(0.3, 0.6)))
    envelope = np.concatenate(
        [
            np.sin(0.5 * np.pi * np.arange(rise) / rise) ** 2,
            np.cos(0.5 * np.pi * np.arange(n - rise) / max(1, n - rise)) ** 2,
        ]
    )
    points = max(2, round(seconds * 10))  # a new flutter target every ~100 ms
    flutter = 1.0 + rng.uniform(0.05, 0.15) * np.interp(
        np.arange(n), np.linspace(0, n - 1, points), rng.uniform(-1.0, 1.0, size=points)
    )
    return at_dbfs(_faded(noise * envelope * flutter), dbfs)


def knock(rng: np.random.Generator, *, dbfs: float = -20.0) -> PCM:
    """A knock on a door or a thud on the table, 0.15-0.86 s long, at an RMS of ``dbfs``.

    One to three hits 120-300 ms apart, of similar strength (0.7-1.1 times the first). Each hit
    is a short knuckle contact (2-4 ms of noise) exciting three low resonant modes of the panel
    (120-250, 300-550 and 600-900 Hz, the middle one strongest), each decaying exponentially
    (time constants 15-60 ms, shorter for higher modes); the telephone band then takes most of
    the lowest, so what is left is a dull thud. The last hit rings for 150-250 ms.
    """
    hits = int(rng.integers(1, 4))
    times = np.cumsum([rng.uniform(0.0, 0.01), *rng.uniform(0.12, 0.3, size=hits - 1)])
    n = round((times[-1] + rng.uniform(0.15, 0.25)) * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    modes = (
        (rng.uniform(120, 250), rng.uniform(0.03, 0.06), rng.uniform(0.3, 0.7)),
        (rng.uniform(300, 550), rng.uniform(0.02, 0.04), 1.0),
        (rng.uniform(600, 900), rng.uniform(0.015, 0.03), rng.uniform(0.3, 0.7)),
    )
    contact_s = rng.uniform(0.002, 0.004)
    sound = np.zeros(n)
    for i, time in enumerate(times):
        strength = 1.0 if i == 0 else rng.uniform(0.7, 1.1)
        since = t - time
        after = since >= 0.0
        ring = sum(
            gain * np.exp(-since[after] / tau) * np.sin(2 * np.pi * freq * since[after])
            for freq, tau, gain in modes
        )
        contact = rng.uniform(0.3, 0.6) * rng.standard_normal(int(after.sum()))
        contact *= np.exp(-since[after] / contact_s)
        sound[after] += strength * (ring + contact)
    return at_dbfs(_faded(_filtered(sound, _telephone)), dbfs)


def click(rng: np.random.Generator, *, dbfs: float = -20.0) -> PCM:
    """A click or crackle on the line, 10-40 ms long, at an RMS of ``dbfs`` over the clip.

    Sharp impulses of random sign and strength, the first at the very start and then about one
    every 4-8 ms through the first 80% of the clip, each ringing briefly (0.5-3 ms) at
    1000-3200 Hz: a loose contact, a handset being knocked, a crackling line.
    """
    seconds = rng.uniform(0.010, 0.040)
    n = round(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    count = max(1, round(seconds / rng.uniform(0.004, 0.008)))
    times = np.concatenate([[rng.uniform(0.0, 0.002)], rng.uniform(0.0, 0.8 * seconds, count - 1)])
    sound = np.zeros(n)
    for time in times:
        since = t - time
        after = since >= 0.0
        sound[after] += (
            rng.choice((-1.0, 1.0))
            * rng.uniform(0.3, 1.0)
            * np.exp(-since[after] / rng.uniform(0.0005, 0.003))
            * np.cos(2 * np.pi * rng.uniform(1000, 3200) * since[after])
        )
    return at_dbfs(_filtered(sound, _telephone), dbfs)


# The helpers below work in float64 on whole clips; ``_filtered`` is zero-phase FFT filtering.


def _filtered(samples: _Floats, gain: Callable[[_Floats], _Floats]) -> _Floats:
    """``samples`` through a filter of magnitude ``gain(frequency in Hz)`` and zero phase.

    Padded to twice the length first, so nothing rings round from the end to the start.
    """
    n = len(samples)
    size = 2 * n
    spectrum = np.fft.rfft(samples, size)
    spectrum *= gain(np.asarray(np.fft.rfftfreq(size, 1.0 / SAMPLE_RATE), dtype=np.float64))
    return np.fft.irfft(spectrum, size)[:n]


def _telephone(freqs: _Floats) -> _Floats:
    """A handset and codec's band: 4th-order high-pass at 300 Hz, 4th-order low-pass at 3400."""
    high_pass = freqs**4 / np.sqrt(freqs**8 + _BAND_LOW_HZ**8)
    low_pass = 1.0 / np.sqrt(1.0 + (freqs / _BAND_HIGH_HZ) ** 8)
    result: _Floats = high_pass * low_pass
    return result


def _tilt(tilt_db: float) -> Callable[[_Floats], _Floats]:
    """The telephone band with a spectral slope of ``tilt_db`` per octave around 1 kHz."""

    def gain(freqs: _Floats) -> _Floats:
        slope: _Floats = np.maximum(freqs, 50.0) / 1000.0
        return _telephone(freqs) * slope ** (tilt_db / 6.02)

    return gain


def _tract(
    *,
    centres: tuple[float, ...],
    widths: tuple[float, ...],
    gains: tuple[float, ...],
    tilt_db: float,
) -> Callable[[_Floats], _Floats]:
    """Resonances (like a vocal tract's formants) on a tilted telephone band."""
    tilted = _tilt(tilt_db)

    def gain(freqs: _Floats) -> _Floats:
        peaks = sum(
            g / np.sqrt(1.0 + ((freqs - c) / (w / 2.0)) ** 2)
            for c, w, g in zip(centres, widths, gains, strict=True)
        )
        return tilted(freqs) * (0.05 + peaks)

    return gain


def _buzz(
    rng: np.random.Generator, t: _Floats, onset: float, tract: Callable[[_Floats], _Floats]
) -> _Floats:
    """60-200 ms of rough glottal pulses through ``tract``, at unit RMS while they last."""
    seconds = rng.uniform(0.06, 0.2)
    f0 = rng.uniform(130, 380)
    jitter = rng.uniform(0.03, 0.12)
    pulses = np.zeros(len(t))
    time = onset
    while time < min(onset + seconds, t[-1]):
        pulses[round(time * SAMPLE_RATE)] = rng.uniform(0.7, 1.3)  # shimmer
        time += max(0.5, 1.0 + jitter * rng.standard_normal()) / f0
    inside = (t >= onset) & (t < onset + seconds)
    window = np.where(inside, np.sin(np.pi * (t - onset) / seconds) ** 2, 0.0)
    voiced = _filtered(pulses, tract) * window
    rms = math.sqrt(float(np.mean(voiced[inside] ** 2))) if inside.any() else 0.0
    return voiced / rms if rms else voiced


def _unit(samples: _Floats) -> _Floats:
    rms = math.sqrt(float(np.mean(samples * samples)))
    return samples / rms if rms else samples


def _faded(samples: _Floats) -> _Floats:
    """``samples`` with their last :data:`_EDGE_S` faded out (at most half the clip)."""
    count = min(round(_EDGE_S * SAMPLE_RATE), len(samples) // 2)
    if count:
        samples = samples.copy()
        samples[-count:] *= np.linspace(1.0, 0.0, count)
    return samples
