"""Voice activity detection with the WebRTC VAD (``webrtcvad-wheels``, MIT).

The WebRTC detector is a small Gaussian-mixture model in C: a few microseconds per 20 ms frame,
so it runs directly on the trio thread, never in a worker. It has no model file to load.

It keeps calling frames speech for 60-100 ms after speech stops, even frames of pure digital
silence: its hangover. That delays the end of every turn by as much, so a frame quieter than
``min_rms`` is never speech (an energy gate; :data:`DEFAULT_MIN_RMS` is about -56 dBFS, below
the quiet end of a word and above a phone line's idle noise).
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np

from ..audio import FRAME_SAMPLES, PCM, SAMPLE_RATE
from ..errors import ConfigurationError

__all__ = ["DEFAULT_MIN_RMS", "WebRtcDetector", "WebRtcVad"]

DEFAULT_MIN_RMS: Final = 50.0
"""Frames with a lower RMS (int16 units; 50 is about -56 dBFS) are never speech."""

_VALID_FRAME_SAMPLES: Final = (SAMPLE_RATE // 100, FRAME_SAMPLES, SAMPLE_RATE * 3 // 100)
"""The WebRTC VAD takes 10, 20 or 30 ms frames; phoneactors always feeds 20 ms (160 samples)."""
_SHAPE: Final = (FRAME_SAMPLES,)
_LITTLE_INT16: Final = np.dtype("<i2")
"""The VAD reads 16-bit little-endian samples (``np.int16`` on every machine we run on)."""


def _import_webrtcvad() -> Any:
    try:
        import webrtcvad
    except ImportError as exc:
        raise ConfigurationError(
            "the 'webrtc' voice activity engine needs the package webrtcvad-wheels: "
            "pip install webrtcvad-wheels"
        ) from exc
    return webrtcvad


def _c_process(vad: Any) -> Any:
    """webrtcvad's C function ``process(handle, rate, buffer, samples)`` behind ``vad``, or None.

    ``Vad.is_speech`` is a Python wrapper around it, and it reads any contiguous buffer, so
    calling it directly spares the wrapper and a copy to bytes on every frame. It checks no
    lengths: it must be given exactly ``samples`` samples. A webrtcvad built some other way gets
    ``None``, and the detector goes through the wrapper.
    """
    if getattr(vad, "_vad", None) is None:
        return None
    return getattr(getattr(_import_webrtcvad(), "_webrtcvad", None), "process", None)


class WebRtcDetector:
    """One call's detector: wraps its own ``webrtcvad.Vad`` (the C state is per stream)."""

    def __init__(self, vad: Any, min_rms: float = 0.0) -> None:
        self._vad = vad
        self._process = _c_process(vad)
        self._handle = getattr(vad, "_vad", None)
        self._min_square = min_rms * min_rms
        """The gate as a mean square, so no square root per frame."""

    def _loud_enough(self, samples: PCM) -> bool:
        if not self._min_square:
            return True
        as_float = samples.astype(np.float32)
        return float(np.dot(as_float, as_float)) >= self._min_square * len(samples)

    def is_speech(self, frame: PCM) -> bool:
        """Whether one frame of 8 kHz int16 audio (160 samples; 80 or 240 also work) is speech.

        Raises ``ValueError`` for any other frame length. Never blocks.
        """
        # The usual case first: one 20 ms frame of int16, as the framer cuts it.
        if (
            type(frame) is np.ndarray
            and frame.dtype is _LITTLE_INT16
            and frame.shape == _SHAPE
            and self._process is not None
        ):
            try:
                speech = self._process(self._handle, SAMPLE_RATE, frame, FRAME_SAMPLES)
                return bool(speech) and self._loud_enough(frame)
            except ValueError:  # numpy lends no buffer of a strided view: copy it below
                pass
        samples = np.asarray(frame, dtype=_LITTLE_INT16)
        if samples.ndim != 1 or len(samples) not in _VALID_FRAME_SAMPLES:
            raise ValueError(
                f"the WebRTC VAD needs one 10, 20 or 30 ms frame of 8 kHz mono audio "
                f"({', '.join(map(str, _VALID_FRAME_SAMPLES))} samples); got shape {samples.shape}"
            )
        speech = self._vad.is_speech(samples.tobytes(), SAMPLE_RATE)
        return bool(speech) and self._loud_enough(samples)


class WebRtcVad:
    """The WebRTC voice activity engine, shared by all calls.

    ``aggressiveness`` is WebRTC's mode, 0 (most willing to call a frame speech) to 3 (most
    willing to call it non-speech; the best choice for noisy phone lines). A value outside 0 to 3
    raises :class:`~phoneactors.errors.ConfigurationError`, as does a missing package.
    ``min_rms`` is the energy gate (int16 RMS; 0 turns it off): quieter frames are never
    speech, which cuts the VAD's hangover off the end of every turn.
    """

    name = "webrtc"

    def __init__(self, aggressiveness: int = 3, *, min_rms: float = DEFAULT_MIN_RMS) -> None:
        if isinstance(aggressiveness, bool) or aggressiveness not in (0, 1, 2, 3):
            raise ConfigurationError(
                f"WebRTC VAD aggressiveness must be 0, 1, 2 or 3, got {aggressiveness!r}"
            )
        if not 0 <= min_rms < 32768:
            raise ConfigurationError(f"min_rms must be between 0 and 32767, got {min_rms!r}")
        self.aggressiveness = aggressiveness
        self.min_rms = min_rms
        self._webrtcvad = _import_webrtcvad()

    async def load(self) -> None:
        """Nothing to load (the model is compiled in); returns at once. Idempotent."""

    def new_detector(self) -> WebRtcDetector:
        """A fresh detector for one call, with its own state."""
        return WebRtcDetector(self._webrtcvad.Vad(self.aggressiveness), self.min_rms)

    def __repr__(self) -> str:
        return f"WebRtcVad(aggressiveness={self.aggressiveness}, min_rms={self.min_rms:g})"
