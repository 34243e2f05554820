"""Tests for the telephone audio helpers: μ-law, framing and resampling."""

from __future__ import annotations

import warnings
from types import ModuleType

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from phoneactors.audio import (
    FRAME_BYTES,
    FRAME_MS,
    FRAME_SAMPLES,
    SAMPLE_RATE,
    Framer,
    Resampler,
    float_to_pcm,
    pcm_to_float,
    resample,
    silence,
    ulaw_decode,
    ulaw_encode,
)

ALL_INT16 = np.arange(-32768, 32768, dtype=np.int16)
ALL_BYTES = bytes(range(256))


def audioop() -> ModuleType:
    """The deprecated stdlib reference codec; the test is skipped where it is gone (3.13+)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        module: ModuleType = pytest.importorskip("audioop")
    return module


# --------------------------------------------------------------------------------------------
# μ-law


def test_constants() -> None:
    assert SAMPLE_RATE == 8000
    assert FRAME_MS == 20
    assert FRAME_SAMPLES == FRAME_BYTES == 160


def test_encode_bit_exact_with_audioop() -> None:
    reference = audioop().lin2ulaw(ALL_INT16.tobytes(), 2)
    assert ulaw_encode(ALL_INT16) == reference


def test_decode_bit_exact_with_audioop() -> None:
    reference = np.frombuffer(audioop().ulaw2lin(ALL_BYTES, 2), dtype=np.int16)
    np.testing.assert_array_equal(ulaw_decode(ALL_BYTES), reference)


@pytest.mark.parametrize(
    ("sample", "code"),
    # -1 is 0x7E, not "negative zero" 0x7F: G.711 drops two bits by an arithmetic shift.
    [(0, 0xFF), (-1, 0x7E), (32767, 0x80), (-32768, 0x00), (8031, 0xA0), (-8031, 0x20)],
)
def test_g711_encode_reference_points(sample: int, code: int) -> None:
    assert ulaw_encode(np.array([sample], dtype=np.int16)) == bytes([code])


@pytest.mark.parametrize(
    ("code", "sample"),
    [(0xFF, 0), (0x7F, 0), (0x80, 32124), (0x00, -32124), (0xFE, 8), (0x7E, -8), (0xF0, 120)],
)
def test_g711_decode_reference_points(code: int, sample: int) -> None:
    decoded = ulaw_decode(bytes([code]))
    assert decoded.dtype == np.int16
    assert decoded.tolist() == [sample]


def test_shapes_and_types() -> None:
    assert ulaw_encode(np.zeros(0, dtype=np.int16)) == b""
    assert ulaw_decode(b"").shape == (0,)
    frame = ulaw_decode(b"\xff" * FRAME_BYTES)
    assert frame.dtype == np.int16
    assert frame.shape == (FRAME_SAMPLES,)
    assert len(ulaw_encode(frame)) == FRAME_BYTES


def test_decode_gives_a_fresh_array_for_any_bytes() -> None:
    data = bytearray(ALL_BYTES)
    for source in (ALL_BYTES, data, memoryview(data)):
        decoded = ulaw_decode(source)  # type: ignore[arg-type]
        assert decoded.dtype == np.int16
        assert decoded.flags.writeable
        assert decoded.flags.c_contiguous
        np.testing.assert_array_equal(decoded, ulaw_decode(ALL_BYTES))
    decoded[0] = 1  # the table is not behind it
    assert ulaw_decode(ALL_BYTES)[0] == -32124


def test_decode_encode_error_bounds() -> None:
    x = ALL_INT16.astype(np.int32)
    y = ulaw_decode(ulaw_encode(ALL_INT16)).astype(np.int32)
    error = np.abs(y - x)
    # Logarithmic quantisation: the error grows with the magnitude, about 1/32 of it ...
    in_range = np.abs(x) <= 32124 + 128
    assert np.all(error[in_range] <= 8 + np.abs(x[in_range]) / 32)
    # ... and the loudest code is 32124, so the clipped top costs at most 644.
    assert error.max() <= 644
    # Louder in, never quieter out.
    assert np.all(np.diff(y) >= 0)


def test_encode_decode_is_identity_on_codes() -> None:
    codes = np.frombuffer(ALL_BYTES, dtype=np.uint8)
    again = np.frombuffer(ulaw_encode(ulaw_decode(ALL_BYTES)), dtype=np.uint8)
    differs = np.flatnonzero(again != codes)
    assert differs.tolist() == [0x7F]  # "negative zero" decodes to 0, which encodes as 0xFF
    assert again[0x7F] == 0xFF


def test_sine_survives_the_codec() -> None:
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    pcm = float_to_pcm(0.5 * np.sin(2 * np.pi * 440 * t))
    decoded = ulaw_decode(ulaw_encode(pcm)).astype(np.float64)
    noise = decoded - pcm
    snr_db = 10 * np.log10(np.sum(pcm.astype(np.float64) ** 2) / np.sum(noise**2))
    assert snr_db > 35


# --------------------------------------------------------------------------------------------
# Conversions


def test_float_to_pcm_clips() -> None:
    samples = np.array([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, np.inf, -np.inf], dtype=np.float32)
    assert float_to_pcm(samples).tolist() == [
        -32767,
        -32767,
        -16384,
        0,
        16384,
        32767,
        32767,
        32767,
        -32767,
    ]
    assert float_to_pcm(samples).dtype == np.int16
    assert float_to_pcm(np.array([0.25], dtype=np.float64)).tolist() == [8192]


def test_pcm_to_float() -> None:
    pcm = np.array([-32768, -16384, 0, 16384, 32767], dtype=np.int16)
    out = pcm_to_float(pcm)
    assert out.dtype == np.float32
    assert out.tolist() == [-1.0, -0.5, 0.0, 0.5, 32767 / 32768]
    assert np.all(float_to_pcm(pcm_to_float(ALL_INT16)) - ALL_INT16.astype(np.int32) <= 1)


def test_silence() -> None:
    assert silence(FRAME_MS).tolist() == [0] * FRAME_SAMPLES
    assert silence(FRAME_MS).dtype == np.int16
    assert len(silence(1000)) == SAMPLE_RATE
    assert len(silence(0)) == 0


# --------------------------------------------------------------------------------------------
# Framer


def pcm(n: int, start: int = 0) -> npt.NDArray[np.int16]:
    return np.arange(start, start + n, dtype=np.int16)


def test_framer_keeps_the_remainder() -> None:
    framer = Framer()
    assert framer.push(pcm(100)) == []
    frames = framer.push(pcm(100, 100))
    assert len(frames) == 1
    np.testing.assert_array_equal(frames[0], pcm(160))
    [tail] = framer.flush()
    assert tail.dtype == np.int16
    np.testing.assert_array_equal(tail[:40], pcm(40, 160))
    np.testing.assert_array_equal(tail[40:], np.zeros(120, dtype=np.int16))
    assert framer.flush() == []


def test_framer_exact_frames() -> None:
    framer = Framer()
    frames = framer.push(pcm(3 * FRAME_SAMPLES))
    assert [len(f) for f in frames] == [FRAME_SAMPLES] * 3
    np.testing.assert_array_equal(np.concatenate(frames), pcm(3 * FRAME_SAMPLES))
    assert framer.push(np.zeros(0, dtype=np.int16)) == []
    assert framer.flush() == []


def test_framer_custom_size_and_validation() -> None:
    framer = Framer(4)
    assert [f.tolist() for f in framer.push(pcm(10))] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert [f.tolist() for f in framer.flush()] == [[8, 9, 0, 0]]
    with pytest.raises(ValueError, match="frame_samples"):
        Framer(0)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 500), max_size=12))
def test_framer_any_pieces(sizes: list[int]) -> None:
    framer = Framer()
    total = sum(sizes)
    stream = pcm(total)
    frames: list[npt.NDArray[np.int16]] = []
    offset = 0
    for size in sizes:
        frames += framer.push(stream[offset : offset + size])
        offset += size
    assert len(frames) == total // FRAME_SAMPLES
    frames += framer.flush()
    assert all(len(f) == FRAME_SAMPLES and f.dtype == np.int16 for f in frames)
    assert len(frames) == -(-total // FRAME_SAMPLES)
    joined = np.concatenate(frames) if frames else np.zeros(0, dtype=np.int16)
    np.testing.assert_array_equal(joined[:total], stream)
    assert not joined[total:].any()


# --------------------------------------------------------------------------------------------
# Resampling


def tone(rate: int, frequency: float, seconds: float = 1.0) -> npt.NDArray[np.float32]:
    t = np.arange(int(rate * seconds)) / rate
    return (0.5 * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


def peak_frequency(samples: npt.NDArray[np.float32], rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.argmax(spectrum)) * rate / len(samples)


def stream_through(
    resampler: Resampler, samples: npt.NDArray[np.float32] | npt.NDArray[np.int16], chunk: int
) -> npt.NDArray[np.float32]:
    pieces = [resampler.process(samples[i : i + chunk]) for i in range(0, len(samples), chunk)]
    pieces.append(resampler.flush())
    assert all(p.dtype == np.float32 for p in pieces)
    return np.concatenate(pieces)


@pytest.mark.parametrize(
    ("from_rate", "to_rate", "frequency", "as_pcm"),
    [(24000, 8000, 1000.0, False), (8000, 16000, 440.0, True), (22050, 8000, 700.0, False)],
)
def test_streaming_resampler_matches_one_shot(
    from_rate: int, to_rate: int, frequency: float, as_pcm: bool
) -> None:
    source = tone(from_rate, frequency)
    samples = float_to_pcm(source) if as_pcm else source
    one_shot = resample(samples, from_rate, to_rate)
    streamed = stream_through(Resampler(from_rate, to_rate), samples, from_rate // 50)
    assert one_shot.dtype == np.float32
    assert abs(len(one_shot) - to_rate) <= 4
    assert abs(len(streamed) - len(one_shot)) <= 4
    n = min(len(streamed), len(one_shot))
    np.testing.assert_allclose(streamed[:n], one_shot[:n], atol=1e-3)
    assert peak_frequency(streamed, to_rate) == pytest.approx(frequency, abs=2)
    assert peak_frequency(one_shot, to_rate) == pytest.approx(frequency, abs=2)
    middle = streamed[n // 4 : 3 * n // 4]
    assert np.max(np.abs(middle)) == pytest.approx(0.5, abs=0.02)


def test_resampler_odd_chunks() -> None:
    source = tone(24000, 1000)
    whole = stream_through(Resampler(24000, 8000), source, 480)
    odd = stream_through(Resampler(24000, 8000), source, 37)
    assert abs(len(whole) - len(odd)) <= 2
    n = min(len(whole), len(odd))
    np.testing.assert_allclose(whole[:n], odd[:n], atol=1e-3)


def test_resample_same_rate_is_identity() -> None:
    source = tone(8000, 440, 0.1)
    np.testing.assert_array_equal(resample(source, 8000, 8000), source)
    pcm16 = float_to_pcm(source)
    np.testing.assert_array_equal(resample(pcm16, 8000, 8000), pcm_to_float(pcm16))


@pytest.mark.parametrize(("from_rate", "to_rate"), [(0, 8000), (8000, 0), (-1, 8000)])
def test_resampler_rejects_bad_rates(from_rate: int, to_rate: int) -> None:
    with pytest.raises(ValueError, match="sample rates must be positive"):
        Resampler(from_rate, to_rate)
