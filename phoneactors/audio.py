"""Telephone audio: G.711 μ-law ⇄ PCM16, resampling and 20 ms framing.

Pure and synchronous: no event loop, no I/O. Phone audio inside phoneactors is always
``numpy.int16`` mono at :data:`SAMPLE_RATE` (8 kHz); engines convert at their own edges.

The μ-law tables are computed once, lazily, and are bit-exact with ITU-T G.711 (and with the
deprecated ``audioop.lin2ulaw`` / ``audioop.ulaw2lin``) for every input.
"""

from __future__ import annotations

import functools
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import soxr

__all__ = [
    "FRAME_BYTES",
    "FRAME_MS",
    "FRAME_SAMPLES",
    "PCM",
    "SAMPLE_RATE",
    "Framer",
    "Resampler",
    "float_to_pcm",
    "pcm_to_float",
    "resample",
    "silence",
    "ulaw_decode",
    "ulaw_encode",
]

PCM = npt.NDArray[np.int16]
"""Mono 16-bit linear PCM samples."""

SAMPLE_RATE: Final = 8000
"""Twilio Media Streams carry 8 kHz mono μ-law."""
FRAME_MS: Final = 20
"""Twilio sends one media message per 20 ms of caller audio."""
FRAME_SAMPLES: Final = SAMPLE_RATE * FRAME_MS // 1000
"""160 samples in one 20 ms frame."""
FRAME_BYTES: Final = FRAME_SAMPLES
"""μ-law is one byte per sample, so a frame is 160 bytes."""

_BIAS: Final = 0x84
_CLIP14: Final = 8159
_UINT8: Final = np.dtype(np.uint8)
_SEGMENT_ENDS: Final = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])


@functools.cache
def _decode_table() -> npt.NDArray[np.int16]:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    sign = u & 0x80
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    magnitude = (((mantissa << 3) + _BIAS) << exponent) - _BIAS
    table = np.where(sign != 0, -magnitude, magnitude).astype(np.int16)
    table.flags.writeable = False
    return table


@functools.cache
def _encode_table() -> npt.NDArray[np.uint8]:
    """μ-law byte for every int16 value, indexed by ``sample + 32768``.

    G.711 works on 14-bit magnitudes: the sample is shifted right by two (rounding toward minus
    infinity, as the reference implementation does), biased, and split into segment and mantissa.
    """
    x = np.arange(-32768, 32768, dtype=np.int32) >> 2
    negative = x < 0
    magnitude = np.minimum(np.where(negative, -x, x), _CLIP14) + (_BIAS >> 2)
    segment = np.searchsorted(_SEGMENT_ENDS, magnitude)  # first end >= magnitude
    code = (segment << 4) | ((magnitude >> (segment + 1)) & 0x0F)
    code = np.where(segment >= 8, 0x7F, code)
    mask = np.where(negative, 0x7F, 0xFF)
    table = (code ^ mask).astype(np.uint8)
    table.flags.writeable = False
    return table


def ulaw_decode(data: bytes) -> PCM:
    """Decode μ-law bytes to int16 PCM (one sample per byte)."""
    # It runs for every inbound frame: ``take`` with a ready dtype is the quickest numpy way.
    return _decode_table().take(np.frombuffer(data, _UINT8))


def ulaw_encode(pcm: PCM) -> bytes:
    """Encode int16 PCM to μ-law bytes (one byte per sample)."""
    index = np.asarray(pcm, dtype=np.int16).astype(np.int32) + 32768
    return _encode_table()[index].tobytes()


def float_to_pcm(samples: npt.NDArray[np.floating]) -> PCM:
    """Convert float audio in [-1, 1] to int16, clipping anything outside."""
    scaled = np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0) * 32767.0
    return np.round(scaled).astype(np.int16)


def pcm_to_float(pcm: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    """Convert int16 PCM to float32 in [-1, 1)."""
    return np.asarray(pcm, dtype=np.float32) / 32768.0


def resample(
    samples: npt.NDArray[np.floating] | PCM, from_rate: int, to_rate: int
) -> npt.NDArray[np.float32]:
    """Resample a whole clip at once (soxr, high quality); returns float32 in [-1, 1]."""
    if samples.dtype == np.int16:
        samples = pcm_to_float(samples)
    data = np.asarray(samples, dtype=np.float32)
    if from_rate == to_rate:
        return data
    out: npt.NDArray[np.float32] = soxr.resample(data, from_rate, to_rate).astype(
        np.float32, copy=False
    )
    return out


def silence(ms: int) -> PCM:
    """``ms`` milliseconds of digital silence at 8 kHz."""
    return np.zeros(SAMPLE_RATE * ms // 1000, dtype=np.int16)


class Resampler:
    """Streaming resampler for audio that arrives in pieces (soxr ``ResampleStream``).

    Feed chunks with :meth:`process`; call :meth:`flush` once at the end for the tail that the
    filter was still holding. Output is float32.
    """

    def __init__(self, from_rate: int, to_rate: int) -> None:
        if from_rate <= 0 or to_rate <= 0:
            raise ValueError(f"sample rates must be positive, got {from_rate} and {to_rate}")
        self.from_rate = from_rate
        self.to_rate = to_rate
        self._stream = soxr.ResampleStream(from_rate, to_rate, 1, dtype="float32")

    def process(self, samples: npt.NDArray[np.floating] | PCM) -> npt.NDArray[np.float32]:
        if samples.dtype == np.int16:
            samples = pcm_to_float(samples)
        data = np.ascontiguousarray(samples, dtype=np.float32)
        out: npt.NDArray[np.float32] = self._stream.resample_chunk(data)
        return out

    def flush(self) -> npt.NDArray[np.float32]:
        out: npt.NDArray[np.float32] = self._stream.resample_chunk(
            np.zeros(0, dtype=np.float32), last=True
        )
        return out


class Framer:
    """Cut a stream of PCM pieces of any length into fixed frames (default 20 ms).

    :meth:`push` returns the complete frames now available and keeps the remainder;
    :meth:`flush` returns the remainder padded with silence to a whole frame, or nothing.
    """

    def __init__(self, frame_samples: int = FRAME_SAMPLES) -> None:
        if frame_samples <= 0:
            raise ValueError(f"frame_samples must be positive, got {frame_samples}")
        self.frame_samples = frame_samples
        self._pending = np.zeros(0, dtype=np.int16)

    def push(self, pcm: PCM) -> list[PCM]:
        if len(self._pending) == 0 and len(pcm) == self.frame_samples:
            return [pcm]  # the usual case: Twilio sends exactly one 20 ms frame per message
        data = np.concatenate([self._pending, np.asarray(pcm, dtype=np.int16)])
        whole = len(data) - len(data) % self.frame_samples
        self._pending = data[whole:]
        return [data[i : i + self.frame_samples] for i in range(0, whole, self.frame_samples)]

    def flush(self) -> list[PCM]:
        if len(self._pending) == 0:
            return []
        frame = np.zeros(self.frame_samples, dtype=np.int16)
        frame[: len(self._pending)] = self._pending
        self._pending = np.zeros(0, dtype=np.int16)
        return [frame]
